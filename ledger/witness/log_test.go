package witness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lineage-audit/lineage/internal/testenv"
	"github.com/lineage-audit/lineage/ledger"
	"github.com/lineage-audit/lineage/ledger/ledgertest"
	"github.com/lineage-audit/lineage/ledger/tessera"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/mod/sumdb/note"
)

// The tests run real litewitness processes (internal/testenv) against real Tessera POSIX logs
// (and one Trillian log, trillian_test.go).

const waitLong = 30 * time.Second

// logKey is a log's checkpoint key.
type logKey struct {
	origin string
	signer note.Signer
	v      note.Verifier
	vkey   string
}

func newLogKey(t testing.TB, origin string) logKey {
	t.Helper()
	s, vkey, err := ledger.LoadOrCreateSigner(filepath.Join(t.TempDir(), "log.key"), origin)
	if err != nil {
		t.Fatal(err)
	}
	v, err := ledger.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return logKey{origin: origin, signer: s, v: v, vkey: vkey}
}

// openTessera opens (or reopens) a Tessera log in dir; it is closed when the test ends unless
// the test closed it.
func openTessera(t testing.TB, dir string, k logKey) *tessera.Log {
	t.Helper()
	o := tessera.DefaultOptions(dir, k.signer, k.v)
	o.CheckpointInterval = 100 * time.Millisecond
	l, err := tessera.Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { closeLog(t, l) }) })
	return l
}

func closeLog(t testing.TB, l ledger.Log) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := l.Close(ctx); err != nil {
		t.Errorf("close log: %v", err)
	}
}

// appendEntries adds n entries tagged tag and waits until the log's checkpoint covers them.
func appendEntries(t testing.TB, l ledger.Log, tag string, n int) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	es := make([][]byte, n)
	for i := range es {
		es[i] = []byte(fmt.Sprintf(`{"tag":%q,"i":%d,"t":%d}`, tag, i, time.Now().UnixNano()))
	}
	idx, err := ledgertest.AddAll(ctx, l, es)
	if err != nil {
		t.Fatal(err)
	}
	want := idx[len(idx)-1] + 1
	waitFor(t, "the log's checkpoint to reach "+fmt.Sprint(want), func() bool {
		cp, err := l.Checkpoint(ctx)
		return err == nil && cp.Size >= want
	})
	return want
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startWitnesses starts n litewitness processes that follow the log k.
func startWitnesses(t testing.TB, n int, k logKey) []*testenv.Witness {
	t.Helper()
	var ws []*testenv.Witness
	for i := 1; i <= n; i++ {
		w := testenv.StartWitness(t, fmt.Sprintf("witness-%d.lineage.test", i))
		w.AddLog(t, k.origin, k.vkey)
		ws = append(ws, w)
	}
	return ws
}

// policyFor writes the policy of ws with the given quorum group line ("" : all of them).
func policyFor(t testing.TB, ws []*testenv.Witness, threshold string) *Policy {
	t.Helper()
	var b strings.Builder
	var names []string
	for _, w := range ws {
		b.WriteString(w.PolicyLine() + "\n")
		names = append(names, w.Name)
	}
	if threshold == "" {
		threshold = "all"
	}
	fmt.Fprintf(&b, "group quorum-group %s %s\nquorum quorum-group\n", threshold, strings.Join(names, " "))
	path := filepath.Join(t.TempDir(), "witnesses.policy")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := LoadPolicy(path)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// logBuffer collects a Log's slog output.
type logBuffer struct{ testenv.SyncBuffer }

// lines returns the logged lines containing all of subs.
func (lb *logBuffer) lines(subs ...string) []string {
	var out []string
	for _, l := range strings.Split(lb.String(), "\n") {
		ok := true
		for _, s := range subs {
			ok = ok && strings.Contains(l, s)
		}
		if ok && l != "" {
			out = append(out, l)
		}
	}
	return out
}

// witnessed wraps inner and runs the witnessing until the test ends or stop is called.
type witnessed struct {
	*Log
	logs *logBuffer
	stop func()
}

func startWitnessed(t testing.TB, inner ledger.Log, k logKey, p *Policy, mode Mode, stateFile string) *witnessed {
	t.Helper()
	w := newWitnessed(t, inner, k, p, mode, stateFile)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	w.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Errorf("Run returned %v, want context.Canceled", err)
			}
		})
	}
	t.Cleanup(w.stop)
	return w
}

func newWitnessed(t testing.TB, inner ledger.Log, k logKey, p *Policy, mode Mode, stateFile string) *witnessed {
	t.Helper()
	lb := &logBuffer{}
	l, err := New(context.Background(), inner, Options{
		Policy: p, Mode: mode, Verifier: k.v, StateFile: stateFile,
		PollInterval: 50 * time.Millisecond, RetryMax: 300 * time.Millisecond, RequestTimeout: 5 * time.Second,
		Registerer: prometheus.NewRegistry(),
		Logger:     slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("witnessed log output:\n%s", lb.String())
		}
	})
	return &witnessed{Log: l, logs: lb, stop: func() {}}
}

// served returns the served checkpoint (failing the test on an error other than ErrNotFound;
// ok false for ErrNotFound).
func (w *witnessed) served(t testing.TB) (ledger.Checkpoint, bool) {
	t.Helper()
	cp, err := w.Checkpoint(context.Background())
	if errors.Is(err, ledger.ErrNotFound) {
		return cp, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return cp, true
}

// waitServed waits until the served checkpoint has at least size and meets cond.
func (w *witnessed) waitServed(t testing.TB, size uint64, cond func(ledger.Checkpoint) bool) ledger.Checkpoint {
	t.Helper()
	var cp ledger.Checkpoint
	waitFor(t, fmt.Sprintf("a served checkpoint of size %d", size), func() bool {
		var ok bool
		cp, ok = w.served(t)
		return ok && cp.Size >= size && (cond == nil || cond(cp))
	})
	return cp
}

func (w *witnessed) requests(name, result string) float64 {
	return testutil.ToFloat64(w.m.requests.WithLabelValues(name, result))
}

// cosignedBy returns the names of the witnesses in ws whose cosignature on n verifies.
func cosignedBy(n []byte, ws []*testenv.Witness, p *Policy) []string {
	var names []string
	for _, pw := range p.Witnesses {
		if nt, err := note.Open(n, note.VerifierList(pw.Verifier)); err == nil && len(nt.Sigs) == 1 {
			names = append(names, pw.Name)
		}
	}
	return names
}

func names(ws ...*testenv.Witness) []string {
	var s []string
	for _, w := range ws {
		s = append(s, w.Name)
	}
	return s
}

// checkCosigned checks a served checkpoint: it verifies with the log key (ledger.OpenCheckpoint,
// as every reader does), carries exactly the cosignatures of want, and meets the policy.
func checkCosigned(t testing.TB, cp ledger.Checkpoint, k logKey, ws []*testenv.Witness, p *Policy, want []string) {
	t.Helper()
	got, err := ledger.OpenCheckpoint(cp.Note, k.v)
	if err != nil {
		t.Fatalf("served checkpoint does not open with the log key: %v\n%s", err, cp.Note)
	}
	if got.Size != cp.Size || !bytes.Equal(got.Hash, cp.Hash) {
		t.Fatalf("served checkpoint note says %d/%x, the struct %d/%x", got.Size, got.Hash, cp.Size, cp.Hash)
	}
	if g := cosignedBy(cp.Note, ws, p); strings.Join(g, ",") != strings.Join(want, ",") {
		t.Fatalf("cosigned by %v, want %v\n%s", g, want, cp.Note)
	}
	if !p.Satisfied(cp.Note) {
		t.Fatalf("served checkpoint does not meet the quorum:\n%s", cp.Note)
	}
}

// TestCosignedCheckpoints: three witnesses, quorum all; every served checkpoint carries their
// three cosignatures, and they follow the log as it grows (consistency proofs from their size).
func TestCosignedCheckpoints(t *testing.T) {
	k := newLogKey(t, "lineage.test/cosigned")
	inner := openTessera(t, t.TempDir(), k)
	ws := startWitnesses(t, 3, k)
	p := policyFor(t, ws, "all")
	w := startWitnessed(t, inner, k, p, ModeHold, "")

	// Before the log has a checkpoint, and before a quorum: ErrNotFound with the reason.
	if _, err := w.Checkpoint(context.Background()); !errors.Is(err, ledger.ErrNotFound) || !strings.Contains(err.Error(), "quorum") {
		t.Fatalf("Checkpoint before any quorum: %v", err)
	}
	n1 := appendEntries(t, inner, "a", 10)
	cp := w.waitServed(t, n1, nil)
	checkCosigned(t, cp, k, ws, p, names(ws...))
	t.Logf("a cosigned checkpoint (3 witnesses):\n%s", cp.Note)

	for round := range 3 {
		n := appendEntries(t, inner, fmt.Sprint("b", round), 300)
		cp = w.waitServed(t, n, nil)
		checkCosigned(t, cp, k, ws, p, names(ws...))
	}
	for _, x := range ws {
		if got := x.LogSize(t, k.origin); got < cp.Size {
			t.Errorf("witness %s holds size %d, served %d", x.Name, got, cp.Size)
		}
		if got := testutil.ToFloat64(w.m.lastCosigned.WithLabelValues(x.Name)); uint64(got) < cp.Size {
			t.Errorf("last_cosigned_size{%s} = %v, want ≥ %d", x.Name, got, cp.Size)
		}
		if ok := w.requests(x.Name, ResultOK); ok < 4 {
			t.Errorf("requests{%s,ok} = %v, want ≥ 4", x.Name, ok)
		}
		for _, r := range []string{ResultRefused, ResultUnreachable, ResultBadResponse} {
			if v := w.requests(x.Name, r); v != 0 {
				t.Errorf("requests{%s,%s} = %v, want 0", x.Name, r, v)
			}
		}
	}
	if v := testutil.ToFloat64(w.m.quorumMet); v != 1 {
		t.Errorf("quorum_met = %v", v)
	}
	waitFor(t, "lag 0", func() bool { return testutil.ToFloat64(w.m.lag) == 0 })
	if c := testutil.CollectAndCount(w.m.latency); c != 1 {
		t.Errorf("latency histogram series %d", c)
	}
	// The wrapper answers proofs against the served checkpoint through the inner log.
	es, err := w.Entries(context.Background(), 0, 1, cp.Size)
	if err != nil {
		t.Fatal(err)
	}
	proof, err := w.InclusionProof(context.Background(), 0, cp.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := ledger.VerifyInclusion(es[0], 0, proof, cp); err != nil {
		t.Fatal(err)
	}
}

// TestQuorumTwoOfThreeHold: with a 2-of-3 quorum in hold mode, one witness down does not stop
// cosigning; two down hold the served checkpoint at its size while the log grows (quorum_met 0,
// lag growing, requests counted unreachable); when they come back, the newest is served.
func TestQuorumTwoOfThreeHold(t *testing.T) {
	k := newLogKey(t, "lineage.test/hold")
	inner := openTessera(t, t.TempDir(), k)
	ws := startWitnesses(t, 3, k)
	p := policyFor(t, ws, "2")
	w := startWitnessed(t, inner, k, p, ModeHold, "")
	ctx := context.Background()

	n1 := appendEntries(t, inner, "a", 5)
	w.waitServed(t, n1, func(cp ledger.Checkpoint) bool { return len(cosignedBy(cp.Note, ws, p)) == 3 })

	ws[2].Stop(t)
	n2 := appendEntries(t, inner, "b", 5)
	cp2 := w.waitServed(t, n2, nil)
	checkCosigned(t, cp2, k, ws, p, names(ws[0], ws[1]))
	waitFor(t, "witness-3 counted unreachable", func() bool { return w.requests(ws[2].Name, ResultUnreachable) > 0 })

	ws[1].Stop(t)
	n3 := appendEntries(t, inner, "c", 5)
	waitFor(t, "quorum_met 0", func() bool { return testutil.ToFloat64(w.m.quorumMet) == 0 })
	// Only witness-1 cosigns the new checkpoint; the served one stays at n2.
	waitFor(t, "witness-1 to cosign "+fmt.Sprint(n3), func() bool { return ws[0].LogSize(t, k.origin) == n3 })
	time.Sleep(300 * time.Millisecond)
	cp, ok := w.served(t)
	if !ok || cp.Size != n2 || !bytes.Equal(cp.Note, cp2.Note) {
		t.Fatalf("hold mode served %d (ok %v), want the cosigned %d", cp.Size, ok, n2)
	}
	if inCp, _ := inner.Checkpoint(ctx); inCp.Size != n3 {
		t.Fatalf("inner log at %d, want %d: the log must keep sequencing", inCp.Size, n3)
	}
	if lag := testutil.ToFloat64(w.m.lag); lag != float64(n3-n2) {
		t.Errorf("lag = %v, want %d", lag, n3-n2)
	}
	if v := w.requests(ws[1].Name, ResultUnreachable); v == 0 {
		t.Errorf("requests{witness-2,unreachable} = 0")
	}
	if len(w.logs.lines("quorum not met")) == 0 {
		t.Errorf("no \"quorum not met\" log line")
	}

	ws[1].Start(t)
	ws[2].Start(t)
	cp = w.waitServed(t, n3, func(cp ledger.Checkpoint) bool { return len(cosignedBy(cp.Note, ws, p)) == 3 })
	checkCosigned(t, cp, k, ws, p, names(ws...))
	waitFor(t, "quorum_met 1", func() bool { return testutil.ToFloat64(w.m.quorumMet) == 1 })
	if lag := testutil.ToFloat64(w.m.lag); lag != 0 {
		t.Errorf("lag after recovery = %v", lag)
	}
	if len(w.logs.lines("quorum met again")) == 0 {
		t.Errorf("no \"quorum met again\" log line")
	}
}

// TestQuorumTwoOfThreeOpen: in open mode the newest checkpoint is served with whatever
// cosignatures it got, and lineage_witness_serving_unwitnessed raises the alarm while they do
// not meet the quorum.
func TestQuorumTwoOfThreeOpen(t *testing.T) {
	k := newLogKey(t, "lineage.test/open")
	inner := openTessera(t, t.TempDir(), k)
	ws := startWitnesses(t, 3, k)
	p := policyFor(t, ws, "2")
	w := startWitnessed(t, inner, k, p, ModeOpen, "")

	n1 := appendEntries(t, inner, "a", 5)
	cp := w.waitServed(t, n1, func(cp ledger.Checkpoint) bool { return len(cosignedBy(cp.Note, ws, p)) == 3 })
	checkCosigned(t, cp, k, ws, p, names(ws...))
	if v := testutil.ToFloat64(w.m.unwitnessed); v != 0 {
		t.Fatalf("serving_unwitnessed = %v with all witnesses up", v)
	}

	ws[1].Stop(t)
	ws[2].Stop(t)
	n2 := appendEntries(t, inner, "b", 5)
	// The newest checkpoint is served at once, with witness-1's cosignature once it comes.
	cp = w.waitServed(t, n2, func(cp ledger.Checkpoint) bool { return len(cosignedBy(cp.Note, ws, p)) == 1 })
	if _, err := ledger.OpenCheckpoint(cp.Note, k.v); err != nil {
		t.Fatal(err)
	}
	if p.Satisfied(cp.Note) {
		t.Fatal("a checkpoint with one cosignature meets a 2-of-3 quorum")
	}
	waitFor(t, "the unwitnessed alarm", func() bool {
		return testutil.ToFloat64(w.m.unwitnessed) == 1 && testutil.ToFloat64(w.m.quorumMet) == 0
	})
	if lag := testutil.ToFloat64(w.m.lag); lag != float64(n2-n1) {
		t.Errorf("lag = %v, want %d (behind the newest checkpoint meeting the quorum)", lag, n2-n1)
	}

	ws[1].Start(t)
	ws[2].Start(t)
	cp = w.waitServed(t, n2, func(cp ledger.Checkpoint) bool { return len(cosignedBy(cp.Note, ws, p)) == 3 })
	checkCosigned(t, cp, k, ws, p, names(ws...))
	waitFor(t, "the alarm to clear", func() bool {
		return testutil.ToFloat64(w.m.unwitnessed) == 0 && testutil.ToFloat64(w.m.quorumMet) == 1
	})
}

// TestForkedWitness: a witness that first witnessed another history of the log (a second
// Tessera log with the same origin and key but other entries) refuses ours, and a policy that
// needs it fails visibly: no checkpoint is served, the refusal is logged as a possible split
// view and counted.
func TestForkedWitness(t *testing.T) {
	k := newLogKey(t, "lineage.test/fork")
	ws := startWitnesses(t, 3, k)
	forked := ws[2]

	// The fork: 20 entries, witnessed by witness-3 alone.
	fork := openTessera(t, t.TempDir(), k)
	nf := appendEntries(t, fork, "fork", 20)
	fw := startWitnessed(t, fork, k, policyFor(t, ws[2:], "all"), ModeHold, "")
	fw.waitServed(t, nf, nil)
	fw.stop()
	if got := forked.LogSize(t, k.origin); got != nf {
		t.Fatalf("witness-3 holds %d, want the fork's %d", got, nf)
	}

	inner := openTessera(t, t.TempDir(), k)
	p := policyFor(t, ws, "all")
	w := startWitnessed(t, inner, k, p, ModeHold, "")

	// Smaller than the fork: the witness answers 409 with a size beyond ours.
	n1 := appendEntries(t, inner, "ours", 8)
	waitFor(t, "the conflict to be reported", func() bool {
		return testutil.ToFloat64(w.m.differentHistory.WithLabelValues(forked.Name)) > 0
	})
	waitFor(t, "witness-1 and -2 to cosign", func() bool {
		return ws[0].LogSize(t, k.origin) == n1 && ws[1].LogSize(t, k.origin) == n1
	})
	if _, ok := w.served(t); ok {
		t.Fatal("a checkpoint was served without the forked witness's cosignature")
	}
	// Beyond the fork: 409 with the fork's size, then a consistency proof from it, which the
	// witness refuses with 422.
	n2 := appendEntries(t, inner, "ours-more", 30)
	waitFor(t, "a 422 from the forked witness", func() bool {
		return len(w.logs.lines("possible split view", forked.Name, "status=422")) > 0
	})
	if _, err := w.Checkpoint(context.Background()); !errors.Is(err, ledger.ErrNotFound) || !strings.Contains(err.Error(), forked.Name) {
		t.Fatalf("Checkpoint = %v, want ErrNotFound naming %s", err, forked.Name)
	}
	if v := w.requests(forked.Name, ResultRefused); v == 0 {
		t.Error("requests{witness-3,refused} = 0")
	}
	if v := w.requests(forked.Name, ResultConflict); v == 0 {
		t.Error("requests{witness-3,conflict} = 0")
	}
	if got := forked.LogSize(t, k.origin); got != nf {
		t.Errorf("the forked witness moved to %d", got)
	}
	waitFor(t, "quorum_met 0", func() bool { return testutil.ToFloat64(w.m.quorumMet) == 0 })
	if lag := testutil.ToFloat64(w.m.lag); lag != float64(n2) {
		t.Errorf("lag = %v, want %d", lag, n2)
	}
	for _, l := range w.logs.lines("possible split view", forked.Name) {
		t.Logf("fork refusal: %s", l)
		break
	}
}

// TestSplitView: the same origin and key sign two different trees, and both are sent to the
// same witnesses. The witnesses cosign the first they see and refuse the other; the refusal is
// logged and counted, and the other view is never served.
func TestSplitView(t *testing.T) {
	k := newLogKey(t, "lineage.test/split")
	ws := startWitnesses(t, 2, k)
	p := policyFor(t, ws, "all")

	a := openTessera(t, t.TempDir(), k)
	b := openTessera(t, t.TempDir(), k)
	wa := startWitnessed(t, a, k, p, ModeHold, "")
	na := appendEntries(t, a, "view-a", 10)
	wa.waitServed(t, na, nil)

	wb := startWitnessed(t, b, k, p, ModeHold, "")
	nb := appendEntries(t, b, "view-b", 10) // the same size, another tree
	waitFor(t, "both witnesses to refuse the split view", func() bool {
		for _, x := range ws {
			if testutil.ToFloat64(wb.m.differentHistory.WithLabelValues(x.Name)) == 0 || wb.requests(x.Name, ResultRefused) == 0 {
				return false
			}
		}
		return true
	})
	if _, ok := wb.served(t); ok {
		t.Fatal("the second view was served")
	}
	for _, x := range ws {
		if got := x.LogSize(t, k.origin); got != na {
			t.Errorf("witness %s holds %d, want view A's %d", x.Name, got, na)
		}
	}
	lines := wb.logs.lines("witness reports a different history (possible split view)", "status=422")
	if len(lines) == 0 {
		t.Fatal("no split view log line")
	}
	t.Logf("split view refusal (view B, size %d): %s", nb, lines[0])

	// A direct request shows the witness's own answer.
	cpB, err := b.Checkpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_, err = (&Client{}).AddCheckpoint(context.Background(), p.Witnesses[0], na, nil, cpB.Note)
	var we *Error
	if !errors.As(err, &we) || we.Status != 422 || we.Result != ResultRefused {
		t.Fatalf("split view request: %v, want a 422 refusal", err)
	}
	t.Logf("split view refusal, the witness's answer: %v", err)

	// View A keeps being cosigned.
	na2 := appendEntries(t, a, "view-a-more", 5)
	wa.waitServed(t, na2, nil)
}

// TestRestartHold: a restart in hold mode serves the kept cosigned checkpoint at once, before
// any witness answers (here: all of them down). A kept file that does not verify with the log
// key, or is not consistent with the log, is refused.
func TestRestartHold(t *testing.T) {
	k := newLogKey(t, "lineage.test/restart")
	dir := t.TempDir()
	state := filepath.Join(t.TempDir(), "witness", "cosigned-checkpoint")
	ws := startWitnesses(t, 2, k)
	p := policyFor(t, ws, "all")

	inner := openTessera(t, dir, k)
	w := startWitnessed(t, inner, k, p, ModeHold, state)
	n := appendEntries(t, inner, "a", 7)
	cp := w.waitServed(t, n, nil)
	waitFor(t, "the kept checkpoint", func() bool {
		b, err := os.ReadFile(state)
		return err == nil && bytes.Equal(b, cp.Note)
	})
	w.stop()
	closeLog(t, inner)
	for _, x := range ws {
		x.Stop(t)
	}

	inner = openTessera(t, dir, k)
	n2 := appendEntries(t, inner, "after-restart", 3) // the log moved on; nobody can cosign
	r := newWitnessed(t, inner, k, p, ModeHold, state)
	got, ok := r.served(t)
	if !ok || got.Size != n || !bytes.Equal(got.Note, cp.Note) {
		t.Fatalf("after restart served %d (ok %v), want the kept %d", got.Size, ok, n)
	}
	checkCosigned(t, got, k, ws, p, names(ws...))
	if lag := testutil.ToFloat64(r.m.lag); lag != float64(n2-n) {
		t.Errorf("lag after restart = %v, want %d", lag, n2-n)
	}

	refuse := func(name string, content []byte, inner ledger.Log, want string) {
		t.Helper()
		f := filepath.Join(t.TempDir(), "kept")
		if err := os.WriteFile(f, content, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := New(context.Background(), inner, Options{Policy: p, Verifier: k.v, StateFile: f, Registerer: prometheus.NewRegistry()})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: New = %v, want an error containing %q", name, err, want)
		}
	}
	// Altered: one byte of the root hash changed.
	bad := bytes.Replace(cp.Note, []byte("\n"), []byte("\nX"), 1)
	refuse("altered", bad, inner, "does not verify")
	// Another key (same origin).
	other := newLogKey(t, k.origin)
	otherNote, err := note.Sign(&note.Note{Text: string(cp.Note[:bytes.Index(cp.Note, []byte("\n\n"))+1])}, other.signer)
	if err != nil {
		t.Fatal(err)
	}
	refuse("other key", otherNote, inner, "does not verify")
	// A checkpoint of the same key over another tree (a fork) of a larger size.
	fork := openTessera(t, t.TempDir(), k)
	nf := appendEntries(t, fork, "fork", int(n2)+5)
	fcp, err := fork.Checkpoint(context.Background())
	if err != nil || fcp.Size != nf {
		t.Fatal(err)
	}
	refuse("beyond the log", fcp.Note, inner, "beyond the log")
	// Same key, another tree of a smaller size: not consistent.
	fork2 := openTessera(t, t.TempDir(), k)
	appendEntries(t, fork2, "fork2", 2)
	f2cp, err := fork2.Checkpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	refuse("inconsistent", f2cp.Note, inner, "not consistent")
	refuse("too large", bytes.Repeat([]byte("x"), MaxStateFile+1), inner, "larger than")
}

// TestClientRefusals: the witness's answers to requests it must refuse, through Client.
func TestClientRefusals(t *testing.T) {
	k := newLogKey(t, "lineage.test/client")
	ws := startWitnesses(t, 1, k)
	p := policyFor(t, ws, "all")
	pw := p.Witnesses[0]
	l := openTessera(t, t.TempDir(), k)
	n := appendEntries(t, l, "a", 4)
	cp, err := l.Checkpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c := &Client{}
	ctx := context.Background()
	check := func(name string, err error, result string, status int) *Error {
		t.Helper()
		var we *Error
		if !errors.As(err, &we) || we.Result != result || we.Status != status || we.Witness != pw.Name {
			t.Fatalf("%s: %v, want %s with HTTP %d", name, err, result, status)
		}
		t.Logf("%s: %v", name, err)
		return we
	}
	// An unknown log (torchwood answers 403; C2SP tlog-witness allows 404).
	unknown := newLogKey(t, "lineage.test/unknown")
	ul := openTessera(t, t.TempDir(), unknown)
	appendEntries(t, ul, "u", 1)
	ucp, _ := ul.Checkpoint(ctx)
	check("unknown log", func() error { _, err := c.AddCheckpoint(ctx, pw, 0, nil, ucp.Note); return err }(), ResultRefused, 403)
	// The right origin signed by another key.
	other := newLogKey(t, k.origin)
	text := cp.Note[:bytes.Index(cp.Note, []byte("\n\n"))+1]
	forged, err := note.Sign(&note.Note{Text: string(text)}, other.signer)
	if err != nil {
		t.Fatal(err)
	}
	check("other key", func() error { _, err := c.AddCheckpoint(ctx, pw, 0, nil, forged); return err }(), ResultRefused, 403)
	// Old size beyond the checkpoint.
	check("old > size", func() error { _, err := c.AddCheckpoint(ctx, pw, n+1, nil, cp.Note); return err }(), ResultRefused, 400)
	// First cosignature, then a conflict: the witness says its size.
	cs, err := c.AddCheckpoint(ctx, pw, 0, nil, cp.Note)
	if err != nil || len(cs.Lines) == 0 || cs.Ignored != 0 || time.Since(cs.Time) > time.Minute {
		t.Fatalf("cosign: %+v, %v", cs, err)
	}
	we := check("stale old size", func() error { _, err := c.AddCheckpoint(ctx, pw, 0, nil, cp.Note); return err }(), ResultConflict, 409)
	if !we.HasSize || we.Size != n {
		t.Fatalf("409 size %d (has %v), want %d", we.Size, we.HasSize, n)
	}
	// A bad consistency proof.
	n2 := appendEntries(t, l, "b", 3)
	cp2, _ := l.Checkpoint(ctx)
	p2, err := l.ConsistencyProof(ctx, n, n2)
	if err != nil {
		t.Fatal(err)
	}
	badProof := make([][]byte, len(p2))
	for i := range p2 {
		badProof[i] = bytes.Clone(p2[i])
	}
	badProof[0][0] ^= 1
	check("bad proof", func() error { _, err := c.AddCheckpoint(ctx, pw, n, badProof, cp2.Note); return err }(), ResultRefused, 422)
	if _, err := c.AddCheckpoint(ctx, pw, n, p2, cp2.Note); err != nil {
		t.Fatalf("good proof: %v", err)
	}
	// Nobody listening.
	down := pw
	down.URL = "http://127.0.0.1:1/add-checkpoint"
	check("down", func() error { _, err := c.AddCheckpoint(ctx, down, 0, nil, cp.Note); return err }(), ResultUnreachable, 0)
}

// TestWitnessNotToldTheLog: a witness that does not know the log refuses (403, logged with the
// hint to add the key); once the operator adds the log's key, the retries get cosignatures.
func TestWitnessNotToldTheLog(t *testing.T) {
	k := newLogKey(t, "lineage.test/untold")
	x := testenv.StartWitness(t, "witness-untold.lineage.test")
	p := policyFor(t, []*testenv.Witness{x}, "all")
	inner := openTessera(t, t.TempDir(), k)
	w := startWitnessed(t, inner, k, p, ModeHold, "")
	n := appendEntries(t, inner, "a", 3)
	waitFor(t, "a logged refusal", func() bool {
		return len(w.logs.lines("witness refused the checkpoint", "status=403", "witnessctl add-log")) > 0
	})
	if v := w.requests(x.Name, ResultRefused); v == 0 {
		t.Fatal("requests{refused} = 0")
	}
	if _, err := w.Checkpoint(context.Background()); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("Checkpoint = %v, want ErrNotFound", err)
	}
	t.Logf("refusal: %s", w.logs.lines("witness refused the checkpoint")[0])
	x.AddLog(t, k.origin, k.vkey)
	cp := w.waitServed(t, n, nil)
	checkCosigned(t, cp, k, []*testenv.Witness{x}, p, names(x))
}
