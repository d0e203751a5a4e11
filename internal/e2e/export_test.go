package e2e

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lineage-audit/lineage/exporters/report"
	"github.com/lineage-audit/lineage/internal/demo"
	"github.com/lineage-audit/lineage/ledger"
	"github.com/lineage-audit/lineage/query"
)

// TestExportEndToEnd runs the real daemon, publishes demo traffic, exports a Fannie Mae
// disclosure with `lineagectl export --wait --out`, verifies the bundle offline with
// `lineagectl verify BUNDLE`, shows that a changed byte makes verification fail and name the
// file, and finds the export's own decision record in the log with a proof.
func TestExportEndToEnd(t *testing.T) {
	const n, exportSeed = 3000, 21
	dataDir := t.TempDir()
	natsAddr, httpAddr := freeAddr(t), freeAddr(t)
	d := startDaemon(t, dataDir, natsAddr, httpAddr)
	defer d.stop()
	defer func() {
		if t.Failed() {
			t.Logf("lineaged logs:\n%s", d.logs)
		}
	}()
	if code := d.getJSON(t, "/v1/exports", nil); code != http.StatusOK {
		t.Fatalf("GET /v1/exports: %d, want 200", code)
	}
	if out, err := ctl("publish", "--nats-url", "nats://"+natsAddr, "--demo", fmt.Sprint(n), "--seed", fmt.Sprint(exportSeed)); err != nil {
		t.Fatalf("publish: %v\n%s", err, out)
	}
	d.waitIndexed(t, n)
	mustCheckpoint(t, d, mustVerifier(t, dataDir), n)

	out := t.TempDir()
	vfile := filepath.Join(dataDir, "keys", "log.key.pub")
	res, err := ctl("export", "--api", d.url(""), "--kind", "fannie-mae", "--tenant", "acme-bank",
		"--from", "2026-11-01", "--to", "2026-12-01", "--wait", "--out", out)
	if err != nil {
		t.Fatalf("export: %v\n%s", err, res)
	}
	bundles, _ := filepath.Glob(filepath.Join(out, "*.zip"))
	if len(bundles) != 1 || !strings.Contains(res, "succeeded") {
		t.Fatalf("export output:\n%s\nbundles %v", res, bundles)
	}
	bundle := bundles[0]
	t.Logf("lineagectl export:\n%s", res)

	// The report counts exactly the tenant's published records.
	want := 0
	for _, r := range demo.Generate(demo.Options{Seed: exportSeed, Tenants: demo.DefaultTenants}, n) {
		if r.Tenant == "acme-bank" {
			want++
		}
	}
	var doc report.Document
	if err := json.Unmarshal(must(os.ReadFile(filepath.Join(out, "report.json"))), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Summary.Records != uint64(want) || len(doc.Decisions) != want || !doc.Integrity.RootRecomputed {
		t.Fatalf("report: %d records (%d rows), root recomputed %v; want %d", doc.Summary.Records, len(doc.Decisions), doc.Integrity.RootRecomputed, want)
	}

	// Offline verification with the public key alone.
	res, err = ctl("verify", bundle, "--verifier-file", vfile)
	if err != nil || !strings.Contains(res, "OK:") {
		t.Fatalf("verify: %v\n%s", err, res)
	}
	t.Logf("lineagectl verify:\n%s", res)
	tampered := filepath.Join(t.TempDir(), "tampered.zip")
	rewriteZip(t, bundle, tampered, "report/report.html", func(b []byte) []byte {
		return bytes.Replace(b, []byte("acme-bank"), []byte("acme-bonk"), 1)
	})
	if res, err = ctl("verify", tampered, "--verifier-file", vfile); err == nil || !strings.Contains(res, "report/report.html") {
		t.Fatalf("verify of a tampered bundle: %v\n%s", err, res)
	}
	t.Logf("lineagectl verify (tampered):\n%s", res)

	// The export run is itself in the log, with a proof.
	id := strings.TrimSuffix(filepath.Base(bundle), ".zip")
	v := mustVerifier(t, dataDir)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var rp query.RecordProof
		if d.getJSON(t, "/v1/records/export-"+id+"?tenant=acme-bank", &rp) == http.StatusOK {
			if _, err := query.VerifyRecordProof(&rp, v); err != nil {
				t.Fatalf("export record proof: %v", err)
			}
			if rp.Record.Action.Type != "export.fannie-mae" || rp.Record.Source.ID != report.ExportSourceID {
				t.Fatalf("export record %+v", rp.Record)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the export's decision record export-%s never reached the log", id)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func mustVerifier(t *testing.T, dataDir string) interface {
	Name() string
	KeyHash() uint32
	Verify(msg, sig []byte) bool
} {
	t.Helper()
	v, err := ledger.ReadVerifierFile(filepath.Join(dataDir, "keys", "log.key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// rewriteZip copies a ZIP archive, changing one member with edit.
func rewriteZip(t *testing.T, src, dst, member string, edit func([]byte) []byte) {
	t.Helper()
	zr, err := zip.OpenReader(src)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	f, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zw := zip.NewWriter(f)
	for _, m := range zr.File {
		rc, err := m.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if m.Name == member {
			b = edit(b)
		}
		w, err := zw.Create(m.Name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(b)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
}
