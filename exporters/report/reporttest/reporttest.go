// Package reporttest is the test rig of the report writer (package report) and of the export
// service (package exporters): a real Tessera log holding records, with its key, and the
// realistic traffic both packages' tests export. It does not import package report, so the
// report package's own tests can use it.
package reporttest

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/internal/demo"
	"github.com/lineage-audit/lineage/ledger"
	"github.com/lineage-audit/lineage/ledger/ledgertest"
	"github.com/lineage-audit/lineage/ledger/seal"
	"github.com/lineage-audit/lineage/ledger/seal/sqlitekeys"
	"github.com/lineage-audit/lineage/ledger/tessera"
	"golang.org/x/mod/sumdb/note"
)

// Rig is a real Tessera log holding records, with its key.
type Rig struct {
	Dir      string
	Log      *tessera.Log
	Signer   note.Signer
	Verifier note.Verifier
	VKey     string
	Recs     []lineage.Record
}

// Origin is the rig log's checkpoint origin.
const Origin = "lineage.test/exporters"

// New opens a log in a temporary directory of t and appends recs to it.
func New(t testing.TB, recs []lineage.Record) *Rig {
	t.Helper()
	dir := t.TempDir()
	signer, vkey, err := ledger.LoadOrCreateSigner(filepath.Join(dir, "log.key"), Origin)
	if err != nil {
		t.Fatal(err)
	}
	v, err := ledger.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	o := tessera.DefaultOptions(filepath.Join(dir, "log"), signer, v)
	o.CheckpointInterval = 100 * time.Millisecond
	lg, err := tessera.Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lg.Close(context.Background()) })
	r := &Rig{Dir: dir, Log: lg, Signer: signer, Verifier: v, VKey: vkey}
	r.Append(t, recs)
	return r
}

// Append logs recs as ingest would: canonical envelopes received shortly after decision time.
func (r *Rig) Append(t testing.TB, recs []lineage.Record) {
	t.Helper()
	entries := make([][]byte, len(recs))
	for i := range recs {
		c, err := recs[i].Canonical()
		if err != nil {
			t.Fatal(err)
		}
		at, err := recs[i].ParsedTime()
		if err != nil {
			t.Fatal(err)
		}
		entries[i] = lineage.NewEnvelope(c, at.Add(350*time.Millisecond), i%7 == 0)
	}
	if _, err := ledgertest.AddAll(context.Background(), r.Log, entries); err != nil {
		t.Fatal(err)
	}
	r.Recs = append(r.Recs, recs...)
	if _, err := ledgertest.WaitCheckpoint(context.Background(), r.Log, r.Verifier, uint64(len(r.Recs))); err != nil {
		t.Fatal(err)
	}
}

// Realistic returns demo traffic from three tenants over nine months, with a quiet spell
// from March to May (a retention gap), one escalation whose human review was never logged,
// and one of Lineage's own export records, whose source is exportSource (report.ExportSourceID
// and report.ExportSourceType).
func Realistic(exportSource lineage.Source) []lineage.Record {
	a := demo.Generate(demo.Options{Seed: 11, Tenants: 3, Start: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Step: 8 * time.Hour}, 1200)
	b := demo.Generate(demo.Options{Seed: 12, Tenants: 3, Start: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC), Step: time.Hour}, 6000)
	recs := append(a, b...)
	// Drop the human review of the first escalation of acme-bank in June.
	for i, r := range recs {
		if r.Tenant == "acme-bank" && r.HumanOversight != nil && r.Time >= "2026-06" {
			recs = append(recs[:i], recs[i+1:]...)
			break
		}
	}
	self := recs[len(recs)-1]
	self.ID = "export-self-test"
	self.Source = exportSource
	self.Tenant = "acme-bank"
	self.AISystem = nil
	self.Delegation = nil
	self.HumanOversight = nil
	return append(recs, self)
}

// shared is built once per test binary: appending 3,000 records to Tessera is the slow part of
// the export tests.
var shared struct {
	once     sync.Once
	r        *Rig
	dirs     []string
	cleanups []func()
}

// Shared returns the rig holding recs(), built by the first test that asks for it and kept
// until Release.
func Shared(t *testing.T, recs func() []lineage.Record) *Rig {
	shared.once.Do(func() { shared.r = New(&onceT{t}, recs()) })
	if shared.r == nil {
		t.Fatal("rig setup failed")
	}
	return shared.r
}

// onceT lets the shared rig outlive the first test that builds it: its directory and log are
// released by Release, after every test.
type onceT struct{ *testing.T }

func (o *onceT) TempDir() string {
	d, err := os.MkdirTemp("", "exporters-rig-")
	if err != nil {
		o.T.Fatal(err)
	}
	shared.dirs = append(shared.dirs, d)
	return d
}

func (o *onceT) Cleanup(f func()) { shared.cleanups = append(shared.cleanups, f) }

// Release closes the shared rig's log and removes its directory. Call it from TestMain after
// m.Run.
func Release() {
	for _, f := range shared.cleanups {
		f()
	}
	for _, d := range shared.dirs {
		os.RemoveAll(d)
	}
}

// NewSealed opens a log of sealed (v2) entries, as an erasure-on lineaged writes them, with its
// real SQLite key store (docs/ERASURE.md): demo traffic of June 2026 (600 records, tenants
// acme-bank and globex-lending), each record sealed at the default paths (user, reviewer) and
// at /action/target under the user's key.
func NewSealed(t testing.TB) (*Rig, *sqlitekeys.SQLiteStore) {
	t.Helper()
	ctx := context.Background()
	mk, _, err := seal.GenerateMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	ks, err := sqlitekeys.OpenSQLite(ctx, filepath.Join(t.TempDir(), "keys.sqlite"), mk, sqlitekeys.SQLiteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ks.Close() })
	paths, err := seal.NewPaths(seal.Path{Pointer: "/action/target", Subject: "/user/id"})
	if err != nil {
		t.Fatal(err)
	}
	recs := demo.Generate(demo.Options{Seed: 21, Tenants: 2, Start: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC), Step: time.Hour}, 600)
	r := New(t, nil)
	entries := make([][]byte, len(recs))
	for i := range recs {
		c, err := recs[i].Canonical()
		if err != nil {
			t.Fatal(err)
		}
		redacted, fields, err := seal.Seal(ctx, ks, recs[i].Tenant, recs[i].ID, c, paths)
		if err != nil {
			t.Fatal(err)
		}
		at, _ := recs[i].ParsedTime()
		if entries[i], err = seal.NewEnvelopeV2(redacted, fields, at.Add(time.Second), true); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ledgertest.AddAll(ctx, r.Log, entries); err != nil {
		t.Fatal(err)
	}
	if _, err := ledgertest.WaitCheckpoint(ctx, r.Log, r.Verifier, uint64(len(entries))); err != nil {
		t.Fatal(err)
	}
	r.Recs = recs
	return r, ks
}

// TopUser returns the user id with the most records of tenant that name an AI system (the EU
// AI Act report's scope), and a target sealed under that user's key.
func (r *Rig) TopUser(tenant string) (user, target string) {
	n := map[string]int{}
	for _, rec := range r.Recs {
		if rec.Tenant == tenant && rec.AISystem != nil {
			if n[rec.User.ID]++; n[rec.User.ID] > n[user] {
				user = rec.User.ID
			}
		}
	}
	for _, rec := range r.Recs {
		if rec.Tenant == tenant && rec.User.ID == user && rec.AISystem != nil && len(rec.Action.Target) > 6 {
			return user, rec.Action.Target
		}
	}
	return user, ""
}
