package ingest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/ledger"
	"github.com/lineage-audit/lineage/ledger/seal"
	"github.com/lineage-audit/lineage/query/index"
	"github.com/nats-io/nats.go/jetstream"
)

// Lookup finds a record already in the log by tenant and id; it returns index.ErrNotFound when
// there is none. The index store satisfies it. When it also implements index.BatchLookup (both
// index drivers do), the ingester asks it once per batch instead of once per record.
type Lookup interface {
	Lookup(ctx context.Context, tenant, id string) (index.Ref, error)
}

// Config wires an Ingester.
type Config struct {
	JS  jetstream.JetStream
	Log ledger.Log
	// Seen answers "is this id already in the log?" for everything the indexer has applied.
	Seen Lookup
	// Indexed returns the indexer's position (log entries applied to Seen). Records appended
	// by this process are remembered until Indexed passes them.
	Indexed func() uint64
	// WaitIndexed blocks until the indexer has applied at least n entries.
	WaitIndexed func(ctx context.Context, n uint64) error
	// BatchSize bounds the messages handled per batch (and per group commit). Default 1000.
	BatchSize int
	// Linger is how long a batch waits for more messages once it has one. Default 5 ms.
	Linger time.Duration
	// MaxPending bounds records appended but not yet indexed; above it the ingester pauses so
	// memory stays bounded if the indexer falls behind. Default 200,000.
	MaxPending int
	// AckWait is JetStream's redelivery timeout for unacked messages (default 30 s).
	AckWait time.Duration
	Metrics *Metrics
	Logger  *slog.Logger
	// Now is the clock for received_at (tests may fix it).
	Now func() time.Time
	// SourceKeys verifies source signatures; nil accepts unsigned records only.
	SourceKeys *SourceKeys
	// Appended, when set, receives after each batch the entries it durably appended, as
	// query.DecodeEntry would decode them from the log (the indexer's Offer), so the indexer
	// need not read and decode them back.
	Appended func([]index.Entry)
	// Sealer, when set, seals every record's personal fields before it is appended: the log
	// is erasure-enabled and its entries are v2 (docs/ERASURE.md). Nil writes v1 entries.
	Sealer *Sealer
}

// Ingester is the durable JetStream consumer that feeds the log. One runs per log.
type Ingester struct {
	cfg     Config
	pending map[index.Key]pendingRec // appended, not yet indexed
	order   []pendingKey             // pending keys in log order, for pruning
	fenced  error                    // set once an add failed with ledger.ErrFenced
	// sealDone releases the batch's hold on Config.Sealer once its entries are handed over.
	sealDone func()
}

type pendingRec struct {
	index uint64
	hash  [32]byte
}

type pendingKey struct {
	index uint64
	key   index.Key
}

// New checks the config and returns an Ingester.
func New(cfg Config) (*Ingester, error) {
	if cfg.JS == nil || cfg.Log == nil || cfg.Seen == nil || cfg.Indexed == nil || cfg.WaitIndexed == nil {
		return nil, errors.New("ingest: JS, Log, Seen, Indexed and WaitIndexed are required")
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 1000
	}
	if cfg.Linger <= 0 {
		cfg.Linger = 5 * time.Millisecond
	}
	if cfg.AckWait <= 0 {
		cfg.AckWait = 30 * time.Second
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = 200_000
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Ingester{cfg: cfg, pending: map[index.Key]pendingRec{}}, nil
}

// Run consumes until ctx is cancelled. Before the first fetch it waits for the indexer to
// apply every entry already sequenced in the log: only then is the id lookup complete, so a
// message redelivered after a crash (appended, never acked) is recognised as a duplicate.
func (in *Ingester) Run(ctx context.Context) error {
	size, err := in.cfg.Log.Size(ctx)
	if err != nil {
		return fmt.Errorf("ingest: log size: %w", err)
	}
	in.cfg.Logger.Info("ingest: waiting for the index to catch up with the log", "log_size", size)
	if err := in.cfg.WaitIndexed(ctx, size); err != nil {
		return fmt.Errorf("ingest: wait for index to reach %d: %w", size, err)
	}
	cons, err := ensureConsumer(ctx, in.cfg.JS, 4*in.cfg.BatchSize, in.cfg.AckWait)
	if err != nil {
		return err
	}
	// Pull requests expire after 5 s (heartbeats every 2.5 s): a pull lost without notice, e.g.
	// when the NATS node holding it dies in a cluster (docs/ARCHITECTURE.md, scale-out), is
	// noticed and re-issued within about 5 s instead of the default 30 s.
	it, err := cons.Messages(jetstream.PullMaxMessages(2*in.cfg.BatchSize), jetstream.PullExpiry(5*time.Second))
	if err != nil {
		return fmt.Errorf("ingest: subscribe: %w", err)
	}
	// Stop the iterator when ctx ends so a blocked Next returns.
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	defer it.Stop()
	in.cfg.Logger.Info("ingest: consuming", "stream", RecordsStream, "consumer", ConsumerName)

	batch := make([]jetstream.Msg, 0, in.cfg.BatchSize)
	for ctx.Err() == nil {
		if err := in.throttle(ctx); err != nil {
			return nil
		}
		batch = batch[:0]
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			in.cfg.Logger.Warn("ingest: next message", "err", err)
			continue
		}
		batch = append(batch, msg)
		for len(batch) < in.cfg.BatchSize {
			m, err := it.Next(jetstream.NextMaxWait(in.cfg.Linger))
			if err != nil {
				break
			}
			batch = append(batch, m)
		}
		in.handle(ctx, batch)
		if in.fenced != nil {
			// Another node is the writer now: stop consuming (its messages stay un-acked).
			return fmt.Errorf("ingest: %w", in.fenced)
		}
	}
	return nil
}

// throttle prunes the pending set and, while it is over MaxPending, waits for the indexer.
func (in *Ingester) throttle(ctx context.Context) error {
	in.prune()
	for len(in.pending) > in.cfg.MaxPending {
		if err := in.cfg.WaitIndexed(ctx, in.order[len(in.order)-in.cfg.MaxPending/2].index+1); err != nil {
			return err
		}
		in.prune()
	}
	return nil
}

// prune forgets appended records the indexer has applied: from now on Seen answers for them.
func (in *Ingester) prune() {
	pos := in.cfg.Indexed()
	n := 0
	for n < len(in.order) && in.order[n].index < pos {
		if p, ok := in.pending[in.order[n].key]; ok && p.index == in.order[n].index {
			delete(in.pending, in.order[n].key)
		}
		n++
	}
	if n > 0 {
		in.order = append(in.order[:0], in.order[n:]...)
	}
}

// item is one message on its way through a batch.
type item struct {
	msg     jetstream.Msg
	tenant  string
	rec     *lineage.Record
	canon   []byte
	hash    [32]byte
	key     index.Key // (tenant, id): ids are unique per tenant
	future  ledger.IndexFuture
	entry   []byte // the ledger entry, until it is added
	reject  *Rejection
	signed  bool               // carried a valid source signature
	sealed  []seal.FieldStatus // the sealed fields of its v2 entry (Config.Sealer)
	durable bool               // appended: its future resolved
	dupOf   int                // index in the batch of an earlier item with the same key, or -1
	settled bool
}

// handle runs one batch: decode all, add all, then resolve all futures and ack. Adding every
// record before resolving any future lets the log put the whole batch in one group commit.
func (in *Ingester) handle(ctx context.Context, msgs []jetstream.Msg) {
	start := time.Now()
	m := in.cfg.Metrics
	m.Received.Add(float64(len(msgs)))
	m.BatchSize.Observe(float64(len(msgs)))
	if md, err := msgs[len(msgs)-1].Metadata(); err == nil {
		m.Lag.Set(float64(md.NumPending))
	}

	if sl := in.cfg.Sealer; sl != nil {
		// Held until the appended entries are handed to the indexer (see Sealer.mu).
		sl.mu.RLock()
		unlock := sync.OnceFunc(sl.mu.RUnlock)
		defer unlock()
		in.sealDone = unlock
	}
	items := make([]item, len(msgs))
	now := in.cfg.Now().UTC()
	for i, msg := range msgs {
		it := &items[i]
		it.msg, it.dupOf = msg, -1
		it.tenant, it.rec, it.canon, it.reject = decodeMsg(msg)
		if it.reject != nil {
			continue
		}
		if it.signed, it.reject = in.cfg.SourceKeys.Check(it.tenant, it.rec, msg.Data(), msg.Headers().Get(HeaderSignature)); it.reject != nil {
			continue
		}
		it.hash = sha256.Sum256(it.canon)
		it.key = index.Key{Tenant: it.tenant, ID: it.rec.ID}
	}

	known, failed := in.lookupBatch(ctx, items)
	inBatch := make(map[index.Key]int, len(msgs))
	for i := range items {
		it := &items[i]
		if it.reject != nil {
			continue
		}
		if j, ok := inBatch[it.key]; ok {
			it.dupOf = j
			continue
		}
		if failed[it.key] {
			in.retry(it)
			continue
		}
		if prior, found := known[it.key]; found {
			if prior.hash == it.hash {
				m.Duplicates.Inc()
				in.ack(it)
			} else {
				it.reject = conflict(prior.index)
			}
			continue
		}
		entry := lineage.NewEnvelope(it.canon, now, it.signed)
		if in.cfg.Sealer != nil {
			redacted, fields, err := in.cfg.Sealer.seal(ctx, it.tenant, it.rec.ID, it.canon)
			switch {
			case err != nil && (errors.Is(err, seal.ErrKeyStore) || ctx.Err() != nil):
				in.cfg.Logger.Error("ingest: seal: key store", "tenant", it.tenant, "id", it.rec.ID, "err", err)
				in.retry(it)
				continue
			case err != nil:
				it.reject = &Rejection{Code: ReasonSealFailed, Detail: err.Error()}
				continue
			}
			if entry, err = seal.NewEnvelopeV2(redacted, fields, now, it.signed); err != nil {
				it.reject = &Rejection{Code: ReasonSealFailed, Detail: err.Error()}
				continue
			}
			it.sealed = make([]seal.FieldStatus, len(fields))
			for j, f := range fields {
				it.sealed[j] = seal.FieldStatus{Path: f.Path, KeyID: f.KeyID, Commitment: f.Commitment, State: seal.Clear}
			}
		}
		inBatch[it.key] = i
		it.entry = entry
	}
	// Added in one tight run after every entry is built (sealing takes tens of µs a record):
	// the log then groups the batch into as few integrations as when nothing is sealed.
	for i := range items {
		if it := &items[i]; it.entry != nil {
			it.future = in.cfg.Log.Add(ctx, it.entry)
			it.entry = nil
		}
	}

	conflicted := false
	var appended []index.Entry
	if in.cfg.Appended != nil {
		appended = make([]index.Entry, 0, len(items))
	}
	for i := range items {
		it := &items[i]
		if it.settled || it.reject != nil || it.dupOf >= 0 {
			continue
		}
		idx, err := it.future()
		if err != nil {
			switch {
			case errors.Is(err, ledger.ErrFenced):
				in.fenced = err
			case errors.Is(err, ledger.ErrConflict):
				conflicted = true
			}
			in.cfg.Logger.Error("ingest: append", "tenant", it.tenant, "id", it.rec.ID, "err", err)
			delete(inBatch, it.key)
			in.retry(it)
			continue
		}
		in.pending[it.key] = pendingRec{index: idx, hash: it.hash}
		in.order = append(in.order, pendingKey{index: idx, key: it.key})
		m.Appended.Inc()
		it.durable = true
		if appended != nil {
			// Validation parsed the time already, so this cannot fail; if it did, the indexer
			// would read the entry from the log.
			if t, err := it.rec.ParsedTime(); err == nil {
				appended = append(appended, index.Entry{Index: idx, Record: it.rec, Canonical: it.canon,
					RecordHash: it.hash, Time: t, ReceivedAt: now, SourceVerified: it.signed, Sealed: it.sealed})
			}
		}
	}
	// Hand the entries to the indexer before acking: the checkpoint that lets the indexer apply
	// them may be published at any moment now, and an entry not yet offered is read back from
	// the log.
	if len(appended) > 0 {
		in.cfg.Appended(appended)
	}
	if in.sealDone != nil {
		in.sealDone()
		in.sealDone = nil
	}
	for i := range items {
		if it := &items[i]; it.durable {
			in.ack(it)
		}
	}
	m.AppendTime.Observe(time.Since(start).Seconds())

	// Same id twice in one batch: settle each copy against the first one's outcome.
	for i := range items {
		it := &items[i]
		if it.settled || it.dupOf < 0 {
			continue
		}
		first := &items[it.dupOf]
		p, appended := in.pending[it.key]
		switch {
		case !appended || first.reject != nil:
			in.retry(it) // the first copy failed; this one gets its own chance on redelivery
		case p.hash == it.hash:
			m.Duplicates.Inc()
			in.ack(it)
		default:
			it.reject = conflict(p.index)
		}
	}

	for i := range items {
		if it := &items[i]; !it.settled && it.reject != nil {
			in.quarantine(ctx, it)
		}
	}
	if conflicted {
		in.catchUp(ctx)
	}
}

// catchUp runs after an add met an index another writer had taken (ledger.ErrConflict: a
// writer that lost the writer role stored entries after this one took over, internal/ha). The
// log now holds records this process never saw, and their messages may come back: before the
// next batch, wait until the indexer has applied the log up to its re-read size, so the id
// lookup knows them and a redelivery is a duplicate, not a second copy.
func (in *Ingester) catchUp(ctx context.Context) {
	size, err := in.cfg.Log.Size(ctx)
	if err != nil {
		in.cfg.Logger.Error("ingest: log size after a conflict", "err", err)
		return
	}
	in.cfg.Logger.Warn("ingest: another writer stored entries; waiting for the index to reach the log before the next batch", "log_size", size)
	if err := in.cfg.WaitIndexed(ctx, size); err != nil {
		in.cfg.Logger.Error("ingest: wait for the index after a conflict", "log_size", size, "err", err)
	}
}

// lookupBatch answers, for the key of every valid item, whether that record is already in the
// log: known maps the keys found to their entry, from this process's pending set or else from
// the index; failed holds the keys whose lookup failed, whose messages are retried.
//
// The index is asked once for the whole batch when it implements index.BatchLookup: on a
// server-side index (ClickHouse) a Lookup is a round trip of milliseconds, so asking record by
// record bounded ingest at a few hundred new records a second, each of which must be looked up.
// Other stores are asked key by key.
func (in *Ingester) lookupBatch(ctx context.Context, items []item) (known map[index.Key]pendingRec, failed map[index.Key]bool) {
	known, failed = map[index.Key]pendingRec{}, map[index.Key]bool{}
	ask := make([]index.Key, 0, len(items))
	asked := make(map[index.Key]bool, len(items))
	for i := range items {
		it := &items[i]
		if it.reject != nil || asked[it.key] {
			continue
		}
		asked[it.key] = true
		if p, ok := in.pending[it.key]; ok {
			known[it.key] = p
			continue
		}
		ask = append(ask, it.key)
	}
	if len(ask) == 0 {
		return known, failed
	}
	if bl, ok := in.cfg.Seen.(index.BatchLookup); ok {
		refs, err := bl.LookupMany(ctx, ask)
		if err != nil {
			in.cfg.Logger.Error("ingest: id lookup", "records", len(ask), "err", err)
			for _, k := range ask {
				failed[k] = true
			}
			return known, failed
		}
		for k, ref := range refs {
			known[k] = pendingRec{index: ref.Index, hash: ref.RecordHash}
		}
		return known, failed
	}
	for _, k := range ask {
		ref, err := in.cfg.Seen.Lookup(ctx, k.Tenant, k.ID)
		switch {
		case errors.Is(err, index.ErrNotFound):
		case err != nil:
			in.cfg.Logger.Error("ingest: id lookup", "tenant", k.Tenant, "id", k.ID, "err", err)
			failed[k] = true
		default:
			known[k] = pendingRec{index: ref.Index, hash: ref.RecordHash}
		}
	}
	return known, failed
}

func (in *Ingester) ack(it *item) {
	it.settled = true
	// A lost ack only causes a redelivery, which the id lookup turns into a duplicate.
	if err := it.msg.Ack(); err != nil {
		in.cfg.Logger.Warn("ingest: ack", "subject", it.msg.Subject(), "err", err)
	}
}

func (in *Ingester) retry(it *item) {
	it.settled = true
	in.cfg.Metrics.Retries.Inc()
	if err := it.msg.NakWithDelay(time.Second); err != nil {
		in.cfg.Logger.Warn("ingest: nak", "subject", it.msg.Subject(), "err", err)
	}
}

// decodeMsg validates one message: subject, record, tenant agreement, canonical form.
func decodeMsg(msg jetstream.Msg) (tenant string, rec *lineage.Record, canon []byte, rej *Rejection) {
	tenant, ok := strings.CutPrefix(msg.Subject(), RecordsPrefix)
	if !ok || !validTenant(tenant) {
		return "", nil, nil, &Rejection{Code: ReasonBadSubject, Detail: fmt.Sprintf("subject %q is not %s<tenant>", msg.Subject(), RecordsPrefix)}
	}
	rec, err := lineage.DecodeRecord(msg.Data())
	if err != nil {
		return tenant, nil, nil, rejectDecode(err)
	}
	if rec.Tenant != tenant {
		return tenant, nil, nil, &Rejection{Code: ReasonTenantMismatch, Field: "tenant",
			Detail: fmt.Sprintf("record tenant %q published on the subject of tenant %q", rec.Tenant, tenant)}
	}
	canon, err = rec.Canonical()
	if err != nil {
		return tenant, nil, nil, &Rejection{Code: ReasonInvalid, Detail: err.Error()}
	}
	return tenant, rec, canon, nil
}

// validTenant is the record's tenant rule (lineage.ValidTenant), so a quarantine subject is
// always valid.
func validTenant(t string) bool { return lineage.ValidTenant(t) }
