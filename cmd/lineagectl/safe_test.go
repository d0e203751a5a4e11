package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/verify"
)

// hostile is the identity from the security report: on a terminal it clears the screen and
// prints a red "FAKE OK"; the newline variant forges an output line.
const (
	hostile     = "eve\u001b[2J\u001b[31mFAKE OK\u001b[0m"
	hostileLine = "eve\nOK: record acme/r1 is entry 1 of log \"lineage\""
	hostileBidi = "agent-\u202egpj.exe\u2066\u200b\u0085\u2028"
)

// assertSafe fails if out holds a control, bidi or separator character other than the newline
// ending each line, or more lines than want.
func assertSafe(t *testing.T, out string, lines int) {
	t.Helper()
	if got := strings.Count(out, "\n"); got != lines {
		t.Errorf("output has %d lines, want %d:\n%s", got, lines, out)
	}
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if p := lineage.Printable(l); p != l {
			t.Errorf("output line holds raw control characters: %q", l)
		}
	}
}

// TestPrintAnswerEscapesHostileText prints lineage answers as an old ledger could hold them
// (recorded before ingest rejected such ids) with lineagectl's own printing function.
func TestPrintAnswerEscapesHostileText(t *testing.T) {
	node := func(id string) *verify.ActionNode {
		return &verify.ActionNode{ID: id, Time: hostile, Agent: hostileBidi, User: lineage.Person{ID: hostile, Issuer: hostileLine},
			Tenant: "acme", Action: lineage.Action{Type: hostileLine, Target: hostile},
			Decision:       lineage.Decision{Effect: hostile, Policy: lineage.Policy{ID: hostileBidi, Version: hostileLine}},
			HumanOversight: &lineage.HumanOversight{Reviewer: lineage.Person{ID: hostile}, Outcome: hostileLine, Time: hostileBidi}}
	}
	head := verify.Answer{Tenant: hostile, NextCursor: hostileLine,
		Flags: []verify.Flag{{Kind: hostile, Detail: hostileLine}}}
	answers := map[string]struct {
		v     any
		lines int
	}{
		"users": {verify.UserLineage{Answer: head, UserTree: &verify.UserTree{User: lineage.Person{ID: hostile, Issuer: hostileLine},
			Agents: []*verify.AgentNode{{ID: hostileBidi, Roles: []string{hostile, hostileLine}, Actions: []*verify.ActionNode{node("r1")},
				Agents: []*verify.AgentNode{{ID: hostile, Actions: []*verify.ActionNode{node(hostileLine)}}}}}}}, 7},
		"agents": {verify.AgentLineage{Answer: head, Agent: hostile,
			Users:   []verify.AgentUser{{Person: lineage.Person{ID: hostile, Issuer: hostileBidi}, Actions: 1}},
			Actions: []*verify.ActionNode{node(hostile)}}, 5},
		"actions": {verify.ActionChain{Answer: head, Chain: []*verify.ActionNode{node(hostile), node(hostileLine)},
			AuthorizedBy: lineage.Person{ID: hostile, Issuer: hostileLine},
			Delegation:   &lineage.Delegation{TokenID: hostile, Mechanism: hostileBidi, Scope: []string{hostileLine}, Actors: []string{hostile, hostileBidi}},
			Oversight:    []*verify.ActionNode{node(hostileBidi)}}, 7},
		"policies": {verify.PolicyDecisions{Answer: head, Policy: hostile, Examples: []*verify.ActionNode{node(hostile)}}, 4},
	}
	for kind, a := range answers {
		t.Run(kind, func(t *testing.T) {
			b, err := json.Marshal(a.v)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if err := printAnswer(&out, kind, b); err != nil {
				t.Fatal(err)
			}
			assertSafe(t, out.String(), a.lines)
			if !strings.Contains(out.String(), `eve\x1b[2J\x1b[31mFAKE OK\x1b[0m`) {
				t.Errorf("the hostile id is not shown escaped:\n%s", out.String())
			}
		})
	}
}

func TestSafeHelpers(t *testing.T) {
	if got, want := safeList([]string{"a", hostile}), `[a eve\x1b[2J\x1b[31mFAKE OK\x1b[0m]`; got != want {
		t.Errorf("safeList = %q, want %q", got, want)
	}
	if got, want := safeCounts(map[string]int{"v2": 2, "v1\n": 1}), `map[v1\n:1 v2:2]`; got != want {
		t.Errorf("safeCounts = %q, want %q", got, want)
	}
}

func TestAPIKeyTenants(t *testing.T) {
	for in, want := range map[string]string{"acme": "[acme]", " acme , beta-2 ": "[acme beta-2]", "*": "[*]", "a_b,0x": "[a_b 0x]"} {
		got, err := apiKeyTenants(in)
		if err != nil || safeList(got) != want {
			t.Errorf("apiKeyTenants(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"Acme", "acme,ACME", "-acme", "ac.me", "acme*", "*,acme", hostile, "ac\nme", strings.Repeat("a", 64), "é"} {
		if got, err := apiKeyTenants(in); err == nil {
			t.Errorf("apiKeyTenants(%q) = %v, want an error", in, got)
		} else if lineage.Printable(err.Error()) != err.Error() {
			t.Errorf("error %q is not printable", err)
		}
	}
}
