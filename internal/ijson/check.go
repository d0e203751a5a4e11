package ijson

import (
	"strconv"
	"strings"
)

// Checker is the pre-scan: it checks that a JSON value is acceptable I-JSON (RFC 7493) before
// anything is decoded from it: well-formed JSON, valid UTF-8, no duplicate member names at any
// depth, nesting within MaxDepth, and numbers that canonicalization (RFC 8785) reproduces exactly.
//
// It runs as a separate pass so that the structural faults which make a document ambiguous, or
// expensive to process, are reported the same way wherever they occur, before schema errors:
// a duplicate "id" is a duplicate even if its first value is also of the wrong type. The
// duplicate check is the important one: a JSON parser that keeps the first of two equal keys
// and one that keeps the last see two different records in the same bytes, and an attacker who
// controls a record can use that to show the ledger one thing and a downstream consumer another.
// Keys are compared after unescaping, so "id" and "\u0069d" are the same key.
//
// Set Lexer, Root and MaxDepth, then call Value; Check does all of that for a whole document.
type Checker struct {
	Lexer
	// Root is the path of the checked value, the prefix of every CheckError.Path ("" for a
	// document).
	Root string
	// MaxDepth is the deepest nesting of objects and arrays allowed, the outermost container
	// being at depth 1.
	MaxDepth int

	keys   []byte  // decoded keys of all open objects, innermost last
	spans  []span  // spans of keys in keys, innermost object last
	frames []frame // one per open container, for error paths
}

// Fault classifies what Checker found wrong with a document.
type Fault uint8

const (
	// FaultSyntax: not JSON (RFC 8259), or a string that I-JSON forbids (invalid UTF-8, an
	// unpaired surrogate), or data after the value, or no value at all.
	FaultSyntax Fault = iota + 1
	// FaultDepth: objects and arrays nest deeper than Checker.MaxDepth.
	FaultDepth
	// FaultDuplicate: a member name occurs twice in one object.
	FaultDuplicate
	// FaultNumber: a number outside the range of an IEEE 754 double, or one whose canonical
	// form (RFC 8785) would have a different value (see checkNumber).
	FaultNumber
)

// CheckError is a fault found by Checker, at Path: Root followed by the members and elements
// leading to the fault, such as "delegation.actors[2]".
type CheckError struct {
	Fault Fault
	Path  string
	Msg   string
}

// Error formats the error as "<Path>: <Msg>", or just Msg at the root of a document.
func (e *CheckError) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

type span struct{ start, end int }

// frame is one step of the path to the cursor: a member of an object (key is a span of
// Checker.keys) or an element of an array.
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

// Check runs the pre-scan over data, which must hold exactly one JSON value (with optional
// whitespace around it). root is the path of that value (see Checker.Root), baseDepth the
// nesting depth of its container, maxDepth the limit (see Checker.MaxDepth).
func Check(data []byte, root string, baseDepth, maxDepth int) *CheckError {
	// Stack-allocated starting buffers: a typical record needs no heap allocation here.
	var keys [512]byte
	var spans [32]span
	var frames [8]frame
	s := Checker{Lexer: Lexer{Data: data}, Root: root, MaxDepth: maxDepth,
		keys: keys[:0], spans: spans[:0], frames: frames[:0]}
	if !s.More() {
		return s.fail(FaultSyntax, "empty input")
	}
	if err := s.Value(baseDepth); err != nil {
		return err
	}
	if s.More() {
		return s.fail(FaultSyntax, "unexpected data after the JSON value at offset "+strconv.Itoa(s.Pos))
	}
	return nil
}

// fail builds an error located at the current path.
func (s *Checker) fail(f Fault, msg string) *CheckError {
	return &CheckError{Fault: f, Path: s.path(), Msg: msg}
}

func (s *Checker) syntax(err error) *CheckError {
	return s.fail(FaultSyntax, err.Error())
}

// path renders the frames as a dotted path such as "delegation.actors[2]".
func (s *Checker) path() string {
	var b strings.Builder
	b.WriteString(s.Root)
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

// Value checks the value at the cursor and moves the cursor past it; depth is the nesting depth
// of its container. It does not look at what follows the value.
func (s *Checker) Value(depth int) *CheckError {
	switch c := s.Next(); {
	case c == '{':
		return s.object(depth + 1)
	case c == '[':
		return s.array(depth + 1)
	case c == '"':
		if _, _, err := s.ScanString(); err != nil {
			return s.syntax(err)
		}
	case c == '-' || isDigit(c):
		lit, err := s.ScanNumber()
		if err != nil {
			return s.syntax(err)
		}
		if msg := checkNumber(lit); msg != "" {
			return s.fail(FaultNumber, msg)
		}
	default:
		if err := s.Literal(); err != nil {
			return s.syntax(err)
		}
	}
	return nil
}

func (s *Checker) tooDeep(depth int) *CheckError {
	return s.fail(FaultDepth, "nesting depth "+strconv.Itoa(depth)+" exceeds the limit of "+strconv.Itoa(s.MaxDepth))
}

func (s *Checker) array(depth int) *CheckError {
	if depth > s.MaxDepth {
		return s.tooDeep(depth)
	}
	s.Pos++ // '['
	if s.Next() == ']' {
		s.Pos++
		return nil
	}
	fi := len(s.frames)
	s.frames = append(s.frames, frame{array: true})
	for i := 0; ; i++ {
		s.frames[fi].index = i
		if err := s.Value(depth); err != nil {
			return err
		}
		switch s.Next() {
		case ',':
			s.Pos++
		case ']':
			s.Pos++
			s.frames = s.frames[:fi]
			return nil
		default:
			return s.syntax(s.Unexpected("',' or ']'"))
		}
	}
}

func (s *Checker) object(depth int) *CheckError {
	if depth > s.MaxDepth {
		return s.tooDeep(depth)
	}
	s.Pos++ // '{'
	if s.Next() == '}' {
		s.Pos++
		return nil
	}
	fi, ki, si := len(s.frames), len(s.keys), len(s.spans)
	s.frames = append(s.frames, frame{})
	var seen map[string]struct{}
	for {
		s.frames[fi] = frame{} // errors before the name is read belong to the object
		if s.Next() != '"' {
			return s.syntax(s.Unexpected("a member name"))
		}
		raw, escaped, err := s.ScanString()
		if err != nil {
			return s.syntax(err)
		}
		k := span{start: len(s.keys)}
		if escaped {
			s.keys = Unescape(s.keys, raw)
		} else {
			s.keys = append(s.keys, raw...)
		}
		k.end = len(s.keys)
		s.frames[fi] = frame{hasKey: true, key: k}
		if s.duplicate(k, s.spans[si:], &seen) {
			return s.fail(FaultDuplicate, "duplicate member name")
		}
		s.spans = append(s.spans, k)
		if err := s.Expect(':', "':'"); err != nil {
			return s.syntax(err)
		}
		if err := s.Value(depth); err != nil {
			return err
		}
		switch s.Next() {
		case ',':
			s.Pos++
		case '}':
			s.Pos++
			s.frames, s.keys, s.spans = s.frames[:fi], s.keys[:ki], s.spans[:si]
			return nil
		default:
			return s.syntax(s.Unexpected("',' or '}'"))
		}
	}
}

// duplicate reports whether key k equals one of the earlier keys of the same object.
func (s *Checker) duplicate(k span, earlier []span, seen *map[string]struct{}) bool {
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

// KindOf names the JSON type of the value that starts with byte c ("object", "string", ...), for
// error messages.
func KindOf(c byte) string {
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

// KindNames names the JSON types whose values start with the bytes of kinds, such as "object or
// string" for `{"`.
func KindNames(kinds string) string {
	names := make([]string, 0, len(kinds))
	for i := 0; i < len(kinds); i++ {
		names = append(names, KindOf(kinds[i]))
	}
	return strings.Join(names, " or ")
}
