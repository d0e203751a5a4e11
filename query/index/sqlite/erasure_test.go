package sqlite

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lineage-audit/lineage/query/findings"
)

// TestPurgeScrubsFindings: Purge replaces an erased subject's clear value everywhere the
// findings projection keeps it — the user column, inside explanations (which name users in
// running text), in state values and state keys — and leaves no copy in the database file.
// Another user's finding is untouched.
func TestPurgeScrubsFindings(t *testing.T) {
	const (
		erased = "alice.purge-91c2@example.org"
		kept   = "bob.kept-3310@example.org"
		ph     = "erased:KEYID-1"
	)
	dir := t.TempDir()
	s := openTest(t, dir)
	defer s.Close()
	ctx := t.Context()
	f, err := s.Findings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ev := findings.Evidence{ID: "r-1", Index: 1, Time: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)}
	occ := []findings.Occurrence{
		{Tenant: "acme", Kind: findings.ScopeEscalation, Severity: findings.High, Key: erased + "\x00spiffe://a", Agent: "spiffe://a", User: erased, Evidence: ev,
			Explanation: "During user " + erased + "'s session from 09:00, agent spiffe://a's delegated scope grew."},
		{Tenant: "acme", Kind: findings.ScopeEscalation, Severity: findings.High, Key: "sess-2", Agent: "spiffe://a", User: kept, Evidence: ev,
			Explanation: "During user " + kept + "'s session from 09:00, agent spiffe://a's delegated scope grew."},
		{Tenant: "acme", Kind: findings.SharedAgent, Severity: findings.High, Key: "spiffe://a", Agent: "spiffe://a", Evidence: ev,
			Explanation: "Agent identity spiffe://a acts in 2 users (" + erased + ", " + kept + ")."},
	}
	state := []findings.StateItem{
		{Tenant: "acme", Space: "session", Key: erased + "\x00sess-1", Value: []byte(`{"scope":["a"],"user":"` + erased + `"}`)},
		{Tenant: "acme", Space: "agent", Key: "spiffe://a", Value: []byte(`{"users":["` + erased + `","` + kept + `"]}`)},
	}
	if _, err := f.ApplyFindings(ctx, 0, 2, occ, state); err != nil {
		t.Fatal(err)
	}
	// Its id is a hash over its key, which starts with the user id (findings/engine.go).
	oldID := findings.ID("acme", findings.ScopeEscalation, erased+"\x00spiffe://a")
	if err := s.Purge(ctx, "acme", nil, map[string]string{erased: ph}, nil); err != nil {
		t.Fatal(err)
	}
	all, err := f.Findings(ctx, findings.Query{Tenant: "acme", Limit: 10})
	if err != nil || len(all) != 3 {
		t.Fatalf("findings after the purge: %d, %v", len(all), err)
	}
	n := 0
	for _, x := range all {
		if x.User == ph {
			n++
		}
		b := []byte(x.Explanation + x.User + x.Key)
		if bytes.Contains(b, []byte(erased)) {
			t.Errorf("finding %s still names the erased user: %q / %q", x.Key, x.User, x.Explanation)
		}
		if x.ID != findings.ID(x.Tenant, x.Kind, x.Key) || x.ID == oldID {
			t.Errorf("finding %q: id %s, want the id of its key now (not %s)", x.Key, x.ID, oldID)
		}
		if x.User == ph && (x.Key != ph+"\x00spiffe://a" || !bytes.Contains([]byte(x.Explanation), []byte(ph))) {
			t.Errorf("finding %s: user %q, explanation %q; want %s in both", x.Key, x.User, x.Explanation, ph)
		}
		if x.User != ph && !bytes.Contains(b, []byte(kept)) {
			t.Errorf("finding %s lost the kept user: %q / %q", x.Key, x.User, x.Explanation)
		}
	}
	if n != 1 {
		t.Errorf("%d findings show the placeholder as their user, want 1", n)
	}
	st, err := f.FindingsState(ctx)
	if err != nil || len(st) != 2 {
		t.Fatalf("state after the purge: %v %v", st, err)
	}
	for _, it := range st {
		if bytes.Contains([]byte(it.Key), []byte(erased)) || bytes.Contains(it.Value, []byte(erased)) {
			t.Errorf("state %s/%q still names the erased user: %s", it.Space, it.Key, it.Value)
		}
		if it.Space == "agent" && !bytes.Contains(it.Value, []byte(kept)) {
			t.Errorf("state %s lost the kept user: %s", it.Key, it.Value)
		}
	}
	if err := s.CheckpointWAL(ctx); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(erased)) {
			t.Errorf("%s still holds the erased user's id", filepath.Base(p))
		}
	}
}
