package exporters

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/internal/demo"
	"github.com/lineage-audit/lineage/ledger"
	"github.com/lineage-audit/lineage/ledger/ledgertest"
	"github.com/lineage-audit/lineage/ledger/tessera"
	"golang.org/x/mod/sumdb/note"
)

// rig is a real Tessera log holding records, with its key.
type rig struct {
	dir      string
	log      *tessera.Log
	signer   note.Signer
	verifier note.Verifier
	vkey     string
	recs     []lineage.Record
}

const rigOrigin = "lineage.test/exporters"

func newRig(t testing.TB, recs []lineage.Record) *rig {
	t.Helper()
	dir := t.TempDir()
	signer, vkey, err := ledger.LoadOrCreateSigner(filepath.Join(dir, "log.key"), rigOrigin)
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
	r := &rig{dir: dir, log: lg, signer: signer, verifier: v, vkey: vkey}
	r.append(t, recs)
	return r
}

// append logs recs as ingest would: canonical envelopes received shortly after decision time.
func (r *rig) append(t testing.TB, recs []lineage.Record) {
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
	if _, err := ledgertest.AddAll(context.Background(), r.log, entries); err != nil {
		t.Fatal(err)
	}
	r.recs = append(r.recs, recs...)
	if _, err := ledgertest.WaitCheckpoint(context.Background(), r.log, r.verifier, uint64(len(r.recs))); err != nil {
		t.Fatal(err)
	}
}

func (r *rig) exporter() *Exporter {
	return &Exporter{Log: r.log, Signer: r.signer, Verifier: r.verifier, Generator: "lineage test"}
}

// realistic returns demo traffic from three tenants over nine months, with a quiet spell
// from March to May (a retention gap), one escalation whose human review was never logged,
// and one of Lineage's own export records.
func realistic() []lineage.Record {
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
	self.Source = lineage.Source{ID: ExportSourceID, Type: ExportSourceType}
	self.Tenant = "acme-bank"
	self.AISystem = nil
	self.Delegation = nil
	self.HumanOversight = nil
	return append(recs, self)
}

func june(kind Kind, system string) Request {
	return Request{
		Kind: kind, Tenant: "acme-bank", AISystem: system,
		From: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC),
	}
}
