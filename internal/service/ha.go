package service

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lineage-audit/lineage/exporters"
	"github.com/lineage-audit/lineage/internal/ha"
	"github.com/lineage-audit/lineage/query"
	"github.com/lineage-audit/lineage/query/auth"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"
)

// errLeaseLost ends a node that lost the writer lease: it may no longer write, and exits so
// that its supervisor restarts it as a standby (docs/OPERATIONS.md, "Failover").
var errLeaseLost = errors.New("service: this node lost the writer lease and stops; restart it to rejoin as a standby")

// runHA is Run for one node of a cluster (Config.HA). Every node connects to the cluster's
// NATS, opens the shared log read-only over the cluster's shared checkpoint (internal/ha) and
// the shared ClickHouse index, and serves the API, the UI, HTTP ingest and the exports API.
// Each node also campaigns for the writer lease; the node that holds it opens the log for
// writing (fenced by the lease, ledger/trillian Options.Fence) and runs what must run once
// cluster-wide: the ingester, checkpoint signing, the indexer, the findings worker and
// publisher, and the export worker and schedule (startWorkers with w prepared).
//
// A node that loses the lease stops and returns errLeaseLost. A node stopped by ctx stops its
// writer work first, flushes the log, and releases the lease so a standby need not wait out
// the TTL.
func runHA(ctx context.Context, c Config, authn auth.Authenticator, login *auth.Login) error {
	log := c.Logger.With("node", c.NodeID)
	c.Logger = log

	w := &workers{}
	nc, natsURL, stopNATS, err := connectNATS(c, log)
	if err != nil {
		return err
	}
	defer stopNATS()
	w.natsURL = natsURL
	if w.js, err = jetstream.New(nc); err != nil {
		return fmt.Errorf("service: jetstream: %w", err)
	}
	shared, err := ha.OpenCheckpointStore(ctx, w.js, c.StreamReplicas, ha.TreeKey(c.TrillianTreeID))
	if err != nil {
		return err
	}
	st, closeStores, err := openStores(ctx, c, shared)
	if err != nil {
		return err
	}
	defer closeStores()
	// The streams, OPA settings and ingest metrics, as a single node prepares them.
	if err := prepareIngest(ctx, c, st, w); err != nil {
		return err
	}
	hm := ha.NewMetrics(st.reg)
	lease, err := ha.OpenLease(ctx, ha.LeaseConfig{JS: w.js, Node: c.NodeID, HTTP: c.HTTPAddr, TTL: c.LeaseTTL,
		Replicas: c.StreamReplicas, Metrics: hm, Logger: log.With("component", "lease")})
	if err != nil {
		return err
	}
	if w.exports, err = newExports(c, st, w.js, &exporters.Cluster{JS: w.js, Replicas: c.StreamReplicas, Node: c.NodeID}); err != nil {
		return err
	}

	g, gctx := errgroup.WithContext(ctx)
	var leader atomic.Pointer[workers] // set while this node runs the writer's workers
	addr, stopServing, err := serveWith(ctx, g, c, st, w, authn, login, func(api *query.API) {
		api.FindingsPosition = func() uint64 {
			if lw := leader.Load(); lw != nil && lw.findings != nil {
				return lw.findings.Position()
			}
			return 0
		}
		api.Cluster = func(ctx context.Context) map[string]any {
			out := map[string]any{"node": c.NodeID, "writer": leader.Load() != nil}
			if h, ok, err := lease.Current(ctx); err == nil && ok {
				out["lease_holder"] = h.Node
			}
			return out
		}
	})
	if err != nil {
		return err
	}
	defer stopServing()
	log.Info("lineaged serving as a cluster node (standby until it holds the writer lease)", "http", addr, "nats", natsURL, "lease_ttl", c.LeaseTTL)

	// stopLeader stops the writer's work; closing says the node is stopping, so a writer that
	// finishes starting afterwards stops at once (its workers do not end with gctx).
	var (
		leaderMu   sync.Mutex
		stopLeader func()
		closing    bool
	)
	g.Go(func() error {
		term, err := lease.Acquire(gctx)
		if err != nil {
			return nil // gctx ended while waiting
		}
		took := time.Now()
		log.Info("this node is the writer now; opening the log for writing")
		stop, err := startWriter(ctx, gctx, g, c, st, w, shared, term)
		if err != nil {
			if term.Check() == nil {
				term.Release(context.WithoutCancel(ctx))
			}
			return fmt.Errorf("service: start the writer: %w", err)
		}
		leaderMu.Lock()
		if closing {
			leaderMu.Unlock()
			stop()
			return nil
		}
		stopLeader = stop
		leaderMu.Unlock()
		leader.Store(w)
		hm.Takeover.Set(time.Since(took).Seconds())
		log.Info("writer running", "takeover", time.Since(took).Round(time.Millisecond))
		select {
		case <-term.Done():
			leader.Store(nil)
			return fmt.Errorf("%w: %v", errLeaseLost, term.Err())
		case <-gctx.Done():
			return nil
		}
	})

	<-gctx.Done()
	log.Info("lineaged shutting down")
	stopServing()
	leaderMu.Lock()
	closing = true
	stop := stopLeader
	leaderMu.Unlock()
	if stop != nil {
		stop() // the ingester, then the log's flush, then the indexer; then the lease goes
	}
	return g.Wait()
}

// startWriter opens the log for writing, fenced by term, and starts the writer's workers. The
// returned stop stops them, closes the log, and releases the lease if it is still held.
func startWriter(ctx, gctx context.Context, g *errgroup.Group, c Config, st *stores, w *workers, shared *ha.CheckpointStore, term *ha.Term) (stop func(), err error) {
	// Bounded: a writer that cannot reach the log must give the lease up, not sit on it.
	octx, cancel := context.WithTimeout(gctx, time.Minute)
	defer cancel()
	lg, _, err := openLedger(octx, c, st.signer, st.verifier, ledgerMode{shared: shared, fence: term.Check})
	if err != nil {
		return nil, err
	}
	ws := *st
	ws.log = lg
	ws.closeLog = sync.OnceFunc(func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if err := lg.Close(sctx); err != nil && term.Check() == nil {
			c.Logger.Error("ledger close", "err", err)
		}
	})
	_, stopWorkers, err := startWorkers(ctx, gctx, g, c, &ws, w)
	if err != nil {
		ws.closeLog()
		return nil, err
	}
	return sync.OnceFunc(func() {
		stopWorkers()
		if term.Check() == nil {
			term.Release(context.WithoutCancel(ctx))
		}
	}), nil
}
