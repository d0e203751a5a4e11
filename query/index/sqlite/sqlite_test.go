package sqlite

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/query/index"
	"github.com/lineage-audit/lineage/query/index/indextest"
)

// openTest opens the index file in dir, failing the test on error.
func openTest(t testing.TB, dir string) *Store {
	t.Helper()
	s, err := Open(context.Background(), filepath.Join(dir, "index.db"))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

// TestConformance runs the shared index.Store suite against a real SQLite file.
func TestConformance(t *testing.T) {
	indextest.Run(t, func(t *testing.T, dir string) index.Store { return openTest(t, dir) })
}

// fresh opens a store in a new directory and closes it at the end of the test.
func fresh(t *testing.T) *Store {
	s := openTest(t, t.TempDir())
	t.Cleanup(func() { s.Close() })
	return s
}

// testEntry builds the entry at log index idx for a generated record renamed to tenant/id.
func testEntry(t *testing.T, idx uint64, tenant, id string) index.Entry {
	t.Helper()
	e := indextest.GenerateRecords(int64(idx), 1)[0]
	r := *e.Record
	r.Tenant, r.ID = tenant, id
	return withRecord(t, idx, r)
}

// withRecord is the entry at log index idx for r, with canonical bytes, hash and time to match.
func withRecord(t *testing.T, idx uint64, r lineage.Record) index.Entry {
	t.Helper()
	canonical, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	at, err := time.Parse(time.RFC3339Nano, r.Time)
	if err != nil {
		t.Fatal(err)
	}
	return index.Entry{Index: idx, Record: &r, Canonical: canonical,
		RecordHash: sha256.Sum256(canonical), Time: at, ReceivedAt: at}
}

// TestApplyDuplicate: the log holds each (tenant, id) once, so a second copy means a bug upstream;
// Apply must fail and leave the store as it was instead of hiding the duplicate.
func TestApplyDuplicate(t *testing.T) {
	s := fresh(t)
	ctx := t.Context()
	first := testEntry(t, 0, "acme", "x")
	if err := s.Apply(ctx, index.Batch{From: 0, To: 1, Entries: []index.Entry{first}}); err != nil {
		t.Fatal(err)
	}
	batches := []index.Batch{
		{From: 1, To: 2, Entries: []index.Entry{testEntry(t, 1, "acme", "x")}},
		{From: 1, To: 3, Entries: []index.Entry{testEntry(t, 1, "acme", "y"), testEntry(t, 2, "acme", "y")}},
	}
	for _, b := range batches {
		err := s.Apply(ctx, b)
		if err == nil || errors.Is(err, index.ErrPosition) || !strings.Contains(err.Error(), "already stored") {
			t.Errorf("Apply of a duplicate id: err = %v, want a duplicate error", err)
		}
	}
	if pos, _ := s.Position(ctx); pos != 1 {
		t.Errorf("Position = %d after failed batches, want 1", pos)
	}
	if _, err := s.Lookup(ctx, "acme", "y"); !errors.Is(err, index.ErrNotFound) {
		t.Errorf("Lookup(acme, y) after a failed batch: err = %v, want ErrNotFound", err)
	}
	// The same id in another tenant is not a duplicate.
	if err := s.Apply(ctx, index.Batch{From: 1, To: 2,
		Entries: []index.Entry{testEntry(t, 1, "globex", "x")}}); err != nil {
		t.Errorf("Apply of globex/x after acme/x: %v", err)
	}
}

// TestApplyMalformed: batches the indexer must never build are rejected before anything is written.
func TestApplyMalformed(t *testing.T) {
	s := fresh(t)
	ctx := t.Context()
	e := func(idx uint64, id string) index.Entry { return testEntry(t, idx, "acme", id) }
	noRecord := e(0, "a")
	noRecord.Record = nil
	farTime := e(0, "a")
	farTime.Time = time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := map[string]index.Batch{
		"inverted range":       {From: 0, To: 0, Entries: []index.Entry{e(0, "a")}},
		"index beyond To":      {From: 0, To: 2, Entries: []index.Entry{e(2, "a")}},
		"out of order":         {From: 0, To: 3, Entries: []index.Entry{e(1, "a"), e(0, "b")}},
		"repeated index":       {From: 0, To: 3, Entries: []index.Entry{e(1, "a"), e(1, "b")}},
		"no record":            {From: 0, To: 1, Entries: []index.Entry{noRecord}},
		"time beyond int64":    {From: 0, To: 1, Entries: []index.Entry{farTime}},
		"index beyond int64":   {From: 0, To: 1 << 63, Entries: []index.Entry{e(0, "a")}},
		"more entries than To": {From: 0, To: 1, Entries: []index.Entry{e(0, "a"), e(1, "b")}},
	}
	for name, b := range tests {
		if err := s.Apply(ctx, b); err == nil {
			t.Errorf("%s: Apply succeeded", name)
		}
	}
	if pos, _ := s.Position(ctx); pos != 0 {
		t.Errorf("Position = %d after rejected batches, want 0", pos)
	}
}

// TestApplyCancelled: a cancelled context stops Apply and leaves nothing behind.
func TestApplyCancelled(t *testing.T) {
	s := fresh(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	b := indextest.Batches(indextest.GenerateRecords(1, 10), 10)[0]
	if err := s.Apply(ctx, b); !errors.Is(err, context.Canceled) {
		t.Errorf("Apply with a cancelled context: err = %v, want context.Canceled", err)
	}
	if pos, _ := s.Position(t.Context()); pos != 0 {
		t.Errorf("Position = %d, want 0", pos)
	}
}

// TestOpenRejects: paths where every pooled connection would see a different database, or that
// the driver would misparse, are refused rather than silently giving a broken index.
func TestOpenRejects(t *testing.T) {
	for _, path := range []string{"", ":memory:", filepath.Join(t.TempDir(), "a?b.db")} {
		if s, err := Open(t.Context(), path); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", path)
		}
	}
}

// TestSchemaVersion: a new file is migrated to the latest version, reopening does not migrate
// again, and a file from a newer binary is refused.
func TestSchemaVersion(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	var n, version int
	if err := s.db.QueryRow(`SELECT COUNT(*), MAX(version) FROM schema_migrations`).Scan(&n, &version); err != nil {
		t.Fatal(err)
	}
	if n != len(migrations) || version != len(migrations) {
		t.Errorf("schema_migrations has %d rows, version %d; want %d", n, version, len(migrations))
	}
	s.Close()

	s = openTest(t, dir)
	if err := s.db.QueryRow(`SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil || n != len(migrations) {
		t.Errorf("after reopening, schema_migrations has %d rows (%v), want %d", n, err, len(migrations))
	}
	if _, err := s.db.Exec(`INSERT INTO schema_migrations VALUES (?, 0)`, len(migrations)+1); err != nil {
		t.Fatal(err)
	}
	s.Close()

	if s, err := Open(t.Context(), filepath.Join(dir, "index.db")); err == nil || !strings.Contains(err.Error(), "newer") {
		if s != nil {
			s.Close()
		}
		t.Errorf("Open of a newer schema: err = %v, want a version error", err)
	}
}

// TestConnSettings pins the settings the durability and concurrency reasoning in Open relies on,
// as every pooled connection sees them.
func TestConnSettings(t *testing.T) {
	s := fresh(t)
	want := map[string]string{
		"journal_mode":       "wal",
		"synchronous":        "1", // NORMAL
		"busy_timeout":       fmt.Sprint(busyTimeoutMS),
		"wal_autocheckpoint": fmt.Sprint(walAutocheckpointBytes / pageSize),
		"page_size":          fmt.Sprint(pageSize),
		"cache_size":         fmt.Sprint(-cacheKiB),
		"foreign_keys":       "0",
	}
	// Hold several connections at once so the check covers more than one pooled connection.
	for range 3 {
		conn, err := s.db.Conn(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		for pragma, w := range want {
			var got string
			if err := conn.QueryRowContext(t.Context(), "PRAGMA "+pragma).Scan(&got); err != nil {
				t.Fatalf("PRAGMA %s: %v", pragma, err)
			}
			if got != w {
				t.Errorf("PRAGMA %s = %s, want %s", pragma, got, w)
			}
		}
	}
}

// TestUserActionsPlan pins the query plan: UserActions must walk records_user in order, never
// sort, whatever the window, or large histories would be read and sorted in full.
func TestUserActionsPlan(t *testing.T) {
	s := fresh(t)
	windows := map[string]index.UserQuery{
		"open":   {},
		"from":   {From: time.Unix(1, 0)},
		"to":     {To: time.Unix(2, 0)},
		"closed": {From: time.Unix(1, 0), To: time.Unix(2, 0)},
	}
	for name, q := range windows {
		query, args := userActionsQuery(index.UserQuery{Tenant: "t", UserID: "u", From: q.From, To: q.To}, 10)
		rows, err := s.db.Query("EXPLAIN QUERY PLAN "+query, args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		text := strings.Join(plan, "; ")
		if !strings.Contains(text, "records_user") || strings.Contains(text, "TEMP B-TREE") {
			t.Errorf("%s window: plan %q, want records_user without a sort", name, text)
		}
	}
}

// TestDefaultLimit: a query without a limit returns DefaultLimit rows, the earliest ones.
func TestDefaultLimit(t *testing.T) {
	s := fresh(t)
	ctx := t.Context()
	entries := make([]index.Entry, DefaultLimit+5)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range entries {
		r := *testEntry(t, 0, "acme", fmt.Sprintf("r%06d", i)).Record
		r.User = lineage.Person{ID: "alice", Issuer: "https://login.acme.example"}
		// Log order is the reverse of time order, so the limit must apply after sorting by time.
		r.Time = base.Add(time.Duration(len(entries)-i) * time.Second).Format(time.RFC3339)
		entries[i] = withRecord(t, uint64(i), r)
	}
	for _, b := range indextest.Batches(entries, 5000) {
		if err := s.Apply(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := s.UserActions(ctx, index.UserQuery{Tenant: "acme", UserID: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != DefaultLimit {
		t.Fatalf("UserActions without a limit returned %d rows, want %d", len(rows), DefaultLimit)
	}
	if first := rows[0].Index; first != uint64(len(entries)-1) {
		t.Errorf("first row is index %d, want the earliest, %d", first, len(entries)-1)
	}
}

// TestExistingFileKeepsItsPageSize: an index written with SQLite's default 4 KiB pages (by an
// older binary) opens with its own page size and an autocheckpoint of the same number of bytes.
func TestExistingFileKeepsItsPageSize(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	old, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.Exec(`PRAGMA page_size = 4096; PRAGMA journal_mode = WAL; CREATE TABLE t (x)`); err != nil {
		t.Fatal(err)
	}
	old.Close()
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var ps, ac int
	if err := s.db.QueryRow("PRAGMA page_size").Scan(&ps); err != nil {
		t.Fatal(err)
	}
	if err := s.db.QueryRow("PRAGMA wal_autocheckpoint").Scan(&ac); err != nil {
		t.Fatal(err)
	}
	if ps != 4096 || ac != walAutocheckpointBytes/4096 {
		t.Fatalf("page size %d, autocheckpoint %d pages; want 4096 and %d", ps, ac, walAutocheckpointBytes/4096)
	}
}
