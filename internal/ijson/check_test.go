package ijson

import (
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	tests := []struct {
		in, root  string
		baseDepth int
		fault     Fault // 0: accepted
		path      string
	}{
		{in: ` {"a":[1,{"b":"x"}],"c":null} `},
		{in: `[]`, root: "policy_context", baseDepth: 1},
		{in: ``, fault: FaultSyntax},
		{in: " \t\n", root: "identity_object", fault: FaultSyntax, path: "identity_object"},
		{in: `{} {}`, fault: FaultSyntax},
		{in: `{"a":[1,{"b":1,"b":2}]}`, fault: FaultDuplicate, path: "a[1].b"},
		{in: `{"id":1,"\u0069d":2}`, fault: FaultDuplicate, path: "id"},
		{in: `{"k":{"x":1,"y":2}}`, root: "policy_context", baseDepth: 1},
		{in: `{"k":[9007199254740993]}`, root: "policy_context", baseDepth: 1, fault: FaultNumber, path: "policy_context.k[0]"},
		{in: `{"k":"\ud800"}`, fault: FaultSyntax, path: "k"},
		{in: "{\"k\":\"\xff\"}", fault: FaultSyntax, path: "k"},
		{in: `{"a":{"b":{"c":{}}}}`, fault: FaultDepth, path: "a.b.c"},
		{in: `{"a":{"b":{"c":{}}}}`, baseDepth: -1},
	}
	for _, tt := range tests {
		in := tt.in
		err := Check([]byte(in), tt.root, tt.baseDepth, 3)
		switch {
		case tt.fault == 0 && err != nil:
			t.Errorf("Check(%q) = %v, want nil", in, err)
		case tt.fault == 0:
		case err == nil:
			t.Errorf("Check(%q) = nil, want fault %d at %q", in, tt.fault, tt.path)
		case err.Fault != tt.fault || err.Path != tt.path:
			t.Errorf("Check(%q) = fault %d at %q (%v), want fault %d at %q", in, err.Fault, err.Path, err, tt.fault, tt.path)
		}
	}
}

// TestCheckLargeObject drives the map-based duplicate check of objects with many members.
func TestCheckLargeObject(t *testing.T) {
	var b strings.Builder
	b.WriteByte('{')
	for i := range 3 * smallObject {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"k` + strings.Repeat("x", i) + `":0`)
	}
	ok := b.String() + "}"
	if err := Check([]byte(ok), "", 0, 1); err != nil {
		t.Fatalf("distinct members: %v", err)
	}
	dup := b.String() + `,"k` + strings.Repeat("x", 2*smallObject) + `":1}`
	if err := Check([]byte(dup), "", 0, 1); err == nil || err.Fault != FaultDuplicate {
		t.Fatalf("duplicate after %d members: %v", 3*smallObject, err)
	}
}

func TestCheckNumber(t *testing.T) {
	for _, ok := range []string{"0", "-0", "0.0", "1", "1.50", "1E3", "1e+21", "1e21", "100000000000000000000",
		"9007199254740992", "0.1", "-2.5e-3", "5e-324", "1.7976931348623157e308", "0e999999999999", "123.456e-2"} {
		if msg := checkNumber([]byte(ok)); msg != "" {
			t.Errorf("checkNumber(%s) = %q, want ok", ok, msg)
		}
	}
	for _, bad := range []string{"9007199254740993", "12345678901234567890", "1e400", "-1e400", "1e-400",
		"4.9e-324", "0.1000000000000000000001", "1152921504606846976", "1e99999999999999999999"} {
		if msg := checkNumber([]byte(bad)); msg == "" {
			t.Errorf("checkNumber(%s) accepted a number canonicalization would change", bad)
		}
	}
}
