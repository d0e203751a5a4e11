package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lineage-audit/lineage/internal/demo"
	"github.com/lineage-audit/lineage/internal/testenv"
	"github.com/lineage-audit/lineage/ledger"
	"github.com/lineage-audit/lineage/verify"
	fnote "github.com/transparency-dev/formats/note"
	tproof "github.com/transparency-dev/formats/proof"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

// witnessWait bounds every wait of TestWitnessedEndToEnd for the daemon or the witnesses.
const witnessWait = 60 * time.Second

// TestWitnessedEndToEnd is issue #13 end to end, on the real binaries: lineaged on Tessera with
// a 2-of-3 witness policy of three real litewitness processes (docs/WITNESSES.md), lineagectl
// as a client requiring the quorum (docs/PROOFS.md), a witness outage in hold mode, and a split
// view by a second lineaged holding a copy of the same log key.
func TestWitnessedEndToEnd(t *testing.T) {
	const (
		origin = "lineage.test/e2e" // startDaemon's --log-origin
		n      = 1000
		more   = 50
		seed   = 13
	)
	began := time.Now()
	work := t.TempDir()
	dataDir := t.TempDir()
	keyFile := filepath.Join(dataDir, "keys", "log.key")
	vfile := keyFile + ".pub"

	// 1. The log key first, so the witnesses know it before lineaged asks them to cosign.
	if out, err := ctl("keygen", "--origin", origin, "--out", keyFile); err != nil {
		t.Fatalf("keygen: %v\n%s", err, out)
	}
	logVKey := strings.TrimSpace(string(must(os.ReadFile(vfile))))
	v := must(ledger.NewVerifier(logVKey))

	ws := make([]*testenv.Witness, 4)
	for i := range ws {
		ws[i] = testenv.StartWitness(t, fmt.Sprintf("witness-%d.lineage.test", i+1))
	}
	for _, w := range ws[:3] { // the 4th is never told about the log: it never cosigns it
		w.AddLog(t, origin, logVKey)
	}
	policyLines := func(k int) string {
		var b strings.Builder
		for i, w := range ws[:k] {
			fmt.Fprintf(&b, "witness w%d %s %s\n", i+1, w.VKey, w.URL)
		}
		return b.String()
	}
	policy := filepath.Join(work, "witnesses.policy")
	strict := filepath.Join(work, "strict.policy")
	writeFile(t, policy, policyLines(3)+"group g 2 w1 w2 w3\nquorum g\n")
	writeFile(t, strict, policyLines(4)+"group g all w1 w2 w3 w4\nquorum g\n")
	ready := time.Now()

	natsAddr, httpAddr := freeAddr(t), freeAddr(t)
	d := startDaemon(t, dataDir, natsAddr, httpAddr, "--witness-policy", policy)
	defer d.stop()
	defer func() {
		if t.Failed() {
			t.Logf("lineaged logs:\n%s", d.logs)
		}
	}()
	if !strings.Contains(d.logs.String(), "witnessing checkpoints") || !strings.Contains(d.logs.String(), "mode=hold") {
		t.Fatalf("lineaged does not say it witnesses checkpoints in hold mode:\n%s", d.logs)
	}
	api := d.url("")
	natsURL := "nats://" + natsAddr

	// 2. 1000 records; the served checkpoint covers them, cosigned by the quorum.
	recs := demo.Generate(demo.Options{Seed: seed, Tenants: 3}, n+more)
	if out, err := ctl("publish", "--nats-url", natsURL, "--demo", fmt.Sprint(n), "--seed", fmt.Sprint(seed)); err != nil {
		t.Fatalf("publish: %v\n%s", err, out)
	}
	d.waitIndexedFor(t, n, witnessWait)
	cp := waitServed(t, d, v, n)
	if cp.Size != n {
		t.Fatalf("served checkpoint size %d, want %d", cp.Size, n)
	}
	published := time.Now()
	for _, path := range []string{"/v1/checkpoint", "/log/checkpoint"} {
		raw := d.getText(t, path)
		got, err := ledger.OpenCheckpoint(raw, v)
		if err != nil || got.Size != n || string(got.Hash) != string(cp.Hash) {
			t.Fatalf("%s: %v, size %d, want the served checkpoint of size %d", path, err, got.Size, n)
		}
		names := cosigners(t, raw, v, ws)
		if len(names) < 2 {
			t.Fatalf("%s carries valid cosignatures from %v, want at least 2 of the 3 witnesses:\n%s", path, names, raw)
		}
		if path == "/v1/checkpoint" {
			t.Logf("cosigned checkpoint served by lineaged (cosigned by %v):\n%s", names, raw)
		}
	}
	if m := metric(t, d, "lineage_witness_quorum_met"); m != 1 {
		t.Fatalf("lineage_witness_quorum_met = %v, want 1", m)
	}

	// 3. The #13 repro through the API: inclusion proofs at sizes that are not the checkpoint's,
	// and a consistency proof between two such sizes. The roots at those sizes come from the
	// leaves themselves: every leaf is fetched (index i at size i+1), hashed into a compact range
	// (RFC 6962), and the root of all n must equal the root of the signed, cosigned checkpoint,
	// which authenticates every leaf and so every intermediate root.
	roots, leaves := leafRoots(t, d, cp)
	incl := func(i, size uint64) {
		t.Helper()
		if err := checkInclusion(d, roots, leaves, i, size); err != nil {
			t.Fatal(err)
		}
	}
	cons := func(from, to uint64) {
		t.Helper()
		if err := checkConsistency(d, roots, from, to); err != nil {
			t.Fatal(err)
		}
	}
	incl(499, 500)
	incl(256, 257)
	incl(100, 700)
	cons(500, 700)
	// More: a few indexes (the first, tile edges, the last) at every size that holds them (and
	// leafRoots checked every index at size index+1), and consistency from every 7th size to a
	// few later ones.
	sample := []uint64{0, 256, 499, 767, n - 1}
	checks := parallel(t, 4, func(emit func(func() error)) {
		for _, i := range sample {
			for size := i + 1; size <= n; size++ {
				emit(func() error { return checkInclusion(d, roots, leaves, i, size) })
			}
		}
		for from := uint64(1); from <= n; from += 7 {
			for _, to := range []uint64{from, min(from+1, n), min(from+255, n), n} {
				emit(func() error { return checkConsistency(d, roots, from, to) })
			}
		}
	})
	t.Logf("the #13 sizes answer 200 and verify; plus %d inclusion and consistency proofs at other sizes, in %v", checks, time.Since(published).Round(time.Millisecond))

	// 4. Clients require the quorum.
	rec := recs[123]
	if out, err := ctl("verify", "--api", api, "--id", rec.ID, "--tenant", rec.Tenant, "--verifier-file", vfile, "--witness-policy", policy); err != nil ||
		!strings.Contains(out, "OK: the checkpoint is witnessed") {
		t.Fatalf("verify --id with the policy: %v\n%s", err, out)
	} else {
		t.Logf("lineagectl verify --id %s --witness-policy P:\n%s", rec.ID, out)
	}
	if out, err := ctl("verify", "--api", api, "--id", rec.ID, "--tenant", rec.Tenant, "--verifier-file", vfile, "--witness-policy", strict); err == nil ||
		!strings.Contains(out, "missing") || !strings.Contains(out, "w4") {
		t.Fatalf("verify --id with a policy requiring w4: %v, want a failure naming w4\n%s", err, out)
	} else {
		t.Logf("lineagectl verify --id %s --witness-policy STRICT:\n%s", rec.ID, out)
	}
	lin := []string{"lineage", "--api", api, "--tenant", rec.Tenant, "--user", rec.User.ID, "--verify", "--verifier-file", vfile}
	if out, err := ctl(append(lin, "--witness-policy", policy)...); err != nil || !strings.Contains(out, "VERIFIED") || !strings.Contains(out, "witnessed, quorum") {
		t.Fatalf("lineage --verify with the policy: %v\n%s", err, out)
	}
	if out, err := ctl(append(lin, "--witness-policy", strict)...); err == nil || !strings.Contains(out, "w4") || strings.Contains(out, "VERIFIED") {
		t.Fatalf("lineage --verify with a policy requiring w4: %v, want a failure naming w4\n%s", err, out)
	}
	// A tlog-proof saved after verification, checked offline, and readable by any C2SP tool.
	saved := filepath.Join(work, rec.ID+".tlog-proof")
	if out, err := ctl("verify", "--api", api, "--id", rec.ID, "--tenant", rec.Tenant, "--verifier-file", vfile, "--witness-policy", policy, "--save", saved); err != nil {
		t.Fatalf("verify --save .tlog-proof: %v\n%s", err, out)
	}
	if out, err := ctl("verify", "--proof", saved, "--verifier-file", vfile, "--witness-policy", policy); err != nil || !strings.Contains(out, "OK: the checkpoint is witnessed") {
		t.Fatalf("verify --proof F.tlog-proof with the policy: %v\n%s", err, out)
	}
	if out, err := ctl("verify", "--proof", saved, "--verifier-file", vfile, "--witness-policy", strict); err == nil || !strings.Contains(out, "w4") {
		t.Fatalf("verify --proof F.tlog-proof with a policy requiring w4: %v\n%s", err, out)
	}
	var tp tproof.TLogProof
	if err := tp.Unmarshal(must(os.ReadFile(saved))); err != nil {
		t.Fatalf("formats/proof.TLogProof cannot read the saved proof: %v", err)
	}
	var rp struct{ Index uint64 }
	if code := d.getJSON(t, "/v1/records/"+url.PathEscape(rec.ID)+"?tenant="+rec.Tenant, &rp); code != http.StatusOK {
		t.Fatalf("GET /v1/records/%s: %d", rec.ID, code)
	}
	if tp.Index != rp.Index || string(tp.ExtraData) != string(leaves[rp.Index]) {
		t.Fatalf("tlog-proof: index %d and an entry of %d bytes, want index %d and the leaf", tp.Index, len(tp.ExtraData), rp.Index)
	}
	tcp, err := ledger.OpenCheckpoint(tp.Checkpoint, v)
	if err != nil {
		t.Fatalf("the tlog-proof's checkpoint: %v", err)
	}
	hashes := make([][]byte, len(tp.Hashes))
	for i := range tp.Hashes {
		hashes[i] = tp.Hashes[i][:]
	}
	if err := ledger.VerifyInclusion(tp.ExtraData, tp.Index, hashes, tcp); err != nil {
		t.Fatalf("the tlog-proof read by formats/proof: %v", err)
	}
	if names := cosigners(t, tp.Checkpoint, v, ws); len(names) < 2 {
		t.Fatalf("the tlog-proof's checkpoint is cosigned by %v, want 2 or more", names)
	}
	// An export bundle carries the cosigned checkpoint.
	exportDir := t.TempDir()
	res, err := ctl("export", "--api", api, "--kind", "fannie-mae", "--tenant", "acme-bank",
		"--from", "2026-11-01", "--to", "2026-12-01", "--wait", "--out", exportDir)
	bundles, _ := filepath.Glob(filepath.Join(exportDir, "*.zip"))
	if err != nil || len(bundles) != 1 {
		t.Fatalf("export: %v, bundles %v\n%s", err, bundles, res)
	}
	if out, err := ctl("verify", bundles[0], "--verifier-file", vfile, "--witness-policy", policy); err != nil || !strings.Contains(out, "OK: the checkpoint is witnessed") {
		t.Fatalf("verify BUNDLE with the policy: %v\n%s", err, out)
	}
	if out, err := ctl("verify", bundles[0], "--verifier-file", vfile, "--witness-policy", strict); err == nil || !strings.Contains(out, "checkpoint-witness") || !strings.Contains(out, "w4") {
		t.Fatalf("verify BUNDLE with a policy requiring w4: %v\n%s", err, out)
	} else {
		t.Logf("lineagectl verify BUNDLE --witness-policy STRICT:\n%s", out)
	}
	// The export's own decision record is logged: wait until it is served, so the log is quiet.
	exportID := "export-" + strings.TrimSuffix(filepath.Base(bundles[0]), ".zip")
	waitFor(t, "the export's decision record "+exportID+" to be provable", func() (bool, string) {
		code := d.getJSON(t, "/v1/records/"+exportID+"?tenant=acme-bank", nil)
		return code == http.StatusOK, fmt.Sprint("status ", code)
	})
	base := health(t, d).IndexPosition
	if cp := waitServed(t, d, v, base); cp.Size != base {
		t.Fatalf("served checkpoint size %d after the export, index holds %d", cp.Size, base)
	}

	// 5. Two of the three witnesses down (hold mode): ingest goes on, the served checkpoint
	// stays, records beyond it are 503 with Retry-After; back up, it catches up.
	outage := time.Now()
	ws[1].Stop(t)
	ws[2].Stop(t)
	if out, err := ctl("publish", "--nats-url", natsURL, "--demo", fmt.Sprint(n+more), "--seed", fmt.Sprint(seed)); err != nil {
		t.Fatalf("publish: %v\n%s", err, out)
	}
	d.waitIndexedFor(t, base+more, witnessWait)
	waitFor(t, "lineage_witness_quorum_met 0 and a lag of 50 entries with 2 of 3 witnesses down", func() (bool, string) {
		met, lag := metric(t, d, "lineage_witness_quorum_met"), metric(t, d, "lineage_witness_checkpoint_lag_entries")
		return met == 0 && lag == more, fmt.Sprintf("quorum_met %v, lag %v", met, lag)
	})
	if got := must(ledger.OpenCheckpoint(d.getText(t, "/v1/checkpoint"), v)); got.Size != base {
		t.Fatalf("served checkpoint moved to %d with 2 of 3 witnesses down; want it held at %d", got.Size, base)
	}
	if got := must(ledger.OpenCheckpoint(d.getText(t, "/log/checkpoint"), v)); got.Size != base {
		t.Fatalf("/log/checkpoint moved to %d with 2 of 3 witnesses down; want it held at %d", got.Size, base)
	}
	if h := health(t, d); h.CheckpointSize != base {
		t.Fatalf("/healthz checkpoint_size %d, want the held %d", h.CheckpointSize, base)
	}
	newRec := recs[n+more-1]
	resp, err := http.Get(d.url("/v1/records/" + url.PathEscape(newRec.ID) + "?tenant=" + newRec.Tenant))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("a record beyond the held checkpoint: %s, Retry-After %q: %s; want 503 with Retry-After", resp.Status, resp.Header.Get("Retry-After"), body)
	}
	t.Logf("held at %d while the log holds %d: GET /v1/records/%s = %d, Retry-After %s: %s",
		base, base+more, newRec.ID, resp.StatusCode, resp.Header.Get("Retry-After"), strings.TrimSpace(string(body)))
	if !strings.Contains(d.logs.String(), "quorum not met") {
		t.Fatalf("lineaged did not log the unmet quorum:\n%s", d.logs)
	}
	restarted := time.Now()
	ws[1].Start(t)
	ws[2].Start(t)
	if cp := waitServed(t, d, v, base+more); cp.Size != base+more {
		t.Fatalf("served checkpoint size %d after the witnesses came back, want %d", cp.Size, base+more)
	}
	caughtUp := time.Since(restarted)
	if out, err := ctl("verify", "--api", api, "--id", newRec.ID, "--tenant", newRec.Tenant, "--verifier-file", vfile, "--witness-policy", policy); err != nil {
		t.Fatalf("verify the record published during the outage: %v\n%s", err, out)
	}
	waitFor(t, "lineage_witness_quorum_met 1 and no lag", func() (bool, string) {
		met, lag := metric(t, d, "lineage_witness_quorum_met"), metric(t, d, "lineage_witness_checkpoint_lag_entries")
		return met == 1 && lag == 0, fmt.Sprintf("quorum_met %v, lag %v", met, lag)
	})
	t.Logf("outage: held, then served size %d %v after the witnesses restarted (outage phase %v)", base+more, caughtUp.Round(time.Millisecond), time.Since(outage).Round(time.Millisecond))

	// 6. Split view: a second lineaged with a copy of the key signs another history of the
	// same origin; the witnesses refuse it, and the first log is unaffected.
	dataDir2 := t.TempDir()
	for _, f := range []string{"log.key", "log.key.pub"} {
		src := filepath.Join(dataDir, "keys", f)
		dst := filepath.Join(dataDir2, "keys", f)
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, must(os.ReadFile(src)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	nats2 := freeAddr(t)
	d2 := startDaemon(t, dataDir2, nats2, freeAddr(t), "--witness-policy", policy)
	defer d2.stop()
	defer func() {
		if t.Failed() {
			t.Logf("second lineaged (split view) logs:\n%s", d2.logs)
		}
	}()
	const forkSize = 30
	if out, err := ctl("publish", "--nats-url", "nats://"+nats2, "--demo", fmt.Sprint(forkSize), "--seed", "99"); err != nil {
		t.Fatalf("publish to the second lineaged: %v\n%s", err, out)
	}
	d2.waitIndexedFor(t, forkSize, witnessWait)
	waitFor(t, "the witnesses to refuse the second history", func() (bool, string) {
		dh := metric(t, d2, "lineage_witness_different_history_total")
		return dh >= 3 && strings.Contains(d2.logs.String(), "possible split view"), fmt.Sprintf("different_history_total %v", dh)
	})
	for _, line := range strings.Split(d2.logs.String(), "\n") {
		if strings.Contains(line, "possible split view") {
			t.Logf("split view refused: %s", line)
			break
		}
	}
	if met := metric(t, d2, "lineage_witness_quorum_met"); met != 0 {
		t.Fatalf("the split view's lineage_witness_quorum_met = %v, want 0", met)
	}
	if code := d2.getJSON(t, "/v1/checkpoint", nil); code != http.StatusServiceUnavailable {
		t.Fatalf("the split view's /v1/checkpoint: %d, want 503 (no checkpoint met the quorum)", code)
	}
	if code := d2.getJSON(t, "/v1/records/"+url.PathEscape(demo.Generate(demo.Options{Seed: 99, Tenants: 3}, 1)[0].ID), nil); code != http.StatusServiceUnavailable {
		t.Fatalf("a record of the split view: %d, want 503", code)
	}
	if _, err := os.Stat(filepath.Join(dataDir2, "witness", "cosigned-checkpoint")); err == nil {
		t.Fatal("the split view kept a cosigned checkpoint")
	}
	// The first log still gets cosigned: 10 more records are served, witnessed.
	if out, err := ctl("publish", "--nats-url", natsURL, "--demo", fmt.Sprint(n+more+10), "--seed", fmt.Sprint(seed)); err != nil {
		t.Fatalf("publish: %v\n%s", err, out)
	}
	d.waitIndexedFor(t, base+more+10, witnessWait)
	last := waitServed(t, d, v, base+more+10)
	if names := cosigners(t, last.Note, v, ws); len(names) < 2 {
		t.Fatalf("the first log's checkpoint after the split view is cosigned by %v", names)
	}
	if dh := metric(t, d, "lineage_witness_different_history_total"); dh != 0 {
		t.Fatalf("the first lineaged counts %v different-history answers, want 0", dh)
	}
	// The witnesses hold the first log's history.
	waitFor(t, "every witness to cosign the first log's latest checkpoint", func() (bool, string) {
		var sizes []uint64
		for _, w := range ws[:3] {
			sizes = append(sizes, w.LogSize(t, origin))
		}
		return sizes[0] == last.Size && sizes[1] == last.Size && sizes[2] == last.Size, fmt.Sprintf("witness sizes %v, log %d", sizes, last.Size)
	})
	// The split view grows past the first log: the witnesses, at the first log's size, get a
	// consistency proof from the other tree and refuse it (422).
	forkBig := last.Size + 20
	if out, err := ctl("publish", "--nats-url", "nats://"+nats2, "--demo", fmt.Sprint(forkBig), "--seed", "99"); err != nil {
		t.Fatalf("publish to the second lineaged: %v\n%s", err, out)
	}
	d2.waitIndexedFor(t, forkBig, witnessWait)
	waitFor(t, "the witnesses to refuse the consistency proof of the larger split view", func() (bool, string) {
		return strings.Contains(d2.logs.String(), "status=422"), fmt.Sprintf("different_history_total %v", metric(t, d2, "lineage_witness_different_history_total"))
	})
	for _, line := range strings.Split(d2.logs.String(), "\n") {
		if strings.Contains(line, "possible split view") && strings.Contains(line, "status=422") {
			t.Logf("larger split view refused: %s", line)
			break
		}
	}
	// The split view's checkpoint is still unserved after the first log moved on.
	if code := d2.getJSON(t, "/v1/checkpoint", nil); code != http.StatusServiceUnavailable {
		t.Fatalf("the split view's /v1/checkpoint: %d, want 503", code)
	}
	if met := metric(t, d2, "lineage_witness_quorum_met"); met != 0 {
		t.Fatalf("the split view's lineage_witness_quorum_met = %v, want 0", met)
	}
	for _, w := range ws[:3] {
		if got := w.LogSize(t, origin); got != last.Size {
			t.Fatalf("witness %s holds size %d, want the first log's %d", w.Name, got, last.Size)
		}
	}
	t.Logf("timings: witnesses up %v; daemon start → 1000 records served witnessed %v; proofs at other sizes and the CLI checks %v; whole test %v",
		ready.Sub(began).Round(time.Millisecond), published.Sub(ready).Round(time.Millisecond),
		outage.Sub(published).Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond every 50 ms for up to witnessWait and fails with what and cond's last state.
func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(witnessWait)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s: %s", witnessWait, what, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitServed waits until /v1/checkpoint serves a checkpoint of at least size entries that
// verifies with v (503 while no checkpoint met the quorum), and returns it.
func waitServed(t *testing.T, d *daemon, v note.Verifier, size uint64) ledger.Checkpoint {
	t.Helper()
	var cp ledger.Checkpoint
	waitFor(t, fmt.Sprintf("a served checkpoint of size %d", size), func() (bool, string) {
		resp, err := http.Get(d.url("/v1/checkpoint"))
		if err != nil {
			return false, err.Error()
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false, fmt.Sprintf("%s: %s", resp.Status, b)
		}
		if cp, err = ledger.OpenCheckpoint(b, v); err != nil {
			t.Fatalf("/v1/checkpoint does not verify: %v\n%s", err, b)
		}
		return cp.Size >= size, fmt.Sprintf("served size %d", cp.Size)
	})
	return cp
}

type healthz struct {
	IndexPosition  uint64 `json:"index_position"`
	CheckpointSize uint64 `json:"checkpoint_size"`
}

func health(t *testing.T, d *daemon) healthz {
	t.Helper()
	var h healthz
	if code := d.getJSON(t, "/healthz", &h); code != http.StatusOK {
		t.Fatalf("/healthz: %d", code)
	}
	return h
}

// cosigners opens a checkpoint note with the log key and the witnesses' cosignature/v1 keys
// (formats/note) and returns the names of the witnesses whose cosignature verifies; a line from
// a known key that does not verify fails the test.
func cosigners(t *testing.T, raw []byte, v note.Verifier, ws []*testenv.Witness) []string {
	t.Helper()
	vs := []note.Verifier{v}
	byHash := map[uint32]string{}
	for _, w := range ws {
		cv, err := fnote.NewVerifierForCosignatureV1(w.VKey)
		if err != nil {
			t.Fatal(err)
		}
		vs = append(vs, cv)
		byHash[cv.KeyHash()] = w.Name
	}
	nt, err := note.Open(raw, note.VerifierList(vs...))
	if err != nil {
		t.Fatalf("checkpoint note: %v\n%s", err, raw)
	}
	var names []string
	logSigned := false
	for _, s := range nt.Sigs {
		if s.Name == v.Name() && s.Hash == v.KeyHash() {
			logSigned = true
			continue
		}
		if name, ok := byHash[s.Hash]; ok && s.Name == name {
			if _, err := fnote.CoSigV1Timestamp(s); err != nil {
				t.Fatalf("cosignature of %s: %v", name, err)
			}
			names = append(names, name)
		}
	}
	if !logSigned {
		t.Fatalf("checkpoint note without the log's signature:\n%s", raw)
	}
	return names
}

// metric sums the samples of a Prometheus metric on the daemon's /metrics (all label sets).
func metric(t *testing.T, d *daemon, name string) float64 {
	t.Helper()
	b, err := getQuiet(d.url("/metrics"))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `(?:\{[^}]*\})? (\S+)$`)
	ms := re.FindAllSubmatch(b, -1)
	if ms == nil {
		t.Fatalf("no %s in /metrics", name)
	}
	sum := 0.0
	for _, m := range ms {
		f, err := strconv.ParseFloat(string(m[1]), 64)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		sum += f
	}
	return sum
}

// leafRoots fetches every leaf of cp's tree through the API (index i with its inclusion proof at
// size i+1) and returns the RFC 6962 root at every size 1..cp.Size, computed from the leaves,
// with the leaves. The root of all of them must be cp's: that authenticates every leaf (and so
// every root) with the signed checkpoint. Each proof at size i+1 is checked too.
func leafRoots(t *testing.T, d *daemon, cp ledger.Checkpoint) (roots map[uint64][]byte, leaves [][]byte) {
	t.Helper()
	type answer struct {
		Leaf  []byte
		Proof [][]byte
	}
	got := make([]answer, cp.Size)
	parallel(t, 4, func(emit func(func() error)) {
		for i := range cp.Size {
			emit(func() error {
				return fetchJSON(d.url(fmt.Sprintf("/v1/proofs/inclusion?index=%d&size=%d", i, i+1)), &got[i])
			})
		}
	})
	rf := compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	r := rf.NewEmptyRange(0)
	roots = make(map[uint64][]byte, cp.Size)
	leaves = make([][]byte, cp.Size)
	for i, a := range got {
		if _, err := verify.DecodeEntry(a.Leaf); err != nil { // v1, or v2 on an erasure-enabled log
			t.Fatalf("leaf %d is not a canonical ledger entry: %v", i, err)
		}
		if err := r.Append(ledger.LeafHash(a.Leaf), nil); err != nil {
			t.Fatal(err)
		}
		root, err := r.GetRootHash(nil)
		if err != nil {
			t.Fatal(err)
		}
		roots[uint64(i)+1], leaves[i] = root, a.Leaf
	}
	if string(roots[cp.Size]) != string(cp.Hash) {
		t.Fatalf("the root of the %d leaves the API returned is %x; the signed checkpoint's is %x", cp.Size, roots[cp.Size], cp.Hash)
	}
	for i, a := range got {
		size := uint64(i) + 1
		if err := ledger.VerifyInclusion(a.Leaf, uint64(i), a.Proof, ledger.Checkpoint{Size: size, Hash: roots[size]}); err != nil {
			t.Fatalf("inclusion of the last leaf: %v", err)
		}
	}
	return roots, leaves
}

// parallel runs the functions gen emits on workers goroutines, waits for them, fails the test
// with the first error, and returns how many ran.
func parallel(t *testing.T, workers int, gen func(emit func(func() error))) int {
	t.Helper()
	jobs := make(chan func() error)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		ran   int
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range jobs {
				mu.Lock()
				failed := first != nil
				mu.Unlock()
				if failed {
					continue
				}
				err := f()
				mu.Lock()
				ran++
				if err != nil && first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	gen(func(f func() error) { jobs <- f })
	close(jobs)
	wg.Wait()
	if first != nil {
		t.Fatal(first)
	}
	return ran
}

// fetchJSON GETs u and decodes a 200 answer into v; it may run on any goroutine.
func fetchJSON(u string, v any) error {
	resp, err := http.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", u, resp.Status, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	return nil
}

// checkInclusion fetches the inclusion proof of index i at size and verifies it, and the leaf,
// against the leaves and roots leafRoots returned.
func checkInclusion(d *daemon, roots map[uint64][]byte, leaves [][]byte, i, size uint64) error {
	var p struct {
		Leaf  []byte
		Proof [][]byte
	}
	u := d.url(fmt.Sprintf("/v1/proofs/inclusion?index=%d&size=%d", i, size))
	if err := fetchJSON(u, &p); err != nil {
		return err
	}
	if string(p.Leaf) != string(leaves[i]) {
		return fmt.Errorf("GET %s: the leaf differs from the leaf at index %d", u, i)
	}
	if err := ledger.VerifyInclusion(p.Leaf, i, p.Proof, ledger.Checkpoint{Size: size, Hash: roots[size]}); err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	return nil
}

// checkConsistency fetches the consistency proof from..to and verifies it against the roots
// leafRoots returned.
func checkConsistency(d *daemon, roots map[uint64][]byte, from, to uint64) error {
	var p struct{ Proof [][]byte }
	u := d.url(fmt.Sprintf("/v1/proofs/consistency?from=%d&to=%d", from, to))
	if err := fetchJSON(u, &p); err != nil {
		return err
	}
	if err := ledger.VerifyConsistency(ledger.Checkpoint{Size: from, Hash: roots[from]}, ledger.Checkpoint{Size: to, Hash: roots[to]}, p.Proof); err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	return nil
}
