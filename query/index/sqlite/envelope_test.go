package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/query/index"
)

// TestEnvelopeColumns: Apply stores each entry's received time (to the nanosecond) and source
// verification, every read path (Get, UserActions, Records) returns them, and Row.Entry rebuilds
// the ledger entry lineage.NewEnvelope wrote. An entry whose received time cannot be stored as
// Unix nanoseconds (here: unset) is stored without them and read back as "not available".
func TestEnvelopeColumns(t *testing.T) {
	s := fresh(t)
	ctx := context.Background()
	entries := []index.Entry{testEntry(t, 0, "t", "a"), testEntry(t, 1, "t", "b"), testEntry(t, 2, "t", "c")}
	entries[0].ReceivedAt = time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.FixedZone("x", 3600))
	entries[1].ReceivedAt, entries[1].SourceVerified = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC), true
	entries[2].ReceivedAt = time.Time{}
	if err := s.Apply(ctx, index.Batch{From: 0, To: 3, Entries: entries}); err != nil {
		t.Fatal(err)
	}
	check := func(how string, r index.Row) {
		t.Helper()
		e := entries[r.Index]
		got, ok := r.Entry()
		if e.ReceivedAt.IsZero() {
			if ok || !r.ReceivedAt.IsZero() {
				t.Errorf("%s %d: an entry without a received time is rebuilt (%v)", how, r.Index, r.ReceivedAt)
			}
			return
		}
		want := string(lineageEnvelope(e))
		if !ok || string(got) != want || !r.ReceivedAt.Equal(e.ReceivedAt) || r.SourceVerified != e.SourceVerified {
			t.Errorf("%s %d: rebuilt %q (%v), want %q", how, r.Index, got, ok, want)
		}
	}
	for _, e := range entries {
		r, err := s.Get(ctx, "t", e.Record.ID)
		if err != nil {
			t.Fatal(err)
		}
		check("Get", r)
		rows, err := s.UserActions(ctx, index.UserQuery{Tenant: "t", UserID: e.Record.User.ID})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			check("UserActions", r)
		}
		rows, err = s.Records(ctx, index.Query{Tenant: "t", AgentID: e.Record.Agent.ID})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			check("Records", r)
		}
	}
}

// TestMigrationToEnvelopeColumns opens a file written at schema version 2, before the envelope
// columns: its rows read back with no envelope (the API then reads their entries from the log),
// rows applied after the migration carry it, and both kinds are returned together.
func TestMigrationToEnvelopeColumns(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "index.db")
	old := testEntry(t, 0, "t", "old")
	{
		db, err := sql.Open("sqlite3", path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_ns INTEGER NOT NULL)`); err != nil {
			t.Fatal(err)
		}
		for v, m := range migrations[:2] {
			if _, err := db.Exec(m); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Exec(`INSERT INTO schema_migrations VALUES (?, 0)`, v+1); err != nil {
				t.Fatal(err)
			}
		}
		// Version 2's insert: the 19 columns it had.
		args := appendInsertArgs(nil, &old)[:19]
		if _, err := db.Exec(`INSERT INTO records (
	log_index, tenant, id, time_ns, user_id, user_issuer, agent_id, role, parent_id,
	action_type, action_target, effect, policy_id, policy_version, delegation_token,
	ai_system_id, oversight_reviewer, record_hash, canonical
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, args...); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(`UPDATE position SET next_index = 1`); err != nil {
			t.Fatal(err)
		}
		db.Close()
	}

	s := openTest(t, dir)
	defer s.Close()
	var version int
	if err := s.db.QueryRow(`SELECT MAX(version) FROM schema_migrations`).Scan(&version); err != nil || version != len(migrations) {
		t.Fatalf("schema version %d (%v) after opening a version-2 file, want %d", version, err, len(migrations))
	}
	r, err := s.Get(ctx, "t", "old")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Entry(); ok || !r.ReceivedAt.IsZero() || string(r.Canonical) != string(old.Canonical) || r.Record.ID != "old" {
		t.Fatalf("a row from version 2 reads back as %+v", r)
	}
	// The new row shares the old one's user, so one query returns both kinds.
	e := testEntry(t, 0, "t", "new")
	e.Index = 1
	e.ReceivedAt, e.SourceVerified = time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), true
	if err := s.Apply(ctx, index.Batch{From: 1, To: 2, Entries: []index.Entry{e}}); err != nil {
		t.Fatal(err)
	}
	rows, err := s.UserActions(ctx, index.UserQuery{Tenant: "t", UserID: old.Record.User.ID})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 {
		t.Fatalf("%d rows, want 2", len(rows))
	}
	for _, r := range rows {
		got, ok := r.Entry()
		switch r.Record.ID {
		case "old":
			if ok {
				t.Errorf("the version-2 row rebuilds an entry")
			}
		case "new":
			if !ok || string(got) != string(lineageEnvelope(e)) {
				t.Errorf("the new row rebuilds %q (%v), want %q", got, ok, lineageEnvelope(e))
			}
		}
	}
}

// lineageEnvelope is the ledger entry e was indexed from.
func lineageEnvelope(e index.Entry) []byte {
	return lineage.NewEnvelope(e.Canonical, e.ReceivedAt, e.SourceVerified)
}
