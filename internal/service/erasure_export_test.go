package service

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/lineage-audit/lineage/exporters"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lineage-audit/lineage/exporters/report"
	"github.com/lineage-audit/lineage/verify"
)

// runExport starts a Fannie Mae export of the test tenant over [now-1d, now+1d) (the test
// records name no AI system, so the EU AI Act report would leave them out) and waits for it.
func runExport(t *testing.T, base string) exporters.Job {
	t.Helper()
	now := time.Now().UTC()
	body := fmt.Sprintf(`{"kind":"fannie-mae","tenant":%q,"from":%q,"to":%q,"formats":["json","csv","html"]}`,
		erTenant, now.Add(-24*time.Hour).Format(time.RFC3339), now.Add(24*time.Hour).Format(time.RFC3339))
	code, b := httpDo(t, "POST", base+"/v1/exports", body)
	if code != http.StatusAccepted {
		t.Fatalf("POST /v1/exports = %d %s", code, b)
	}
	var j exporters.Job
	if err := json.Unmarshal(b, &j); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		code, b := httpDo(t, "GET", base+"/v1/exports/"+j.ID, "")
		if code != http.StatusOK {
			t.Fatalf("GET export = %d %s", code, b)
		}
		if err := json.Unmarshal(b, &j); err != nil {
			t.Fatal(err)
		}
		switch j.Status {
		case exporters.StatusSucceeded:
			return j
		case exporters.StatusFailed:
			t.Fatalf("export failed: %s", j.Error)
		}
		if time.Now().After(deadline) {
			t.Fatalf("export %s still %s", j.ID, j.Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// download fetches every file of an export into a new directory outside the data dir, as a
// recipient would keep them, and returns it.
func download(t *testing.T, base string, j exporters.Job) string {
	t.Helper()
	out := t.TempDir()
	for _, f := range j.Files {
		code, b := httpDo(t, "GET", base+"/v1/exports/"+j.ID+"/files/"+f.Name, "")
		if code != http.StatusOK {
			t.Fatalf("download %s = %d %s", f.Name, code, b)
		}
		if err := os.WriteFile(filepath.Join(out, f.Name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// unzipped returns the bytes of every member of a bundle, by name.
func unzipped(t *testing.T, path string) map[string][]byte {
	t.Helper()
	zr, err := zip.OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	out := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		out[f.Name] = b
	}
	return out
}

// TestErasureExportEndToEnd runs an erasure-on lineaged: an export shows the clear user ids and
// its bundle, carrying their openings, verifies offline; after the erasure of a subject the old
// bundle still verifies (it is self-contained), a new export marks the person erased and counts
// it, verifies, and none of its files (the bundle's members included) holds the clear subject
// id or the value sealed under its key. Then PurgeKeys, on the export directory lineaged wrote,
// deletes the old export's files, and the data dir holds no clear value of the subject.
func TestErasureExportEndToEnd(t *testing.T) {
	dir := t.TempDir()
	base, _, stop := startErasure(t, dir)
	defer func() {
		if stop != nil {
			stop()
		}
	}()
	v := verifierOf(t, base)
	now := time.Now()
	var recs []string
	for i := range 4 {
		recs = append(recs, erRecord(fmt.Sprintf("a-%d", i), erasedUser, erasedTarget, now.Add(-time.Duration(i)*time.Minute)))
		recs = append(recs, erRecord(fmt.Sprintf("b-%d", i), keptUser, "case-kept-1", now))
	}
	publishRecords(t, base, recs...)
	waitRecord(t, base, "a-3")
	waitRecord(t, base, "b-3")

	before := runExport(t, base)
	if len(before.ClearKeyIDs) != 2 || before.Summary == nil || before.Summary.Erasure == nil || before.Summary.Erasure.ClearSubjects != 2 || before.Summary.Erasure.ErasedFields != 0 {
		t.Fatalf("export before the erasure: clear keys %v, summary %+v", before.ClearKeyIDs, before.Summary)
	}
	oldFiles := download(t, base, before)
	oldBundle := filepath.Join(oldFiles, before.Bundle)
	rep, err := verify.VerifyBundle(oldBundle, v)
	if err != nil {
		t.Fatalf("bundle before the erasure: %v", err)
	}
	// 8 records with a user and a target each; the export records (sealed too: the requester is
	// their user) are not in the report.
	if rep.Records != 8 || rep.Sealed == nil || rep.Sealed.ClearFields != 16 || rep.Sealed.ErasedFields != 0 || rep.Sealed.ClearKeys != 2 {
		t.Fatalf("bundle before the erasure: %d records, sealed %+v", rep.Records, rep.Sealed)
	}
	for _, name := range []string{"report.json", "decisions.csv", "report.html"} {
		b, err := os.ReadFile(filepath.Join(oldFiles, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b, []byte(erasedUser)) || !bytes.Contains(b, []byte(erasedTarget)) || bytes.Contains(b, []byte("sealed:")) {
			t.Errorf("%s before the erasure does not show the clear user and target, or shows a token", name)
		}
	}

	req := fmt.Sprintf(`{"tenant":%q,"subject":%q,"legal_basis":"court order 2026-321 (GDPR Art. 17(1)(d))"}`, erTenant, erasedUser)
	code, b := httpDo(t, "POST", base+"/v1/erasures", req)
	if code != http.StatusOK {
		t.Fatalf("erasure = %d %s", code, b)
	}
	var er struct {
		KeyIDs   []string `json:"key_ids"`
		RecordID string   `json:"record_id"`
	}
	if err := json.Unmarshal(b, &er); err != nil || len(er.KeyIDs) != 1 || er.RecordID == "" {
		t.Fatalf("erasure answer %s: %v", b, err)
	}
	// The erasure's own decision record is in the report too (its user, the requester, is
	// sealed: 2 more clear fields under a third key); wait for it, or the count depends on
	// whether the indexer got to it before the export ran.
	waitRecord(t, base, er.RecordID)

	// The old bundle, kept by its recipient, still verifies: proofs and openings are in it.
	if _, err := verify.VerifyBundle(oldBundle, v); err != nil {
		t.Fatalf("the old bundle after the erasure: %v", err)
	}

	after := runExport(t, base)
	newFiles := download(t, base, after)
	newBundle := filepath.Join(newFiles, after.Bundle)
	rep2, err := verify.VerifyBundle(newBundle, v)
	if err != nil {
		t.Fatalf("bundle after the erasure: %v", err)
	}
	if rep2.Sealed == nil || rep2.Sealed.ErasedFields != 8 || rep2.Sealed.ErasedKeys != 1 || rep2.Sealed.ClearFields != 8+2 || rep2.Sealed.ClearKeys != 1+1 {
		t.Fatalf("bundle after the erasure: sealed %+v", rep2.Sealed)
	}
	e := after.Summary.Erasure
	if e == nil || e.ErasedSubjects != 1 || e.ErasedFields != 8 || e.RecordsWithErasedFields != 4 || e.ClearSubjects != 1+1 || e.RecordsSealed != 8+1 {
		t.Fatalf("summary after the erasure: %+v", e)
	}
	marker := report.ErasedMarker(er.KeyIDs[0])
	contents := map[string][]byte{}
	for _, f := range after.Files {
		b, err := os.ReadFile(filepath.Join(newFiles, f.Name))
		if err != nil {
			t.Fatal(err)
		}
		contents[f.Name] = b
	}
	for name, b := range unzipped(t, newBundle) {
		contents[after.Bundle+"/"+name] = b
	}
	for name, b := range contents {
		if bytes.Contains(b, []byte(erasedUser)) || bytes.Contains(b, []byte(erasedTarget)) {
			t.Errorf("new export file %s holds a clear value of the erased subject", name)
		}
	}
	for _, name := range []string{"report.json", "decisions.csv", "persons.csv", "report.html"} {
		if !bytes.Contains(contents[name], []byte(marker)) || !bytes.Contains(contents[name], []byte(keptUser)) {
			t.Errorf("%s does not show the erased person as %q next to the kept one", name, marker)
		}
	}

	// The export kept by the service held the erased subject in clear: the erasure deleted its
	// files (exporters.Service.PurgeKeys, called by the eraser); the job stays, and its files
	// answer 410 Gone.
	if code, b := httpDo(t, "GET", base+"/v1/exports/"+before.ID+"/files/"+before.Bundle, ""); code != http.StatusGone {
		t.Errorf("the purged export's bundle = %d %s, want 410", code, b)
	}
	if code, b := httpDo(t, "GET", base+"/v1/exports/"+before.ID, ""); code != http.StatusOK || !bytes.Contains(b, []byte(`"files_erased":"`)) {
		t.Errorf("the purged export's job = %d %s, want files_erased", code, b)
	}
	stop()
	stop = nil
	if hits := grepDir(t, dir, erasedUser, erasedTarget); len(hits) > 0 {
		t.Errorf("after the erasure, clear values of the erased subject are in the data dir:\n%s", strings.Join(hits, "\n"))
	}
	if hits := grepDir(t, filepath.Join(dir, "exports", after.ID), keptUser); len(hits) == 0 {
		t.Error("the erasure removed the new export, which holds no value of the erased subject")
	}
}
