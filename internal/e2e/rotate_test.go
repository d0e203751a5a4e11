package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lineage-audit/lineage/internal/demo"
	"github.com/lineage-audit/lineage/internal/testenv"
	"github.com/lineage-audit/lineage/ledger"
	"github.com/lineage-audit/lineage/verify"
	"golang.org/x/mod/sumdb/note"
)

// TestKeyRotation rolls the checkpoint key of a Tessera log between two runs of lineaged
// (docs/KEY-ROTATION.md) and checks, with lineagectl as a client would: the proof saved before
// the rotation still verifies with the old key alone; checkpoints after it do not; following
// the API's rotation statements from the old key yields both keys, with which the new
// checkpoint, new proofs and its consistency with the old checkpoint verify; a forged statement
// is refused by `keys follow` and by lineaged at start.
func TestKeyRotation(t *testing.T) {
	rotationScenario(t, "tessera", nil)
}

// TestKeyRotationTrillian is the same on a real Trillian log (the driver reopens on a state dir
// whose checkpoint the old key signed).
func TestKeyRotationTrillian(t *testing.T) {
	tr := testenv.StartTrillian(t)
	treeID := createTree(t, tr.Addr, "rotate")
	rotationScenario(t, "trillian", []string{"--ledger", "trillian", "--trillian-addr", tr.Addr, "--trillian-tree-id", fmt.Sprint(treeID)})
}

func rotationScenario(t *testing.T, ledgerName string, flags []string) {
	const first, total, seed = 40, 70, 11
	recs := demo.Generate(demo.Options{Seed: seed, Tenants: 3}, total)
	dataDir := t.TempDir()
	work := t.TempDir()
	keyDir := filepath.Join(dataDir, "keys")
	natsAddr, httpAddr := freeAddr(t), freeAddr(t)
	d := startDaemon(t, dataDir, natsAddr, httpAddr, flags...)
	defer func() {
		if t.Failed() {
			t.Logf("lineaged logs:\n%s", d.logs)
		}
	}()
	oldPub := filepath.Join(work, "old.pub")
	if err := os.WriteFile(oldPub, must(os.ReadFile(filepath.Join(keyDir, "log.key.pub"))), 0o644); err != nil {
		t.Fatal(err)
	}
	api := d.url("")
	if out, err := ctl("publish", "--nats-url", "nats://"+natsAddr, "--demo", fmt.Sprint(first), "--seed", fmt.Sprint(seed)); err != nil {
		t.Fatalf("publish: %v\n%s", err, out)
	}
	d.waitIndexed(t, first)
	mustCheckpoint(t, d, must(ledger.ReadVerifierFile(oldPub)), first)
	oldCP := filepath.Join(work, "old.checkpoint")
	oldProof := filepath.Join(work, "old-proof.json")
	oldRec := recs[3]
	if out, err := ctl("checkpoint", "--api", api, "--verifier-file", oldPub, "--save", oldCP); err != nil {
		t.Fatalf("checkpoint --save: %v\n%s", err, out)
	}
	if out, err := ctl("verify", "--api", api, "--id", oldRec.ID, "--tenant", oldRec.Tenant, "--verifier-file", oldPub, "--save", oldProof); err != nil {
		t.Fatalf("verify --save: %v\n%s", err, out)
	}

	// The data dir lock keeps rotate-key away from a running daemon.
	if out, err := ctl("rotate-key", "--data-dir", dataDir, "--ledger", ledgerName); err == nil || !strings.Contains(out, "in use") {
		t.Fatalf("rotate-key while lineaged runs: %v\n%s", err, out)
	}
	d.stop()
	out, err := ctl("rotate-key", "--data-dir", dataDir, "--ledger", ledgerName)
	if err != nil {
		t.Fatalf("rotate-key: %v\n%s", err, out)
	}
	if !strings.Contains(out, fmt.Sprintf("at log size %d", first)) || !strings.Contains(out, "PRIVATE") {
		t.Fatalf("rotate-key output lacks the size or the retired private key:\n%s", out)
	}
	newKey := strings.TrimSpace(string(must(os.ReadFile(filepath.Join(keyDir, "log.key.pub")))))
	oldKey := strings.TrimSpace(string(must(os.ReadFile(oldPub))))
	if newKey == oldKey {
		t.Fatal("log.key.pub unchanged by rotate-key")
	}

	// Second run: the old checkpoint on disk opens, new ones are signed with the new key.
	d = startDaemon(t, dataDir, natsAddr, httpAddr, flags...)
	if got := strings.TrimSpace(string(d.getText(t, "/v1/verifier"))); got != newKey {
		t.Fatalf("/v1/verifier = %s, want the new key %s", got, newKey)
	}
	if out, err := ctl("publish", "--nats-url", "nats://"+natsAddr, "--demo", fmt.Sprint(total), "--seed", fmt.Sprint(seed)); err != nil {
		t.Fatalf("publish: %v\n%s", err, out)
	}
	d.waitIndexed(t, total)
	mustCheckpoint(t, d, must(ledger.NewVerifier(newKey)), total)
	newRec := recs[total-1]

	// The saved proof still verifies with the old key alone.
	if out, err := ctl("verify", "--proof", oldProof, "--verifier-file", oldPub); err != nil {
		t.Fatalf("the proof saved before the rotation, with the old key: %v\n%s", err, out)
	}
	// Checkpoints and proofs after the rotation do not verify with the old key alone.
	if out, err := ctl("checkpoint", "--api", api, "--verifier-file", oldPub); err == nil {
		t.Fatalf("a checkpoint after the rotation verified with the old key alone:\n%s", out)
	}
	if out, err := ctl("verify", "--api", api, "--id", newRec.ID, "--tenant", newRec.Tenant, "--verifier-file", oldPub); err == nil {
		t.Fatalf("a proof after the rotation verified with the old key alone:\n%s", out)
	}

	// GET /v1/keys, and keys follow from the old key over it.
	var keys verify.Keys
	if code := d.getJSON(t, "/v1/keys", &keys); code != 200 || keys.Current != newKey || len(keys.Rotations) != 1 {
		t.Fatalf("/v1/keys: %d %+v", code, keys)
	}
	trusted := filepath.Join(work, "trusted.pub")
	if out, err := ctl("keys", "follow", "--verifier-file", oldPub, "--api", api, "--out", trusted); err != nil {
		t.Fatalf("keys follow --api: %v\n%s", err, out)
	}
	if got := ledger.VerifiersOf(must(ledger.ReadVerifierFile(trusted))); len(got) != 2 || got[0].KeyHash() != must(ledger.NewVerifier(oldKey)).KeyHash() || got[1].KeyHash() != must(ledger.NewVerifier(newKey)).KeyHash() {
		t.Fatalf("keys follow wrote %d keys, want the old then the new:\n%s", len(got), must(os.ReadFile(trusted)))
	}
	// The statements of the data dir give the same keys.
	if out, err := ctl("keys", "follow", "--verifier", oldKey, "--statements", filepath.Join(keyDir, "rotations")); err != nil || !strings.Contains(out, newKey) {
		t.Fatalf("keys follow --statements: %v\n%s", err, out)
	}
	// With both keys: the new checkpoint extends the old one, new and old proofs verify.
	if out, err := ctl("checkpoint", "--api", api, "--verifier-file", trusted, "--since", oldCP); err != nil {
		t.Fatalf("checkpoint --since the pre-rotation checkpoint: %v\n%s", err, out)
	}
	if out, err := ctl("verify", "--api", api, "--id", newRec.ID, "--tenant", newRec.Tenant, "--verifier-file", trusted); err != nil {
		t.Fatalf("a new proof with the followed keys: %v\n%s", err, out)
	}
	if out, err := ctl("verify", "--proof", oldProof, "--verifier-file", trusted); err != nil {
		t.Fatalf("the old proof with the followed keys: %v\n%s", err, out)
	}

	// A forged statement: the new key moved on to an attacker's key, signed by the attacker's
	// key and a stranger's in place of the new key.
	evil := mustKey(t)
	evilKey := must(ledger.VerifierOf(evil))
	stranger := mustKey(t)
	text := fmt.Sprintf("%s\norigin %s\nold %s\nnew %s\nsize %d\ntime %s\n", ledger.RotationHeader, keys.Origin, newKey, evilKey, total, time.Now().UTC().Format(time.RFC3339))
	forged := must(note.Sign(&note.Note{Text: text}, must(note.NewSigner(stranger)), must(note.NewSigner(evil))))
	forgedFile := filepath.Join(work, "2-forged.note")
	if err := os.WriteFile(forgedFile, forged, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := ctl("keys", "follow", "--verifier-file", oldPub, "--statements", filepath.Join(keyDir, "rotations"), forgedFile); err == nil {
		t.Fatalf("keys follow accepted a forged statement:\n%s", out)
	}
	d.stop()
	planted := filepath.Join(keyDir, "rotations", "2-forged.note")
	if err := os.WriteFile(planted, forged, 0o644); err != nil {
		t.Fatal(err)
	}
	if out := expectStartFails(t, dataDir, natsAddr, httpAddr, flags...); !strings.Contains(out, "rotation") {
		t.Fatalf("lineaged refused to start, but not over the forged statement:\n%s", out)
	}
	// Without it, lineaged starts again on the rotated key and its chain.
	if err := os.Remove(planted); err != nil {
		t.Fatal(err)
	}
	d = startDaemon(t, dataDir, natsAddr, httpAddr, flags...)
	if out, err := ctl("checkpoint", "--api", api, "--verifier-file", trusted, "--since", oldCP); err != nil {
		t.Fatalf("checkpoint after restart: %v\n%s", err, out)
	}
	d.stop()
	// An offline rebuild of the index opens the log with the data dir's keys.
	if ledgerName == "tessera" {
		if out, err := ctl("rebuild-index", "--data-dir", dataDir); err != nil {
			t.Fatalf("rebuild-index after a rotation: %v\n%s", err, out)
		}
	}
}

func mustKey(t *testing.T) string {
	t.Helper()
	skey, _, err := ledger.GenerateKey("lineage.test/e2e")
	if err != nil {
		t.Fatal(err)
	}
	return skey
}

// expectStartFails runs lineaged and expects it to exit with an error within a minute; it
// returns the output.
func expectStartFails(t *testing.T, dataDir, natsAddr, httpAddr string, extra ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args := append([]string{"serve", "--data-dir", dataDir, "--nats-addr", natsAddr,
		"--http-addr", httpAddr, "--log-origin", "lineage.test/e2e"}, extra...)
	out, err := exec.CommandContext(ctx, bins.lineaged, args...).CombinedOutput()
	if err == nil || ctx.Err() != nil {
		t.Fatalf("lineaged started (or hung) with a forged rotation statement: %v\n%s", err, out)
	}
	return string(out)
}
