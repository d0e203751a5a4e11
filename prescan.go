package lineage

import (
	"strconv"
	"strings"
)

// prescan checks that a document is acceptable I-JSON (RFC 7493) before anything is decoded from
// it: well-formed JSON, valid UTF-8, no duplicate member names at any depth, nesting within
// MaxDepth, and numbers that canonicalization (RFC 8785) reproduces exactly.
//
// It runs as a separate pass so that the structural faults which make a document ambiguous, or
// expensive to process, are reported the same way wherever they occur, before schema errors:
// a duplicate "id" is duplicate_key even if its first value is also of the wrong type. The
// duplicate check is the important one: a JSON parser that keeps the first of two equal keys
// and one that keeps the last see two different records in the same bytes, and an attacker who
// controls a record can use that to show the ledger one thing and a downstream consumer another.
// Keys are compared after unescaping, so "id" and "\u0069d" are the same key.
type prescan struct {
	lexer
	root      string  // path prefix of the scanned value inside the record ("" for a record)
	baseDepth int     // nesting depth of the scanned value's container
	keys      []byte  // decoded keys of all open objects, innermost last
	spans     []span  // spans of keys in keys, innermost object last
	frames    []frame // one per open container, for error paths
}

type span struct{ start, end int }

// frame is one step of the path to the cursor: a member of an object (key is a span of
// prescan.keys) or an element of an array.
type frame struct {
	array  bool
	hasKey bool
	key    span
	index  int
}

// smallObject is the member count up to which duplicates are found by comparing each new key
// with the previous ones; larger objects switch to a map so that a hostile record with
// thousands of members costs linear, not quadratic, time.
const smallObject = 16

// checkIJSON runs the pre-scan over data, which must hold exactly one value whose first byte is
// one of kinds ("{" for a record or policy_context, "{\"" for identity_object).
func checkIJSON(data []byte, root string, baseDepth int, kinds string) *DecodeError {
	// Stack-allocated starting buffers: a typical record needs no heap allocation here.
	var keys [512]byte
	var spans [32]span
	var frames [8]frame
	s := prescan{lexer: lexer{data: data}, root: root, baseDepth: baseDepth,
		keys: keys[:0], spans: spans[:0], frames: frames[:0]}
	if !s.more() {
		return s.fail(CodeInvalidJSON, "empty input")
	}
	c := s.next()
	if strings.IndexByte(kinds, c) < 0 {
		if root == "" {
			return s.fail(CodeInvalidJSON, "a record must be a JSON object")
		}
		return &DecodeError{Code: CodeWrongType, Field: root, Msg: "expected " + kindNames(kinds) + ", got " + kindOf(c)}
	}
	if err := s.value(baseDepth); err != nil {
		return err
	}
	if s.more() {
		return s.fail(CodeInvalidJSON, "unexpected data after the JSON value at offset "+strconv.Itoa(s.pos))
	}
	return nil
}

// fail builds an error located at the current path.
func (s *prescan) fail(code, msg string) *DecodeError {
	return &DecodeError{Code: code, Field: s.path(), Msg: msg}
}

func (s *prescan) syntax(err error) *DecodeError {
	return s.fail(CodeInvalidJSON, err.Error())
}

// path renders the frames as a dotted path such as "delegation.actors[2]".
func (s *prescan) path() string {
	var b strings.Builder
	b.WriteString(s.root)
	for _, f := range s.frames {
		switch {
		case f.array:
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(f.index))
			b.WriteByte(']')
		case f.hasKey:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.Write(s.keys[f.key.start:f.key.end])
		}
	}
	return b.String()
}

// value checks the value at the cursor; depth is the nesting depth of its container.
func (s *prescan) value(depth int) *DecodeError {
	switch c := s.next(); {
	case c == '{':
		return s.object(depth + 1)
	case c == '[':
		return s.array(depth + 1)
	case c == '"':
		if _, _, err := s.scanString(); err != nil {
			return s.syntax(err)
		}
	case c == '-' || isDigit(c):
		lit, err := s.scanNumber()
		if err != nil {
			return s.syntax(err)
		}
		if msg := checkNumber(lit); msg != "" {
			return s.fail(CodeInvalidValue, msg)
		}
	default:
		if err := s.literal(); err != nil {
			return s.syntax(err)
		}
	}
	return nil
}

func (s *prescan) tooDeep(depth int) *DecodeError {
	return s.fail(CodeTooDeep, "nesting depth "+strconv.Itoa(depth)+" exceeds the limit of "+strconv.Itoa(MaxDepth))
}

func (s *prescan) array(depth int) *DecodeError {
	if depth > MaxDepth {
		return s.tooDeep(depth)
	}
	s.pos++ // '['
	if s.next() == ']' {
		s.pos++
		return nil
	}
	fi := len(s.frames)
	s.frames = append(s.frames, frame{array: true})
	for i := 0; ; i++ {
		s.frames[fi].index = i
		if err := s.value(depth); err != nil {
			return err
		}
		switch s.next() {
		case ',':
			s.pos++
		case ']':
			s.pos++
			s.frames = s.frames[:fi]
			return nil
		default:
			return s.syntax(s.unexpected("',' or ']'"))
		}
	}
}

func (s *prescan) object(depth int) *DecodeError {
	if depth > MaxDepth {
		return s.tooDeep(depth)
	}
	s.pos++ // '{'
	if s.next() == '}' {
		s.pos++
		return nil
	}
	fi, ki, si := len(s.frames), len(s.keys), len(s.spans)
	s.frames = append(s.frames, frame{})
	var seen map[string]struct{}
	for {
		s.frames[fi] = frame{} // errors before the name is read belong to the object
		if s.next() != '"' {
			return s.syntax(s.unexpected("a member name"))
		}
		raw, escaped, err := s.scanString()
		if err != nil {
			return s.syntax(err)
		}
		k := span{start: len(s.keys)}
		if escaped {
			s.keys = unescape(s.keys, raw)
		} else {
			s.keys = append(s.keys, raw...)
		}
		k.end = len(s.keys)
		s.frames[fi] = frame{hasKey: true, key: k}
		if s.duplicate(k, s.spans[si:], &seen) {
			return s.fail(CodeDuplicateKey, "duplicate member name")
		}
		s.spans = append(s.spans, k)
		if err := s.expect(':', "':'"); err != nil {
			return s.syntax(err)
		}
		if err := s.value(depth); err != nil {
			return err
		}
		switch s.next() {
		case ',':
			s.pos++
		case '}':
			s.pos++
			s.frames, s.keys, s.spans = s.frames[:fi], s.keys[:ki], s.spans[:si]
			return nil
		default:
			return s.syntax(s.unexpected("',' or '}'"))
		}
	}
}

// duplicate reports whether key k equals one of the earlier keys of the same object.
func (s *prescan) duplicate(k span, earlier []span, seen *map[string]struct{}) bool {
	key := s.keys[k.start:k.end]
	if len(earlier) < smallObject {
		for _, e := range earlier {
			if string(s.keys[e.start:e.end]) == string(key) {
				return true
			}
		}
		return false
	}
	if *seen == nil {
		*seen = make(map[string]struct{}, 2*len(earlier))
		for _, e := range earlier {
			(*seen)[string(s.keys[e.start:e.end])] = struct{}{}
		}
	}
	if _, ok := (*seen)[string(key)]; ok {
		return true
	}
	(*seen)[string(key)] = struct{}{}
	return false
}

// kindOf names the JSON type that starts with byte c, for error messages.
func kindOf(c byte) string {
	switch {
	case c == '{':
		return "object"
	case c == '[':
		return "array"
	case c == '"':
		return "string"
	case c == 't' || c == 'f':
		return "boolean"
	case c == 'n':
		return "null"
	case c == '-' || isDigit(c):
		return "number"
	}
	return "invalid JSON"
}

func kindNames(kinds string) string {
	names := make([]string, 0, len(kinds))
	for i := 0; i < len(kinds); i++ {
		names = append(names, kindOf(kinds[i]))
	}
	return strings.Join(names, " or ")
}
