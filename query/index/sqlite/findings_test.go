package sqlite

import (
	"path/filepath"
	"testing"

	"github.com/lineage-audit/lineage/query/findings"
	"github.com/lineage-audit/lineage/query/findings/findingstest"
)

func TestFindingsConformance(t *testing.T) {
	findingstest.Run(t, func(t *testing.T) findings.Store {
		s := openTest(t, t.TempDir())
		f, err := s.Findings(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return f
	})
}

// TestFindingsTablesSurviveReopen: the findings schema is created once and kept, with its data,
// when the index file is opened again.
func TestFindingsTablesSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	f, err := s.Findings(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.ApplyFindings(t.Context(), 0, 7, nil, []findings.StateItem{{Tenant: "a", Space: "agent", Key: "x", Value: []byte(`{}`)}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(t.Context(), filepath.Join(dir, "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	f2, err := s2.Findings(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if p, err := f2.FindingsPosition(t.Context()); err != nil || p != 7 {
		t.Fatalf("position after reopen: %d %v", p, err)
	}
	if st, err := f2.FindingsState(t.Context()); err != nil || len(st) != 1 {
		t.Fatalf("state after reopen: %v %v", st, err)
	}
}
