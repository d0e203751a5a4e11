package ingest

import (
	"strings"
	"testing"

	"github.com/lineage-audit/lineage/ledger/seal"
)

// TestReservedString: the forms readers show as erased are refused anywhere in a record of a
// sealed log; near misses are not.
func TestReservedString(t *testing.T) {
	var m seal.Commitment
	m[0] = 7
	var kid seal.KeyID
	kid[1] = 9
	token, placeholder := m.Token(), seal.ErasedPrefix+kid.String()
	for _, c := range []struct {
		canon string
		bad   bool
	}{
		{`{"user":{"id":"alice@example.org"}}`, false},
		{`{"user":{"id":"` + token + `"}}`, true},
		{`{"action":{"target":"` + placeholder + `"}}`, true},
		{`{"policy_context":{"` + token + `":1}}`, true},
		{`{"x":"sealed:short","y":"erased:nope"}`, false},
		{`{"x":"a ` + token + `"}`, false}, // inside a longer string: shown as is
		{`{"x":"sealed:` + strings.Repeat("A", 44) + `"}`, false},
	} {
		if _, got := reservedString([]byte(c.canon)); got != c.bad {
			t.Errorf("%s: reserved %v, want %v", c.canon, got, c.bad)
		}
	}
}
