package service

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lineage-audit/lineage/internal/testenv"
	"github.com/lineage-audit/lineage/ledger"
	"github.com/lineage-audit/lineage/ledger/seal"
	"github.com/lineage-audit/lineage/ledger/seal/sqlitekeys"
	"github.com/lineage-audit/lineage/query"
	"github.com/lineage-audit/lineage/verify"
	"golang.org/x/mod/sumdb/note"
)

// The subject erased in these tests, and a value sealed under its key by a configured path:
// neither may be left in any file of the data dir after the erasure.
const (
	erasedUser   = "alice.erasure-7f3a9c@example.org"
	erasedTarget = "case-SECRET-4d81e2"
	keptUser     = "bob.kept-22b0@example.org"
	erTenant     = "acme"
)

// erasureConfig is testConfig with the erasure configuration of these tests: /action/target
// sealed under the user's key, and logs to logs.
func erasureConfig(t *testing.T, dir string, logs io.Writer) Config {
	t.Helper()
	c := testConfig(dir)
	cfg := filepath.Join(t.TempDir(), "erasure.json")
	if err := os.WriteFile(cfg, []byte(`{"tenants":{"acme":{"paths":[{"pointer":"/action/target","subject":"/user/id"}]}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	c.ErasureConfig = cfg
	c.Erasure = ErasureOn // the default for a new embedded log too; TestErasureDefaultOn checks auto
	c.CheckpointInterval = 100 * time.Millisecond
	c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return c
}

// startErasure runs lineaged on dir with erasureConfig until it serves (startRun), and returns
// its base URL, its logs and stop.
func startErasure(t *testing.T, dir string) (base string, logs *testenv.SyncBuffer, stop func()) {
	t.Helper()
	logs = new(testenv.SyncBuffer)
	addr, stop := startRun(t, erasureConfig(t, dir, logs))
	return "http://" + addr, logs, stop
}

// openKeyStore opens the key store of dir with its master key, as lineaged would; the caller
// closes it.
func openKeyStore(t *testing.T, dir string) *sqlitekeys.SQLiteStore {
	t.Helper()
	mk, err := seal.LoadMasterKeyFile(ErasureMasterKeyPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	ks, err := sqlitekeys.OpenSQLite(context.Background(), ErasureKeyStorePath(dir), mk, sqlitekeys.SQLiteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

func erRecord(id, user, target string, at time.Time) string {
	return fmt.Sprintf(`{"schema":"lineage.decision/v1","id":%q,"time":%q,"tenant":%q,`+
		`"source":{"id":"gw-1","type":"gateway"},"user":{"id":%q,"issuer":"https://login.example.org/"},`+
		`"agent":{"id":"spiffe://example.org/agent/claims"},"action":{"type":"tool.call","target":%q},`+
		`"decision":{"effect":"allow","policy":{"id":"claims.read","version":"v3"}}}`,
		id, at.UTC().Format(time.RFC3339Nano), erTenant, user, target)
}

func httpDo(t *testing.T, method, u string, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func publishRecords(t *testing.T, base string, recs ...string) {
	t.Helper()
	code, b := httpDo(t, "POST", base+"/v1/records", strings.Join(recs, "\n"))
	if code != http.StatusAccepted && code != http.StatusOK {
		t.Fatalf("POST /v1/records = %d %s", code, b)
	}
}

// waitRecord polls until the record is indexed and returns its answer.
func waitRecord(t *testing.T, base, id string) *verify.RecordProof {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, b := httpDo(t, "GET", base+"/v1/records/"+url.PathEscape(id)+"?tenant="+erTenant, "")
		if code == http.StatusOK {
			var rp verify.RecordProof
			if err := json.Unmarshal(b, &rp); err != nil {
				t.Fatalf("record %s: %v", id, err)
			}
			return &rp
		}
		if time.Now().After(deadline) {
			t.Fatalf("record %s not served within 30s: %d %s", id, code, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func verifierOf(t *testing.T, base string) note.Verifier {
	t.Helper()
	code, b := httpDo(t, "GET", base+"/v1/verifier", "")
	if code != http.StatusOK {
		t.Fatalf("GET /v1/verifier = %d", code)
	}
	v, err := note.NewVerifier(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// grepDir returns the files under dir whose bytes contain any of needles.
func grepDir(t *testing.T, dir string, needles ...string) []string {
	t.Helper()
	var hits []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, n := range needles {
			if bytes.Contains(b, []byte(n)) {
				hits = append(hits, fmt.Sprintf("%s (holds %q)", p, n))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hits
}

// TestErasureEndToEnd runs lineaged in-process on a new data dir (erasure on by default) and
// erases a subject mid-stream: proofs verify before and after, the answers show the subject as
// erased, and no file under the data dir (log tiles, index, key store, NATS store) nor the
// daemon's log holds the clear subject id or the clear value sealed under its key.
func TestErasureEndToEnd(t *testing.T) {
	dir := t.TempDir()
	base, logs, stop := startErasure(t, dir)
	if m, err := readErasureMode(ErasureModeFile(dir)); err != nil || m != ErasureOn {
		t.Fatalf("erasure mode of a new log = %q (%v), want on", m, err)
	}
	if fi, err := os.Stat(ErasureMasterKeyPath(dir)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("master key file: %v %v, want created 0600", fi, err)
	}
	v := verifierOf(t, base)

	now := time.Now()
	var first []string
	for i := range 5 {
		first = append(first, erRecord(fmt.Sprintf("a-%d", i), erasedUser, erasedTarget, now.Add(-time.Duration(i)*time.Minute)))
		first = append(first, erRecord(fmt.Sprintf("b-%d", i), keptUser, "case-kept-1", now))
	}
	publishRecords(t, base, first...)
	before := waitRecord(t, base, "a-0")
	waitRecord(t, base, "b-4")

	// Before: the record shows the clear values, with openings that verify against the leaf.
	if before.Record.User.ID != erasedUser || before.Record.Action.Target != erasedTarget || len(before.Openings) != 2 {
		t.Fatalf("before erasure: user %q target %q, %d openings", before.Record.User.ID, before.Record.Action.Target, len(before.Openings))
	}
	if !seal.IsV2(before.Leaf) || bytes.Contains(before.Leaf, []byte(erasedUser)) || bytes.Contains(before.Leaf, []byte(erasedTarget)) {
		t.Fatal("the leaf is not a v2 entry, or holds a sealed value in clear")
	}
	if _, err := verify.VerifyRecordProof(before, v); err != nil {
		t.Fatalf("record proof before erasure: %v", err)
	}
	tampered := *before
	tampered.Openings = append([]verify.Opening(nil), before.Openings...)
	tampered.Openings[1].Value = "mallory@example.org"
	if _, err := verify.VerifyRecordProof(&tampered, v); err == nil {
		t.Fatal("a record proof with a forged opening verified")
	}
	code, b := httpDo(t, "GET", base+"/v1/lineage/users/"+url.PathEscape(erasedUser)+"?tenant="+erTenant, "")
	if code != http.StatusOK {
		t.Fatalf("user lineage = %d %s", code, b)
	}
	if _, err := verify.VerifyAnswer("users", erasedUser, b, v); err != nil {
		t.Fatalf("user lineage before erasure: %v", err)
	}
	cpBefore := checkpointOf(t, base, v)

	// Inside the minimum retention: refused without a legal basis.
	req := fmt.Sprintf(`{"tenant":%q,"subject":%q}`, erTenant, erasedUser)
	if code, b := httpDo(t, "POST", base+"/v1/erasures", req); code != http.StatusConflict {
		t.Fatalf("erasure inside retention without a basis = %d %s, want 409", code, b)
	}
	// Mid-stream: records of another subject keep arriving during the erasure.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 20 {
			publishRecords(t, base, erRecord(fmt.Sprintf("c-%d", i), keptUser, "case-kept-2", time.Now()))
		}
	}()
	req = fmt.Sprintf(`{"tenant":%q,"subject":%q,"legal_basis":"court order 2026-123 (GDPR Art. 17(1)(d))"}`, erTenant, erasedUser)
	code, b = httpDo(t, "POST", base+"/v1/erasures", req)
	if code != http.StatusOK {
		t.Fatalf("erasure = %d %s", code, b)
	}
	wg.Wait()
	var res query.ErasureResult
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	if len(res.KeyIDs) != 1 || res.RecordsPurged != 5 || !res.WithinRetention || bytes.Contains(b, []byte(erasedUser)) {
		t.Fatalf("erasure answer %s: want 1 key, 5 rows purged, within retention, no subject id", b)
	}
	if code, _ := httpDo(t, "POST", base+"/v1/erasures", req); code != http.StatusNotFound {
		t.Fatalf("second erasure of the same subject = %d, want 404", code)
	}
	// The erasure is itself a record, naming the key id, never the subject.
	er := waitRecord(t, base, res.RecordID)
	if !strings.Contains(string(er.Record.PolicyContext), res.KeyIDs[0]) || strings.Contains(string(er.Leaf), erasedUser) {
		t.Fatalf("erasure record %s: policy_context %s", res.RecordID, er.Record.PolicyContext)
	}
	waitRecord(t, base, "c-19")

	// After: the same entry, the same proof; the fields are erased, with their commitments.
	after := waitRecord(t, base, "a-0")
	if !bytes.Equal(after.Leaf, before.Leaf) || after.Index != before.Index {
		t.Fatal("the logged entry changed")
	}
	if len(after.Openings) != 0 || !seal.IsSealedToken(after.Record.User.ID) || !seal.IsSealedToken(after.Record.Action.Target) {
		t.Fatalf("after erasure: user %q target %q, %d openings", after.Record.User.ID, after.Record.Action.Target, len(after.Openings))
	}
	if _, err := verify.VerifyRecordProof(after, v); err != nil {
		t.Fatalf("record proof after erasure: %v", err)
	}
	_, _, fields, err := verify.LeafRecord(after.Leaf, after.Openings)
	if err != nil || len(fields) != 2 || fields[0].Clear || !strings.HasPrefix(fields[1].String(), "/user/id: erased (commitment ") {
		t.Fatalf("verifier's view after erasure: %v %v", fields, err)
	}
	// The old proof still verifies against the new checkpoint, which is consistent with the old.
	cpAfter := checkpointOf(t, base, v)
	if err := ledger.VerifyInclusion(before.Leaf, before.Index, after.InclusionProof, cpAfter); err != nil {
		t.Fatalf("inclusion after erasure: %v", err)
	}
	code, b = httpDo(t, "GET", fmt.Sprintf("%s/v1/proofs/consistency?from=%d&to=%d", base, cpBefore.Size, cpAfter.Size), "")
	if code != http.StatusOK {
		t.Fatalf("consistency = %d %s", code, b)
	}
	var cons struct {
		Proof [][]byte `json:"proof"`
	}
	if err := json.Unmarshal(b, &cons); err != nil {
		t.Fatal(err)
	}
	if err := ledger.VerifyConsistency(cpBefore, cpAfter, cons.Proof); err != nil {
		t.Fatalf("consistency across the erasure: %v", err)
	}
	// The subject's lineage is gone; the agent's lineage shows the actions, erased, and verifies.
	code, b = httpDo(t, "GET", base+"/v1/lineage/users/"+url.PathEscape(erasedUser)+"?tenant="+erTenant, "")
	if code == http.StatusOK && bytes.Contains(b, []byte(`"a-0"`)) {
		t.Fatalf("the erased subject's lineage still lists its actions: %s", b)
	}
	code, b = httpDo(t, "GET", base+"/v1/lineage/agents/"+url.PathEscape("spiffe://example.org/agent/claims")+"?tenant="+erTenant, "")
	if code != http.StatusOK || bytes.Contains(b, []byte(erasedUser)) || bytes.Contains(b, []byte(erasedTarget)) || !bytes.Contains(b, []byte(keptUser)) {
		t.Fatalf("agent lineage after erasure = %d %s", code, b)
	}
	if _, err := verify.VerifyAnswer("agents", "spiffe://example.org/agent/claims", b, v); err != nil {
		t.Fatalf("agent lineage after erasure: %v", err)
	}
	stop()

	if hits := grepDir(t, dir, erasedUser, erasedTarget); len(hits) > 0 {
		t.Errorf("clear values of the erased subject left in the data dir:\n%s", strings.Join(hits, "\n"))
	}
	if s := logs.String(); strings.Contains(s, erasedUser) || strings.Contains(s, erasedTarget) {
		t.Error("the daemon's log holds a clear value of the erased subject")
	}
	if hits := grepDir(t, dir, keptUser); len(hits) == 0 {
		t.Error("the kept subject is in no file: the search cannot find what it looks for")
	}

	// rebuild-index opens the log with the key store: the kept subject is clear again, the
	// erased one is not, and the new index holds no clear value of it either.
	if _, err := RebuildIndex(context.Background(), erasureConfig(t, dir, io.Discard), v, nil); err != nil {
		t.Fatalf("rebuild-index: %v", err)
	}
	if hits := grepDir(t, dir, erasedUser, erasedTarget); len(hits) > 0 {
		t.Errorf("after rebuild-index, clear values of the erased subject are in the data dir:\n%s", strings.Join(hits, "\n"))
	}

	// A restart keeps the subject erased and the mode on.
	base, _, stop = startErasure(t, dir)
	again := waitRecord(t, base, "a-3")
	if !seal.IsSealedToken(again.Record.User.ID) {
		t.Fatalf("after restart the erased subject shows as %q", again.Record.User.ID)
	}
	if kept := waitRecord(t, base, "b-3"); kept.Record.User.ID != keptUser || len(kept.Openings) != 2 {
		t.Fatalf("after rebuild and restart the kept subject shows as %q with %d openings", kept.Record.User.ID, len(kept.Openings))
	}
	stop()
}

func checkpointOf(t *testing.T, base string, v note.Verifier) ledger.Checkpoint {
	t.Helper()
	code, b := httpDo(t, "GET", base+"/v1/checkpoint", "")
	if code != http.StatusOK {
		t.Fatalf("GET /v1/checkpoint = %d", code)
	}
	var raw struct {
		Checkpoint string `json:"checkpoint"`
	}
	note := b
	if json.Unmarshal(b, &raw) == nil && raw.Checkpoint != "" {
		note = []byte(raw.Checkpoint)
	}
	cp, err := ledger.OpenCheckpoint(note, v)
	if err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	return cp
}

// TestErasureCompletedAfterCrash leaves the data dir as a crash between an erasure's key
// deletion and its index purge leaves it — the key store holds the tombstone (its commit is
// synchronous), the index and the findings still hold the clear values — by destroying the key
// with the key store alone while lineaged is stopped; the next start completes the purge before
// it indexes anything.
func TestErasureCompletedAfterCrash(t *testing.T) {
	dir := t.TempDir()
	base, _, stop := startErasure(t, dir)
	old := time.Now().Add(-400 * 24 * time.Hour) // outside the minimum retention
	publishRecords(t, base, erRecord("a-1", erasedUser, erasedTarget, old), erRecord("a-2", erasedUser, erasedTarget, old),
		erRecord("b-1", keptUser, "case-kept-1", time.Now()))
	waitRecord(t, base, "a-1")
	waitRecord(t, base, "a-2")
	waitRecord(t, base, "b-1")
	stop()
	if hits := grepDir(t, dir, erasedUser); len(hits) == 0 {
		t.Fatal("before the erasure the index holds no clear value: the test would prove nothing")
	}

	// The crash: the key is destroyed, nothing else happened.
	ks := openKeyStore(t, dir)
	kids, err := ks.Erase(context.Background(), erTenant, erasedUser, "erasure on request of the data subject")
	ks.Close()
	if err != nil || len(kids) != 1 {
		t.Fatalf("erase in the key store: %v %v", kids, err)
	}

	base, logs2, stop := startErasure(t, dir)
	rp := waitRecord(t, base, "a-2")
	if !seal.IsSealedToken(rp.Record.User.ID) || len(rp.Openings) != 0 {
		t.Fatalf("after the restart the erased subject shows as %q", rp.Record.User.ID)
	}
	if _, err := verify.VerifyRecordProof(rp, verifierOf(t, base)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs2.String(), "completed an index purge") {
		t.Error("the start did not report the completed purge")
	}
	stop()
	if hits := grepDir(t, dir, erasedUser, erasedTarget); len(hits) > 0 {
		t.Errorf("after the restart, clear values of the erased subject are still in the data dir:\n%s", strings.Join(hits, "\n"))
	}
}

// TestErasureKeyStoreLoss: a lost key store is an error, never an erasure. Without the file
// lineaged refuses to start; with an empty store in its place (a restore that lost keys) every
// answer about a sealed record fails with the key-store error instead of showing "erased", and
// rebuild-index refuses too.
func TestErasureKeyStoreLoss(t *testing.T) {
	dir := t.TempDir()
	base, _, stop := startErasure(t, dir)
	publishRecords(t, base, erRecord("a-1", erasedUser, erasedTarget, time.Now()))
	waitRecord(t, base, "a-1")
	vkey := verifierOf(t, base)
	stop()

	ksPath := ErasureKeyStorePath(dir)
	if err := os.Remove(ksPath); err != nil {
		t.Fatal(err)
	}
	c2 := erasureConfig(t, dir, io.Discard)
	if err := run(t, c2); err == nil || !strings.Contains(err.Error(), "erasure key store") || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("start without the key store = %v, want a refusal naming the missing key store", err)
	}

	// An empty store with the same master key: the start succeeds (the index is current), but
	// nothing sealed is shown as erased.
	openKeyStore(t, dir).Close()
	base, logs2, stop := startErasure(t, dir)
	code, b := httpDo(t, "GET", base+"/v1/records/a-1?tenant="+erTenant, "")
	if code == http.StatusOK || bytes.Contains(b, []byte("sealed:")) {
		t.Fatalf("record whose key is missing = %d %s, want an error, nothing shown as erased", code, b)
	}
	if !strings.Contains(logs2.String(), "key missing from the key store") {
		t.Error("the daemon's log does not say the key store is incomplete")
	}
	stop()
	if _, err := RebuildIndex(context.Background(), erasureConfig(t, dir, io.Discard), vkey, nil); err == nil || !strings.Contains(err.Error(), "key missing") {
		t.Fatalf("rebuild-index with keys missing = %v, want the key-store error", err)
	}
}

// TestErasureDefaultOn: with the default --erasure auto, a new embedded log is sealed (its
// mode recorded, its master key created 0600), so is a new Trillian log on the SQLite index, a
// log that already holds entries written without erasure stays off and works unchanged, and a
// new log on ClickHouse or --ha stays off while "on" is refused there. A recorded mode never switches.
func TestErasureDefaultOn(t *testing.T) {
	open := func(t *testing.T, dir string, mod func(*Config), logSize uint64) (*erasureState, string, error) {
		t.Helper()
		c := DefaultConfig()
		c.DataDir = dir
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		if mod != nil {
			mod(&c)
		}
		c.Defaults()
		e, err := openErasure(context.Background(), c, logSize)
		if e != nil {
			t.Cleanup(func() { e.keys.Close() })
		}
		m, _ := readErasureMode(ErasureModeFile(dir))
		return e, m, err
	}

	t.Run("new embedded log", func(t *testing.T) {
		dir := t.TempDir()
		e, m, err := open(t, dir, nil, 0)
		if err != nil || e == nil || m != ErasureOn {
			t.Fatalf("auto on a new embedded log: state %v, mode %q, %v; want sealed", e != nil, m, err)
		}
		if fi, err := os.Stat(ErasureMasterKeyPath(dir)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("master key: %v %v", fi, err)
		}
		e.keys.Close()
		// Restarted with entries in the log: still on, with any flag but "off".
		if e, m, err := open(t, dir, nil, 10); err != nil || e == nil || m != ErasureOn {
			t.Fatalf("restart: state %v, mode %q, %v", e != nil, m, err)
		}
		if _, _, err := open(t, dir, func(c *Config) { c.Erasure = ErasureOff }, 10); err == nil || !strings.Contains(err.Error(), "cannot switch") {
			t.Fatalf("--erasure off on a sealed log: %v, want refused", err)
		}
	})
	t.Run("existing log without erasure", func(t *testing.T) {
		dir := t.TempDir()
		if e, m, err := open(t, dir, nil, 42); err != nil || e != nil || m != ErasureOff {
			t.Fatalf("auto on a log with 42 entries: state %v, mode %q, %v; want off, unchanged", e != nil, m, err)
		}
		if _, err := os.Stat(ErasureMasterKeyPath(dir)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("a master key was created for a log that stays off: %v", err)
		}
		if _, _, err := open(t, dir, func(c *Config) { c.Erasure = ErasureOn }, 42); err == nil {
			t.Fatal("--erasure on accepted for a log recorded off")
		}
	})
	t.Run("existing log asked on", func(t *testing.T) {
		if _, _, err := open(t, t.TempDir(), func(c *Config) { c.Erasure = ErasureOn }, 42); err == nil || !strings.Contains(err.Error(), "cannot switch") {
			t.Fatalf("--erasure on for a log with entries: %v, want refused", err)
		}
	})
	t.Run("other drivers", func(t *testing.T) {
		// Trillian with the SQLite index: sealed like the embedded log.
		if e, m, err := open(t, t.TempDir(), func(c *Config) { c.Ledger = "trillian" }, 0); err != nil || e == nil || m != ErasureOn {
			t.Fatalf("auto on a new Trillian log: state %v, mode %q, %v; want on", e != nil, m, err)
		}
		// ClickHouse and --ha: not implemented, so auto leaves them off and on is refused.
		for name, mod := range map[string]func(*Config){
			"clickhouse": func(c *Config) { c.Index = "clickhouse"; c.ClickHouseDSN = "clickhouse://127.0.0.1:1/x" },
			"ha":         func(c *Config) { c.HA = true },
		} {
			if e, m, err := open(t, t.TempDir(), mod, 0); err != nil || e != nil || m != ErasureOff {
				t.Fatalf("auto on a new %s log: state %v, mode %q, %v; want off", name, e != nil, m, err)
			}
			if _, _, err := open(t, t.TempDir(), func(c *Config) { mod(c); c.Erasure = ErasureOn }, 0); err == nil || !strings.Contains(err.Error(), "not implemented") {
				t.Fatalf("--erasure on with %s: %v, want refused", name, err)
			}
		}
	})
	t.Run("explicit off", func(t *testing.T) {
		if e, m, err := open(t, t.TempDir(), func(c *Config) { c.Erasure = ErasureOff }, 0); err != nil || e != nil || m != ErasureOff {
			t.Fatalf("--erasure off on a new log: state %v, mode %q, %v", e != nil, m, err)
		}
	})
}

// reviewedRecord is erRecord with a human reviewer (sealed under the reviewer's own key).
func reviewedRecord(id, user, reviewer string, at time.Time) string {
	r := erRecord(id, user, "case-reviewed", at)
	return strings.TrimSuffix(r, "}") + fmt.Sprintf(`,"human_oversight":{"reviewer":{"id":%q,"issuer":"https://login.example.org/"},"outcome":"approved"}}`, reviewer)
}

// TestErasureReviewerRetention: the minimum retention covers every record sealed under the
// subject's key, not only those where the subject is the user. A reviewer seen inside the
// retention is refused without a legal basis; a reviewer seen only before it is erased
// without one.
func TestErasureReviewerRetention(t *testing.T) {
	dir := t.TempDir()
	base, _, stop := startErasure(t, dir)
	defer stop()
	const (
		recentReviewer = "rita.reviewer-recent@example.org"
		oldReviewer    = "otto.reviewer-old@example.org"
	)
	old := time.Now().Add(-DefaultMinRetention - 48*time.Hour)
	publishRecords(t, base,
		reviewedRecord("rv-1", keptUser, recentReviewer, time.Now()),
		reviewedRecord("rv-2", keptUser, oldReviewer, old))
	waitRecord(t, base, "rv-1")
	waitRecord(t, base, "rv-2")

	req := fmt.Sprintf(`{"tenant":%q,"subject":%q}`, erTenant, recentReviewer)
	if code, b := httpDo(t, "POST", base+"/v1/erasures", req); code != http.StatusConflict {
		t.Fatalf("erasure of a reviewer seen today without a basis = %d %s, want 409", code, b)
	}
	req = fmt.Sprintf(`{"tenant":%q,"subject":%q,"legal_basis":"court order 2026-9 (GDPR Art. 17(1)(d))"}`, erTenant, recentReviewer)
	code, b := httpDo(t, "POST", base+"/v1/erasures", req)
	var res query.ErasureResult
	if code != http.StatusOK || json.Unmarshal(b, &res) != nil || !res.WithinRetention || res.RecordsPurged != 1 {
		t.Fatalf("erasure of a reviewer seen today with a basis = %d %s, want 200, within retention, 1 row purged", code, b)
	}
	req = fmt.Sprintf(`{"tenant":%q,"subject":%q}`, erTenant, oldReviewer)
	code, b = httpDo(t, "POST", base+"/v1/erasures", req)
	res = query.ErasureResult{}
	if code != http.StatusOK || json.Unmarshal(b, &res) != nil || res.WithinRetention || res.RecordsPurged != 1 {
		t.Fatalf("erasure of a reviewer seen only before the retention = %d %s, want 200, outside retention", code, b)
	}
	after := waitRecord(t, base, "rv-1")
	if bytes.Contains(after.Leaf, []byte(recentReviewer)) {
		t.Fatal("the leaf holds the reviewer in clear")
	}
	if code, b := httpDo(t, "GET", base+"/v1/records/rv-1?tenant="+erTenant, ""); code != http.StatusOK || bytes.Contains(b, []byte(recentReviewer)) || !bytes.Contains(b, []byte(keptUser)) {
		t.Fatalf("record rv-1 after its reviewer's erasure = %d, want the user clear and the reviewer gone:\n%s", code, b)
	}
}
