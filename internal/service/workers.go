package service

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/exporters"
	"github.com/lineage-audit/lineage/ingest"
	"github.com/lineage-audit/lineage/ledger/seal"
	"github.com/lineage-audit/lineage/query"
	"github.com/lineage-audit/lineage/query/findings"
	"github.com/lineage-audit/lineage/query/index/sqlite"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
)

// workers are the daemon's background goroutines and what the HTTP API shares with them.
type workers struct {
	indexer   *query.Indexer
	js        jetstream.JetStream
	natsURL   string // for the log (credentials redacted)
	opa       ingest.OPAConfig
	inMetrics *ingest.Metrics
	exports   *exporters.Service
	findings  *query.FindingsWorker // nil with Config.NoFindings
	eraser    *eraser               // nil unless erasure is on
}

// startWorkers starts, each as a goroutine of g: the indexer (log → index), then NATS (embedded
// or external), the witnessing of checkpoints (with a witness policy) and the ingester
// (JetStream → log), then the exporter service. ctx is Run's; gctx is g's, cancelled on the
// first failure.
//
// The ingester stops as soon as gctx ends. The indexer and the exporter keep running until the
// returned stop reaches them, as HTTP requests still being drained may need them. stop runs in
// reverse order of starting: the exporter (it reads the log and publishes to NATS, so it stops
// before either closes), the ingester, then the log is flushed (st.closeLog: every appended
// entry integrated and checkpointed while the indexer still runs), NATS stops, the indexer
// stops. On error, what was started is stopped again.
//
// On the writer of a cluster (runHA) w comes prepared — NATS connected, streams ensured, the
// exporter service made, since every node serves ingest and exports — and startWorkers starts
// only what runs once cluster-wide: the indexer, the findings worker and publisher, the
// ingester and the exporter's worker and schedule. Without w it prepares all of that itself.
func startWorkers(ctx, gctx context.Context, g *errgroup.Group, c Config, st *stores, w *workers) (_ *workers, stop func(), err error) {
	var cs cleanups
	defer func() {
		if err != nil {
			cs.run()
		}
	}()
	log := c.Logger
	cluster := w != nil
	if !cluster {
		w = &workers{}
	}
	if w.indexer, err = query.NewIndexer(ctx, st.log, st.index, st.reg, log.With("component", "indexer")); err != nil {
		return nil, nil, err
	}
	w.indexer.Decoder = st.decoder()
	// With erasure on, indexing waits until the purges a stop cut short are complete
	// (completePurges, below, once NATS is up: the purge scrubs its streams too).
	resumeIndexing := func() {}
	if st.erasure != nil {
		resumeIndexing = w.indexer.Pause()
	}
	cs.add(spawn(g, context.WithoutCancel(ctx), "indexer", w.indexer.Run))
	// Cleanups run in reverse: on an error below, the indexer is resumed before it is stopped
	// (a paused indexer could not return).
	cs.add(resumeIndexing)
	var pub *findings.Publisher // nil with Config.NoFindings
	if st.findings != nil {
		if w.findings, err = query.NewFindingsWorker(ctx, st.log, st.findings, w.indexer, st.findingsConfig, st.reg, log.With("component", "findings")); err != nil {
			return nil, nil, err
		}
		w.indexer.Applied = w.findings.Offer
		// New and changed findings go out on lineage.findings.<tenant> from the store's outbox.
		// The publisher is made now so that the worker's Changed hook is set before the worker
		// starts; it runs once NATS is connected (below), and w.js is set by then.
		pub = findings.NewPublisher(st.findings, func(ctx context.Context, subject, msgID string, data []byte) error {
			_, err := w.js.Publish(ctx, subject, data, jetstream.WithMsgID(msgID))
			return err
		}, log.With("component", "findings-publisher"))
		w.findings.Changed = func([]findings.Change) { pub.Wake() }
		rf := func() {}
		if st.erasure != nil {
			ri := resumeIndexing
			rf = w.findings.Pause()
			resumeIndexing = func() { rf(); ri() }
		}
		// Stopped before the indexer (cleanups run in reverse); it resumes from its own position.
		cs.add(spawn(g, context.WithoutCancel(ctx), "findings", w.findings.Run))
		cs.add(rf)
	}

	if !cluster {
		stopNATS, err := connectWorkers(ctx, c, st, w)
		if err != nil {
			return nil, nil, err
		}
		cs.add(stopNATS)
	}
	if st.erasure != nil {
		err := completePurges(ctx, st.erasure, st.log, st.index.(*sqlite.Store), scrubStreams(w.js, log.With("component", "erasure")), log.With("component", "erasure"))
		if err != nil {
			return nil, nil, err
		}
	}
	resumeIndexing()
	// Everything added from here on (the witnessing, the ingester, the exporter) stops before
	// the log closes.
	cs.add(st.closeLog)
	if st.witnessed != nil {
		// Witnessing reads the log's checkpoints; nothing waits for it but readers of st.served.
		cs.add(spawn(g, gctx, "witnessing", st.witnessed.Run))
	}
	var srcKeys *ingest.SourceKeys
	if c.SourceKeys != "" {
		if srcKeys, err = ingest.LoadSourceKeys(c.SourceKeys); err != nil {
			return nil, nil, err
		}
	}
	inCfg := ingest.Config{
		JS: w.js, Log: st.log, Seen: st.index, Indexed: w.indexer.Position, WaitIndexed: w.indexer.WaitFor,
		BatchSize: c.BatchSize, AckWait: c.AckWait, SourceKeys: srcKeys, Metrics: w.inMetrics, Logger: log.With("component", "ingest"),
		Appended: w.indexer.Offer,
	}
	if st.erasure != nil {
		inCfg.Sealer = st.erasure.sealer
	}
	in, err := ingest.New(inCfg)
	if err != nil {
		return nil, nil, err
	}
	cs.add(spawn(g, gctx, "ingester", in.Run))
	if pub != nil {
		published := prometheus.NewCounter(prometheus.CounterOpts{Name: "lineage_findings_published_total", Help: "Findings messages published on lineage.findings.<tenant>."})
		failed := prometheus.NewCounter(prometheus.CounterOpts{Name: "lineage_findings_publish_failures_total", Help: "Failed attempts to publish a finding (retried)."})
		st.reg.MustRegister(published, failed)
		pub.Published, pub.Failed = published.Inc, failed.Inc
		cs.add(spawn(g, context.WithoutCancel(ctx), "findings-publisher", pub.Run))
	}

	if !cluster {
		if w.exports, err = newExports(c, st, w.js, nil); err != nil {
			return nil, nil, err
		}
	}
	cs.add(spawn(g, context.WithoutCancel(ctx), "exporter", w.exports.Run))
	if st.erasure != nil {
		js := w.js
		elog := log.With("component", "erasure")
		now := c.clock
		if now == nil {
			now = time.Now
		}
		w.eraser = &eraser{e: st.erasure, log: st.log, index: st.index.(*sqlite.Store), indexer: w.indexer, findings: w.findings,
			pending: &pendingRecords{dir: erasurePendingDir(c.DataDir), logger: elog, backoff: []time.Duration{time.Second, 2 * time.Second, 4 * time.Second},
				send: func(ctx context.Context, rec lineage.Record) error {
					b, err := rec.Canonical()
					if err != nil {
						return err
					}
					_, err = js.PublishMsg(ctx, ingest.RecordMsg(rec.Tenant, rec.ID, b))
					return err
				}},
			scrub: scrubStreams(js, elog), logger: elog, now: now, metrics: newRetentionMetrics(st.reg), exports: w.exports}
		w.eraser.pending.check = w.eraser.recordedKeysGone
		// Pending erasure records and the retention windows (retention.go). Stopped before the
		// log closes, like the ingester: a retention erasure purges from the log.
		// A key store restored from a backup older than some erasure still holds their keys:
		// destroy them again before anything is served (the log lists the erasures).
		if n, err := w.eraser.reapplyErasures(ctx); err != nil {
			return nil, nil, fmt.Errorf("service: re-apply the erasures the log records: %w", err)
		} else if n > 0 {
			elog.Warn("erasure: re-applied erasures at start", "keys", n)
		}
		if err := w.eraser.purgeAllExports(ctx); err != nil {
			return nil, nil, fmt.Errorf("service: purge the stored exports of erased subjects: %w", err)
		}
		interval := c.ErasureRetentionInterval
		cs.add(spawn(g, gctx, "erasure-maintenance", func(ctx context.Context) error { return w.eraser.runMaintenance(ctx, interval) }))
	}
	return w, sync.OnceFunc(cs.run), nil
}

// connectWorkers connects to NATS (or starts the embedded server), ensures the streams, and
// prepares what ingest over HTTP and JetStream share; it returns the function that stops NATS.
func connectWorkers(ctx context.Context, c Config, st *stores, w *workers) (stop func(), err error) {
	nc, natsURL, stopNATS, err := connectNATS(c, c.Logger)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			stopNATS()
		}
	}()
	w.natsURL = natsURL
	if w.js, err = jetstream.New(nc); err != nil {
		return nil, fmt.Errorf("service: jetstream: %w", err)
	}
	if err := prepareIngest(ctx, c, st, w); err != nil {
		return nil, err
	}
	return stopNATS, nil
}

// prepareIngest ensures the streams on w.js and sets up what ingest over HTTP and JetStream
// share: the OPA settings and the ingest metrics.
func prepareIngest(ctx context.Context, c Config, st *stores, w *workers) error {
	if err := ingest.EnsureStreams(ctx, w.js, ingest.StreamOptions{MaxMsgSize: MaxRecordMsg, Replicas: c.StreamReplicas}); err != nil {
		return err
	}
	w.opa = ingest.OPAConfig{IdentityPath: c.OPAIdentityPath}
	if err := w.opa.Check(); err != nil {
		return err
	}
	w.inMetrics = ingest.NewMetrics(st.reg)
	return nil
}

// newExports makes the exporter service; every run it makes is recorded through JetStream.
func newExports(c Config, st *stores, js jetstream.JetStream, cluster *exporters.Cluster) (*exporters.Service, error) {
	// With erasure on, exports open the sealed entries with the key store (a nil interface
	// otherwise, never a nil *SQLiteStore).
	var keys seal.KeyStore
	if st.erasure != nil {
		keys = st.erasure.keys
	}
	return exporters.NewService(exporters.Config{
		Keys: keys,
		// Export bundles carry the served (cosigned, with a witness policy) checkpoint.
		Log: st.served, Signer: st.signer, Verifier: st.verifier,
		Dir: c.ExportDir, ScheduleFile: c.ExportSchedule,
		// Each export run is recorded like any decision: through JetStream, the one durable path.
		Publish: func(ctx context.Context, rec lineage.Record) error {
			b, err := rec.Canonical()
			if err != nil {
				return err
			}
			_, err = js.PublishMsg(ctx, ingest.RecordMsg(rec.Tenant, rec.ID, b))
			return err
		},
		Findings:   st.findingsConfig,
		Registerer: st.reg, Logger: c.Logger.With("component", "exporter"),
		Cluster: cluster,
	})
}

// spawn runs fn as a goroutine of g under its own context, a child of parent, and returns the
// function that cancels that context and waits for fn to return. fn returning while its context
// is live is a failure (g then cancels its context, which stops the service); returning once
// its context ended is not.
func spawn(g *errgroup.Group, parent context.Context, name string, fn func(context.Context) error) (stop func()) {
	ctx, cancel := context.WithCancel(parent)
	done := make(chan struct{})
	g.Go(func() error {
		defer close(done)
		err := fn(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err == nil:
			err = errors.New("returned early")
		}
		return fmt.Errorf("service: %s stopped: %w", name, err)
	})
	return sync.OnceFunc(func() { cancel(); <-done })
}
