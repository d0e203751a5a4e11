package query

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	lineage "github.com/lineage-audit/lineage"
)

// The big lineage answers (a user tree or an agent's actions, up to 99,999 actions with their
// leaves and proofs, tens of megabytes) are encoded here without reflection and streamed to
// the client in chunks. The bytes are exactly what encoding/json (gin's c.JSON) writes for the
// same value, HTML escaping included; TestAnswerJSONMatchesEncodingJSON holds them to it.

// streamChunk is how many bytes are encoded before they are written to the client.
const streamChunk = 64 << 10

// jsonStream encodes into a buffer and writes it to w whenever it holds streamChunk bytes; with
// w nil it keeps everything in the buffer.
type jsonStream struct {
	w   http.ResponseWriter
	buf []byte
	err error
}

func (s *jsonStream) flushIfFull() {
	if s.w != nil && len(s.buf) >= streamChunk {
		s.flush()
	}
}

func (s *jsonStream) flush() {
	if s.err == nil && len(s.buf) > 0 {
		_, s.err = s.w.Write(s.buf)
	}
	s.buf = s.buf[:0]
}

// writeAnswer answers 200 with v encoded as JSON, streamed for the big answer types.
func writeAnswer(c *gin.Context, v any) {
	var enc func(*jsonStream)
	switch a := v.(type) {
	case *UserLineage:
		enc = func(s *jsonStream) { appendUserLineage(s, a) }
	case *AgentLineage:
		enc = func(s *jsonStream) { appendAgentLineage(s, a) }
	default:
		c.JSON(http.StatusOK, v)
		return
	}
	c.Header("Content-Type", "application/json; charset=utf-8")
	c.Status(http.StatusOK)
	s := &jsonStream{w: c.Writer, buf: make([]byte, 0, streamChunk+8<<10)}
	enc(s)
	s.flush()
}

// EncodeAnswer returns the JSON of a lineage answer exactly as the API writes it (for tests
// and tools; the API streams it).
func EncodeAnswer(v any) ([]byte, error) {
	s := &jsonStream{}
	switch a := v.(type) {
	case *UserLineage:
		appendUserLineage(s, a)
	case *AgentLineage:
		appendAgentLineage(s, a)
	default:
		return json.Marshal(v)
	}
	return s.buf, nil
}

func (s *jsonStream) appendAnswerHead(a *Answer) {
	b := append(s.buf, `{"tenant":`...)
	b = appendString(b, a.Tenant)
	b = append(b, `,"checkpoint_size":`...)
	b = strconv.AppendUint(b, a.CheckpointSize, 10)
	b = append(b, `,"checkpoint":`...)
	b = appendString(b, a.Checkpoint)
	b = append(b, `,"flags":`...)
	b = appendMarshal(b, a.Flags)
	if a.NextCursor != "" {
		b = append(b, `,"next_cursor":`...)
		b = appendString(b, a.NextCursor)
	}
	s.buf = b
}

func appendUserLineage(s *jsonStream, a *UserLineage) {
	s.appendAnswerHead(&a.Answer)
	if t := a.UserTree; t != nil {
		b := append(s.buf, `,"user":`...)
		b = appendPerson(b, t.User)
		b = append(b, `,"agents":`...)
		s.buf = b
		s.appendAgents(t.Agents)
		b = append(s.buf, `,"actions":`...)
		b = strconv.AppendInt(b, int64(t.Actions), 10)
		b = append(b, `,"truncated":`...)
		b = strconv.AppendBool(b, t.Truncated)
		s.buf = b
	}
	if a.From != "" {
		s.buf = appendString(append(s.buf, `,"from":`...), a.From)
	}
	if a.To != "" {
		s.buf = appendString(append(s.buf, `,"to":`...), a.To)
	}
	s.buf = append(s.buf, '}')
}

func appendAgentLineage(s *jsonStream, a *AgentLineage) {
	s.appendAnswerHead(&a.Answer)
	b := append(s.buf, `,"agent":`...)
	b = appendString(b, a.Agent)
	b = append(b, `,"users":`...)
	if a.Users == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, u := range a.Users {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"id":`...)
			b = appendString(b, u.ID)
			b = append(b, `,"issuer":`...)
			b = appendString(b, u.Issuer)
			b = append(b, `,"actions":`...)
			b = strconv.AppendInt(b, int64(u.Actions), 10)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = append(b, `,"actions":`...)
	s.buf = b
	s.appendActions(a.Actions)
	s.buf = append(s.buf, '}')
}

func (s *jsonStream) appendAgents(as []*AgentNode) {
	if as == nil {
		s.buf = append(s.buf, "null"...)
		return
	}
	s.buf = append(s.buf, '[')
	for i, n := range as {
		if i > 0 {
			s.buf = append(s.buf, ',')
		}
		if n == nil {
			s.buf = append(s.buf, "null"...)
			continue
		}
		b := append(s.buf, `{"id":`...)
		b = appendString(b, n.ID)
		b = appendStrings(b, `,"roles":`, n.Roles)
		b = appendStrings(b, `,"models":`, n.Models)
		b = appendStrings(b, `,"delegations":`, n.Delegations)
		b = append(b, `,"actions":`...)
		s.buf = b
		s.appendActions(n.Actions)
		if len(n.Agents) > 0 {
			s.buf = append(s.buf, `,"agents":`...)
			s.appendAgents(n.Agents)
		}
		s.buf = append(s.buf, '}')
	}
	s.buf = append(s.buf, ']')
}

// appendStrings appends key and the list, omitted when empty (omitempty).
func appendStrings(b []byte, key string, list []string) []byte {
	if len(list) == 0 {
		return b
	}
	b = append(b, key...)
	b = append(b, '[')
	for i, v := range list {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, v)
	}
	return append(b, ']')
}

func (s *jsonStream) appendActions(ns []*ActionNode) {
	if ns == nil {
		s.buf = append(s.buf, "null"...)
		return
	}
	s.buf = append(s.buf, '[')
	for i, n := range ns {
		if i > 0 {
			s.buf = append(s.buf, ',')
		}
		if s.err != nil {
			return // the client is gone: the rest of the answer would be thrown away
		}
		s.buf = appendActionNode(s.buf, n)
		s.flushIfFull()
	}
	s.buf = append(s.buf, ']')
}

// appendActionNode appends n as encoding/json does (verify.ActionNode's fields in order).
func appendActionNode(b []byte, n *ActionNode) []byte {
	if n == nil {
		return append(b, "null"...)
	}
	b = append(b, `{"id":`...)
	b = appendString(b, n.ID)
	b = append(b, `,"log_index":`...)
	b = strconv.AppendUint(b, n.LogIndex, 10)
	b = append(b, `,"time":`...)
	b = appendString(b, n.Time)
	b = append(b, `,"action":{"type":`...)
	b = appendString(b, n.Action.Type)
	b = append(b, `,"target":`...)
	b = appendString(b, n.Action.Target)
	b = append(b, `},"decision":{"effect":`...)
	b = appendString(b, n.Decision.Effect)
	b = append(b, `,"policy":{"id":`...)
	b = appendString(b, n.Decision.Policy.ID)
	b = append(b, `,"version":`...)
	b = appendString(b, n.Decision.Policy.Version)
	b = append(b, '}')
	if n.Decision.Reason != "" {
		b = append(b, `,"reason":`...)
		b = appendString(b, n.Decision.Reason)
	}
	b = append(b, '}')
	if n.ParentID != "" {
		b = append(b, `,"parent_id":`...)
		b = appendString(b, n.ParentID)
	}
	if n.Role != "" {
		b = append(b, `,"role":`...)
		b = appendString(b, n.Role)
	}
	if h := n.HumanOversight; h != nil {
		b = append(b, `,"human_oversight":{"reviewer":`...)
		b = appendPerson(b, h.Reviewer)
		b = append(b, `,"outcome":`...)
		b = appendString(b, h.Outcome)
		if h.Time != "" {
			b = append(b, `,"time":`...)
			b = appendString(b, h.Time)
		}
		b = append(b, '}')
	}
	b = append(b, `,"agent":`...)
	b = appendString(b, n.Agent)
	b = append(b, `,"user":`...)
	b = appendPerson(b, n.User)
	b = append(b, `,"tenant":`...)
	b = appendString(b, n.Tenant)
	if p := n.Proof; p != nil {
		b = append(b, `,"proof":{"leaf":`...)
		b = appendBytes(b, p.Leaf)
		b = append(b, `,"inclusion_proof":`...)
		if p.InclusionProof == nil {
			b = append(b, "null"...)
		} else {
			b = append(b, '[')
			for i, h := range p.InclusionProof {
				if i > 0 {
					b = append(b, ',')
				}
				b = appendBytes(b, h)
			}
			b = append(b, ']')
		}
		if len(p.Openings) > 0 {
			b = append(b, `,"openings":[`...)
			for i, o := range p.Openings {
				if i > 0 {
					b = append(b, ',')
				}
				b = append(b, `{"p":`...)
				b = appendString(b, o.Path)
				b = append(b, `,"v":`...)
				b = appendString(b, o.Value)
				b = append(b, `,"n":`...)
				b = appendBytes(b, o.Nonce)
				b = append(b, '}')
			}
			b = append(b, ']')
		}
		b = append(b, '}')
	}
	return append(b, '}')
}

func appendPerson(b []byte, p lineage.Person) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, p.ID)
	b = append(b, `,"issuer":`...)
	b = appendString(b, p.Issuer)
	return append(b, '}')
}

// appendBytes appends a []byte as encoding/json does: standard base64 in quotes, null for nil.
func appendBytes(b []byte, v []byte) []byte {
	if v == nil {
		return append(b, "null"...)
	}
	b = append(b, '"')
	b = base64.StdEncoding.AppendEncode(b, v)
	return append(b, '"')
}

// appendMarshal appends what json.Marshal writes for v (small values only).
func appendMarshal(b []byte, v any) []byte {
	raw, err := json.Marshal(v)
	if err != nil {
		return append(b, "null"...) // cannot happen for the answer types (strings and slices)
	}
	return append(b, raw...)
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string exactly as encoding/json does with HTML escaping (its
// default): <, > and & as \u003c, \u003e, \u0026; U+2028 and U+2029 escaped; invalid UTF-8 as
// U+FFFD.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
