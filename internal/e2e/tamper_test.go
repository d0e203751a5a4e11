package e2e

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/query"
)

// tamperLeaf changes one byte of the record's entry in the log's entry bundle files on disk
// (keeping the JSON valid, so only the Merkle proof can notice), checks that verify fails, and
// restores the files. It also tampers a saved answer and checks offline verification fails.
func tamperLeaf(t *testing.T, d *daemon, dataDir string, r lineage.Record, vfile string) {
	t.Helper()
	saved := filepath.Join(t.TempDir(), "proof.json")
	if out, err := ctl("verify", "--api", d.url(""), "--id", r.ID, "--tenant", r.Tenant, "--verifier-file", vfile, "--save", saved); err != nil {
		t.Fatalf("verify --save: %v\n%s", err, out)
	}
	if out, err := ctl("verify", "--proof", saved, "--verifier-file", vfile); err != nil {
		t.Fatalf("offline verify of a saved answer: %v\n%s", err, out)
	}
	var rp query.RecordProof
	if err := json.Unmarshal(must(os.ReadFile(saved)), &rp); err != nil {
		t.Fatal(err)
	}
	needle := []byte(`"target":"` + r.Action.Target + `"`)
	if !bytes.Contains(rp.Leaf, needle) {
		t.Fatalf("leaf does not contain %s", needle)
	}

	// Offline: one byte of the saved leaf.
	forged := rp
	forged.Leaf = bytes.Replace(rp.Leaf, needle, flipLast(needle), 1)
	forged.Record = nil
	expectVerifyFails(t, &forged, vfile, "a changed leaf byte in a saved answer")

	// On disk: every bundle file (full or partial) that holds the entry.
	restore := map[string][]byte{}
	_ = filepath.WalkDir(filepath.Join(dataDir, "log", "tile", "entries"), func(p string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		b := must(os.ReadFile(p))
		if bytes.Contains(b, rp.Leaf) {
			restore[p] = b
			if err := os.WriteFile(p, bytes.Replace(b, rp.Leaf, forged.Leaf, 1), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return nil
	})
	if len(restore) == 0 {
		t.Fatal("no entry bundle holds the record's leaf")
	}
	out, err := ctl("verify", "--api", d.url(""), "--id", r.ID, "--tenant", r.Tenant, "--verifier-file", vfile)
	if err == nil {
		t.Fatalf("verify passed with a changed leaf byte on disk:\n%s", out)
	}
	if !strings.Contains(out, "inclusion") && !strings.Contains(out, "differs") {
		t.Fatalf("verify failed, but not on the proof: %s", out)
	}
	for p, b := range restore {
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := ctl("verify", "--api", d.url(""), "--id", r.ID, "--tenant", r.Tenant, "--verifier-file", vfile); err != nil {
		t.Fatalf("verify after restoring the bundle: %v\n%s", err, out)
	}
}

// tamperCheckpoint changes one byte of the checkpoint, in a saved answer and on disk.
func tamperCheckpoint(t *testing.T, d *daemon, dataDir string, r lineage.Record, vfile string) {
	t.Helper()
	saved := filepath.Join(t.TempDir(), "proof.json")
	if out, err := ctl("verify", "--api", d.url(""), "--id", r.ID, "--tenant", r.Tenant, "--verifier-file", vfile, "--save", saved); err != nil {
		t.Fatalf("verify --save: %v\n%s", err, out)
	}
	var rp query.RecordProof
	if err := json.Unmarshal(must(os.ReadFile(saved)), &rp); err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitN(rp.Checkpoint, "\n", 4) // origin, size, root hash, rest
	root := []byte(lines[2])
	root[0] ^= 0x01
	lines[2] = string(root)
	forged := rp
	forged.Checkpoint = strings.Join(lines, "\n")
	expectVerifyFails(t, &forged, vfile, "a changed checkpoint byte in a saved answer")

	cpPath := filepath.Join(dataDir, "log", "checkpoint")
	orig := must(os.ReadFile(cpPath))
	if err := os.WriteFile(cpPath, []byte(forged.Checkpoint), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := ctl("verify", "--api", d.url(""), "--id", r.ID, "--tenant", r.Tenant, "--verifier-file", vfile)
	if err == nil {
		t.Fatalf("verify passed with a changed checkpoint on disk:\n%s", out)
	}
	if err := os.WriteFile(cpPath, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := ctl("verify", "--api", d.url(""), "--id", r.ID, "--tenant", r.Tenant, "--verifier-file", vfile); err != nil {
		t.Fatalf("verify after restoring the checkpoint: %v\n%s", err, out)
	}
}

func expectVerifyFails(t *testing.T, rp *query.RecordProof, vfile, what string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "forged.json")
	if err := os.WriteFile(p, must(json.Marshal(rp)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := ctl("verify", "--proof", p, "--verifier-file", vfile); err == nil {
		t.Fatalf("verify passed with %s:\n%s", what, out)
	}
}

// flipLast changes the last letter before the closing quote: `"target":"abc"` → `"target":"abd"`.
func flipLast(b []byte) []byte {
	out := bytes.Clone(b)
	out[len(out)-2] ^= 0x01
	return out
}
