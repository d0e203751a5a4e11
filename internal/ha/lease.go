// Package ha lets several lineaged nodes share one log with one writer at a time, using only
// primitives of the engines Lineage already runs on (NATS JetStream key-value buckets and
// Trillian's sequenced adds), no consensus code of its own. docs/ARCHITECTURE.md ("Several
// nodes") and docs/OPERATIONS.md describe the whole design; this package holds its two shared
// objects:
//
//   - the writer lease (Lease): one key in the LeaseBucket bucket, whose TTL is the lease's TTL.
//     A node takes it with a create that fails while the key exists, and keeps it with
//     compare-and-set updates on the revision it holds. A node that stops renewing (killed,
//     paused, cut off) loses the key when it expires, and the next create wins.
//   - the shared checkpoint (CheckpointStore): the latest signed checkpoint, in the
//     CheckpointBucket bucket, replaced only by compare-and-set, so a writer that was taken
//     over cannot publish a checkpoint behind the new writer's.
//
// A lease alone cannot stop a writer that was paused past its lease and then wakes up: it
// believes it still holds the lease until it looks. Term.Check therefore judges the lease by a
// local monotonic deadline that ends before the key can expire on the server, and the writer
// calls it before every append and every checkpoint; an append already on the wire when the
// pause began is refused by the log itself (Trillian refuses a second entry at an index, see
// ledger/trillian), and a checkpoint by the compare-and-set.
package ha

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/lineage-audit/lineage/ledger"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// The key-value buckets of a cluster.
const (
	LeaseBucket      = "LINEAGE_LEASE"
	CheckpointBucket = "LINEAGE_CHECKPOINT"
	// leaseKey is the writer lease's key in LeaseBucket.
	leaseKey = "writer"
)

// DefaultTTL is the writer lease's default TTL: a standby takes over about this long after the
// writer died (plus a poll and the new writer's start).
const DefaultTTL = 5 * time.Second

// MinTTL bounds the TTL from below: renewals every TTL/5 must fit round trips to a NATS
// cluster that is electing a new stream leader.
const MinTTL = 2 * time.Second

// ErrLeaseLost is returned by Term.Check once the lease may no longer be this node's.
var ErrLeaseLost = fmt.Errorf("ha: writer lease lost: %w", ledger.ErrFenced)

// Holder is what the lease key holds: who has the lease and since when (shown by /healthz and
// in logs; the lease itself is the key's revision).
type Holder struct {
	Node     string    `json:"node"`
	Acquired time.Time `json:"acquired"`
	HTTP     string    `json:"http,omitempty"`
	// Term is random per holding, so the value identifies one term: a renewal whose reply was
	// lost is recognised by it (Term.renew).
	Term string `json:"term,omitempty"`
}

// Metrics are the lease's Prometheus metrics. NewMetrics registers them on every node, holder
// or not, so dashboards and alerts see the same series everywhere.
type Metrics struct {
	Writer        prometheus.Gauge
	Acquired      prometheus.Counter
	Lost          prometheus.Counter
	RenewFailures prometheus.Counter
	Takeover      prometheus.Gauge
}

// NewMetrics creates the lease metrics and registers them with reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Writer: prometheus.NewGauge(prometheus.GaugeOpts{Name: "lineage_ha_writer",
			Help: "1 while this node holds the writer lease (appends, signs checkpoints, indexes, runs exports), else 0."}),
		Acquired: prometheus.NewCounter(prometheus.CounterOpts{Name: "lineage_ha_lease_acquired_total",
			Help: "Times this node took the writer lease."}),
		Lost: prometheus.NewCounter(prometheus.CounterOpts{Name: "lineage_ha_lease_lost_total",
			Help: "Times this node lost the writer lease without giving it up (it then stops)."}),
		RenewFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "lineage_ha_lease_renew_failures_total",
			Help: "Failed renewals of the writer lease (retried until the lease's local deadline)."}),
		Takeover: prometheus.NewGauge(prometheus.GaugeOpts{Name: "lineage_ha_takeover_seconds",
			Help: "Seconds from taking the writer lease to the ingester consuming, at the last takeover."}),
	}
	if reg != nil {
		reg.MustRegister(m.Writer, m.Acquired, m.Lost, m.RenewFailures, m.Takeover)
	}
	return m
}

// LeaseConfig configures a Lease.
type LeaseConfig struct {
	JS jetstream.JetStream
	// Node names this node (lineaged --node-id); HTTP is its API address, for operators.
	Node string
	HTTP string
	// TTL is the lease's TTL (DefaultTTL when zero; at least MinTTL).
	TTL time.Duration
	// Replicas is the bucket's replica count (lineaged --stream-replicas).
	Replicas int
	Metrics  *Metrics
	Logger   *slog.Logger
}

// Lease is this node's handle on the cluster's writer lease.
type Lease struct {
	c  LeaseConfig
	kv jetstream.KeyValue
}

// OpenLease creates or opens the lease bucket. Its TTL must match: nodes configured with
// different TTLs would judge the lease by different deadlines, so a mismatch is refused.
func OpenLease(ctx context.Context, c LeaseConfig) (*Lease, error) {
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.TTL < MinTTL {
		return nil, fmt.Errorf("ha: lease TTL %v is below the minimum %v", c.TTL, MinTTL)
	}
	if c.Node == "" {
		return nil, errors.New("ha: a node id is required")
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.Metrics == nil {
		c.Metrics = NewMetrics(nil)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	kv, err := c.JS.CreateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: LeaseBucket, Description: "Lineage: the writer lease (one key, expires TTL after its last renewal)",
		History: 1, TTL: c.TTL, Replicas: c.Replicas, Storage: jetstream.FileStorage,
	})
	if errors.Is(err, jetstream.ErrBucketExists) {
		if kv, err = c.JS.KeyValue(ctx, LeaseBucket); err == nil {
			var st jetstream.KeyValueStatus
			if st, err = kv.Status(ctx); err == nil && st.TTL() != c.TTL {
				return nil, fmt.Errorf("ha: the cluster's lease bucket %s has TTL %v but this node was started with --lease-ttl %v; every node must use the same TTL", LeaseBucket, st.TTL(), c.TTL)
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("ha: lease bucket %s: %w", LeaseBucket, err)
	}
	return &Lease{c: c, kv: kv}, nil
}

// TTL is the lease's TTL.
func (l *Lease) TTL() time.Duration { return l.c.TTL }

// Current returns the lease's holder, or ok=false when nobody holds it.
func (l *Lease) Current(ctx context.Context) (h Holder, ok bool, err error) {
	e, err := l.kv.Get(ctx, leaseKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Holder{}, false, nil
	}
	if err != nil {
		return Holder{}, false, fmt.Errorf("ha: read lease: %w", err)
	}
	if err := json.Unmarshal(e.Value(), &h); err != nil {
		return Holder{}, false, fmt.Errorf("ha: lease value: %w", err)
	}
	return h, true, nil
}

// pollEvery is how often a standby tries to take the lease. An expiry makes no watch event, so
// standbys poll; a poll is one small request.
func (l *Lease) pollEvery() time.Duration { return l.c.TTL / 20 }

// Acquire blocks until this node holds the lease (or ctx ends) and returns the term, which
// renews itself until Release or until it is lost.
func (l *Lease) Acquire(ctx context.Context) (*Term, error) {
	waiting := false
	for {
		h := Holder{Node: l.c.Node, Acquired: time.Now().UTC(), HTTP: l.c.HTTP, Term: rand.Text()}
		val, _ := json.Marshal(h)
		start := time.Now()
		rctx, cancel := context.WithTimeout(ctx, l.c.TTL/5)
		rev, err := l.kv.Create(rctx, leaseKey, val)
		cancel()
		switch {
		case err == nil:
			t := l.newTerm(rev, val, start)
			l.c.Metrics.Acquired.Inc()
			l.c.Metrics.Writer.Set(1)
			l.c.Logger.Info("ha: took the writer lease", "revision", rev, "ttl", l.c.TTL)
			return t, nil
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case errors.Is(err, jetstream.ErrKeyExists):
			if !waiting {
				waiting = true
				cur, ok, _ := l.Current(ctx)
				l.c.Logger.Info("ha: standby: another node holds the writer lease", "holder", cur.Node, "held", ok)
			}
		default:
			l.c.Logger.Warn("ha: try to take the writer lease", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(l.pollEvery()):
		}
	}
}

// Term is one holding of the lease, from Acquire until Release or loss.
type Term struct {
	l   *Lease
	val []byte

	mu       sync.Mutex
	rev      uint64
	deadline time.Time // monotonic; the lease is ours only before it
	lost     error     // why the term ended, once it did

	done    chan struct{} // closed when the term ended (lost or released)
	stop    chan struct{} // closed by Release
	stopped chan struct{} // closed when the renewer returned
}

// newTerm starts the renewer of a lease just taken at revision rev by a request sent at start.
func (l *Lease) newTerm(rev uint64, val []byte, start time.Time) *Term {
	t := &Term{l: l, val: val, rev: rev, deadline: l.deadline(start),
		done: make(chan struct{}), stop: make(chan struct{}), stopped: make(chan struct{})}
	go t.renew()
	return t
}

// deadline is the end of the lease as this node may count on it after a write sent at start:
// the server expires the key TTL after it stored the write, which is after start, and a fifth of
// the TTL is left as margin for the two clocks' rates and for the time between a Check and the
// write it guards.
func (l *Lease) deadline(start time.Time) time.Time { return start.Add(l.c.TTL - l.c.TTL/5) }

// Revision is the key revision this term holds (a fencing token: it grows with every renewal
// and every new holder).
func (t *Term) Revision() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.rev
}

// Check returns nil while the lease is certainly this node's, else an error wrapping
// ErrLeaseLost (and ledger.ErrFenced). Writers call it before every append and checkpoint.
func (t *Term) Check() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.lost != nil {
		return t.lost
	}
	if now := time.Now(); !now.Before(t.deadline) {
		t.lost = fmt.Errorf("%w: not renewed in time (deadline passed %v ago)", ErrLeaseLost, now.Sub(t.deadline).Round(time.Millisecond))
	}
	return t.lost
}

// Done is closed when the term ends: lost, or released.
func (t *Term) Done() <-chan struct{} { return t.done }

// Err says why the term ended (nil while it lasts).
func (t *Term) Err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lost
}

// renew updates the key every TTL/5 while the deadline lasts, and ends the term when a renewal
// finds another holder's value (someone else holds the key) or the deadline passes without one.
func (t *Term) renew() {
	defer close(t.stopped)
	every := t.l.c.TTL / 5
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		t.mu.Lock()
		wait := time.Until(t.deadline)
		t.mu.Unlock()
		expire := time.NewTimer(wait)
		select {
		case <-t.stop:
			expire.Stop()
			return
		case <-expire.C:
			t.end(fmt.Errorf("%w: no renewal succeeded before the lease's deadline", ErrLeaseLost))
			return
		case <-tick.C:
		}
		expire.Stop()
		for again := true; again; {
			if t.Check() != nil {
				t.end(t.Err())
				return
			}
			var lost error
			if again, lost = t.renewOnce(every); lost != nil {
				t.end(lost)
				return
			}
		}
	}
}

// renewOnce sends one renewal. It returns lost once the key is no longer this term's, and again
// when a renewal should follow at once.
func (t *Term) renewOnce(timeout time.Duration) (again bool, lost error) {
	l := t.l
	start := time.Now()
	held := t.Revision()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	rev, err := l.kv.Update(ctx, leaseKey, t.val, held)
	switch {
	case err == nil:
		t.mu.Lock()
		t.rev, t.deadline = rev, l.deadline(start)
		t.mu.Unlock()
		return false, nil
	case errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted):
		return false, fmt.Errorf("%w: the lease key changed under this node (%v)", ErrLeaseLost, err)
	case !errors.Is(err, jetstream.ErrKeyRevisionMismatch):
		l.c.Metrics.RenewFailures.Inc()
		l.c.Logger.Warn("ha: renew the writer lease (retrying until its deadline)", "err", err)
		return false, nil
	}
	// An earlier renewal can have been stored while its reply was lost (it timed out here,
	// under load): the key then holds this term's own value at a newer revision. Only this
	// term writes that value (Holder.Term), and every write is a compare-and-set, so nobody
	// else held the key since. The revision is adopted; the deadline is not moved (when that
	// write was stored is unknown), and the renewal is retried at once.
	gctx, gcancel := context.WithTimeout(context.Background(), timeout)
	defer gcancel()
	cur, gerr := l.kv.Get(gctx, leaseKey)
	switch {
	case errors.Is(gerr, jetstream.ErrKeyNotFound):
		return false, fmt.Errorf("%w: the lease key changed under this node (%v), then was gone", ErrLeaseLost, err)
	case gerr != nil:
		l.c.Metrics.RenewFailures.Inc()
		l.c.Logger.Warn("ha: renew the writer lease: revision changed, and reading it failed (retrying until its deadline)", "err", gerr)
		return false, nil
	case cur.Revision() <= held:
		// A replica behind the leader answered; ask again at the next tick.
		l.c.Metrics.RenewFailures.Inc()
		l.c.Logger.Warn("ha: renew the writer lease: revision changed, and the read was stale (retrying until its deadline)", "read", cur.Revision(), "held", held)
		return false, nil
	case !bytes.Equal(cur.Value(), t.val):
		return false, fmt.Errorf("%w: the lease key changed under this node (%v; now revision %d)", ErrLeaseLost, err, cur.Revision())
	}
	t.mu.Lock()
	t.rev = cur.Revision()
	t.mu.Unlock()
	l.c.Logger.Info("ha: an earlier renewal of the writer lease was stored though its reply was lost; renewing from its revision", "revision", cur.Revision())
	return true, nil
}

// end ends the term as lost.
func (t *Term) end(err error) {
	t.mu.Lock()
	if t.lost == nil {
		t.lost = err
	}
	t.mu.Unlock()
	t.l.c.Metrics.Writer.Set(0)
	t.l.c.Metrics.Lost.Inc()
	t.l.c.Logger.Error("ha: lost the writer lease; this node stops writing", "err", err)
	close(t.done)
}

// Release gives the lease up (a graceful stop, so a standby need not wait for the TTL): it
// stops renewing and deletes the key if it still holds this term's revision. Call it only
// after everything that writes has stopped.
func (t *Term) Release(ctx context.Context) {
	select {
	case <-t.done:
		return
	default:
	}
	close(t.stop)
	<-t.stopped
	select {
	case <-t.done: // lost meanwhile
		return
	default:
	}
	t.mu.Lock()
	t.lost = fmt.Errorf("%w: released", ErrLeaseLost)
	rev := t.rev
	t.mu.Unlock()
	t.l.c.Metrics.Writer.Set(0)
	close(t.done)
	if err := t.l.kv.Delete(ctx, leaseKey, jetstream.LastRevision(rev)); err != nil {
		t.l.c.Logger.Warn("ha: release the writer lease (it expires by itself)", "err", err)
		return
	}
	t.l.c.Logger.Info("ha: released the writer lease")
}
