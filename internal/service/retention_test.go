package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/internal/testenv"
	"github.com/lineage-audit/lineage/ledger/seal"
	"github.com/lineage-audit/lineage/verify"
)

// retentionConfig is erasureConfig with a retention window of 40 days (minimum retention 30)
// for the tenant, a 100 ms job interval, and two clocks the test moves: the key store's (when
// a subject was last seen) and the retention job's.
func retentionConfig(t *testing.T, dir string, logs io.Writer, ksOff, rtOff *atomic.Int64) Config {
	t.Helper()
	c := erasureConfig(t, dir, logs)
	cfg := filepath.Join(t.TempDir(), "erasure.json")
	if err := os.WriteFile(cfg, []byte(`{"tenants":{"acme":{"paths":[{"pointer":"/action/target","subject":"/user/id"}],"min_retention_days":30,"retention_days":40}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	c.ErasureConfig = cfg
	c.ErasureRetentionInterval = 100 * time.Millisecond
	c.keyStoreClock = func() time.Time { return time.Now().Add(time.Duration(ksOff.Load())) }
	c.clock = func() time.Time { return time.Now().Add(time.Duration(rtOff.Load())) }
	return c
}

// TestErasureRetention (issue #17, item 5): a subject not seen for longer than the tenant's
// retention window is erased by the scheduled job, with its erasure record in the log; a
// subject seen inside the window keeps its values; proofs verify before and after; nothing of
// the erased subject is left in the data dir; a window shorter than the minimum retention is
// refused at start.
func TestErasureRetention(t *testing.T) {
	dir := t.TempDir()
	var ksOff, rtOff atomic.Int64
	logs := new(testenv.SyncBuffer)
	addr, stop := startRun(t, retentionConfig(t, dir, logs, &ksOff, &rtOff))
	base := "http://" + addr
	day := int64(24 * time.Hour)

	now := time.Now()
	publishRecords(t, base, erRecord("a-1", erasedUser, erasedTarget, now), erRecord("b-1", keptUser, "case-kept-1", now))
	waitRecord(t, base, "a-1")
	waitRecord(t, base, "b-1")
	// Fifty days later (by the key store's clock) only bob is seen again.
	ksOff.Store(50 * day)
	publishRecords(t, base, erRecord("b-2", keptUser, "case-kept-2", now.Add(50*24*time.Hour)))
	waitRecord(t, base, "b-2")

	// The job has run many times with its clock at today: nobody is outside the window yet.
	time.Sleep(500 * time.Millisecond)
	before := waitRecord(t, base, "a-1")
	if before.Record.User.ID != erasedUser || len(before.Openings) != 2 {
		t.Fatalf("inside the window a-1 shows user %q with %d openings", before.Record.User.ID, len(before.Openings))
	}
	_, _, fields, err := verify.LeafRecord(before.Leaf, before.Openings)
	if err != nil {
		t.Fatal(err)
	}
	kid := ""
	for _, f := range fields {
		if f.Path == "/user/id" {
			kid = f.KeyID
		}
	}
	v := verifierOf(t, base)
	cpBefore := checkpointOf(t, base, v)

	// The job's clock moves to day 50: alice (last seen day 0) is outside the 40-day window,
	// bob (day 50) is not.
	rtOff.Store(50 * day)
	deadline := time.Now().Add(30 * time.Second)
	var after *verify.RecordProof
	for {
		after = waitRecord(t, base, "a-1")
		if seal.IsSealedToken(after.Record.User.ID) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the retention job did not erase alice within 30s; logs:\n%s", logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(after.Openings) != 0 || !seal.IsSealedToken(after.Record.Action.Target) {
		t.Fatalf("after retention a-1 still opens: user %q target %q openings %d", after.Record.User.ID, after.Record.Action.Target, len(after.Openings))
	}
	// The old leaf's proof, and the consistency of the tree across the erasure.
	if _, err := verify.VerifyRecordProof(after, v); err != nil {
		t.Fatalf("a-1's proof after retention: %v", err)
	}
	if string(after.Leaf) != string(before.Leaf) {
		t.Fatal("a-1's leaf changed")
	}
	for _, id := range []string{"b-1", "b-2"} {
		if rp := waitRecord(t, base, id); rp.Record.User.ID != keptUser {
			t.Fatalf("%s (seen inside the window) shows user %q", id, rp.Record.User.ID)
		}
	}
	// The erasure record: names the key id and the retention basis, never the subject.
	er := waitRecord(t, base, "erasure-"+kid)
	if er.Record.User.ID != RetentionSubject {
		t.Errorf("erasure record by %q, want %q", er.Record.User.ID, RetentionSubject)
	}
	var pc struct {
		KeyIDs []string `json:"key_ids"`
		Basis  string   `json:"legal_basis"`
	}
	if err := json.Unmarshal(er.Record.PolicyContext, &pc); err != nil || len(pc.KeyIDs) != 1 || pc.KeyIDs[0] != kid || !strings.Contains(pc.Basis, "40 days") {
		t.Errorf("erasure record policy context %s (%v)", er.Record.PolicyContext, err)
	}
	cpAfter := checkpointOf(t, base, v)
	if cpAfter.Size <= cpBefore.Size {
		t.Fatalf("checkpoint did not grow across the erasure: %d → %d", cpBefore.Size, cpAfter.Size)
	}
	code, b := httpDo(t, "GET", base+"/metrics", "")
	if code != 200 || !strings.Contains(string(b), "lineage_erasure_retention_keys_erased_total 1") {
		t.Errorf("metrics (%d) do not count the erased key:\n%s", code, grepLines(b, "lineage_erasure_retention"))
	}
	if strings.Contains(string(b), erasedUser) || strings.Contains(string(b), erasedTarget) || strings.Contains(string(b), keptUser) {
		t.Error("the metrics name a subject")
	}
	stop()
	if !strings.Contains(logs.String(), "retention erased subjects") {
		t.Error("the retention erasure was not logged")
	}
	if hits := grepDir(t, dir, erasedUser, erasedTarget); len(hits) > 0 {
		t.Errorf("after retention, clear values of the erased subject are still in the data dir:\n%s", strings.Join(hits, "\n"))
	}
	if strings.Contains(logs.String(), erasedUser) {
		t.Error("the daemon's log names the erased subject")
	}
	if des, _ := os.ReadDir(erasurePendingDir(dir)); len(des) != 0 {
		t.Errorf("erasure records left pending: %v", des)
	}

	// A window shorter than the minimum retention is refused.
	c := erasureConfig(t, dir, io.Discard)
	bad := filepath.Join(t.TempDir(), "erasure.json")
	if err := os.WriteFile(bad, []byte(`{"tenants":{"acme":{"paths":[{"pointer":"/action/target","subject":"/user/id"}],"min_retention_days":30,"retention_days":20}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	c.ErasureConfig = bad
	if err := run(t, c); err == nil || !strings.Contains(err.Error(), "shorter than its minimum retention") {
		t.Fatalf("retention_days below the minimum: %v", err)
	}
	c = erasureConfig(t, dir, io.Discard)
	c.ErasureRetentionDays = 90
	if err := run(t, c); err == nil || !strings.Contains(err.Error(), "--erasure-retention-days 90") {
		t.Fatalf("--erasure-retention-days below the default minimum: %v", err)
	}
}

// TestPendingErasureRecords: an erasure record JetStream does not take is kept in the pending
// directory and published by a later flush, then removed; a damaged pending file is reported,
// never dropped; a record written ahead of an erasure that did not happen (its keys still
// exist) is dropped unpublished.
func TestPendingErasureRecords(t *testing.T) {
	dir := t.TempDir()
	var fail atomic.Bool
	fail.Store(true)
	var sent []string
	p := &pendingRecords{dir: dir, logger: slog.New(slog.NewTextHandler(io.Discard, nil)), backoff: []time.Duration{time.Millisecond},
		send: func(_ context.Context, rec lineage.Record) error {
			if fail.Load() {
				return errors.New("nats: no responders")
			}
			sent = append(sent, rec.ID)
			return nil
		}}
	rec, err := erasureRecord("acme", "compliance-officer", []seal.KeyID{{1}, {2}}, "erasure on request", false, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.publish(context.Background(), rec); err == nil {
		t.Fatal("publish with JetStream down succeeded")
	}
	if _, err := os.Stat(filepath.Join(dir, rec.ID+".json")); err != nil {
		t.Fatalf("the failed record is not pending: %v", err)
	}
	if err := p.flush(context.Background()); err == nil {
		t.Fatal("flush with JetStream down succeeded")
	}
	fail.Store(false)
	if err := os.WriteFile(filepath.Join(dir, "damaged.json"), []byte(`{"id":`), 0o600); err != nil {
		t.Fatal(err)
	}
	err = p.flush(context.Background())
	if err == nil || !strings.Contains(err.Error(), "damaged.json") {
		t.Fatalf("flush with a damaged file = %v, want it reported", err)
	}
	if len(sent) != 1 || sent[0] != rec.ID {
		t.Fatalf("sent %v, want [%s]", sent, rec.ID)
	}
	if _, err := os.Stat(filepath.Join(dir, rec.ID+".json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the published record is still pending: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "damaged.json")); err != nil {
		t.Fatalf("the damaged file was dropped: %v", err)
	}
	os.Remove(filepath.Join(dir, "damaged.json"))

	// Written ahead of an erasure a stop cut short before the keys were destroyed: check says
	// the keys still exist, so the record is dropped unpublished; a stop's temporary file too.
	happened := false
	p.check = func(context.Context, lineage.Record) (bool, error) { return happened, nil }
	rec2, err := erasureRecord("acme", "compliance-officer", []seal.KeyID{{3}}, "erasure on request", false, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.write(rec2); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "erasure-x.json.tmp"), []byte(`{`), 0o600); err != nil {
		t.Fatal(err)
	}
	sent = nil
	if err := p.flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if des, _ := os.ReadDir(dir); len(sent) != 0 || len(des) != 0 {
		t.Fatalf("after flushing a record whose erasure did not happen: sent %v, left %v", sent, des)
	}
	// One whose keys are gone is published.
	happened = true
	if _, err := p.write(rec2); err != nil {
		t.Fatal(err)
	}
	if err := p.flush(context.Background()); err != nil || len(sent) != 1 || sent[0] != rec2.ID {
		t.Fatalf("flush of a record whose erasure happened: %v, sent %v", err, sent)
	}
}

// copyFiles copies each of the files (those that exist) from dir src to dir dst.
func copyFiles(t *testing.T, src, dst string, names ...string) {
	t.Helper()
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(src, n))
		if errors.Is(err, os.ErrNotExist) {
			os.Remove(filepath.Join(dst, n))
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, n), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestErasureReappliedAfterRestore: the key store and the index are restored from a backup
// made before an erasure, so the subject's key is back. lineaged destroys it again from the
// erasure record in the log — once the index has caught up with that record — and purges the
// index; a forged erasure record (published by anyone, without the store's tag) destroys
// nothing.
func TestErasureReappliedAfterRestore(t *testing.T) {
	dir := t.TempDir()
	logs := new(testenv.SyncBuffer)
	c := erasureConfig(t, dir, logs)
	c.ErasureRetentionInterval = 200 * time.Millisecond
	addr, stop := startRun(t, c)
	base := "http://" + addr
	old := time.Now().Add(-400 * 24 * time.Hour)
	// l-1: the erasure record below names its requester ("local" without authentication)
	// as its user, a subject of its own: the backup must hold every key the log needs (a key
	// created after the backup is lost with it, and lineaged refuses to index its records).
	publishRecords(t, base, erRecord("a-1", erasedUser, erasedTarget, old), erRecord("b-1", keptUser, "case-kept-1", old),
		erRecord("l-1", "local", "acme/subject-keys/1", old))
	waitRecord(t, base, "a-1")
	waitRecord(t, base, "l-1")
	kept := waitRecord(t, base, "b-1")
	stop()

	// The backup: the key store and the index, as they are before the erasure.
	backup := t.TempDir()
	keysDir := filepath.Dir(ErasureKeyStorePath(dir))
	idx := filepath.Base(IndexPath(dir))
	copyFiles(t, keysDir, backup, "erasure.sqlite")
	copyFiles(t, dir, backup, idx, idx+"-wal", idx+"-shm")

	addr, stop = startRun(t, c)
	base = "http://" + addr
	if code, b := httpDo(t, "POST", base+"/v1/erasures", fmt.Sprintf(`{"tenant":%q,"subject":%q}`, erTenant, erasedUser)); code != http.StatusOK {
		t.Fatalf("erasure = %d %s", code, b)
	}
	// A forged erasure record naming bob's key, with a made-up tag.
	_, _, fields, err := verify.LeafRecord(kept.Leaf, kept.Openings)
	if err != nil {
		t.Fatal(err)
	}
	forged := fmt.Sprintf(`{"schema":"lineage.decision/v1","id":"erasure-forged","time":%q,"tenant":%q,`+
		`"source":{"id":"lineage-erasure","type":"lineage"},"user":{"id":"local","issuer":"lineage"},`+
		`"agent":{"id":"lineage-erasure"},"role":"eraser","action":{"type":"erasure.subject","target":"acme/subject-keys/1"},`+
		`"decision":{"effect":"allow","policy":{"id":"lineage.erasure","version":"v1"},"reason":"forged"},`+
		`"policy_context":{"key_ids":[%q],"legal_basis":"forged","within_retention":false,"tag":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}}`,
		time.Now().UTC().Format(time.RFC3339Nano), erTenant, fields[0].KeyID)
	publishRecords(t, base, forged)
	waitRecord(t, base, "erasure-forged")
	stop()

	// The restore: the key store and the index go back to before the erasure.
	copyFiles(t, backup, keysDir, "erasure.sqlite")
	copyFiles(t, backup, dir, idx, idx+"-wal", idx+"-shm")
	ks := openKeyStore(t, dir)
	if kid, err := seal.ParseKeyID(fields[0].KeyID); err != nil {
		t.Fatal(err)
	} else if _, err := ks.Open(context.Background(), erTenant, kid); err != nil {
		t.Fatalf("bob's key after the restore: %v", err)
	}
	ks.Close()
	if hits := grepDir(t, dir, erasedUser); len(hits) == 0 {
		t.Fatal("the restored data dir holds no clear value of the erased subject: the test would prove nothing")
	}

	addr, stop = startRun(t, c)
	base = "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		rp := waitRecord(t, base, "a-1")
		if seal.IsSealedToken(rp.Record.User.ID) && len(rp.Openings) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the erasure was not re-applied within 30s; logs:\n%s", logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	waitRecord(t, base, "erasure-forged")
	time.Sleep(500 * time.Millisecond) // more maintenance runs: the forged record must stay without effect
	if rp := waitRecord(t, base, "b-1"); rp.Record.User.ID != keptUser {
		t.Fatalf("a forged erasure record erased bob: %q", rp.Record.User.ID)
	}
	stop()
	out := logs.String()
	if !strings.Contains(out, "re-applied an erasure the key store had lost") || !strings.Contains(out, "tag does not verify") {
		t.Errorf("the re-application and the forged record were not logged:\n%s", grepLines([]byte(out), "erasure"))
	}
	if hits := grepDir(t, dir, erasedUser, erasedTarget); len(hits) > 0 {
		t.Errorf("after the re-applied erasure, clear values remain:\n%s", strings.Join(hits, "\n"))
	}
}

// TestErasureIntentWithoutDestruction: a stop between an erasure's record, written ahead, and
// the destruction of its keys leaves a pending record whose keys still exist. At the next start
// it is dropped, never published: the log records no erasure that did not happen, and the
// subject stays readable.
func TestErasureIntentWithoutDestruction(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	logs := new(testenv.SyncBuffer)
	c := erasureConfig(t, dir, logs)
	c.ErasureRetentionInterval = 200 * time.Millisecond
	addr, stop := startRun(t, c)
	publishRecords(t, "http://"+addr, erRecord("b-1", keptUser, "case-kept-1", time.Now()))
	waitRecord(t, "http://"+addr, "b-1")
	stop()

	ks := openKeyStore(t, dir)
	kid, ok, err := ks.SubjectKey(ctx, erTenant, keptUser)
	ks.Close()
	if err != nil || !ok {
		t.Fatalf("bob's key: %v %v", ok, err)
	}
	rec, err := erasureRecord(erTenant, "compliance-officer", []seal.KeyID{kid}, "erasure on request", false, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (&pendingRecords{dir: erasurePendingDir(dir)}).write(rec); err != nil {
		t.Fatal(err)
	}

	addr, stop = startRun(t, c)
	defer stop()
	base := "http://" + addr
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		des, _ := os.ReadDir(erasurePendingDir(dir))
		if len(des) == 0 && strings.Contains(logs.String(), "dropped a pending erasure record whose keys were never destroyed") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the pending record of an erasure that did not happen was not dropped with a log line (left: %v)\n%s", des, logs)
		}
	}
	if b := waitRecord(t, base, "b-1"); b.Record.User.ID != keptUser {
		t.Fatalf("b-1 shows %q, want the clear user", b.Record.User.ID)
	}
	publishRecords(t, base, erRecord("b-2", keptUser, "case-kept-2", time.Now()))
	waitRecord(t, base, "b-2") // indexed after anything published before it
	if code, b := httpDo(t, "GET", base+"/v1/records/"+rec.ID+"?tenant="+erTenant, ""); code != http.StatusNotFound {
		t.Fatalf("the dropped erasure record is in the log: %d %s", code, b)
	}
}
