package service

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lineage-audit/lineage/internal/demo"
	"github.com/lineage-audit/lineage/internal/testenv"
	"github.com/lineage-audit/lineage/ledger"
	"github.com/lineage-audit/lineage/ledger/witness"
	"github.com/lineage-audit/lineage/verify/witnesstest"
	"golang.org/x/mod/sumdb/note"
)

// TestWitnessPreflight: a bad --witness-mode or an unreadable or invalid --witness-policy
// refuses the start before anything is opened.
func TestWitnessPreflight(t *testing.T) {
	cvkey := witnesstest.New(t, "w1.test").VKey
	write := func(s string) string {
		p := filepath.Join(t.TempDir(), "policy")
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("witness w1 " + cvkey + " http://127.0.0.1:7380\nquorum w1\n")
	for _, tc := range []struct {
		name, policy, mode, want string
	}{
		{"bad mode", good, "lenient", "--witness-mode"},
		{"missing policy", filepath.Join(t.TempDir(), "none"), "hold", "--witness-policy"},
		{"no quorum", write("witness w1 " + cvkey + " http://127.0.0.1:7380\n"), "hold", "must define a quorum"},
		{"quorum none", write("witness w1 " + cvkey + " http://127.0.0.1:7380\nquorum none\n"), "open", "needs no cosignature"},
		{"bad key", write("witness w1 w1.test+00000000+AAAA http://127.0.0.1:7380\nquorum w1\n"), "hold", "--witness-policy"},
	} {
		dir := t.TempDir()
		c := testConfig(dir)
		c.WitnessPolicy, c.WitnessMode = tc.policy, tc.mode
		err := run(t, c)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Run = %v, want an error containing %q", tc.name, err, tc.want)
		}
		if _, err := os.Stat(filepath.Join(dir, "keys")); err == nil {
			t.Errorf("%s: Run created files before refusing", tc.name)
		}
	}
	c := testConfig(t.TempDir())
	c.WitnessPolicy = good
	c.Defaults()
	if c.WitnessMode != "hold" {
		t.Errorf("default --witness-mode %q", c.WitnessMode)
	}
	if _, _, err := preflight(c); err != nil {
		t.Errorf("preflight with a good policy: %v", err)
	}
}

// TestRunWitnessed runs lineaged with a witness policy of two real litewitness processes: a
// record ingested over HTTP ends up in a checkpoint that /v1/checkpoint serves with both
// cosignatures, the metrics are served, and the cosigned checkpoint is kept in the data dir.
func TestRunWitnessed(t *testing.T) {
	dir := t.TempDir()
	c := testConfig(dir)
	c.NATSAddr = freePort(t)
	c.CheckpointInterval = 100 * time.Millisecond
	// The log key is made first, so the witnesses can be told it before lineaged starts.
	_, vkey, err := ledger.LoadOrCreateSigner(filepath.Join(dir, "keys", "log.key"), c.LogOrigin)
	if err != nil {
		t.Fatal(err)
	}
	var policy strings.Builder
	var ws []*testenv.Witness
	for _, name := range []string{"w1.lineage.test", "w2.lineage.test"} {
		w := testenv.StartWitness(t, name)
		w.AddLog(t, c.LogOrigin, vkey)
		ws = append(ws, w)
		policy.WriteString(w.PolicyLine() + "\n")
	}
	policy.WriteString("group both all w1.lineage.test w2.lineage.test\nquorum both\n")
	c.WitnessPolicy = filepath.Join(t.TempDir(), "witnesses")
	if err := os.WriteFile(c.WitnessPolicy, []byte(policy.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := witness.LoadPolicy(c.WitnessPolicy)
	if err != nil {
		t.Fatal(err)
	}
	addr, stop := startRun(t, c)
	base := "http://" + addr

	recs := demo.Generate(demo.Options{Seed: 7, Tenants: 1}, 3)
	var body bytes.Buffer
	for _, r := range recs {
		b, err := r.Canonical()
		if err != nil {
			t.Fatal(err)
		}
		body.Write(b)
		body.WriteByte('\n')
	}
	resp, err := http.Post(base+"/v1/records", "application/x-ndjson", &body)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /v1/records = %d: %s", resp.StatusCode, b)
	}

	get := func(path string) (int, []byte) {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	deadline := time.Now().Add(60 * time.Second)
	var cpNote []byte
	for {
		if code, b := get("/v1/checkpoint"); code == http.StatusOK && p.Satisfied(b) {
			if cp, err := ledger.OpenCheckpoint(b, mustVerifier(t, vkey)); err == nil && cp.Size >= uint64(len(recs)) {
				cpNote = b
				break
			}
		}
		if time.Now().After(deadline) {
			code, b := get("/v1/checkpoint")
			t.Fatalf("no cosigned checkpoint of the records served: last %d %s", code, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, w := range ws {
		if !bytes.Contains(cpNote, []byte("— "+w.Name+" ")) {
			t.Errorf("checkpoint has no cosignature line of %s:\n%s", w.Name, cpNote)
		}
	}
	code, metrics := get("/metrics")
	if code != http.StatusOK || !bytes.Contains(metrics, []byte("lineage_witness_quorum_met 1")) ||
		!bytes.Contains(metrics, []byte(`lineage_witness_requests_total{result="ok",witness="w1.lineage.test"}`)) {
		t.Errorf("GET /metrics = %d without the witness metrics:\n%s", code, grepLines(metrics, "lineage_witness"))
	}
	var kept []byte
	for time.Now().Before(deadline) {
		if kept, _ = os.ReadFile(witness.StateFile(dir)); p.Satisfied(kept) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !p.Satisfied(kept) {
		t.Errorf("no cosigned checkpoint kept in %s", witness.StateFile(dir))
	}
	stop()
	assertUndone(t, dir, c.NATSAddr)
}

func mustVerifier(t *testing.T, vkey string) note.Verifier {
	t.Helper()
	v, err := ledger.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func grepLines(b []byte, sub string) string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
