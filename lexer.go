package lineage

import (
	"fmt"
	"unicode/utf8"
)

// lexer reads JSON tokens from data. The pre-scan, the record decoder, the canonicalizer and the
// envelope decoder all use it, so the four agree byte for byte on what a JSON string, number and
// literal are. It never looks past len(data) and never panics on malformed input: every method
// reports a *syntaxError instead.
type lexer struct {
	data []byte
	pos  int
}

// syntaxError is a violation of the JSON grammar (RFC 8259) or of the I-JSON restrictions
// (RFC 7493) on strings, found at byte offset off.
type syntaxError struct {
	off int
	msg string
}

func (e *syntaxError) Error() string { return fmt.Sprintf("offset %d: %s", e.off, e.msg) }

func (l *lexer) errorf(format string, args ...any) *syntaxError {
	return &syntaxError{off: l.pos, msg: fmt.Sprintf(format, args...)}
}

// next skips insignificant whitespace and returns the byte at the cursor, or 0 at the end of the
// input. A NUL byte in the input also reads as 0; since it never starts a JSON token, callers
// that only compare with expected bytes need not care, but a test for the end of the input must
// use more.
func (l *lexer) next() byte {
	for l.pos < len(l.data) {
		switch c := l.data[l.pos]; c {
		case ' ', '\t', '\n', '\r':
			l.pos++
		default:
			return c
		}
	}
	return 0
}

// more skips whitespace and reports whether any input is left.
func (l *lexer) more() bool {
	l.next()
	return l.pos < len(l.data)
}

// unexpected describes the byte at the cursor for an error message.
func (l *lexer) unexpected(want string) *syntaxError {
	if l.pos >= len(l.data) {
		return l.errorf("unexpected end of input, want %s", want)
	}
	c := l.data[l.pos]
	if c < 0x20 || c >= 0x7f {
		return l.errorf("unexpected byte 0x%02x, want %s", c, want)
	}
	return l.errorf("unexpected %q, want %s", c, want)
}

// expect consumes byte c (after whitespace) or fails.
func (l *lexer) expect(c byte, want string) error {
	if l.next() != c {
		return l.unexpected(want)
	}
	l.pos++
	return nil
}

// literal consumes true, false or null at the cursor.
func (l *lexer) literal() error {
	for _, w := range [...]string{"true", "false", "null"} {
		if len(l.data)-l.pos >= len(w) && string(l.data[l.pos:l.pos+len(w)]) == w {
			l.pos += len(w)
			return nil
		}
	}
	return l.unexpected("a JSON value")
}

// scanString consumes the string at the cursor (which must be '"') and returns the bytes between
// the quotes, still escaped, and whether they contain any escape. It checks everything RFC 8259
// and RFC 7493 require of a string: valid UTF-8, no raw control characters, only the defined
// escapes, and no unpaired UTF-16 surrogate in \u escapes, because a lone surrogate has no UTF-8
// form and would make canonicalization lossy.
func (l *lexer) scanString() (raw []byte, escaped bool, err error) {
	if l.pos >= len(l.data) || l.data[l.pos] != '"' {
		return nil, false, l.unexpected("a string")
	}
	l.pos++
	start := l.pos
	data := l.data
	for l.pos < len(data) {
		c := data[l.pos]
		switch {
		case c == '"':
			raw = data[start:l.pos]
			l.pos++
			return raw, escaped, nil
		case c == '\\':
			escaped = true
			if err := l.scanEscape(); err != nil {
				return nil, false, err
			}
		case c < 0x20:
			return nil, false, l.errorf("control character 0x%02x in string must be escaped", c)
		case c < utf8.RuneSelf:
			l.pos++
		default:
			r, size := utf8.DecodeRune(data[l.pos:])
			if r == utf8.RuneError && size <= 1 {
				return nil, false, l.errorf("invalid UTF-8 in string")
			}
			l.pos += size
		}
	}
	return nil, false, l.errorf("unterminated string")
}

// scanEscape consumes one escape sequence starting at the backslash under the cursor.
func (l *lexer) scanEscape() error {
	if l.pos+1 >= len(l.data) {
		l.pos = len(l.data)
		return l.errorf("unterminated escape")
	}
	switch l.data[l.pos+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		l.pos += 2
		return nil
	case 'u':
	default:
		return l.errorf("invalid escape \\%c", l.data[l.pos+1])
	}
	r, ok := hex4(l.data, l.pos+2)
	if !ok {
		return l.errorf("invalid \\u escape")
	}
	switch {
	case r >= 0xDC00 && r <= 0xDFFF:
		return l.errorf("unpaired UTF-16 surrogate \\u%04x", r)
	case r >= 0xD800 && r <= 0xDBFF:
		lo, ok := hex4(l.data, l.pos+8)
		if !ok || l.data[l.pos+6] != '\\' || l.data[l.pos+7] != 'u' || lo < 0xDC00 || lo > 0xDFFF {
			return l.errorf("unpaired UTF-16 surrogate \\u%04x", r)
		}
		l.pos += 12
	default:
		l.pos += 6
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

// unescape appends the decoded form of raw, the inside of a string that scanString accepted, to
// dst. It relies on scanString's checks, but stays within bounds on any input.
func unescape(dst, raw []byte) []byte {
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

// scanNumber consumes the number at the cursor and returns its text. It enforces the RFC 8259
// grammar exactly: no leading zeros, no leading '+', no bare '.', digits after '.' and 'e'.
func (l *lexer) scanNumber() ([]byte, error) {
	data, start := l.data, l.pos
	i := l.pos
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
		l.pos = i
		return nil, l.unexpected("a digit")
	}
	if i < len(data) && data[i] == '.' {
		i++
		if i >= len(data) || !isDigit(data[i]) {
			l.pos = i
			return nil, l.unexpected("a digit after '.'")
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
			l.pos = i
			return nil, l.unexpected("a digit in the exponent")
		}
		for i < len(data) && isDigit(data[i]) {
			i++
		}
	}
	l.pos = i
	return data[start:i], nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
