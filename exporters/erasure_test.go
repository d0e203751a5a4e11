package exporters

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lineage-audit/lineage/exporters/report/reporttest"
	"github.com/lineage-audit/lineage/internal/testenv"
	"github.com/lineage-audit/lineage/verify"
	"github.com/nats-io/nats.go/jetstream"
)

const sealedJuneBody = `{"kind":"eu-ai-act","tenant":"acme-bank","from":"2026-06-01","to":"2026-07-01","formats":["json","csv","html"]}`

func (sr *svcRig) export(t *testing.T, who, body string) Job {
	t.Helper()
	code, b := sr.do(t, who, "POST", "/v1/exports", body)
	if code != http.StatusAccepted {
		t.Fatalf("POST: %d %s", code, b)
	}
	var j Job
	if err := json.Unmarshal(b, &j); err != nil {
		t.Fatal(err)
	}
	j = sr.wait(t, who, j.ID)
	if j.Status != StatusSucceeded {
		t.Fatalf("export %s: %s %s", j.ID, j.Status, j.Error)
	}
	return j
}

// TestPurgeKeysLocal: an export of an erasure-on log records the subject keys its files hold in
// clear; after a subject's erasure PurgeKeys deletes the files of that export only (not those of
// another tenant's), keeps the job, and its downloads answer 410 Gone, also after a restart. A
// new export holds no clear value of the erased subject and survives a second PurgeKeys.
func TestPurgeKeysLocal(t *testing.T) {
	r, ks := reporttest.NewSealed(t)
	victim, _ := r.TopUser("acme-bank")
	dir := t.TempDir()
	sr := startService(t, r, dir, func(c *Config) { c.Keys = ks })

	j := sr.export(t, "acme-compliance", sealedJuneBody)
	if len(j.ClearKeyIDs) == 0 || j.FilesErased != "" || j.Summary == nil || j.Summary.Erasure == nil || j.Summary.Erasure.ClearFields == 0 {
		t.Fatalf("job of a sealed export: %+v", j)
	}
	other := sr.export(t, "globex-compliance", strings.ReplaceAll(sealedJuneBody, "acme-bank", "globex-lending"))
	if len(other.ClearKeyIDs) == 0 {
		t.Fatalf("globex job names no clear keys: %+v", other)
	}
	zipURL := "/v1/exports/" + j.ID + "/files/" + j.Bundle
	if code, _ := sr.do(t, "acme-compliance", "GET", zipURL, ""); code != 200 {
		t.Fatalf("download before the erasure: %d", code)
	}

	ctx := context.Background()
	kids, err := ks.Erase(ctx, "acme-bank", victim, "GDPR Art. 17 request 7")
	if err != nil {
		t.Fatal(err)
	}
	erased := []string{kids[0].String()}
	if !slices.Contains(j.ClearKeyIDs, erased[0]) {
		t.Fatalf("the job's clear keys %v lack the erased key %s", j.ClearKeyIDs, erased[0])
	}
	// Another tenant's exports are not touched, even given the same key ids.
	if n, err := sr.svc.PurgeKeys(ctx, "globex-lending", erased); n != 0 || err != nil {
		t.Fatalf("PurgeKeys of another tenant: %d, %v", n, err)
	}
	n, err := sr.svc.PurgeKeys(ctx, "acme-bank", erased)
	if n != 1 || err != nil {
		t.Fatalf("PurgeKeys: %d, %v", n, err)
	}
	left, err := os.ReadDir(filepath.Join(dir, j.ID))
	if err != nil || len(left) != 1 || left[0].Name() != "job.json" {
		t.Fatalf("the purged export's directory holds %v (%v)", left, err)
	}
	if st, err := os.Stat(filepath.Join(dir, other.ID, other.Bundle)); err != nil || st.Size() == 0 {
		t.Fatalf("globex's bundle was removed: %v", err)
	}
	if n, err := sr.svc.PurgeKeys(ctx, "acme-bank", erased); n != 0 || err != nil {
		t.Fatalf("second PurgeKeys: %d, %v", n, err)
	}
	check := func(sr *svcRig) {
		t.Helper()
		code, b := sr.do(t, "acme-compliance", "GET", zipURL, "")
		if code != http.StatusGone || !strings.Contains(string(b), "erased") {
			t.Fatalf("download after the purge: %d %s", code, b)
		}
		code, b = sr.do(t, "acme-compliance", "GET", "/v1/exports/"+j.ID, "")
		var got Job
		if code != 200 || json.Unmarshal(b, &got) != nil || got.FilesErased == "" || got.Status != StatusSucceeded {
			t.Fatalf("job after the purge: %d %s", code, b)
		}
		if code, _ := sr.do(t, "globex-compliance", "GET", "/v1/exports/"+other.ID+"/files/"+other.Bundle, ""); code != 200 {
			t.Fatalf("globex download after acme's purge: %d", code)
		}
	}
	check(sr)
	sr.stop()
	sr2 := startService(t, r, dir, func(c *Config) { c.Keys = ks })
	check(sr2)

	// A new export: no clear value of the erased subject, the erased key not among its clear
	// keys, so a repeated PurgeKeys leaves it alone; its bundle verifies.
	j2 := sr2.export(t, "acme-compliance", sealedJuneBody)
	if slices.Contains(j2.ClearKeyIDs, erased[0]) || j2.Summary.Erasure.ErasedSubjects != 1 {
		t.Fatalf("new export: clear keys %v, erasure %+v", j2.ClearKeyIDs, j2.Summary.Erasure)
	}
	if n, err := sr2.svc.PurgeKeys(ctx, "acme-bank", erased); n != 0 || err != nil {
		t.Fatalf("PurgeKeys after the new export: %d, %v", n, err)
	}
	for _, f := range j2.Files {
		if strings.HasSuffix(f.Name, ".zip") {
			continue // compressed; its members are checked in exporters/report (TestSealedExport)
		}
		b, err := os.ReadFile(filepath.Join(dir, j2.ID, f.Name))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), victim) {
			t.Errorf("new export file %s holds the erased user id", f.Name)
		}
	}
	if _, err := verify.VerifyBundle(filepath.Join(dir, j2.ID, j2.Bundle), r.Verifier); err != nil {
		t.Fatalf("new bundle: %v", err)
	}
}

// TestPurgeKeysCluster: in cluster mode the jobs are in KV and the files in the object store.
// An export of an erasure-on log run by node B is purged through node A's PurgeKeys: the job is
// marked files_erased, its objects are gone, both nodes answer 410, and another tenant's export
// keeps its files.
func TestPurgeKeysCluster(t *testing.T) {
	r, ks := reporttest.NewSealed(t)
	victim, _ := r.TopUser("acme-bank")
	srv := testenv.StartJetStream(t)
	pub := &published{}
	keys := func(c *Config) { c.Keys = ks }
	a := startClusterNode(t, r, srv, "node-a", pub, keys)
	b := startClusterNode(t, r, srv, "node-b", pub, keys)
	b.run(t)
	j := b.export(t, "acme-compliance", sealedJuneBody)
	other := b.export(t, "globex-compliance", strings.ReplaceAll(sealedJuneBody, "acme-bank", "globex-lending"))
	if len(j.ClearKeyIDs) == 0 || len(other.ClearKeyIDs) == 0 {
		t.Fatalf("clear keys: %v, %v", j.ClearKeyIDs, other.ClearKeyIDs)
	}
	zipURL := "/v1/exports/" + j.ID + "/files/" + j.Bundle
	if code, _ := a.do(t, "acme-compliance", "GET", zipURL, ""); code != 200 {
		t.Fatalf("download through A before the erasure: %d", code)
	}

	ctx := context.Background()
	kids, err := ks.Erase(ctx, "acme-bank", victim, "GDPR Art. 17 request 8")
	if err != nil {
		t.Fatal(err)
	}
	erased := []string{kids[0].String()}
	n, err := a.svc.PurgeKeys(ctx, "acme-bank", erased)
	if n != 1 || err != nil {
		t.Fatalf("PurgeKeys: %d, %v", n, err)
	}
	if n, err := a.svc.PurgeKeys(ctx, "acme-bank", erased); n != 0 || err != nil {
		t.Fatalf("second PurgeKeys: %d, %v", n, err)
	}
	if sj := kvJob(t, a, j.ID); sj.FilesErased == "" || sj.Status != StatusSucceeded {
		t.Fatalf("job in KV after the purge: %+v", sj.Job)
	}
	for _, f := range j.Files {
		if _, err := a.svc.cl.files.GetInfo(ctx, j.ID+"/"+f.Name); !errors.Is(err, jetstream.ErrObjectNotFound) {
			t.Errorf("object %s/%s after the purge: %v", j.ID, f.Name, err)
		}
	}
	for _, node := range []*clusterNode{a, b} {
		if code, body := node.do(t, "acme-compliance", "GET", zipURL, ""); code != http.StatusGone {
			t.Fatalf("download after the purge: %d %s", code, body)
		}
		if code, _ := node.do(t, "globex-compliance", "GET", "/v1/exports/"+other.ID+"/files/"+other.Bundle, ""); code != 200 {
			t.Fatalf("globex download after acme's purge: %d", code)
		}
	}
}
