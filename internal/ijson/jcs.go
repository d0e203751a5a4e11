package ijson

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"unicode/utf8"
)

// maxCanonicalDepth bounds the nesting Canonicalize accepts. It is far above anything a record or
// envelope can contain (the root package's MaxDepth + 1, limits.go) and only exists so that
// hostile input cannot make the recursive canonicalizer use unbounded stack.
const maxCanonicalDepth = 1000

// Canonicalize returns the RFC 8785 (JSON Canonicalization Scheme) form of the JSON text data.
//
// The output has object members sorted by the UTF-16 code units of their names, no insignificant
// whitespace, strings escaped as ECMAScript's JSON.stringify does, and numbers written as
// ECMAScript's Number.prototype.toString writes the nearest IEEE 754 double.
//
// Input that is not I-JSON (RFC 7493) is rejected, because it has no unambiguous canonical form:
// invalid UTF-8, unpaired surrogates, duplicate member names, numbers beyond the double range;
// so is nesting deeper than 1000. Unlike Check, Canonicalize accepts numbers that lose precision,
// as RFC 8785 specifies. Errors are *SyntaxError.
func Canonicalize(data []byte) ([]byte, error) {
	out, err := AppendCanonical(make([]byte, 0, len(data)), data, 0)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// AppendCanonical appends the canonical form of the JSON text data, which must hold exactly one
// value, to dst; depth is the nesting depth of the value's container (0 for a document). On
// error the returned slice holds a partial value.
func AppendCanonical(dst, data []byte, depth int) ([]byte, error) {
	c := Canonicalizer{Lexer: Lexer{Data: data}}
	out, err := c.AppendValue(dst, depth)
	if err == nil && c.More() {
		err = c.Errorf("unexpected data after the JSON value")
	}
	return out, err
}

// Canonicalizer writes the canonical form of the value under its cursor (AppendValue). Object
// members are first written in input order at the end of dst, then reordered in place: that costs
// one copy of each object instead of a tree of allocations. A Canonicalizer keeps its scratch
// space between values, so a decoder that canonicalizes several values in one document reuses
// one Canonicalizer, setting Lexer before each.
type Canonicalizer struct {
	Lexer
	keys    []byte   // decoded names of the members of all open objects
	members []member // members of all open objects, innermost last
	scratch []byte   // reused buffer for reordering members
}

// member is one object member already written to dst: its decoded name (a span of
// Canonicalizer.keys) and its "name":value bytes (a span of dst, relative to the object's start).
type member struct {
	name span
	out  span
}

// Reserve preallocates scratch space for members object members and keyBytes bytes of member
// names, in all open objects together.
func (c *Canonicalizer) Reserve(members, keyBytes int) {
	c.members = make([]member, 0, members)
	c.keys = make([]byte, 0, keyBytes)
}

// AppendValue appends the canonical form of the value at the cursor to dst and moves the cursor
// past it; depth is the nesting depth of the value's container. It does not look at what follows
// the value. On error the returned slice holds a partial value.
func (c *Canonicalizer) AppendValue(dst []byte, depth int) ([]byte, error) {
	switch ch := c.Next(); {
	case ch == '{':
		return c.object(dst, depth+1)
	case ch == '[':
		return c.array(dst, depth+1)
	case ch == '"':
		raw, _, err := c.ScanString()
		if err != nil {
			return dst, err
		}
		return appendRawString(dst, raw), nil
	case ch == '-' || isDigit(ch):
		lit, err := c.ScanNumber()
		if err != nil {
			return dst, err
		}
		f, err := strconv.ParseFloat(string(lit), 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return dst, c.Errorf("invalid number %s", Clip(lit))
		}
		out, err := appendNumber(dst, f)
		if err != nil {
			return dst, c.Errorf("number %s: %v", Clip(lit), err)
		}
		return out, nil
	default:
		start := c.Pos
		if err := c.Literal(); err != nil {
			return dst, err
		}
		return append(dst, c.Data[start:c.Pos]...), nil
	}
}

func (c *Canonicalizer) array(dst []byte, depth int) ([]byte, error) {
	if depth > maxCanonicalDepth {
		return dst, c.Errorf("nesting deeper than %d", maxCanonicalDepth)
	}
	c.Pos++ // '['
	dst = append(dst, '[')
	if c.Next() == ']' {
		c.Pos++
		return append(dst, ']'), nil
	}
	for {
		var err error
		if dst, err = c.AppendValue(dst, depth); err != nil {
			return dst, err
		}
		switch c.Next() {
		case ',':
			c.Pos++
			dst = append(dst, ',')
		case ']':
			c.Pos++
			return append(dst, ']'), nil
		default:
			return dst, c.Unexpected("',' or ']'")
		}
	}
}

func (c *Canonicalizer) object(dst []byte, depth int) ([]byte, error) {
	if depth > maxCanonicalDepth {
		return dst, c.Errorf("nesting deeper than %d", maxCanonicalDepth)
	}
	c.Pos++ // '{'
	if c.Next() == '}' {
		c.Pos++
		return append(dst, '{', '}'), nil
	}
	start, ki, mi := len(dst), len(c.keys), len(c.members)
	for {
		if c.Next() != '"' {
			return dst, c.Unexpected("a member name")
		}
		raw, escaped, err := c.ScanString()
		if err != nil {
			return dst, err
		}
		m := member{name: span{start: len(c.keys)}, out: span{start: len(dst) - start}}
		if escaped {
			c.keys = Unescape(c.keys, raw)
		} else {
			c.keys = append(c.keys, raw...)
		}
		m.name.end = len(c.keys)
		dst = appendRawString(dst, raw)
		dst = append(dst, ':')
		if err := c.Expect(':', "':'"); err != nil {
			return dst, err
		}
		if dst, err = c.AppendValue(dst, depth); err != nil {
			return dst, err
		}
		m.out.end = len(dst) - start
		c.members = append(c.members, m)
		switch c.Next() {
		case ',':
			c.Pos++
		case '}':
			c.Pos++
			dst, err = c.sortMembers(dst, start, c.members[mi:])
			c.keys, c.members = c.keys[:ki], c.members[:mi]
			return dst, err
		default:
			return dst, c.Unexpected("',' or '}'")
		}
	}
}

// sortMembers rewrites dst[start:], which holds the members ms in input order, as a canonical
// object with members sorted by name, and rejects duplicate names.
func (c *Canonicalizer) sortMembers(dst []byte, start int, ms []member) ([]byte, error) {
	name := func(m member) []byte { return c.keys[m.name.start:m.name.end] }
	slices.SortFunc(ms, func(a, b member) int { return compareUTF16(name(a), name(b)) })
	for i := 1; i < len(ms); i++ {
		if string(name(ms[i])) == string(name(ms[i-1])) {
			return dst, c.Errorf("duplicate member name %q", name(ms[i]))
		}
	}
	c.scratch = append(c.scratch[:0], dst[start:]...)
	dst = append(dst[:start], '{')
	for i, m := range ms {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, c.scratch[m.out.start:m.out.end]...)
	}
	return append(dst, '}'), nil
}

// compareUTF16 orders two UTF-8 strings by their UTF-16 code units, as RFC 8785 §3.2.3 requires.
// Byte order of UTF-8 equals code point order, which differs from UTF-16 order only where a
// character outside the BMP (a surrogate pair, D800–DFFF) meets one in E000–FFFF.
func compareUTF16(a, b []byte) int {
	n := min(len(a), len(b))
	i := 0
	for i < n && a[i] == b[i] {
		i++
	}
	if i == n {
		return len(a) - len(b)
	}
	for i > 0 && !utf8.RuneStart(a[i]) { // back up to the start of the differing characters
		i--
	}
	ra, _ := utf8.DecodeRune(a[i:])
	rb, _ := utf8.DecodeRune(b[i:])
	return compareRuneUTF16(ra, rb)
}

// compareRuneUTF16 orders two different characters by their UTF-16 encodings. Two characters on
// the same side of U+FFFF compare like their code points; a supplementary character starts with
// a high surrogate (D800–DBFF), so it sorts after BMP characters below D800 and before those from
// E000 (no BMP character is a surrogate).
func compareRuneUTF16(a, b rune) int {
	sa, sb := a > 0xFFFF, b > 0xFFFF
	switch {
	case sa == sb:
		return int(a - b)
	case sa:
		if b >= 0xE000 {
			return -1
		}
		return 1
	default:
		if a >= 0xE000 {
			return 1
		}
		return -1
	}
}

// appendRawString appends the canonical form of a JSON string given by raw, the still-escaped
// bytes between its quotes, already checked by Lexer.ScanString.
func appendRawString(dst, raw []byte) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			j := i + 1
			for j < len(raw) && raw[j] != '\\' {
				j++
			}
			dst = append(dst, raw[i:j]...) // no control characters, '"' or '\' here
			i = j
			continue
		}
		if i+1 >= len(raw) {
			break
		}
		e := raw[i+1]
		i += 2
		switch e {
		case 'u':
			r, n := decodeU(raw, i)
			i += n
			dst = appendRune(dst, r)
		case '/':
			dst = append(dst, '/')
		default: // '"', '\\', 'b', 'f', 'n', 'r', 't' are already canonical
			dst = append(dst, '\\', e)
		}
	}
	return append(dst, '"')
}

// AppendString appends s as a canonical JSON string. It fails on invalid UTF-8, which has no
// canonical form (json.Marshal would silently replace it with U+FFFD).
func AppendString(dst []byte, s string) ([]byte, error) {
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			j := i + 1
			for j < len(s) && s[j] >= 0x20 && s[j] != '"' && s[j] != '\\' && s[j] < utf8.RuneSelf {
				j++
			}
			dst = append(dst, s[i:j]...)
			i = j
			continue
		}
		if c < utf8.RuneSelf {
			dst = appendRune(dst, rune(c))
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size <= 1 {
			return dst, fmt.Errorf("invalid UTF-8 at byte %d of string", i)
		}
		dst = append(dst, s[i:i+size]...)
		i += size
	}
	return append(dst, '"'), nil
}

// appendRune appends one character in canonical string form: the two-character escapes for
// '"', '\\', and \b \f \n \r \t, \u00xx (lower-case hex) for other controls, UTF-8 otherwise.
func appendRune(dst []byte, r rune) []byte {
	switch r {
	case '"':
		return append(dst, '\\', '"')
	case '\\':
		return append(dst, '\\', '\\')
	case '\b':
		return append(dst, '\\', 'b')
	case '\f':
		return append(dst, '\\', 'f')
	case '\n':
		return append(dst, '\\', 'n')
	case '\r':
		return append(dst, '\\', 'r')
	case '\t':
		return append(dst, '\\', 't')
	}
	if r < 0x20 {
		const hex = "0123456789abcdef"
		return append(dst, '\\', 'u', '0', '0', hex[r>>4], hex[r&0xF])
	}
	return utf8.AppendRune(dst, r)
}
