package witness

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lineage-audit/lineage/internal/testenv"
	"github.com/lineage-audit/lineage/ledger"
	"github.com/lineage-audit/lineage/ledger/trillian"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestTrillianCosigned: the same witnessing over a Trillian log (Lineage signs its own
// checkpoints over Trillian's roots), with a 2-of-3 quorum and one witness down, persisted and
// served again after a restart.
func TestTrillianCosigned(t *testing.T) {
	k := newLogKey(t, "lineage.test/trillian-witnessed")
	tr := testenv.StartTrillian(t)
	o := trillian.DefaultOptions(tr.Addr, tr.CreateTree(t), filepath.Join(t.TempDir(), "trillian-state"), k.signer, k.v)
	o.CheckpointInterval = 50 * time.Millisecond
	o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	inner, err := trillian.Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer closeLog(t, inner)

	ws := startWitnesses(t, 3, k)
	p := policyFor(t, ws, "2")
	state := filepath.Join(t.TempDir(), "cosigned-checkpoint")
	w := startWitnessed(t, inner, k, p, ModeHold, state)

	n1 := appendEntries(t, inner, "a", 20)
	cp := w.waitServed(t, n1, func(cp ledger.Checkpoint) bool { return len(cosignedBy(cp.Note, ws, p)) == 3 })
	checkCosigned(t, cp, k, ws, p, names(ws...))
	t.Logf("a cosigned checkpoint over a Trillian root:\n%s", cp.Note)

	ws[0].Stop(t)
	n2 := appendEntries(t, inner, "b", 20)
	cp = w.waitServed(t, n2, nil)
	checkCosigned(t, cp, k, ws, p, names(ws[1], ws[2]))
	es, err := w.Entries(ctx, n2-1, 1, cp.Size)
	if err != nil {
		t.Fatal(err)
	}
	proof, err := w.InclusionProof(ctx, n2-1, cp.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := ledger.VerifyInclusion(es[0], n2-1, proof, cp); err != nil {
		t.Fatal(err)
	}
	if v := w.requests(ws[0].Name, ResultUnreachable); v == 0 {
		t.Error("requests{witness-1,unreachable} = 0")
	}
	waitFor(t, "the kept checkpoint", func() bool {
		b, err := os.ReadFile(state)
		return err == nil && string(b) == string(cp.Note)
	})
	w.stop()

	// A restart serves the kept checkpoint at once.
	r := newWitnessed(t, inner, k, p, ModeHold, state)
	got, ok := r.served(t)
	if !ok || got.Size != n2 || string(got.Note) != string(cp.Note) {
		t.Fatalf("after restart served %d (ok %v), want %d", got.Size, ok, n2)
	}
	if v := testutil.ToFloat64(r.m.servedSize); v != float64(n2) {
		t.Errorf("cosigned_size = %v", v)
	}
}
