package lineage

import (
	"encoding/json"
	"fmt"
	"strconv"
	"unicode"
	"unicode/utf8"
)

// Which characters a record's strings may hold. Records are shown to people (lineagectl, logs,
// reports, the UI), and a string that carries terminal escape sequences, line breaks or
// bidirectional overrides can clear a screen, forge an output line or make one id look like
// another. Ingest therefore rejects such characters with CodeControlCharacter (see the rules next
// to Record in record.go), and every human-facing output shows what is left, and what an older
// ledger may still hold, through Printable.

// identForbidden reports whether r may not occur in an identifier or label (every string member
// except the prose members): C0 controls and DEL, C1 controls, the soft hyphen, the Arabic letter
// mark, the Mongolian vowel separator, zero-width characters (U+200B–U+200D, U+2060–U+2064,
// U+FEFF), directional marks, embeddings, overrides and isolates (U+200E, U+200F, U+202A–U+202E,
// U+2066–U+2069), the line and paragraph separators (U+2028, U+2029), the deprecated format
// characters U+206A–U+206F, interlinear annotation controls (U+FFF9–U+FFFB) and the invisible tag
// characters (U+E0000–U+E007F). schema/decision-v1.json spells the same set as $defs patterns.
func identForbidden(r rune) bool {
	switch {
	case r < 0x20 || r >= 0x7f && r <= 0x9f:
		return true
	case r < 0xad:
		return false
	case r == 0xad || r == 0x61c || r == 0x180e || r == 0xfeff:
		return true
	}
	return r >= 0x200b && r <= 0x200f || r >= 0x2028 && r <= 0x202e || r >= 0x2060 && r <= 0x206f ||
		r >= 0xfff9 && r <= 0xfffb || r >= 0xe0000 && r <= 0xe007f
}

// textForbidden reports whether r may not occur in prose (decision.reason, ai_system.name,
// ai_system.use_case, and the strings inside policy_context and identity_object): C0 controls
// other than tab, line feed and carriage return, DEL, C1 controls, and the bidirectional
// formatting characters (U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069).
func textForbidden(r rune) bool {
	switch {
	case r == '\t' || r == '\n' || r == '\r':
		return false
	case r < 0x20 || r >= 0x7f && r <= 0x9f:
		return true
	case r < 0x61c:
		return false
	}
	return r == 0x61c || r == 0x200e || r == 0x200f || r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069
}

// findForbidden returns the first rune of s that forbidden rejects and its byte offset, or -1.
// Bytes that are not valid UTF-8 are left to the UTF-8 checks.
func findForbidden(s string, forbidden func(rune) bool) (rune, int) {
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if (b < 0x20 || b == 0x7f) && forbidden(rune(b)) {
				return rune(b), i
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if forbidden(r) {
			return r, i
		}
		i += n
	}
	return 0, -1
}

func controlError(field string, r rune, at int, ident bool) *DecodeError {
	rule := "identifiers may not contain control, invisible formatting (bidi, zero-width) or line-separator characters"
	if !ident {
		rule = "text may not contain control characters other than tab, line feed and carriage return, or bidirectional formatting characters"
	}
	return &DecodeError{Code: CodeControlCharacter, Field: field,
		Msg: fmt.Sprintf("contains %U at byte %d: %s", r, at, rule)}
}

// freeBad is a forbidden character found by scanFree: the path below the free-form member,
// built while unwinding so that scanning a clean value allocates nothing.
type freeBad struct {
	path string
	r    rune
	name bool // in a member name rather than a value
}

// scanFree checks every member name and string value in the well-formed JSON value data (the
// canonical form of policy_context or identity_object) against textForbidden.
func scanFree(field string, data []byte) *DecodeError {
	_, bad := scanValue(data, 0)
	if bad == nil {
		return nil
	}
	msg := fmt.Sprintf("contains %U: text may not contain control characters other than tab, line feed and carriage return, or bidirectional formatting characters", bad.r)
	if bad.name {
		msg = "a member name " + msg
	}
	return &DecodeError{Code: CodeControlCharacter, Field: field + bad.path, Msg: msg}
}

func skipSpace(d []byte, i int) int {
	for i < len(d) && (d[i] == ' ' || d[i] == '\t' || d[i] == '\n' || d[i] == '\r') {
		i++
	}
	return i
}

// scanValue scans the value at d[i:] and returns the offset after it. It relies on d being
// well-formed JSON, but never reads out of bounds when it is not.
func scanValue(d []byte, i int) (int, *freeBad) {
	i = skipSpace(d, i)
	if i >= len(d) {
		return i, nil
	}
	switch d[i] {
	case '"':
		return scanString(d, i)
	case '{':
		i = skipSpace(d, i+1)
		if i < len(d) && d[i] == '}' {
			return i + 1, nil
		}
		for i < len(d) {
			start := skipSpace(d, i)
			end, bad := scanString(d, start)
			if bad != nil {
				bad.name = true
				return end, bad
			}
			i = skipSpace(d, end) + 1 // ':'
			if i, bad = scanValue(d, i); bad != nil {
				var name string
				if json.Unmarshal(d[start:end], &name) != nil {
					name = string(d[start:end])
				}
				bad.path = "." + name + bad.path
				return i, bad
			}
			if i = skipSpace(d, i); i < len(d) && d[i] == '}' {
				return i + 1, nil
			}
			i++ // ','
		}
		return i, nil
	case '[':
		i = skipSpace(d, i+1)
		if i < len(d) && d[i] == ']' {
			return i + 1, nil
		}
		for k := 0; i < len(d); k++ {
			var bad *freeBad
			if i, bad = scanValue(d, i); bad != nil {
				bad.path = "[" + strconv.Itoa(k) + "]" + bad.path
				return i, bad
			}
			if i = skipSpace(d, i); i < len(d) && d[i] == ']' {
				return i + 1, nil
			}
			i++ // ','
		}
		return i, nil
	}
	for i < len(d) && d[i] != ',' && d[i] != ']' && d[i] != '}' && d[i] != ' ' && d[i] != '\n' && d[i] != '\t' && d[i] != '\r' {
		i++
	}
	return i, nil
}

// scanString scans the string literal at d[i:], escapes included.
func scanString(d []byte, i int) (int, *freeBad) {
	if i >= len(d) || d[i] != '"' {
		return i, nil
	}
	for j := i + 1; j < len(d); {
		c := d[j]
		switch {
		case c == '"':
			return j + 1, nil
		case c == '\\':
			if j+1 >= len(d) {
				return len(d), nil
			}
			r := rune(-1)
			switch d[j+1] {
			case 'b':
				r = '\b'
			case 'f':
				r = '\f'
			case 'u':
				if j+6 <= len(d) {
					if v, err := strconv.ParseUint(string(d[j+2:j+6]), 16, 32); err == nil {
						r = rune(v)
					}
				}
				j += 4
			}
			if r >= 0 && textForbidden(r) {
				return j, &freeBad{r: r}
			}
			j += 2
		case c < utf8.RuneSelf:
			if textForbidden(rune(c)) {
				return j, &freeBad{r: rune(c)}
			}
			j++
		default:
			r, n := utf8.DecodeRune(d[j:])
			if textForbidden(r) {
				return j, &freeBad{r: r}
			}
			j += n
		}
	}
	return len(d), nil
}

// Printable returns s ready to be shown to a person on a terminal, in a log viewer or in a web
// page: every control character, C1 control, format character (bidirectional marks, embeddings,
// overrides and isolates, zero-width characters, tags), line or paragraph separator and invalid
// UTF-8 byte is replaced by a visible escape — \t, \n, \r, \x1b, \x7f, \u009b, \u202e,
// \U000e0041, and \xff for a byte that is not UTF-8 — so that a hostile string can neither
// move the cursor, change colours, clear the screen, start a new line nor reorder the text
// around it. Everything else, backslashes included, is left as it is, so ordinary ids read as
// written. A string that needs no escaping is returned without copying.
//
// Ingest rejects most of these characters (CodeControlCharacter), but prose may hold line breaks
// and records logged before that rule may hold anything, so every output of record-derived text
// for people goes through Printable.
func Printable(s string) string {
	i := 0
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		if needsEscape(r, n) {
			break
		}
		i += n
	}
	if i == len(s) {
		return s
	}
	b := make([]byte, 0, len(s)+16)
	b = append(b, s[:i]...)
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case !needsEscape(r, n):
			b = append(b, s[i:i+n]...)
		case r == utf8.RuneError:
			b = fmt.Appendf(b, `\x%02x`, s[i])
		case r == '\t':
			b = append(b, `\t`...)
		case r == '\n':
			b = append(b, `\n`...)
		case r == '\r':
			b = append(b, `\r`...)
		case r < 0x80:
			b = fmt.Appendf(b, `\x%02x`, r)
		case r <= 0xffff:
			b = fmt.Appendf(b, `\u%04x`, r)
		default:
			b = fmt.Appendf(b, `\U%08x`, r)
		}
		i += n
	}
	return string(b)
}

func needsEscape(r rune, size int) bool {
	if r < utf8.RuneSelf {
		return r < 0x20 || r == 0x7f
	}
	return r == utf8.RuneError && size == 1 || identForbidden(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp)
}
