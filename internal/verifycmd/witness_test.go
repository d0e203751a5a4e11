package verifycmd

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lineage-audit/lineage/exporters/report"
	"github.com/lineage-audit/lineage/exporters/report/reporttest"
	"github.com/lineage-audit/lineage/internal/demo"
	"github.com/lineage-audit/lineage/ledger"
	"github.com/lineage-audit/lineage/query"
	"github.com/lineage-audit/lineage/verify"
	"github.com/lineage-audit/lineage/verify/witnesstest"
)

// servedLog is a real log whose Checkpoint is a fixed checkpoint of it, cosigned: what the
// witnessed log (ledger/witness) serves.
type servedLog struct {
	ledger.Log
	cp ledger.Checkpoint
}

func (l *servedLog) Checkpoint(context.Context) (ledger.Checkpoint, error) { return l.cp, nil }

func run(t *testing.T, cmd func(Env, []string) error, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := cmd(Env{Prog: "test", EnvPrefix: "LINEAGE_TEST_", Stdout: &out}, args)
	return out.String(), err
}

// TestWitnessPolicyCommands runs the checkpoint, consistency and bundle commands over a real
// Tessera log and a real export bundle, with checkpoints cosigned by real cosignature/v1 keys:
// --witness-policy fails without the quorum, passes with it, ignores cosignature lines from
// keys it does not name, and refuses a corrupted cosignature from a key it names; without it
// the output says how many cosignatures went unchecked.
func TestWitnessPolicyCommands(t *testing.T) {
	recs := demo.Generate(demo.Options{Seed: 3, Tenants: 1, Start: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC), Step: time.Hour}, 60)
	r := reporttest.New(t, recs[:40])
	ctx := context.Background()
	oldCP, err := r.Log.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r.Append(t, recs[40:])
	newCP, err := r.Log.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w1, w2 := witnesstest.New(t, "w1.example"), witnesstest.New(t, "w2.example")
	stranger := witnesstest.New(t, "stranger.example")
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return f
	}
	policy := write("policy", witnesstest.Policy("2", w1, w2))
	cosign := func(cp ledger.Checkpoint, ws ...witnesstest.Witness) ledger.Checkpoint {
		cp.Note = witnesstest.Cosign(t, cp.Note, r.Verifier, ws...)
		return cp
	}
	oldBoth := cosign(oldCP, w1, stranger, w2)
	newOne := cosign(newCP, w1, stranger)
	newBoth := cosign(newCP, stranger, w1, w2)
	newBad := newBoth
	newBad.Note = witnesstest.CorruptSig(t, newBoth.Note, "w2.example")
	newStrangerBad := newBoth
	newStrangerBad.Note = witnesstest.CorruptSig(t, newBoth.Note, "stranger.example")

	p, err := r.Log.ConsistencyProof(ctx, oldCP.Size, newCP.Size)
	if err != nil {
		t.Fatal(err)
	}
	pj, _ := json.Marshal(map[string]any{"proof": p})
	proofFile := write("consistency.json", pj)
	oldFile := write("old", oldBoth.Note)

	for _, c := range []struct {
		name string
		cp   ledger.Checkpoint
		err  string // "" when it must pass with the policy
	}{
		{"quorum", newBoth, ""},
		{"one of two", newOne, "lacks the witness quorum (group q: 2 of w1.example w2.example): cosigned by w1.example ("},
		{"uncosigned", newCP, "cosigned by none of the policy's witnesses; missing w1.example, w2.example"},
		{"corrupted known cosignature", newBad, "witness w2.example: the cosignature line of its key w2.example does not verify"},
		{"corrupted stranger's cosignature", newStrangerBad, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			newFile := write("new-"+strings.ReplaceAll(c.name, " ", "-"), c.cp.Note)
			api := &query.API{Log: &servedLog{Log: r.Log, cp: c.cp}, Verifier: r.VKey}
			srv := httptest.NewServer(api.Handler())
			defer srv.Close()
			checks := []struct {
				cmd  func(Env, []string) error
				args []string
			}{
				{Consistency, []string{"--old", oldFile, "--new", newFile, "--proof", proofFile, "--verifier", r.VKey}},
				{Checkpoint, []string{"--api", srv.URL, "--since", oldFile, "--verifier", r.VKey}},
			}
			for _, x := range checks {
				out, err := run(t, x.cmd, append(x.args, "--witness-policy", policy)...)
				switch {
				case c.err == "" && err != nil:
					t.Fatalf("%v: %v", x.args, err)
				case c.err == "" && !strings.Contains(out, "witnessed, quorum group q: 2 of w1.example w2.example: cosigned by w1.example ("):
					t.Fatalf("%v: output %s", x.args, out)
				case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
					t.Fatalf("%v: %v, want an error containing %q", x.args, err, c.err)
				}
				// Without a policy the cosignatures are counted, not checked: the
				// corrupted one passes, and the output says so.
				out, err = run(t, x.cmd, x.args...)
				if err != nil {
					t.Fatalf("%v without a policy: %v", x.args, err)
				}
				n := strings.Count(string(c.cp.Note), "\n— ") - 1
				if want := fmt.Sprintf("NOTE: the checkpoint carries %d cosignature(s)", n); !strings.Contains(strings.Replace(out, "newer checkpoint", "checkpoint", 1), want) {
					t.Fatalf("%v without a policy: output %s, want %q", x.args, out, want)
				}
			}
		})
	}

	// The older checkpoint is checked by consistency too.
	oldUnwitnessed := write("old-bare", oldCP.Note)
	newFile := write("new-both", newBoth.Note)
	if _, err := run(t, Consistency, "--old", oldUnwitnessed, "--new", newFile, "--proof", proofFile, "--verifier", r.VKey, "--witness-policy", policy); err == nil || !strings.Contains(err.Error(), "older checkpoint of size 40") {
		t.Fatalf("unwitnessed older checkpoint: %v", err)
	}

	// A bundle exported from the witnessed log carries the cosigned checkpoint, and its
	// verification passes it through the policy.
	for _, c := range []struct {
		name string
		cp   ledger.Checkpoint
		err  string
	}{
		{"quorum", newBoth, ""},
		{"one of two", newOne, "checkpoint-witness checkpoint: the checkpoint lacks the witness quorum"},
	} {
		e := &report.Exporter{Log: &servedLog{Log: r.Log, cp: c.cp}, Signer: r.Signer, Verifier: r.Verifier, Generator: "lineage test"}
		out := filepath.Join(dir, "exp-"+strings.ReplaceAll(c.name, " ", "-"))
		res, err := e.Export(ctx, report.Request{Kind: report.KindFannieMae, Tenant: recs[0].Tenant,
			From: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)},
			out, report.Run{ID: "exp-witness-test", RequestedBy: "apikey:compliance"})
		if err != nil {
			t.Fatal(err)
		}
		bundle := filepath.Join(out, res.Bundle)
		stdout, err := run(t, Verify, bundle, "--verifier", r.VKey, "--witness-policy", policy)
		if c.err == "" {
			if err != nil || !strings.Contains(stdout, "OK: the checkpoint is witnessed, quorum group q: 2 of w1.example w2.example") {
				t.Fatalf("bundle %s: %v\n%s", c.name, err, stdout)
			}
		} else if err == nil {
			t.Fatalf("bundle %s verified with the policy", c.name)
		}
		if c.err != "" {
			// The problem is listed on stderr; check it through the verify package.
			pol, err := verify.LoadWitnessPolicy(policy)
			if err != nil {
				t.Fatal(err)
			}
			rep, err := verify.VerifyBundleWith(bundle, r.Verifier, verify.BundleOptions{Witnesses: pol})
			if err == nil || len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0].String(), c.err) || rep.Records == 0 {
				t.Fatalf("bundle %s: %v, problems %v, %d records verified", c.name, err, rep.Problems, rep.Records)
			}
			if _, err := run(t, Verify, "--verifier", r.VKey, "--witness-policy", policy, bundle); err == nil {
				t.Fatalf("bundle %s (flags first) verified", c.name)
			}
		}
		stdout, err = run(t, Verify, bundle, "--verifier", r.VKey)
		if err != nil || !strings.Contains(stdout, "NOTE: the checkpoint carries") {
			t.Fatalf("bundle %s without a policy: %v\n%s", c.name, err, stdout)
		}
	}
}
