package indextest

import (
	"crypto/sha256"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	lineage "github.com/lineage-audit/lineage"
)

// TestGenerateRecords checks the properties drivers and benchmarks rely on: determinism, log
// indexes 0..n-1, unique (tenant, id), canonical bytes that decode back to the record, and crews
// whose parents exist in the same tenant.
func TestGenerateRecords(t *testing.T) {
	entries := GenerateRecords(3, 2000)
	if !reflect.DeepEqual(entries, GenerateRecords(3, 2000)) {
		t.Fatal("GenerateRecords is not deterministic")
	}
	if reflect.DeepEqual(entries, GenerateRecords(4, 2000)) {
		t.Fatal("GenerateRecords ignores the seed")
	}
	if len(entries) != 2000 {
		t.Fatalf("got %d entries, want 2000", len(entries))
	}
	ids := map[[2]string]bool{}
	tenantsOfID := map[string]map[string]bool{}
	effects := map[string]int{}
	var oversight, ties int
	for i, e := range entries {
		r := e.Record
		if e.Index != uint64(i) {
			t.Fatalf("entry %d has index %d", i, e.Index)
		}
		key := [2]string{r.Tenant, r.ID}
		if ids[key] {
			t.Fatalf("duplicate record %v", key)
		}
		ids[key] = true
		if tenantsOfID[r.ID] == nil {
			tenantsOfID[r.ID] = map[string]bool{}
		}
		tenantsOfID[r.ID][r.Tenant] = true

		var back lineage.Record
		if err := json.Unmarshal(e.Canonical, &back); err != nil || !reflect.DeepEqual(back, *r) {
			t.Fatalf("entry %d: canonical bytes do not decode to the record (%v)", i, err)
		}
		if e.RecordHash != sha256.Sum256(e.Canonical) {
			t.Fatalf("entry %d: RecordHash is not SHA-256 of Canonical", i)
		}
		if at, err := time.Parse(time.RFC3339Nano, r.Time); err != nil || !at.Equal(e.Time) {
			t.Fatalf("entry %d: Time %v does not match Record.Time %q (%v)", i, e.Time, r.Time, err)
		}
		effects[r.Decision.Effect]++
		if r.HumanOversight != nil {
			oversight++
		}
		if i > 0 && e.Time.Equal(entries[i-1].Time) {
			ties++
		}
	}
	for _, e := range entries {
		if p := e.Record.ParentID; p != "" && !ids[[2]string{e.Record.Tenant, p}] {
			t.Errorf("%s/%s: parent %s is not in the tenant", e.Record.Tenant, e.Record.ID, p)
		}
	}
	var shared int
	for _, tenants := range tenantsOfID {
		if len(tenants) > 1 {
			shared++
		}
	}
	if shared == 0 || effects[lineage.EffectDeny] == 0 || effects[lineage.EffectEscalate] == 0 ||
		oversight == 0 || ties == 0 {
		t.Errorf("data set lacks a shape the suite relies on: %d ids shared across tenants, effects %v, "+
			"%d oversight reviews, %d adjacent equal times", shared, effects, oversight, ties)
	}
}

// TestBatches: batches cover the log contiguously from 0, gaps included.
func TestBatches(t *testing.T) {
	entries := GenerateRecords(1, 25)
	for i := range entries {
		entries[i].Index = uint64(2 * i) // every other log entry is not a record
	}
	batches := Batches(entries, 10)
	if len(batches) != 3 {
		t.Fatalf("got %d batches, want 3", len(batches))
	}
	var from uint64
	var n int
	for _, b := range batches {
		if b.From != from || b.To != b.Entries[len(b.Entries)-1].Index+1 {
			t.Errorf("batch [%d,%d) does not continue from %d up to its last entry", b.From, b.To, from)
		}
		from, n = b.To, n+len(b.Entries)
	}
	if n != len(entries) || from != 49 {
		t.Errorf("batches hold %d entries up to %d, want %d up to 49", n, from, len(entries))
	}
}
