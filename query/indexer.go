// Package query serves what the log holds: the indexer that projects the Merkle log into an
// index.Store, the lineage graph built from index rows, and the gin HTTP API whose answers
// carry inclusion proofs against one signed checkpoint.
package query

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/ledger"
	"github.com/lineage-audit/lineage/query/index"
	"github.com/prometheus/client_golang/prometheus"
)

// Indexer follows the log's published checkpoints and applies new entries to the store. The
// store keeps its own position in the same transaction as the rows, so the indexer is
// stateless: after a crash it resumes from Store.Position.
type Indexer struct {
	Log   ledger.Log
	Store index.Store
	// BatchSize bounds the log entries applied per store transaction (default DefaultIndexBatch).
	BatchSize uint64
	// Poll is how often the checkpoint is re-read when the index is caught up (default 25 ms).
	Poll   time.Duration
	Logger *slog.Logger
	// Applied, when set, is called with every batch after it is applied and the position has
	// moved past it, on the indexer's goroutine: it must return quickly (the findings worker
	// queues the batch, FindingsWorker.Offer) and must not keep b.Entries' records beyond what
	// it needs (they are not modified after this call).
	Applied func(b index.Batch)
	// Decoder decodes the entries read from the log; its key store opens sealed (v2) entries
	// (docs/ERASURE.md). The zero value reads v1 logs only.
	Decoder Decoder

	// stepMu is held by Step; Pause takes it so an erasure's purge runs between steps.
	stepMu   sync.Mutex
	position *progress
	metrics  indexerMetrics

	// offered holds entries this process appended, by log index (Offer), so Step takes them
	// instead of reading them back from the log and decoding them again.
	offerMu      sync.Mutex
	offered      map[uint64]index.Entry
	offeredBytes int // sum of offeredCost over offered
}

// DefaultIndexBatch is the default Indexer.BatchSize. A transaction's commit writes every page
// it dirtied to the SQLite WAL, and the secondary indexes' pages are shared by many records, so
// fewer, larger transactions write each hot page fewer times: BenchmarkApply spends about a
// third less CPU in commits with batches of 4,000 than of 1,000. In practice a batch is what one
// checkpoint adds (a checkpoint every 250 ms), so this bound is rarely reached.
const DefaultIndexBatch = 4096

// MaxOffered and MaxOfferedBytes bound what Offer keeps for the indexer: entries, and their
// estimated memory (offeredCost: the canonical bytes twice, for the decoded record, plus a
// constant). Beyond either, offers are dropped and the indexer reads those entries from the log
// as it always can. With demo records (about 4 KB held per entry) the entry bound applies; with
// records near the 64 KiB limit the byte bound does, so the hand-off never holds more than
// about 64 MiB (with 65,536 small entries lineaged's RSS doubled, from 140 to 300 MiB, whenever
// the indexer fell behind). At 50,000 records/s, a 250 ms checkpoint interval holds 12,500
// entries back.
const (
	MaxOffered      = 1 << 14
	MaxOfferedBytes = 64 << 20
)

// offeredCost estimates the memory an offered entry holds: its canonical JSON, the decoded
// record (about as large again) and the entry's fixed part.
func offeredCost(e index.Entry) int { return 2*len(e.Canonical) + 512 }

type indexerMetrics struct {
	applyTime prometheus.Histogram
	applied   prometheus.Counter
	position  prometheus.Gauge
	invalid   prometheus.Counter
	offered   prometheus.Counter
}

// NewIndexer returns an indexer positioned at the store's current position.
func NewIndexer(ctx context.Context, l ledger.Log, s index.Store, reg prometheus.Registerer, logger *slog.Logger) (*Indexer, error) {
	pos, err := s.Position(ctx)
	if err != nil {
		return nil, fmt.Errorf("indexer: position: %w", err)
	}
	if logger == nil {
		logger = slog.Default()
	}
	ix := &Indexer{Log: l, Store: s, BatchSize: DefaultIndexBatch, Poll: 25 * time.Millisecond, Logger: logger, position: newProgress(pos)}
	ix.metrics = indexerMetrics{
		applied:  prometheus.NewCounter(prometheus.CounterOpts{Name: "lineage_index_applied_total", Help: "Log entries applied to the index."}),
		position: prometheus.NewGauge(prometheus.GaugeOpts{Name: "lineage_index_position", Help: "Log entries applied to the index (its position)."}),
		invalid:  prometheus.NewCounter(prometheus.CounterOpts{Name: "lineage_index_invalid_entries_total", Help: "Log entries that are not valid Lineage envelopes (never expected; investigate)."}),
		offered:  prometheus.NewCounter(prometheus.CounterOpts{Name: "lineage_index_offered_total", Help: "Log entries applied from the ingester's hand-off instead of being read back from the log."}),
		applyTime: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "lineage_index_batch_seconds", Help: "Time to read, decode and apply one batch of log entries.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
	}
	ix.metrics.position.Set(float64(pos))
	if reg != nil {
		reg.MustRegister(ix.metrics.applied, ix.metrics.position, ix.metrics.invalid, ix.metrics.offered, ix.metrics.applyTime)
	}
	return ix, nil
}

// Position is the number of log entries applied to the store.
func (ix *Indexer) Position() uint64 { return ix.position.Load() }

// WaitFor blocks until the position is at least n or ctx ends.
func (ix *Indexer) WaitFor(ctx context.Context, n uint64) error { return ix.position.WaitFor(ctx, n) }

// Run follows the log until ctx ends.
func (ix *Indexer) Run(ctx context.Context) error {
	for {
		advanced, err := ix.Step(ctx)
		if err != nil && ctx.Err() == nil {
			ix.Logger.Error("indexer: step", "position", ix.Position(), "err", err)
		}
		if advanced {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(ix.Poll):
		}
	}
}

// Step applies at most one batch of entries below the latest checkpoint. It reports whether
// the position advanced.
func (ix *Indexer) Step(ctx context.Context) (bool, error) {
	ix.stepMu.Lock()
	defer ix.stepMu.Unlock()
	cp, err := ix.Log.Checkpoint(ctx)
	if errors.Is(err, ledger.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("indexer: checkpoint: %w", err)
	}
	from := ix.position.Load()
	if cp.Size <= from {
		return false, nil
	}
	n := min(cp.Size-from, ix.BatchSize)
	start := time.Now()
	b := index.Batch{From: from}
	if b.Entries = ix.takeOffered(from, n); len(b.Entries) > 0 {
		n = uint64(len(b.Entries))
		ix.metrics.offered.Add(float64(n))
	} else if b.Entries, err = ix.readEntries(ctx, from, n, cp.Size); err != nil {
		return false, err
	}
	b.To = from + n
	if err := ix.Store.Apply(ctx, b); err != nil {
		if errors.Is(err, index.ErrPosition) {
			// Another writer moved the store (rebuild-index beside a live service); resync.
			if pos, perr := ix.Store.Position(ctx); perr == nil {
				ix.setPosition(pos)
			}
		}
		return false, fmt.Errorf("indexer: apply [%d,%d): %w", b.From, b.To, err)
	}
	ix.metrics.applyTime.Observe(time.Since(start).Seconds())
	ix.metrics.applied.Add(float64(n))
	ix.setPosition(b.To)
	if ix.Applied != nil {
		ix.Applied(b)
	}
	return true, nil
}

// Offer hands the indexer entries this process has just appended to the log (each Index is the
// one the log's future resolved to, and each entry is what DecodeEntry returns for the bytes
// appended). Step applies the offered entries from its position on, as far as they go without a
// gap, instead of reading and decoding them back from the log, and reads from the log whenever
// the entry at its position was not offered; it still indexes only up to the published
// checkpoint. Offers beyond MaxOffered are dropped (the log is read instead).
func (ix *Indexer) Offer(entries []index.Entry) {
	pos := ix.position.Load()
	ix.offerMu.Lock()
	defer ix.offerMu.Unlock()
	if ix.offered == nil {
		ix.offered = make(map[uint64]index.Entry, len(entries))
	}
	for _, e := range entries {
		if e.Index < pos {
			continue // already applied (read from the log): it would never be taken
		}
		c := offeredCost(e)
		if len(ix.offered) >= MaxOffered || ix.offeredBytes+c > MaxOfferedBytes {
			return
		}
		if old, ok := ix.offered[e.Index]; ok {
			ix.offeredBytes -= offeredCost(old)
		}
		ix.offered[e.Index] = e
		ix.offeredBytes += c
	}
}

// takeOffered returns the offered entries from `from` on, in log order, as far as they were
// offered without a gap and at most n of them, and forgets them. When not even the first was
// offered, it returns nil and forgets the offers in [from, from+n), which the caller reads from
// the log. Once many offers are held, it also forgets any below from (an entry offered after
// the indexer had read it from the log).
func (ix *Indexer) takeOffered(from, n uint64) []index.Entry {
	ix.offerMu.Lock()
	defer ix.offerMu.Unlock()
	if len(ix.offered) == 0 {
		return nil
	}
	forget := func(i uint64) {
		if e, ok := ix.offered[i]; ok {
			ix.offeredBytes -= offeredCost(e)
			delete(ix.offered, i)
		}
	}
	var out []index.Entry
	for i := from; i < from+n; i++ {
		e, ok := ix.offered[i]
		if !ok {
			break
		}
		if out == nil {
			out = make([]index.Entry, 0, n)
		}
		out = append(out, e)
		forget(i)
	}
	if out == nil {
		for i := from; i < from+n; i++ {
			forget(i)
		}
	}
	// Offers below from were read from the log meanwhile; they would never be taken. The scan
	// is over what is held (bounded), and runs only when something is left after the take.
	if len(ix.offered) > 0 {
		for i := range ix.offered {
			if i < from {
				forget(i)
			}
		}
	}
	return out
}

// readEntries reads [from, from+n) from the log and decodes them.
func (ix *Indexer) readEntries(ctx context.Context, from, n, size uint64) ([]index.Entry, error) {
	raw, err := ix.Log.Entries(ctx, from, n, size)
	if err != nil {
		return nil, fmt.Errorf("indexer: entries [%d,+%d): %w", from, n, err)
	}
	out := make([]index.Entry, 0, len(raw))
	for i, e := range raw {
		ent, err := ix.Decoder.Decode(ctx, from+uint64(i), e)
		if IsKeyStoreError(err) {
			// Not the entry's fault: the key store is unreachable or incomplete. Stop here
			// (Run retries) rather than skip the entry or show its fields as erased.
			return nil, fmt.Errorf("indexer: %w", err)
		}
		if err != nil {
			// The entry is in the log and stays there; the index cannot represent it. Count it
			// and say so loudly: only a bug or tampering with the log directory gets here.
			ix.metrics.invalid.Inc()
			ix.Logger.Error("indexer: log entry is not a valid envelope; skipped in the index", "index", from+uint64(i), "err", err)
			continue
		}
		out = append(out, ent)
	}
	return out, nil
}

// Pause waits for the step in progress, keeps the indexer from stepping until resume is
// called, and forgets every offered entry: entries offered before an erasure carry clear
// values of keys it destroyed, so from now on they are read from the log and opened with the
// key store. An erasure's purge runs while the indexer is paused.
func (ix *Indexer) Pause() (resume func()) {
	ix.stepMu.Lock()
	ix.offerMu.Lock()
	ix.offered, ix.offeredBytes = nil, 0
	ix.offerMu.Unlock()
	return sync.OnceFunc(ix.stepMu.Unlock)
}

func (ix *Indexer) setPosition(p uint64) {
	ix.position.Set(p)
	ix.metrics.position.Set(float64(p))
}

// DecodeEntry turns one log entry into an index entry.
func DecodeEntry(idx uint64, entry []byte) (index.Entry, error) {
	env, err := lineage.DecodeEnvelope(entry)
	if err != nil {
		return index.Entry{}, fmt.Errorf("entry %d: %w", idx, err)
	}
	t, err := env.Record.ParsedTime()
	if err != nil {
		return index.Entry{}, fmt.Errorf("entry %d: %w", idx, err)
	}
	return index.Entry{
		Index:          idx,
		Record:         env.Record,
		Canonical:      env.Canonical,
		RecordHash:     sha256.Sum256(env.Canonical),
		Time:           t,
		ReceivedAt:     env.ReceivedAt,
		SourceVerified: env.SourceVerified,
	}, nil
}
