package query_test

import (
	"bytes"
	"context"
	"database/sql"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/internal/demo"
	"github.com/lineage-audit/lineage/internal/testenv"
	"github.com/lineage-audit/lineage/ledger"
	"github.com/lineage-audit/lineage/ledger/ledgertest"
	"github.com/lineage-audit/lineage/ledger/tessera"
	"github.com/lineage-audit/lineage/query"
)

// countingLog is the Tessera log, counting the entries read from its bundles.
type countingLog struct {
	*tessera.Log
	read atomic.Int64
}

func (l *countingLog) BundleEntries(ctx context.Context, bundle uint64, offs []uint64, treeSize uint64) ([][]byte, error) {
	l.read.Add(int64(len(offs)))
	return l.Log.BundleEntries(ctx, bundle, offs, treeSize)
}

// bundlesOnly hides the log's tiles, so the API reads every leaf from its bundle and asks for
// each proof separately: the answers as they were before leaves were rebuilt from the index.
type bundlesOnly struct {
	ledger.Log
	br query.BundleReader
}

func (l bundlesOnly) BundleEntries(ctx context.Context, bundle uint64, offs []uint64, treeSize uint64) ([][]byte, error) {
	return l.br.BundleEntries(ctx, bundle, offs, treeSize)
}

// TestAnswersWithRebuiltLeaves: lineage answers whose leaves are rebuilt from the index rows
// (received times to the nanosecond and whole seconds, verified and unverified sources, full and
// partial bundles) are byte for byte the answers whose leaves are read from the entry bundles,
// and read no bundle. Index rows tampered with (a received time, a source flag, canonical bytes
// that decode to the same record) and rows from before the envelope columns (NULL) are served
// from the bundles instead: the answers stay the same and verify, and the mismatches are logged.
func TestAnswersWithRebuiltLeaves(t *testing.T) {
	ctx := context.Background()
	lg, store, v, vkey, logDir := testLog(t, "lineage.test/rebuilt")
	recs := demo.Generate(demo.Options{Seed: 31, Tenants: 1}, 700) // two full bundles, one partial
	entries := make([][]byte, len(recs))
	base := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	for i, r := range recs {
		c, err := r.Canonical()
		if err != nil {
			t.Fatal(err)
		}
		at := base.Add(time.Duration(i) * 1_234_567_891) // every third or so lands on .000 ms, some on whole µs
		if i%5 == 0 {
			at = base.Add(time.Duration(i) * time.Second)
		}
		entries[i] = lineage.NewEnvelope(c, at, i%3 == 0)
	}
	if _, err := ledgertest.AddAll(ctx, lg, entries); err != nil {
		t.Fatal(err)
	}
	if _, err := ledgertest.WaitCheckpoint(ctx, lg, v, uint64(len(recs))); err != nil {
		t.Fatal(err)
	}
	ix, err := query.NewIndexer(ctx, lg, store, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for ix.Position() < uint64(len(recs)) {
		if _, err := ix.Step(ctx); err != nil {
			t.Fatal(err)
		}
	}
	var logs testenv.SyncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	counted := &countingLog{Log: lg}
	fast := httptest.NewServer((&query.API{Log: counted, Store: store, Verifier: vkey, LogDir: logDir, Logger: logger}).Handler())
	t.Cleanup(fast.Close)
	slow := httptest.NewServer((&query.API{Log: bundlesOnly{lg, lg}, Store: store, Verifier: vkey, LogDir: logDir,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}).Handler())
	t.Cleanup(slow.Close)

	// The answers: the busiest user's tree, one of its agents, a policy, and action chains.
	tenant := recs[0].Tenant
	count := map[string]int{}
	for _, r := range recs {
		count[r.User.ID]++
	}
	user := recs[0].User.ID
	for u, n := range count {
		if n > count[user] {
			user = u
		}
	}
	var userIdx []uint64
	var chainID string
	for i, r := range recs {
		if r.User.ID == user {
			userIdx = append(userIdx, uint64(i))
			if r.ParentID != "" {
				chainID = r.ID
			}
		}
	}
	if len(userIdx) < 20 || chainID == "" {
		t.Fatalf("user %s has %d actions (chain %q): too few for the test", user, len(userIdx), chainID)
	}
	type answer struct{ kind, subject, path string }
	q := "?tenant=" + url.QueryEscape(tenant) + "&limit=99999"
	answers := []answer{
		{"users", user, "users/" + url.PathEscape(user) + q},
		{"agents", recs[userIdx[0]].Agent.ID, "agents/" + url.PathEscape(recs[userIdx[0]].Agent.ID) + q},
		{"policies", recs[userIdx[0]].Decision.Policy.ID, "policies/" + url.PathEscape(recs[userIdx[0]].Decision.Policy.ID) + q},
		{"actions", chainID, "actions/" + url.PathEscape(chainID) + "?tenant=" + url.QueryEscape(tenant)},
	}
	compare := func(phase string) {
		t.Helper()
		for _, a := range answers {
			got := rawGet(t, fast.URL+"/v1/lineage/"+a.path)
			want := rawGet(t, slow.URL+"/v1/lineage/"+a.path)
			if !bytes.Equal(got, want) {
				t.Fatalf("%s: the %s answer with rebuilt leaves differs from the one read from the bundles", phase, a.kind)
			}
			if !bytes.Contains(got, []byte(`"leaf":`)) {
				t.Fatalf("%s: the %s answer carries no leaves", phase, a.kind)
			}
			if _, err := query.VerifyAnswer(a.kind, a.subject, got, v); err != nil {
				t.Fatalf("%s: the %s answer does not verify: %v", phase, a.kind, err)
			}
		}
	}

	compare("fresh index")
	if n := counted.read.Load(); n != 0 {
		t.Fatalf("fresh index: %d leaves read from bundles, want every leaf rebuilt", n)
	}
	if strings.Contains(logs.String(), "do not rebuild") {
		t.Fatalf("fresh index: mismatches logged: %s", logs.String())
	}

	// Tamper with four of the user's rows, and make two look like rows from before migration 3.
	db, err := sql.Open("sqlite3", filepath.Join(filepath.Dir(logDir), "index.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	exec := func(query string, args ...any) {
		t.Helper()
		if res, err := db.Exec(query, args...); err != nil {
			t.Fatal(err)
		} else if n, _ := res.RowsAffected(); n != 1 {
			t.Fatalf("%s %v: %d rows changed", query, args, n)
		}
	}
	exec(`UPDATE records SET received_ns = received_ns + 1 WHERE log_index = ?`, userIdx[1])
	exec(`UPDATE records SET received_ns = received_ns + 1000000000 WHERE log_index = ?`, userIdx[2])
	exec(`UPDATE records SET source_verified = 1 - source_verified WHERE log_index = ?`, userIdx[3])
	// Canonical bytes with a space after the brace: the same record, another entry.
	exec(`UPDATE records SET canonical = CAST('{ ' || substr(CAST(canonical AS TEXT), 2) AS BLOB) WHERE log_index = ?`, userIdx[4])
	exec(`UPDATE records SET received_ns = NULL, source_verified = NULL WHERE log_index = ?`, userIdx[5])
	exec(`UPDATE records SET received_ns = NULL, source_verified = NULL WHERE log_index = ?`, userIdx[len(userIdx)-1])

	counted.read.Store(0)
	compare("tampered index")
	if n := counted.read.Load(); n == 0 {
		t.Fatal("tampered index: no leaf was read from the bundles")
	}
	// The user answer alone reads exactly the six leaves from the bundles.
	counted.read.Store(0)
	rawGet(t, fast.URL+"/v1/lineage/"+answers[0].path)
	if n := counted.read.Load(); n != 6 {
		t.Fatalf("tampered index: the user answer read %d leaves from the bundles, want 6", n)
	}
	if !strings.Contains(logs.String(), "count=4") {
		t.Fatalf("tampered index: the four mismatches were not logged: %s", logs.String())
	}
}
