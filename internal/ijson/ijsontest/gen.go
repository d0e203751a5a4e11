// Package ijsontest generates random JSON documents for the property tests of internal/ijson and
// of the record decoder (jcs_test.go at the repository root). It is only imported by tests.
package ijsontest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
)

// Gen generates random JSON values, rendered with random whitespace, member order, escapes and
// number spellings. Every value it generates is I-JSON: valid UTF-8, no unpaired surrogates, no
// duplicate member names, numbers within the range of a double (but not always exactly
// representable).
type Gen struct {
	R *rand.Rand
}

var genStrings = []string{"", "a", "b", "ab", "A", "é", "€", "😀", "\U00010000", "\ue000", "\ufb33",
	"\n", "\x00", "\x1f", "\"", "\\", "/", "\u2028", "<>&", "id", "\u007f"}

// WS returns random insignificant whitespace, often none.
func (g Gen) WS() string {
	return []string{"", "", " ", "\n", "\t", " \r\n "}[g.R.IntN(6)]
}

// str renders s with a random choice of escapes for each character.
func (g Gen) str(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteString(`\` + string(r))
		case r < 0x20 || g.R.IntN(4) == 0:
			if r > 0xFFFF {
				r -= 0x10000
				fmt.Fprintf(&b, `\u%04x\u%04X`, 0xD800+(r>>10), 0xDC00+(r&0x3FF))
			} else {
				fmt.Fprintf(&b, `\u%04x`, r)
			}
		case r == '/' && g.R.IntN(2) == 0:
			b.WriteString(`\/`)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func (g Gen) number() string {
	var f float64
	switch g.R.IntN(5) {
	case 0:
		f = float64(g.R.IntN(2000) - 1000)
	case 1:
		f = g.R.NormFloat64() * math.Pow(10, float64(g.R.IntN(60)-30))
	case 2:
		f = math.Float64frombits(g.R.Uint64())
		if math.IsNaN(f) || math.IsInf(f, 0) {
			f = 0.5
		}
	case 3:
		return []string{"0", "-0", "1.0", "1E3", "1e21", "1e-7", "0.000001", "12345678901234567890", "5e-324"}[g.R.IntN(9)]
	default:
		f = float64(g.R.Int64())
	}
	switch g.R.IntN(3) {
	case 0:
		return strconv.FormatFloat(f, 'g', -1, 64)
	case 1:
		return strconv.FormatFloat(f, 'e', 20, 64)
	default:
		return strconv.FormatFloat(f, 'E', -1, 64)
	}
}

// Value returns a random JSON value; depth is the nesting depth it is generated at (below depth
// 5 it may be an object or array, from 5 on it is a scalar).
func (g Gen) Value(depth int) string {
	n := 8
	if depth > 4 {
		n = 5 // no more containers
	}
	switch g.R.IntN(n) {
	case 0:
		return "null"
	case 1:
		return []string{"true", "false"}[g.R.IntN(2)]
	case 2:
		return g.number()
	case 3, 4:
		return g.str(genStrings[g.R.IntN(len(genStrings))])
	case 5:
		items := make([]string, g.R.IntN(4))
		for i := range items {
			items[i] = g.WS() + g.Value(depth+1) + g.WS()
		}
		return "[" + strings.Join(items, ",") + "]"
	default:
		names := g.R.Perm(len(genStrings))[:g.R.IntN(5)]
		members := make([]string, len(names))
		for i, k := range names {
			members[i] = g.WS() + g.str(genStrings[k]) + g.WS() + ":" + g.WS() + g.Value(depth+1) + g.WS()
		}
		return "{" + strings.Join(members, ",") + "}"
	}
}
