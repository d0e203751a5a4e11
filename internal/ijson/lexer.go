// Package ijson is Lineage's strict JSON machinery: a lexer for RFC 8259 JSON restricted to
// I-JSON (RFC 7493) strings, a pre-scan (Check) that rejects what makes a document ambiguous
// (duplicate member names, numbers that canonicalization would alter) or expensive (deep
// nesting), and the RFC 8785 JSON Canonicalization Scheme (Canonicalize).
//
// It knows nothing about records. The root package (package lineage, at the top of the
// repository) builds on it the record decoder (decode.go), the record's canonical form
// (canonical.go) and the ledger envelope (envelope.go), so that all of them agree byte for byte
// on what a JSON string, number and literal are.
package ijson

import (
	"fmt"
	"unicode/utf8"
)

// Lexer reads JSON tokens from Data, starting at the cursor Pos. The pre-scan (Checker), the
// canonicalizer (Canonicalizer), the record decoder and the envelope decoder of the root package
// all use it, so the four agree byte for byte on what a JSON string, number and literal are. It
// never looks past len(Data) and never panics on malformed input: every method reports a
// *SyntaxError instead. Callers move the cursor themselves past the structural bytes ('{', ',',
// ':' ...) that Next shows them.
type Lexer struct {
	Data []byte
	Pos  int
}

// SyntaxError is a violation of the JSON grammar (RFC 8259) or of the I-JSON restrictions
// (RFC 7493) on strings, found at byte offset Offset.
type SyntaxError struct {
	Offset int
	Msg    string
}

// Error formats the error as "offset <Offset>: <Msg>".
func (e *SyntaxError) Error() string { return fmt.Sprintf("offset %d: %s", e.Offset, e.Msg) }

// Errorf returns a *SyntaxError at the cursor.
func (l *Lexer) Errorf(format string, args ...any) *SyntaxError {
	return &SyntaxError{Offset: l.Pos, Msg: fmt.Sprintf(format, args...)}
}

// Next skips insignificant whitespace and returns the byte at the cursor, or 0 at the end of the
// input. A NUL byte in the input also reads as 0; since it never starts a JSON token, callers
// that only compare with expected bytes need not care, but a test for the end of the input must
// use More.
func (l *Lexer) Next() byte {
	for l.Pos < len(l.Data) {
		switch c := l.Data[l.Pos]; c {
		case ' ', '\t', '\n', '\r':
			l.Pos++
		default:
			return c
		}
	}
	return 0
}

// More skips whitespace and reports whether any input is left.
func (l *Lexer) More() bool {
	l.Next()
	return l.Pos < len(l.Data)
}

// Unexpected describes the byte at the cursor for an error message; want says what was
// expected instead.
func (l *Lexer) Unexpected(want string) *SyntaxError {
	if l.Pos >= len(l.Data) {
		return l.Errorf("unexpected end of input, want %s", want)
	}
	c := l.Data[l.Pos]
	if c < 0x20 || c >= 0x7f {
		return l.Errorf("unexpected byte 0x%02x, want %s", c, want)
	}
	return l.Errorf("unexpected %q, want %s", c, want)
}

// Expect consumes byte c (after whitespace) or fails.
func (l *Lexer) Expect(c byte, want string) error {
	if l.Next() != c {
		return l.Unexpected(want)
	}
	l.Pos++
	return nil
}

// Literal consumes true, false or null at the cursor.
func (l *Lexer) Literal() error {
	for _, w := range [...]string{"true", "false", "null"} {
		if len(l.Data)-l.Pos >= len(w) && string(l.Data[l.Pos:l.Pos+len(w)]) == w {
			l.Pos += len(w)
			return nil
		}
	}
	return l.Unexpected("a JSON value")
}

// ScanString consumes the string at the cursor (which must be '"') and returns the bytes between
// the quotes, still escaped, and whether they contain any escape. It checks everything RFC 8259
// and RFC 7493 require of a string: valid UTF-8, no raw control characters, only the defined
// escapes, and no unpaired UTF-16 surrogate in \u escapes, because a lone surrogate has no UTF-8
// form and would make canonicalization lossy.
func (l *Lexer) ScanString() (raw []byte, escaped bool, err error) {
	if l.Pos >= len(l.Data) || l.Data[l.Pos] != '"' {
		return nil, false, l.Unexpected("a string")
	}
	l.Pos++
	start := l.Pos
	data := l.Data
	for l.Pos < len(data) {
		c := data[l.Pos]
		switch {
		case c == '"':
			raw = data[start:l.Pos]
			l.Pos++
			return raw, escaped, nil
		case c == '\\':
			escaped = true
			if err := l.scanEscape(); err != nil {
				return nil, false, err
			}
		case c < 0x20:
			return nil, false, l.Errorf("control character 0x%02x in string must be escaped", c)
		case c < utf8.RuneSelf:
			l.Pos++
		default:
			r, size := utf8.DecodeRune(data[l.Pos:])
			if r == utf8.RuneError && size <= 1 {
				return nil, false, l.Errorf("invalid UTF-8 in string")
			}
			l.Pos += size
		}
	}
	return nil, false, l.Errorf("unterminated string")
}

// scanEscape consumes one escape sequence starting at the backslash under the cursor.
func (l *Lexer) scanEscape() error {
	if l.Pos+1 >= len(l.Data) {
		l.Pos = len(l.Data)
		return l.Errorf("unterminated escape")
	}
	switch l.Data[l.Pos+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		l.Pos += 2
		return nil
	case 'u':
	default:
		return l.Errorf("invalid escape \\%c", l.Data[l.Pos+1])
	}
	r, ok := hex4(l.Data, l.Pos+2)
	if !ok {
		return l.Errorf("invalid \\u escape")
	}
	switch {
	case r >= 0xDC00 && r <= 0xDFFF:
		return l.Errorf("unpaired UTF-16 surrogate \\u%04x", r)
	case r >= 0xD800 && r <= 0xDBFF:
		lo, ok := hex4(l.Data, l.Pos+8)
		if !ok || l.Data[l.Pos+6] != '\\' || l.Data[l.Pos+7] != 'u' || lo < 0xDC00 || lo > 0xDFFF {
			return l.Errorf("unpaired UTF-16 surrogate \\u%04x", r)
		}
		l.Pos += 12
	default:
		l.Pos += 6
	}
	return nil
}

// hex4 decodes the four hex digits at data[i:i+4].
func hex4(data []byte, i int) (rune, bool) {
	if i < 0 || i+4 > len(data) {
		return 0, false
	}
	var r rune
	for _, c := range data[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// Unescape appends the decoded form of raw, the inside of a string that ScanString accepted, to
// dst. It relies on ScanString's checks, but stays within bounds on any input.
func Unescape(dst, raw []byte) []byte {
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			j := i + 1
			for j < len(raw) && raw[j] != '\\' {
				j++
			}
			dst = append(dst, raw[i:j]...)
			i = j
			continue
		}
		if i+1 >= len(raw) {
			return dst
		}
		e := raw[i+1]
		i += 2
		switch e {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, n := decodeU(raw, i)
			i += n
			dst = utf8.AppendRune(dst, r)
		default: // '"', '\\', '/'
			dst = append(dst, e)
		}
	}
	return dst
}

// decodeU decodes the code point of a \u escape whose hex digits start at raw[i], joining a
// surrogate pair. It returns how many bytes after the "\u" it consumed.
func decodeU(raw []byte, i int) (rune, int) {
	r, ok := hex4(raw, i)
	if !ok {
		return utf8.RuneError, 0
	}
	if r >= 0xD800 && r <= 0xDBFF && i+10 <= len(raw) && raw[i+4] == '\\' && raw[i+5] == 'u' {
		if lo, ok := hex4(raw, i+6); ok && lo >= 0xDC00 && lo <= 0xDFFF {
			return 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00), 10
		}
	}
	return r, 4
}

// ScanNumber consumes the number at the cursor and returns its text. It enforces the RFC 8259
// grammar exactly: no leading zeros, no leading '+', no bare '.', digits after '.' and 'e'.
func (l *Lexer) ScanNumber() ([]byte, error) {
	data, start := l.Data, l.Pos
	i := l.Pos
	if i < len(data) && data[i] == '-' {
		i++
	}
	switch {
	case i < len(data) && data[i] == '0':
		i++
	case i < len(data) && data[i] >= '1' && data[i] <= '9':
		for i < len(data) && isDigit(data[i]) {
			i++
		}
	default:
		l.Pos = i
		return nil, l.Unexpected("a digit")
	}
	if i < len(data) && data[i] == '.' {
		i++
		if i >= len(data) || !isDigit(data[i]) {
			l.Pos = i
			return nil, l.Unexpected("a digit after '.'")
		}
		for i < len(data) && isDigit(data[i]) {
			i++
		}
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		if i >= len(data) || !isDigit(data[i]) {
			l.Pos = i
			return nil, l.Unexpected("a digit in the exponent")
		}
		for i < len(data) && isDigit(data[i]) {
			i++
		}
	}
	l.Pos = i
	return data[start:i], nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
