package query_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/internal/demo"
	"github.com/lineage-audit/lineage/internal/verifycmd"
	"github.com/lineage-audit/lineage/ledger"
	"github.com/lineage-audit/lineage/ledger/ledgertest"
	"github.com/lineage-audit/lineage/query"
	"github.com/lineage-audit/lineage/verify/witnesstest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/formats/proof"
	mproof "github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

// servedLog is a real log whose Checkpoint is a fixed, cosigned, older checkpoint of it: what
// the witnessed log (ledger/witness, hold mode) serves while the newest tree awaits its
// witnesses. Every other method is the real log's.
type servedLog struct {
	ledger.Log
	cp ledger.Checkpoint
}

func (l *servedLog) Checkpoint(context.Context) (ledger.Checkpoint, error) { return l.cp, nil }

// witnessedRig serves the API over a real Tessera log and SQLite index holding recs, all
// indexed, whose served checkpoint is the log's checkpoint at size served, cosigned by ws.
func witnessedRig(t *testing.T, recs []lineage.Record, served int, ws ...witnesstest.Witness) (srv *httptest.Server, v note.Verifier, vkey string, cosigned []byte) {
	t.Helper()
	ctx := context.Background()
	lg, store, v, vkey, logDir := testLog(t, "lineage.test/tlog-proof")
	add := func(recs []lineage.Record, size int) ledger.Checkpoint {
		if _, err := ledgertest.AddAll(ctx, lg, envelopes(t, recs)); err != nil {
			t.Fatal(err)
		}
		cp, err := ledgertest.WaitCheckpoint(ctx, lg, v, uint64(size))
		if err != nil {
			t.Fatal(err)
		}
		return cp
	}
	old := add(recs[:served], served)
	if old.Size != uint64(served) {
		t.Fatalf("checkpoint of size %d, want %d", old.Size, served)
	}
	cosigned = witnesstest.Cosign(t, old.Note, v, ws...)
	old.Note = cosigned
	add(recs[served:], len(recs))
	ix, err := query.NewIndexer(ctx, lg, store, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for ix.Position() < uint64(len(recs)) {
		if _, err := ix.Step(ctx); err != nil {
			t.Fatal(err)
		}
	}
	api := &query.API{Log: &servedLog{Log: lg, cp: old}, Store: store, Verifier: vkey, LogDir: logDir, Gatherer: prometheus.NewRegistry()}
	srv = httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	return srv, v, vkey, cosigned
}

func httpGet(t *testing.T, u string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// TestRecordTLogProof fetches records as C2SP tlog-proofs from the API over a real log whose
// served checkpoint two witnesses cosigned, and checks them three ways: with code independent
// of Lineage (transparency-dev/formats and merkle, as any C2SP tool would), with
// lineage-verify's command code (with and without a witness policy), and against the JSON
// answer. A record beyond the served checkpoint answers 503.
func TestRecordTLogProof(t *testing.T) {
	recs := demo.Generate(demo.Options{Seed: 21, Tenants: 1}, 30)
	w1, w2, w3 := witnesstest.New(t, "w1.example"), witnesstest.New(t, "w2.example"), witnesstest.New(t, "w3.example")
	const served = 20
	srv, v, vkey, cosigned := witnessedRig(t, recs, served, w1, w2)
	dir := t.TempDir()
	policy := func(name, threshold string, ws ...witnesstest.Witness) string {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, witnesstest.Policy(threshold, ws...), 0o644); err != nil {
			t.Fatal(err)
		}
		return f
	}
	twoOfThree := policy("two", "2", w1, w2, w3)
	allThree := policy("all", "all", w1, w2, w3)

	// tlog-tiles clients get the served, cosigned checkpoint, not the newer one on disk.
	if resp, b := httpGet(t, srv.URL+"/log/checkpoint"); resp.StatusCode != 200 || !bytes.Equal(b, cosigned) {
		t.Fatalf("/log/checkpoint: %d %q, want the cosigned checkpoint %q", resp.StatusCode, b, cosigned)
	}

	for _, i := range []int{0, 7, served - 1} {
		r := recs[i]
		resp, b := httpGet(t, srv.URL+"/v1/records/"+url.PathEscape(r.ID)+"?format=tlog-proof")
		if resp.StatusCode != 200 {
			t.Fatalf("record %d: %d %s", i, resp.StatusCode, b)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
			t.Errorf("Content-Type %q", ct)
		}
		if cd := resp.Header.Get("Content-Disposition"); cd != `attachment; filename="`+r.ID+`.tlog-proof"` {
			t.Errorf("Content-Disposition %q", cd)
		}

		// Any C2SP tool: parse with transparency-dev/formats, open the checkpoint with the log
		// key, recompute the leaf hash from the extra line, verify the inclusion proof.
		var p proof.TLogProof
		if err := p.Unmarshal(b); err != nil {
			t.Fatal(err)
		}
		c, _, n, err := log.ParseCheckpoint(p.Checkpoint, v.Name(), v)
		if err != nil {
			t.Fatal(err)
		}
		if c.Size != served || len(n.UnverifiedSigs) != 2 || !bytes.Equal(p.Checkpoint, cosigned) {
			t.Fatalf("checkpoint size %d with %d other signatures", c.Size, len(n.UnverifiedSigs))
		}
		hashes := make([][]byte, len(p.Hashes))
		for j := range p.Hashes {
			hashes[j] = p.Hashes[j][:]
		}
		if err := mproof.VerifyInclusion(rfc6962.DefaultHasher, p.Index, c.Size, rfc6962.DefaultHasher.HashLeaf(p.ExtraData), hashes, c.Hash); err != nil {
			t.Fatalf("record %d: inclusion: %v", i, err)
		}
		if p.Index != uint64(i) {
			t.Fatalf("index %d, want %d", p.Index, i)
		}
		// The extra line is exactly the JSON answer's leaf, and holds the record.
		var rp query.RecordProof
		getJSON(t, srv.URL+"/v1/records/"+url.PathEscape(r.ID), &rp)
		if !bytes.Equal(rp.Leaf, p.ExtraData) || rp.Checkpoint != string(cosigned) {
			t.Fatalf("record %d: the tlog-proof and the JSON answer differ", i)
		}
		env, err := lineage.DecodeEnvelope(p.ExtraData)
		if err != nil || env.Record.ID != r.ID {
			t.Fatalf("extra: %v", err)
		}

		// lineage-verify's command code, from the saved file.
		f := filepath.Join(dir, r.ID+".tlog-proof")
		if err := os.WriteFile(f, b, 0o644); err != nil {
			t.Fatal(err)
		}
		out := runVerify(t, "--proof", f, "--verifier", vkey, "--witness-policy", twoOfThree)
		if !strings.Contains(out, "witnessed, quorum group q: 2 of w1.example w2.example w3.example: cosigned by w1.example (") || !strings.Contains(out, "(C2SP tlog-proof)") {
			t.Fatalf("output: %s", out)
		}
		if out := runVerify(t, "--proof", f, "--verifier", vkey); !strings.Contains(out, "carries 2 cosignature(s) (by w1.example, w2.example), not checked") {
			t.Fatalf("output without policy: %s", out)
		}
		err = verifycmd.Verify(verifycmd.Env{Prog: "test", EnvPrefix: "LINEAGE_TEST_", Stdout: io.Discard}, []string{"--proof", f, "--verifier", vkey, "--witness-policy", allThree})
		if err == nil || !strings.Contains(err.Error(), "lacks the witness quorum") || !strings.Contains(err.Error(), "missing w3.example") {
			t.Fatalf("all three required: %v", err)
		}
	}

	// lineagectl verify --id X --save F.tlog-proof fetches and saves the tlog-proof.
	f := filepath.Join(dir, "saved.tlog-proof")
	runVerify(t, "--api", srv.URL, "--id", recs[3].ID, "--save", f, "--verifier", vkey, "--witness-policy", twoOfThree)
	if b, err := os.ReadFile(f); err != nil || !bytes.HasPrefix(b, []byte("c2sp.org/tlog-proof@v1\nextra ")) {
		t.Fatalf("saved: %q %v", b, err)
	}
	// ... and a JSON answer still saves as JSON, and verifies.
	fj := filepath.Join(dir, "saved.json")
	runVerify(t, "--api", srv.URL, "--id", recs[3].ID, "--save", fj, "--verifier", vkey, "--witness-policy", twoOfThree)
	if b, err := os.ReadFile(fj); err != nil || !json.Valid(b) {
		t.Fatalf("saved JSON: %v", err)
	}

	// Logged beyond the served checkpoint: 503 with Retry-After, for both formats.
	for _, q := range []string{"", "?format=tlog-proof"} {
		resp, b := httpGet(t, srv.URL+"/v1/records/"+url.PathEscape(recs[25].ID)+q)
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "5" ||
			!strings.Contains(string(b), "logged at index 25 but the served checkpoint covers 20 entries") {
			t.Fatalf("beyond the checkpoint: %d %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), b)
		}
	}
	// An unknown format is refused.
	if resp, b := httpGet(t, srv.URL+"/v1/records/"+url.PathEscape(recs[0].ID)+"?format=pdf"); resp.StatusCode != 400 || !strings.Contains(string(b), "format") {
		t.Fatalf("format=pdf: %d %s", resp.StatusCode, b)
	}
	// A tampered proof file does not verify: another index.
	b, _ := os.ReadFile(f)
	bad := filepath.Join(dir, "bad.tlog-proof")
	os.WriteFile(bad, bytes.Replace(b, []byte("\nindex 3\n"), []byte("\nindex 4\n"), 1), 0o644)
	if err := verifycmd.Verify(verifycmd.Env{Prog: "test", EnvPrefix: "LINEAGE_TEST_", Stdout: io.Discard}, []string{"--proof", bad, "--verifier", vkey}); err == nil || !strings.Contains(err.Error(), "inclusion") {
		t.Fatalf("moved index: %v", err)
	}
	// The entry can be given separately when the extra line is left out.
	var p proof.TLogProof
	if err := p.Unmarshal(b); err != nil {
		t.Fatal(err)
	}
	entry := filepath.Join(dir, "entry")
	os.WriteFile(entry, p.ExtraData, 0o644)
	p.ExtraData = nil
	bare := filepath.Join(dir, "bare.tlog-proof")
	os.WriteFile(bare, p.Marshal(), 0o644)
	if out := runVerify(t, "--proof", bare, "--entry", entry, "--verifier", vkey, "--witness-policy", twoOfThree); !strings.Contains(out, "OK: record") {
		t.Fatalf("bare proof with --entry: %s", out)
	}
}

// runVerify runs the verify command and returns its output, failing the test on error.
func runVerify(t *testing.T, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	if err := verifycmd.Verify(verifycmd.Env{Prog: "test", EnvPrefix: "LINEAGE_TEST_", Stdout: &out}, args); err != nil {
		t.Fatalf("verify %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String()
}
