package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lineage-audit/lineage/ledger"
	"github.com/lineage-audit/lineage/ledger/seal"
	"github.com/lineage-audit/lineage/ledger/seal/sqlitekeys"
	"github.com/lineage-audit/lineage/verify"
)

const (
	crashUser   = "carol.crash-91c2@example.org"
	crashTarget = "case-CRASH-5e7710"
	crashKept   = "dave.kept-03aa@example.org"
)

func crashRecord(id, user, target string, at time.Time) string {
	return fmt.Sprintf(`{"schema":"lineage.decision/v1","id":%q,"time":%q,"tenant":"acme",`+
		`"source":{"id":"gw-1","type":"gateway"},"user":{"id":%q,"issuer":"https://login.example.org/"},`+
		`"agent":{"id":"spiffe://example.org/agent/claims"},"action":{"type":"tool.call","target":%q},`+
		`"decision":{"effect":"allow","policy":{"id":"claims.read","version":"v3"}}}`,
		id, at.UTC().Format(time.RFC3339Nano), user, target)
}

// recordAnswer polls GET /v1/records/{id} until it answers 200 and cond holds.
func recordAnswer(t *testing.T, d *daemon, id string, within time.Duration, cond func(*verify.RecordProof) bool) *verify.RecordProof {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var rp verify.RecordProof
		if d.getJSON(t, "/v1/records/"+id+"?tenant=acme", &rp) == http.StatusOK && cond(&rp) {
			return &rp
		}
		if time.Now().After(deadline) {
			t.Fatalf("record %s not as expected within %s\n%s", id, within, d.logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// grepFiles lists the files under the dirs that contain any of the needles.
func grepFiles(t *testing.T, needles []string, dirs ...string) []string {
	t.Helper()
	var hits []string
	for _, dir := range dirs {
		err := filepath.WalkDir(dir, func(path string, de fs.DirEntry, err error) error {
			if err != nil || !de.Type().IsRegular() {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, n := range needles {
				if bytes.Contains(b, []byte(n)) {
					hits = append(hits, fmt.Sprintf("%s holds %q", path, n))
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return hits
}

// TestErasureCrashBetweenKeyAndPurge (issue #17, item 6): the real lineaged is SIGKILLed after
// an erasure destroyed the subject's key but before it purged the index, while NATS is down
// (so the erasure record could not be published either). At the next start the purge is
// completed, the pending erasure record is published, and no file of the data dir or of the
// NATS store holds the subject's clear values; the old leaf's proof and the consistency of
// the tree across the crash still verify.
func TestErasureCrashBetweenKeyAndPurge(t *testing.T) {
	dir := t.TempDir()
	natsAddr, httpAddr := freeAddr(t), freeAddr(t)
	natsDir := filepath.Join(dir, "nats")
	ns := startNATS(t, natsAddr, natsDir)
	dataDir := filepath.Join(dir, "data")
	cfg := filepath.Join(dir, "erasure.json")
	if err := os.WriteFile(cfg, []byte(`{"tenants":{"acme":{"paths":[{"pointer":"/action/target","subject":"/user/id"}]}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	flags := []string{"--nats-url", "nats://" + natsAddr, "--erasure", "on", "--erasure-config", cfg,
		"--erasure-retention-interval", "300ms"}
	d := startDaemon(t, dataDir, natsAddr, httpAddr, flags...)
	v, err := ledger.ReadVerifierFile(filepath.Join(dataDir, "keys", "log.key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-400 * 24 * time.Hour) // outside the minimum retention
	body := strings.Join([]string{crashRecord("c-1", crashUser, crashTarget, old), crashRecord("c-2", crashUser, crashTarget, old),
		crashRecord("k-1", crashKept, "case-kept-1", time.Now())}, "\n")
	resp, err := http.Post(d.url("/v1/records"), "application/x-ndjson", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /v1/records = %d", resp.StatusCode)
	}
	before := recordAnswer(t, d, "c-1", time.Minute, func(rp *verify.RecordProof) bool { return rp.Record.User.ID == crashUser })
	recordAnswer(t, d, "k-1", time.Minute, func(*verify.RecordProof) bool { return true })
	cpBefore := mustCheckpoint(t, d, v, 3)

	// NATS goes down; the erasure writes its record to the pending directory, destroys the key
	// and retries publishing the record; lineaged is killed there, before the purge.
	ns.mu.Lock()
	ns.srv.Shutdown()
	ns.srv.WaitForShutdown()
	ns.mu.Unlock()
	go func() {
		req, _ := json.Marshal(map[string]string{"tenant": "acme", "subject": crashUser})
		if resp, err := http.Post(d.url("/v1/erasures"), "application/json", bytes.NewReader(req)); err == nil {
			resp.Body.Close()
		}
	}()
	// The record is written ahead of the key's destruction: kill once both are done (the
	// tombstone is in the key store), while lineaged retries publishing (1, 2, 4 s) before the
	// purge.
	pending := filepath.Join(dataDir, "erasure-pending")
	mk, err := seal.LoadMasterKeyFile(filepath.Join(dataDir, "keys", "erasure.master"))
	if err != nil {
		t.Fatal(err)
	}
	ks, err := sqlitekeys.OpenSQLite(context.Background(), filepath.Join(dataDir, "keys", "erasure.sqlite"), mk, sqlitekeys.SQLiteOptions{CacheSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		des, _ := os.ReadDir(pending)
		tombs, err := ks.Tombstones(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(des) == 1 && strings.HasSuffix(des[0].Name(), ".json") && len(tombs) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no pending erasure record and destroyed key within 30s (pending %v, tombstones %d)\n%s", des, len(tombs), d.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	ks.Close()
	d.kill()
	// The crash landed between the key's destruction and the purge: the index still holds the
	// clear value, and the erasure record is still pending.
	if hits := grepFiles(t, []string{crashUser}, dataDir); len(hits) == 0 {
		t.Fatal("after the crash the data dir holds no clear value: the kill came after the purge")
	}
	des, err := os.ReadDir(pending)
	if err != nil || len(des) != 1 {
		t.Fatalf("pending erasure records after the crash: %v %v", des, err)
	}
	recID := strings.TrimSuffix(des[0].Name(), ".json")

	ns.mu.Lock()
	ns.start()
	ns.mu.Unlock()
	d = startDaemon(t, dataDir, natsAddr, httpAddr, flags...)
	after := recordAnswer(t, d, "c-1", time.Minute, func(rp *verify.RecordProof) bool { return seal.IsSealedToken(rp.Record.User.ID) })
	if len(after.Openings) != 0 || !seal.IsSealedToken(after.Record.Action.Target) {
		t.Fatalf("after the restart c-1 still opens: target %q, %d openings", after.Record.Action.Target, len(after.Openings))
	}
	if !bytes.Equal(after.Leaf, before.Leaf) {
		t.Fatal("c-1's leaf changed across the erasure")
	}
	if _, err := verify.VerifyRecordProof(after, v); err != nil {
		t.Fatalf("c-1's proof after the crash: %v", err)
	}
	if rp := recordAnswer(t, d, "k-1", time.Minute, func(*verify.RecordProof) bool { return true }); rp.Record.User.ID != crashKept {
		t.Fatalf("the kept subject shows as %q", rp.Record.User.ID)
	}
	er := recordAnswer(t, d, recID, time.Minute, func(*verify.RecordProof) bool { return true })
	if !strings.HasPrefix(er.Record.Decision.Reason, "subject erased by destroying its keys") || strings.Contains(string(er.Record.PolicyContext), crashUser) {
		t.Fatalf("erasure record %s: %q %s", recID, er.Record.Decision.Reason, er.Record.PolicyContext)
	}
	cpAfter := mustCheckpoint(t, d, v, cpBefore.Size+1) // the erasure record
	var cons struct {
		Proof [][]byte `json:"proof"`
	}
	if code := d.getJSON(t, fmt.Sprintf("/v1/proofs/consistency?from=%d&to=%d", cpBefore.Size, cpAfter.Size), &cons); code != http.StatusOK {
		t.Fatalf("consistency proof: %d", code)
	}
	if err := ledger.VerifyConsistency(cpBefore, cpAfter, cons.Proof); err != nil {
		t.Fatalf("consistency across the crash: %v", err)
	}
	if !strings.Contains(d.logs.String(), "completed an index purge") || !strings.Contains(d.logs.String(), "published a pending erasure record") {
		t.Errorf("the restart did not report the completed purge and the pending record:\n%s", d.logs)
	}
	d.stop()
	if des, _ := os.ReadDir(pending); len(des) != 0 {
		t.Errorf("erasure records still pending after the restart: %v", des)
	}
	ns.mu.Lock()
	ns.srv.Shutdown()
	ns.srv.WaitForShutdown()
	ns.mu.Unlock()
	if hits := grepFiles(t, []string{crashUser, crashTarget}, dataDir, natsDir); len(hits) > 0 {
		t.Errorf("clear values of the erased subject remain:\n%s", strings.Join(hits, "\n"))
	}
	if strings.Contains(d.logs.String(), crashUser) {
		t.Error("the daemon's log names the erased subject")
	}
}
