package service

import (
	"context"
	"errors"
	"fmt"
	"sync"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/exporters"
	"github.com/lineage-audit/lineage/ingest"
	"github.com/lineage-audit/lineage/query"
	"github.com/nats-io/nats.go/jetstream"
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
func startWorkers(ctx, gctx context.Context, g *errgroup.Group, c Config, st *stores) (w *workers, stop func(), err error) {
	var cs cleanups
	defer func() {
		if err != nil {
			cs.run()
		}
	}()
	log := c.Logger
	w = &workers{}
	if w.indexer, err = query.NewIndexer(ctx, st.log, st.index, st.reg, log.With("component", "indexer")); err != nil {
		return nil, nil, err
	}
	cs.add(spawn(g, context.WithoutCancel(ctx), "indexer", w.indexer.Run))

	nc, natsURL, stopNATS, err := connectNATS(c, log)
	if err != nil {
		return nil, nil, err
	}
	cs.add(stopNATS)
	w.natsURL = natsURL
	// Everything added from here on (the witnessing, the ingester, the exporter) stops before
	// the log closes.
	cs.add(st.closeLog)
	if st.witnessed != nil {
		// Witnessing reads the log's checkpoints; nothing waits for it but readers of st.served.
		cs.add(spawn(g, gctx, "witnessing", st.witnessed.Run))
	}
	if w.js, err = jetstream.New(nc); err != nil {
		return nil, nil, fmt.Errorf("service: jetstream: %w", err)
	}
	if err := ingest.EnsureStreams(ctx, w.js, ingest.StreamOptions{MaxMsgSize: MaxRecordMsg}); err != nil {
		return nil, nil, err
	}
	w.opa = ingest.OPAConfig{IdentityPath: c.OPAIdentityPath}
	if err := w.opa.Check(); err != nil {
		return nil, nil, err
	}
	var srcKeys *ingest.SourceKeys
	if c.SourceKeys != "" {
		if srcKeys, err = ingest.LoadSourceKeys(c.SourceKeys); err != nil {
			return nil, nil, err
		}
	}
	w.inMetrics = ingest.NewMetrics(st.reg)
	in, err := ingest.New(ingest.Config{
		JS: w.js, Log: st.log, Seen: st.index, Indexed: w.indexer.Position, WaitIndexed: w.indexer.WaitFor,
		BatchSize: c.BatchSize, AckWait: c.AckWait, SourceKeys: srcKeys, Metrics: w.inMetrics, Logger: log.With("component", "ingest"),
		Appended: w.indexer.Offer,
	})
	if err != nil {
		return nil, nil, err
	}
	cs.add(spawn(g, gctx, "ingester", in.Run))

	js := w.js
	if w.exports, err = exporters.NewService(exporters.Config{
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
		Registerer: st.reg, Logger: log.With("component", "exporter"),
	}); err != nil {
		return nil, nil, err
	}
	cs.add(spawn(g, context.WithoutCancel(ctx), "exporter", w.exports.Run))
	return w, sync.OnceFunc(cs.run), nil
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
