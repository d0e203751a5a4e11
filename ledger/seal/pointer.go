package seal

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/lineage-audit/lineage/internal/ijson"
)

// Pointer is a parsed RFC 6901 JSON pointer: the reference tokens, unescaped (~1 is '/', ~0 is
// '~'). The empty pointer (the whole document) is never a sealable field, so ParsePointer
// refuses it.
type Pointer struct {
	raw    string
	tokens []string
}

// maxPointerLen bounds a pointer's text: record member names are short, and the pointer is
// written into every entry that seals its field.
const maxPointerLen = 256

// maxPointerTokens bounds the depth a pointer can name; records nest at most lineage.MaxDepth.
const maxPointerTokens = 32

// errNotString is wrapped when a pointer names a value that is not a JSON string.
var errNotString = errors.New("value is not a string")

// ParsePointer parses an RFC 6901 JSON pointer such as "/user/id". It refuses the empty pointer,
// invalid UTF-8, control characters, '~' not followed by '0' or '1', and pointers longer than
// 256 bytes or deeper than 32 tokens.
func ParsePointer(s string) (Pointer, error) {
	if s == "" || s[0] != '/' {
		return Pointer{}, fmt.Errorf("pointer %q: must start with '/'", clip(s))
	}
	if len(s) > maxPointerLen {
		return Pointer{}, fmt.Errorf("pointer %q: longer than %d bytes", clip(s), maxPointerLen)
	}
	if !utf8.ValidString(s) {
		return Pointer{}, fmt.Errorf("pointer %q: invalid UTF-8", clip(s))
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return Pointer{}, fmt.Errorf("pointer %q: control character", clip(s))
		}
	}
	parts := strings.Split(s[1:], "/")
	if len(parts) > maxPointerTokens {
		return Pointer{}, fmt.Errorf("pointer %q: deeper than %d tokens", clip(s), maxPointerTokens)
	}
	p := Pointer{raw: s, tokens: make([]string, len(parts))}
	for i, t := range parts {
		for j := 0; j < len(t); j++ {
			if t[j] == '~' && (j+1 >= len(t) || (t[j+1] != '0' && t[j+1] != '1')) {
				return Pointer{}, fmt.Errorf("pointer %q: '~' must be followed by '0' or '1'", clip(s))
			}
		}
		p.tokens[i] = strings.NewReplacer("~1", "/", "~0", "~").Replace(t)
	}
	return p, nil
}

// String returns the pointer's text.
func (p Pointer) String() string { return p.raw }

// span is where a pointer's value lies in a document: data[start:end] is the JSON value,
// quotes included for a string.
type span struct{ start, end int }

// locate finds the value p names in the JSON document doc. found is false when some token names
// no member or element (an absent optional field); err is set for a document that is not JSON.
// It reads only as far as it needs to and never panics on malformed input.
func (p Pointer) locate(doc []byte) (sp span, found bool, err error) {
	l := ijson.Lexer{Data: doc}
	for _, tok := range p.tokens {
		switch l.Next() {
		case '{':
			ok, err := enterMember(&l, tok)
			if err != nil || !ok {
				return span{}, false, err
			}
		case '[':
			ok, err := enterElement(&l, tok)
			if err != nil || !ok {
				return span{}, false, err
			}
		default:
			return span{}, false, nil // a scalar has no members
		}
	}
	l.Next()
	start := l.Pos
	if err := skipValue(&l, 0); err != nil {
		return span{}, false, err
	}
	return span{start, l.Pos}, true, nil
}

// locateString is locate for a value that must be a string; it returns the string's unescaped
// content too.
func (p Pointer) locateString(doc []byte) (sp span, value string, found bool, err error) {
	sp, found, err = p.locate(doc)
	if err != nil || !found {
		return sp, "", found, err
	}
	if doc[sp.start] != '"' {
		return sp, "", true, fmt.Errorf("%s: %w (found %s)", p.raw, errNotString, ijson.KindOf(doc[sp.start]))
	}
	raw := doc[sp.start+1 : sp.end-1]
	return sp, string(ijson.Unescape(make([]byte, 0, len(raw)), raw)), true, nil
}

// enterMember moves the cursor, at '{', to the value of member name, or reports it absent.
func enterMember(l *ijson.Lexer, name string) (bool, error) {
	l.Pos++ // '{'
	if l.Next() == '}' {
		return false, nil
	}
	var buf []byte
	for {
		if l.Next() != '"' {
			return false, l.Unexpected("a member name")
		}
		raw, escaped, err := l.ScanString()
		if err != nil {
			return false, err
		}
		key := raw
		if escaped {
			buf = ijson.Unescape(buf[:0], raw)
			key = buf
		}
		if err := l.Expect(':', "':'"); err != nil {
			return false, err
		}
		if string(key) == name {
			l.Next()
			return true, nil
		}
		if more, err := skipItem(l, '}', 1); !more {
			return false, err
		}
	}
}

// enterElement moves the cursor, at '[', to element tok (a decimal index without leading
// zeros), or reports it absent.
func enterElement(l *ijson.Lexer, tok string) (bool, error) {
	n, err := strconv.Atoi(tok)
	if err != nil || n < 0 || (len(tok) > 1 && tok[0] == '0') || tok[0] == '+' || tok[0] == '-' {
		return false, nil // not an array index: names nothing (RFC 6901 §4)
	}
	l.Pos++ // '['
	if l.Next() == ']' {
		return false, nil
	}
	for i := 0; ; i++ {
		if i == n {
			l.Next()
			return true, nil
		}
		if more, err := skipItem(l, ']', 1); !more {
			return false, err
		}
	}
}

// maxSkipDepth bounds the recursion of skipValue on hostile input.
const maxSkipDepth = 64

// skipValue moves the cursor past one JSON value.
func skipValue(l *ijson.Lexer, depth int) error {
	if depth > maxSkipDepth {
		return l.Errorf("nesting deeper than %d", maxSkipDepth)
	}
	switch c := l.Next(); {
	case c == '{' || c == '[':
		closer := byte('}')
		if c == '[' {
			closer = ']'
		}
		l.Pos++
		if l.Next() == closer {
			l.Pos++
			return nil
		}
		for {
			if c == '{' {
				if l.Next() != '"' {
					return l.Unexpected("a member name")
				}
				if _, _, err := l.ScanString(); err != nil {
					return err
				}
				if err := l.Expect(':', "':'"); err != nil {
					return err
				}
			}
			if more, err := skipItem(l, closer, depth+1); !more {
				if err == nil {
					l.Pos++ // closer
				}
				return err
			}
		}
	case c == '"':
		_, _, err := l.ScanString()
		return err
	case c == '-' || (c >= '0' && c <= '9'):
		_, err := l.ScanNumber()
		return err
	default:
		return l.Literal()
	}
}

// skipItem moves the cursor past one value in an object or array (at depth) and the ',' after
// it, reporting true; at the container's closer instead of a ',' it reports false and leaves the
// cursor on the closer.
func skipItem(l *ijson.Lexer, closer byte, depth int) (more bool, err error) {
	if err := skipValue(l, depth); err != nil {
		return false, err
	}
	switch l.Next() {
	case ',':
		l.Pos++
		return true, nil
	case closer:
		return false, nil
	}
	return false, l.Unexpected("',' or '" + string(closer) + "'")
}

// clip shortens s for an error message.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
