package ingest_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/ingest"
	"github.com/lineage-audit/lineage/internal/demo"
	"github.com/lineage-audit/lineage/ledger"
	"github.com/lineage-audit/lineage/ledger/tessera"
	"github.com/lineage-audit/lineage/query"
	"github.com/lineage-audit/lineage/query/index"
	"github.com/lineage-audit/lineage/query/index/sqlite"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// rig is a real ingest pipeline in one process: embedded NATS, Tessera log, SQLite index.
type rig struct {
	js      jetstream.JetStream
	nc      *nats.Conn
	log     ledger.Log
	store   index.Store
	ix      *query.Indexer
	metrics *ingest.Metrics
	cancel  context.CancelFunc
	done    chan error

	appendedMu sync.Mutex
	appended   []index.Entry // every entry the ingester handed to the indexer (Config.Appended)
}

const maxMsg = 64<<10 + ingest.HeaderAllowance

func newRig(t *testing.T) *rig { return newRigWith(t, nil) }

func newRigWith(t *testing.T, keys *ingest.SourceKeys) *rig {
	t.Helper()
	dir := t.TempDir()
	ns, err := ingest.StartEmbedded(ingest.EmbeddedOptions{Addr: "127.0.0.1:0", StoreDir: filepath.Join(dir, "nats"), MaxPayload: 2 * maxMsg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	if err := ingest.EnsureStreams(ctx, js, ingest.StreamOptions{MaxMsgSize: maxMsg}); err != nil {
		t.Fatal(err)
	}
	signer, vkey, err := ledger.LoadOrCreateSigner(filepath.Join(dir, "log.key"), "lineage.test/ingest")
	if err != nil {
		t.Fatal(err)
	}
	v, _ := ledger.NewVerifier(vkey)
	o := tessera.DefaultOptions(filepath.Join(dir, "log"), signer, v)
	o.CheckpointInterval = 100 * time.Millisecond
	lg, err := tessera.Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	store, err := sqlite.Open(ctx, filepath.Join(dir, "index.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	ix, err := query.NewIndexer(ctx, lg, store, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{js: js, nc: nc, log: lg, store: store, ix: ix, metrics: ingest.NewMetrics(nil), done: make(chan error, 1)}
	rctx, cancel := context.WithCancel(ctx)
	r.cancel = cancel
	go func() { _ = ix.Run(rctx) }()
	in, err := ingest.New(ingest.Config{JS: js, Log: lg, Seen: store, Indexed: ix.Position, WaitIndexed: ix.WaitFor, Metrics: r.metrics, BatchSize: 64, SourceKeys: keys,
		Appended: func(es []index.Entry) {
			r.appendedMu.Lock()
			r.appended = append(r.appended, es...)
			r.appendedMu.Unlock()
			ix.Offer(es)
		}})
	if err != nil {
		t.Fatal(err)
	}
	go func() { r.done <- in.Run(rctx) }()
	t.Cleanup(func() {
		cancel()
		<-r.done
		_ = lg.Close(context.Background())
		_ = store.Close()
	})
	// The ingester creates its consumer in the background. Tests that then update the stream
	// must not race that creation: nats-server reads the stream's store config without a lock
	// while creating a consumer (the race detector caught it under load).
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := js.Consumer(ctx, ingest.RecordsStream, ingest.ConsumerName); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the ingester did not create its consumer within 30 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return r
}

func (r *rig) publish(t *testing.T, subject string, body []byte, hdr map[string]string) {
	t.Helper()
	m := nats.NewMsg(subject)
	m.Data = body
	for k, v := range hdr {
		m.Header.Set(k, v)
	}
	if _, err := r.js.PublishMsg(context.Background(), m); err != nil {
		t.Fatalf("publish %s: %v", subject, err)
	}
}

// settle waits until every message in the records stream has been acked (work queue empty)
// and the index has applied every log entry.
func (r *rig) settle(t *testing.T) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		s, err := r.js.Stream(ctx, ingest.RecordsStream)
		if err != nil {
			t.Fatal(err)
		}
		size, _ := r.log.Size(ctx)
		if s.CachedInfo().State.Msgs == 0 && r.ix.Position() == size {
			info, _ := s.Info(ctx)
			if info.State.Msgs == 0 {
				return size
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("not settled: %d messages unacked, index %d of %d", s.CachedInfo().State.Msgs, r.ix.Position(), size)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func records(n int) []lineage.Record { return demo.Generate(demo.Options{Seed: 3, Tenants: 2}, n) }

func TestIngestAppendsOnceAndQuarantines(t *testing.T) {
	r := newRig(t)
	recs := records(300)
	for _, rec := range recs {
		r.publish(t, ingest.RecordsPrefix+rec.Tenant, mustJSON(rec), nil)
	}
	// The same records again, without Nats-Msg-Id: only the id lookup can catch them.
	for _, rec := range recs[:50] {
		r.publish(t, ingest.RecordsPrefix+rec.Tenant, mustJSON(rec), nil)
	}
	if got := r.settle(t); got != 300 {
		t.Fatalf("log size %d, want 300", got)
	}
	if d := testutil.ToFloat64(r.metrics.Duplicates); d != 50 {
		t.Fatalf("duplicates = %v, want 50", d)
	}
	for _, rec := range recs {
		ref, err := r.store.Lookup(context.Background(), rec.Tenant, rec.ID)
		if err != nil {
			t.Fatalf("lookup %s: %v", rec.ID, err)
		}
		if ref.Index >= 300 {
			t.Fatalf("index %d out of range", ref.Index)
		}
	}

	big := recs[0]
	big.ID = "big-one"
	big.PolicyContext = json.RawMessage(`{"blob":"` + strings.Repeat("x", 64<<10) + `"}`)
	conflict := recs[1]
	conflict.Decision.Effect = lineage.EffectDeny
	cases := []struct {
		reason, subject string
		body            []byte
	}{
		{"invalid_json", ingest.RecordsPrefix + recs[0].Tenant, []byte("{not json")},
		{"too_large", ingest.RecordsPrefix + recs[0].Tenant, mustJSON(big)},
		{"id_conflict", ingest.RecordsPrefix + conflict.Tenant, mustJSON(conflict)},
		{"tenant_mismatch", ingest.RecordsPrefix + "someone-else", mustJSON(withID(recs[2], "new-id-1"))},
		{"bad_subject", ingest.RecordsPrefix + "Bad.Tenant", mustJSON(withID(recs[2], "new-id-2"))},
		{"missing_field", ingest.RecordsPrefix + recs[0].Tenant, []byte(`{"schema":"lineage.decision/v1","id":"x"}`)},
	}
	for _, c := range cases {
		r.publish(t, c.subject, c.body, nil)
	}
	if got := r.settle(t); got != 300 {
		t.Fatalf("log size %d after rejects, want 300", got)
	}
	for _, c := range cases {
		if n := testutil.ToFloat64(r.metrics.Quarantined.WithLabelValues(c.reason)); n != 1 {
			t.Errorf("quarantined[%s] = %v, want 1", c.reason, n)
		}
	}
	qs, err := r.js.Stream(context.Background(), ingest.QuarantineStream)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := qs.Info(context.Background())
	if info.State.Msgs != uint64(len(cases)) {
		t.Fatalf("quarantine stream holds %d messages, want %d", info.State.Msgs, len(cases))
	}
	// The conflicting record is reported with the index of the logged one, which is unchanged.
	var q ingest.Quarantined
	for seq := uint64(1); seq <= info.State.LastSeq; seq++ {
		m, err := qs.GetMsg(context.Background(), seq)
		if err != nil {
			t.Fatal(err)
		}
		if x := ingest.ParseQuarantined(m.Header, m.Data); x.Reason.Code == ingest.ReasonConflict {
			q = x
		}
	}
	if q.Reason.Code != ingest.ReasonConflict || !strings.Contains(q.Reason.Detail, "at index") || string(q.Payload) != string(mustJSON(conflict)) {
		t.Fatalf("conflict quarantine entry: %+v", q.Reason)
	}
	got, err := r.store.Get(context.Background(), recs[1].Tenant, recs[1].ID)
	if err != nil || got.Record.Decision.Effect != recs[1].Decision.Effect {
		t.Fatalf("logged record changed by a conflicting publish: %+v, %v", got.Record.Decision, err)
	}
}

// The entries the ingester hands to the indexer are exactly what the indexer would decode from
// the log at their indexes, so an index fed from the hand-off equals one rebuilt from the log.
func TestAppendedEntriesMatchTheLog(t *testing.T) {
	r := newRig(t)
	recs := records(200)
	for _, rec := range recs {
		r.publish(t, ingest.RecordsPrefix+rec.Tenant, mustJSON(rec), nil)
	}
	// Free-form members with whitespace and non-canonical numbers: the hand-off must carry the
	// canonical form, as the log does.
	odd := withID(recs[0], "odd-free-form")
	odd.PolicyContext = json.RawMessage(`{ "b" : 1.50, "a":[ 1e2 , "x" ] }`)
	r.publish(t, ingest.RecordsPrefix+odd.Tenant, mustJSON(odd), nil)
	size := r.settle(t)
	if size != 201 {
		t.Fatalf("log size %d, want 201", size)
	}
	r.appendedMu.Lock()
	defer r.appendedMu.Unlock()
	if len(r.appended) != int(size) {
		t.Fatalf("%d entries handed off, want %d", len(r.appended), size)
	}
	ctx := context.Background()
	raw, err := r.log.Entries(ctx, 0, size, size)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uint64]bool{}
	for _, got := range r.appended {
		if got.Index >= size || seen[got.Index] {
			t.Fatalf("entry handed off at index %d twice or beyond the log (%d)", got.Index, size)
		}
		seen[got.Index] = true
		want, err := query.DecodeEntry(got.Index, raw[got.Index])
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("entry %d handed off:\n%+v\n%+v\nlog decodes to:\n%+v\n%+v", got.Index, got, *got.Record, want, *want.Record)
		}
	}
	stored, err := r.store.Get(ctx, odd.Tenant, odd.ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"a":[100,"x"],"b":1.5}`; string(stored.Record.PolicyContext) != want {
		t.Fatalf("stored policy_context %s, want %s", stored.Record.PolicyContext, want)
	}
}

func TestIngestSameIDInOneBatch(t *testing.T) {
	r := newRig(t)
	rec := records(1)[0]
	other := rec
	other.Action.Target = "changed"
	// Published back to back they land in one batch: one appended, one duplicate, one conflict.
	r.publish(t, ingest.RecordsPrefix+rec.Tenant, mustJSON(rec), nil)
	r.publish(t, ingest.RecordsPrefix+rec.Tenant, mustJSON(rec), nil)
	r.publish(t, ingest.RecordsPrefix+rec.Tenant, mustJSON(other), nil)
	if got := r.settle(t); got != 1 {
		t.Fatalf("log size %d, want 1", got)
	}
	if n := testutil.ToFloat64(r.metrics.Quarantined.WithLabelValues(ingest.ReasonConflict)); n != 1 {
		t.Fatalf("conflicts = %v, want 1", n)
	}
}

func TestServerRefusesOversizeMessages(t *testing.T) {
	r := newRig(t)
	_, err := r.js.Publish(context.Background(), ingest.RecordsPrefix+"acme", make([]byte, 2*maxMsg+1))
	if !errors.Is(err, nats.ErrMaxPayload) {
		t.Fatalf("a message over the server limit: err = %v, want ErrMaxPayload", err)
	}
	// Between the stream limit and the server limit, JetStream itself refuses it.
	_, err = r.js.Publish(context.Background(), ingest.RecordsPrefix+"acme", make([]byte, maxMsg+1))
	if err == nil {
		t.Fatal("the records stream accepted a message over its limit")
	}
}

func withID(r lineage.Record, id string) lineage.Record { r.ID = id; return r }

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
