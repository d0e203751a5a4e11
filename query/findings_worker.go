package query

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lineage-audit/lineage/ledger"
	"github.com/lineage-audit/lineage/query/findings"
	"github.com/lineage-audit/lineage/query/index"
)

// FindingsWorker keeps the findings projection (package findings) up to date right behind the
// index: it takes each batch the indexer applied (Offer, from Indexer.Applied) so records are
// decoded once, runs the detection engine over it and stores the occurrences, the engine's state
// and the new findings position in one ApplyFindings. When it has no queued batch for its
// position (after a restart, or when it fell more than MaxFindingsQueue entries behind) it reads
// and decodes the entries from the log itself, never past the index position, so every
// finding's evidence is already queryable.
type FindingsWorker struct {
	Log     ledger.Log
	Store   findings.Store
	Indexer *Indexer
	Config  *findings.Configs
	Logger  *slog.Logger
	// Changed, when set, is called after each stored batch that created or changed findings
	// (the publisher's wake-up).
	Changed func([]findings.Change)

	position   *progress
	truncatedN atomic.Uint64    // the engine's Truncated, for the metric
	engine     *findings.Engine // used by Step only

	stepMu sync.Mutex // held by Step; Pause takes it
	mu     sync.Mutex
	queue  []index.Batch
	queued int
	wake   chan struct{}

	newFindings *prometheus.CounterVec
	occurrences *prometheus.CounterVec
	positionG   prometheus.Gauge
	errs        prometheus.Counter
	truncated   prometheus.GaugeFunc
}

// MaxFindingsQueue bounds the entries queued for the findings worker; beyond it batches are
// dropped and read back from the log.
const MaxFindingsQueue = 1 << 14

// findingsReadBatch is how many log entries a catch-up read takes at once.
const findingsReadBatch = 4096

// NewFindingsWorker returns a worker positioned where the store's findings are.
func NewFindingsWorker(ctx context.Context, l ledger.Log, s findings.Store, ix *Indexer, cfg *findings.Configs, reg prometheus.Registerer, logger *slog.Logger) (*FindingsWorker, error) {
	pos, err := s.FindingsPosition(ctx)
	if err != nil {
		return nil, fmt.Errorf("findings: position: %w", err)
	}
	if logger == nil {
		logger = slog.Default()
	}
	w := &FindingsWorker{Log: l, Store: s, Indexer: ix, Config: cfg, Logger: logger,
		wake: make(chan struct{}, 1), position: newProgress(pos)}
	w.newFindings = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lineage_findings_total",
		Help: "Findings detected, by kind and severity (a finding counts once, when first detected)."}, []string{"kind", "severity"})
	w.occurrences = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lineage_findings_evidence_total",
		Help: "Records found to be evidence of a finding, by kind."}, []string{"kind"})
	w.positionG = prometheus.NewGauge(prometheus.GaugeOpts{Name: "lineage_findings_position", Help: "Log entries the findings reflect."})
	w.errs = prometheus.NewCounter(prometheus.CounterOpts{Name: "lineage_findings_errors_total", Help: "Failed findings batches (retried; see the log)."})
	w.truncated = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "lineage_findings_state_truncated",
		Help: "Keys the findings engine did not track because a tenant's state was full (since start)."}, func() float64 {
		return float64(w.truncatedN.Load())
	})
	for _, k := range findings.Kinds {
		w.occurrences.WithLabelValues(string(k.Kind))
	}
	w.positionG.Set(float64(pos))
	if reg != nil {
		reg.MustRegister(w.newFindings, w.occurrences, w.positionG, w.errs, w.truncated)
	}
	return w, nil
}

// Position is the number of log entries the findings reflect.
func (w *FindingsWorker) Position() uint64 { return w.position.Load() }

// WaitFor blocks until the findings reflect at least n log entries, or ctx ends.
func (w *FindingsWorker) WaitFor(ctx context.Context, n uint64) error {
	return w.position.WaitFor(ctx, n)
}

// Offer queues a batch the indexer applied (Indexer.Applied). It never blocks; beyond
// MaxFindingsQueue entries the batch is dropped and later read from the log.
func (w *FindingsWorker) Offer(b index.Batch) {
	w.mu.Lock()
	if w.queued+len(b.Entries) <= MaxFindingsQueue {
		w.queue = append(w.queue, b)
		w.queued += len(b.Entries)
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run follows the index until ctx ends.
func (w *FindingsWorker) Run(ctx context.Context) error {
	for {
		advanced, err := w.Step(ctx)
		if err != nil && ctx.Err() == nil {
			w.errs.Inc()
			w.Logger.Error("findings: step", "position", w.Position(), "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second):
			}
			continue
		}
		if advanced {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-w.wake:
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// Step processes at most one batch below the index position and reports whether the position
// advanced.
func (w *FindingsWorker) Step(ctx context.Context) (bool, error) {
	w.stepMu.Lock()
	defer w.stepMu.Unlock()
	pos := w.position.Load()
	target := w.Indexer.Position()
	if target <= pos {
		return false, nil
	}
	from, to, entries, err := w.next(ctx, pos, target)
	if err != nil {
		return false, err
	}
	if err := w.apply(ctx, from, to, entries); err != nil {
		return false, err
	}
	return true, nil
}

// next returns the entries of [pos, to): from the queue when its head covers pos, else read
// from the log.
func (w *FindingsWorker) next(ctx context.Context, pos, target uint64) (from, to uint64, entries []index.Entry, err error) {
	w.mu.Lock()
	for len(w.queue) > 0 && w.queue[0].To <= pos {
		w.queued -= len(w.queue[0].Entries)
		w.queue = w.queue[1:]
	}
	if len(w.queue) > 0 && w.queue[0].From <= pos {
		b := w.queue[0]
		w.queue = w.queue[1:]
		w.queued -= len(b.Entries)
		w.mu.Unlock()
		// Entries below pos (a batch straddling it) were already reflected.
		es := b.Entries
		for len(es) > 0 && es[0].Index < pos {
			es = es[1:]
		}
		return pos, b.To, es, nil
	}
	n := min(target-pos, findingsReadBatch)
	if len(w.queue) > 0 {
		n = min(n, w.queue[0].From-pos) // read only the gap before the queued batches
	}
	w.mu.Unlock()
	cp, err := w.Log.Checkpoint(ctx)
	if err != nil {
		return 0, 0, nil, fmt.Errorf("findings: checkpoint: %w", err)
	}
	raw, err := w.Log.Entries(ctx, pos, n, cp.Size)
	if err != nil {
		return 0, 0, nil, fmt.Errorf("findings: entries [%d,+%d): %w", pos, n, err)
	}
	entries = make([]index.Entry, 0, len(raw))
	for i, e := range raw {
		ent, err := w.Indexer.Decoder.Decode(ctx, pos+uint64(i), e)
		if IsKeyStoreError(err) {
			return 0, 0, nil, fmt.Errorf("findings: %w", err)
		}
		if err != nil {
			continue // the indexer counts and reports entries that are not Lineage envelopes
		}
		entries = append(entries, ent)
	}
	return pos, pos + n, entries, nil
}

// apply runs the engine over [from, to) and stores the result. On any failure the engine is
// dropped, so the next attempt starts again from the stored state.
func (w *FindingsWorker) apply(ctx context.Context, from, to uint64, entries []index.Entry) error {
	w.mu.Lock()
	e := w.engine
	w.mu.Unlock()
	if e == nil {
		st, err := w.Store.FindingsState(ctx)
		if err != nil {
			return fmt.Errorf("findings: load state: %w", err)
		}
		e = findings.NewEngine(w.Config)
		if err := e.Load(st); err != nil {
			return err
		}
		w.mu.Lock()
		w.engine = e
		w.mu.Unlock()
	}
	var occ []findings.Occurrence
	for i := range entries {
		en := &entries[i]
		occ = e.Observe(en.Index, en.Record, en.Time, occ)
	}
	occ = e.EndBatch(occ)
	w.truncatedN.Store(e.Truncated)
	state, err := e.TakeDirty()
	if err == nil {
		var ch []findings.Change
		if ch, err = w.Store.ApplyFindings(ctx, from, to, occ, state); err == nil {
			for _, o := range occ {
				w.occurrences.WithLabelValues(string(o.Kind)).Inc()
			}
			for _, c := range ch {
				if c.New {
					w.newFindings.WithLabelValues(string(c.Finding.Kind), string(c.Finding.Severity)).Inc()
				}
			}
			w.setPosition(to)
			if len(ch) > 0 && w.Changed != nil {
				w.Changed(ch)
			}
			return nil
		}
	}
	w.mu.Lock()
	w.engine = nil
	w.mu.Unlock()
	if errors.Is(err, findings.ErrPosition) {
		if p, perr := w.Store.FindingsPosition(ctx); perr == nil {
			w.setPosition(p)
		}
	}
	return fmt.Errorf("findings: apply [%d,%d): %w", from, to, err)
}

// Pause waits for the step in progress and keeps the worker from stepping until resume is
// called; it forgets the queued batches (they may hold clear values an erasure destroyed:
// they are read again from the log) and the engine (reloaded from the store, which the purge
// rewrote).
func (w *FindingsWorker) Pause() (resume func()) {
	w.stepMu.Lock()
	w.mu.Lock()
	w.queue, w.queued, w.engine = nil, 0, nil
	w.mu.Unlock()
	return sync.OnceFunc(w.stepMu.Unlock)
}

func (w *FindingsWorker) setPosition(p uint64) {
	w.position.Set(p)
	w.positionG.Set(float64(p))
}
