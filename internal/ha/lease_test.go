package ha

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/lineage-audit/lineage/internal/testenv"
	"github.com/lineage-audit/lineage/ledger"
	"github.com/lineage-audit/lineage/ledger/trillian"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func openLease(t *testing.T, js jetstream.JetStream, node string, ttl time.Duration, m *Metrics) *Lease {
	t.Helper()
	l, err := OpenLease(context.Background(), LeaseConfig{JS: js, Node: node, TTL: ttl, Metrics: m, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// One holder at a time; a holder that stops renewing (its connection gone, as when its process
// is killed) loses the lease by its own deadline, and a standby takes it once the key expired:
// within the TTL plus a poll.
func TestLeaseTakeoverAfterDeath(t *testing.T) {
	s := testenv.StartJetStream(t)
	const ttl = 2 * time.Second
	ncA, jsA := testenv.ConnectJetStream(t, s)
	_, jsB := testenv.ConnectJetStream(t, s)
	mA, mB := NewMetrics(prometheus.NewRegistry()), NewMetrics(prometheus.NewRegistry())
	a, b := openLease(t, jsA, "a", ttl, mA), openLease(t, jsB, "b", ttl, mB)

	ctx := context.Background()
	ta, err := a.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if testutil.ToFloat64(mA.Writer) != 1 || testutil.ToFloat64(mA.Acquired) != 1 {
		t.Fatal("metrics do not show a's lease")
	}
	// While a renews, b cannot take the lease, for several TTLs.
	bctx, bcancel := context.WithTimeout(ctx, 3*ttl)
	if _, err := b.Acquire(bctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("b took a held lease: %v", err)
	}
	bcancel()
	if err := ta.Check(); err != nil {
		t.Fatalf("a lost its lease while renewing: %v", err)
	}
	if h, ok, err := b.Current(ctx); err != nil || !ok || h.Node != "a" {
		t.Fatalf("current holder %+v %v %v, want a", h, ok, err)
	}
	revA := ta.Revision()

	// a dies: no more renewals reach the server.
	died := time.Now()
	ncA.Close()
	tb, err := b.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(died)
	if took > ttl+ttl/2 {
		t.Errorf("b took over %v after a died; want within the TTL %v plus a poll", took, ttl)
	}
	if tb.Revision() <= revA {
		t.Errorf("b's revision %d does not exceed a's %d: it is no fencing token", tb.Revision(), revA)
	}
	// a, cut off, has judged its lease lost by its own deadline before b could take it.
	select {
	case <-ta.Done():
	default:
		t.Fatal("a's term did not end")
	}
	if err := ta.Check(); !errors.Is(err, ErrLeaseLost) || !errors.Is(err, ledger.ErrFenced) {
		t.Fatalf("a's Check after losing: %v", err)
	}
	if testutil.ToFloat64(mA.Writer) != 0 || testutil.ToFloat64(mA.Lost) != 1 {
		t.Fatal("metrics do not show a's loss")
	}
	t.Logf("takeover %v after the holder died (TTL %v)", took.Round(10*time.Millisecond), ttl)
	tb.Release(ctx)
}

// A graceful stop releases the lease: the standby takes it at once, not after the TTL.
func TestLeaseRelease(t *testing.T) {
	s := testenv.StartJetStream(t)
	const ttl = 4 * time.Second
	_, jsA := testenv.ConnectJetStream(t, s)
	_, jsB := testenv.ConnectJetStream(t, s)
	a, b := openLease(t, jsA, "a", ttl, nil), openLease(t, jsB, "b", ttl, nil)
	ctx := context.Background()
	ta, err := a.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan time.Time, 1)
	go func() {
		if tb, err := b.Acquire(ctx); err == nil {
			got <- time.Now()
			tb.Release(ctx)
		}
	}()
	time.Sleep(500 * time.Millisecond)
	released := time.Now()
	ta.Release(ctx)
	if err := ta.Check(); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("Check after Release: %v", err)
	}
	select {
	case at := <-got:
		if d := at.Sub(released); d > ttl/2 {
			t.Errorf("b took the released lease after %v; want well under the TTL %v", d, ttl)
		}
	case <-time.After(2 * ttl):
		t.Fatal("b never took the released lease")
	}
}

// Renewals keep the lease for many TTLs, and a renewal that finds another revision ends the
// term at once (the key was taken over, e.g. by an operator deleting it).
func TestLeaseRenewAndSteal(t *testing.T) {
	s := testenv.StartJetStream(t)
	const ttl = 2 * time.Second
	_, js := testenv.ConnectJetStream(t, s)
	a := openLease(t, js, "a", ttl, nil)
	ctx := context.Background()
	ta, err := a.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rev := ta.Revision()
	time.Sleep(2 * ttl)
	if err := ta.Check(); err != nil {
		t.Fatalf("lost while renewing: %v", err)
	}
	if ta.Revision() <= rev {
		t.Fatal("no renewal happened")
	}
	if _, err := a.kv.Put(ctx, leaseKey, []byte(`{"node":"intruder"}`)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ta.Done():
	case <-time.After(ttl):
		t.Fatal("the term did not end after the key changed under it")
	}
	if err := ta.Check(); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("Check: %v", err)
	}
}

// A renewal can be stored while its reply is lost (it timed out under load): the next renewal
// then finds a newer revision, but one holding this term's own value. The term goes on; before
// this, the writer fenced itself off and the cluster failed over for nothing (seen in
// TestHAFailover in internal/e2e).
func TestLeaseRenewalReplyLost(t *testing.T) {
	s := testenv.StartJetStream(t)
	const ttl = 2 * time.Second
	_, js := testenv.ConnectJetStream(t, s)
	var logs testenv.SyncBuffer
	m := NewMetrics(prometheus.NewRegistry())
	a, err := OpenLease(context.Background(), LeaseConfig{JS: js, Node: "a", TTL: ttl, Metrics: m, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ta, err := a.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// What the server holds after a renewal whose reply never came: the term's value, one
	// revision on.
	landed := putOver(t, a.kv, ta.val)
	time.Sleep(2 * ttl)
	if err := ta.Check(); err != nil {
		t.Fatalf("the term ended over its own renewal: %v\n%s", err, logs.String())
	}
	if ta.Revision() <= landed {
		t.Fatalf("revision %d, not renewed past the landed %d", ta.Revision(), landed)
	}
	if !strings.Contains(logs.String(), "reply was lost") || testutil.ToFloat64(m.Lost) != 0 {
		t.Fatalf("lost %v times; logs:\n%s", testutil.ToFloat64(m.Lost), logs.String())
	}
	// The same revision dance with another value still ends the term.
	putOver(t, a.kv, []byte(`{"node":"b","term":"x"}`))
	select {
	case <-ta.Done():
	case <-time.After(ttl):
		t.Fatal("the term did not end after another value replaced it")
	}
	if err := ta.Err(); !errors.Is(err, ErrLeaseLost) || !strings.Contains(err.Error(), "changed under this node") {
		t.Fatalf("Err: %v", err)
	}
}

// putOver writes val over the lease key's latest revision by compare-and-set, as a renewal
// does, retrying while the term's own renewals move the revision under it.
func putOver(t *testing.T, kv jetstream.KeyValue, val []byte) uint64 {
	t.Helper()
	ctx := context.Background()
	var err error
	for range 50 {
		var e jetstream.KeyValueEntry
		if e, err = kv.Get(ctx, leaseKey); err != nil {
			t.Fatal(err)
		}
		var rev uint64
		if rev, err = kv.Update(ctx, leaseKey, val, e.Revision()); err == nil {
			return rev
		}
	}
	t.Fatal(err)
	return 0
}

// Nodes must agree on the TTL: a node started with another one is refused.
func TestLeaseTTLMismatch(t *testing.T) {
	s := testenv.StartJetStream(t)
	_, js := testenv.ConnectJetStream(t, s)
	openLease(t, js, "a", 3*time.Second, nil)
	_, err := OpenLease(context.Background(), LeaseConfig{JS: js, Node: "b", TTL: 4 * time.Second, Logger: quiet})
	if err == nil || !strings.Contains(err.Error(), "every node must use the same TTL") {
		t.Fatalf("mismatched TTL: %v", err)
	}
	if _, err := OpenLease(context.Background(), LeaseConfig{JS: js, Node: "b", TTL: time.Second, Logger: quiet}); err == nil {
		t.Fatal("a TTL under the minimum was accepted")
	}
}

// The shared checkpoint moves only by compare-and-set: a writer holding a stale version writes
// nothing (ledger/trillian then adopts the stored one if it extends its own).
func TestCheckpointStoreFences(t *testing.T) {
	s := testenv.StartJetStream(t)
	_, js := testenv.ConnectJetStream(t, s)
	ctx := context.Background()
	a, err := OpenCheckpointStore(ctx, js, 1, TreeKey(7))
	if err != nil {
		t.Fatal(err)
	}
	b, err := OpenCheckpointStore(ctx, js, 1, TreeKey(7))
	if err != nil {
		t.Fatal(err)
	}
	if raw, v, err := a.Load(ctx); err != nil || raw != nil || v != 0 {
		t.Fatalf("empty store: %q %d %v", raw, v, err)
	}
	v1, err := a.Store(ctx, []byte("cp1"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Store(ctx, []byte("other first"), 0); !errors.Is(err, trillian.ErrCheckpointMoved) {
		t.Fatalf("a second first checkpoint: %v", err)
	}
	raw, v, err := b.Load(ctx)
	if err != nil || string(raw) != "cp1" || v != v1 {
		t.Fatalf("load: %q %d %v", raw, v, err)
	}
	v2, err := b.Store(ctx, []byte("cp2"), v)
	if err != nil {
		t.Fatal(err)
	}
	// a still holds v1: its store is refused and cp2 stays.
	if _, err := a.Store(ctx, []byte("stale"), v1); !errors.Is(err, trillian.ErrCheckpointMoved) {
		t.Fatalf("stale writer's store: %v", err)
	}
	if raw, v, _ := a.Load(ctx); string(raw) != "cp2" || v != v2 {
		t.Fatalf("after the stale store: %q %d", raw, v)
	}
	// Another tree's checkpoint is another key.
	c, _ := OpenCheckpointStore(ctx, js, 1, TreeKey(8))
	if raw, _, _ := c.Load(ctx); raw != nil {
		t.Fatalf("tree 8 sees %q", raw)
	}
}
