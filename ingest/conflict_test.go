package ingest_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/ingest"
	"github.com/lineage-audit/lineage/query/auth"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// api mounts HTTP ingest on a router whose every caller is auth.Local (all tenants, every role),
// wired to the rig's JetStream, index and metrics like internal/service/run.go does.
func (r *rig) api(t *testing.T) http.Handler {
	t.Helper()
	gin.SetMode(gin.TestMode)
	e := gin.New()
	h := &ingest.HTTP{JS: r.js, Metrics: r.metrics, Seen: r.store}
	h.Mount(e.Group("/v1", auth.Middleware(nil)))
	return e
}

type answer struct {
	status int
	header http.Header
	body   ingest.Response
	raw    map[string]any
}

func post(t *testing.T, h http.Handler, path string, body []byte) answer {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	a := answer{status: w.Code, header: w.Header()}
	if err := json.Unmarshal(w.Body.Bytes(), &a.body); err != nil {
		t.Fatalf("POST %s: %d %s (%v)", path, w.Code, w.Body.String(), err)
	}
	_ = json.Unmarshal(w.Body.Bytes(), &a.raw)
	return a
}

// quarantined reads every message of the quarantine stream, headers unparsed.
func (r *rig) quarantined(t *testing.T) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx := context.Background()
	qs, err := r.js.Stream(ctx, ingest.QuarantineStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := qs.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := qs.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func conflictRecord() (lineage.Record, lineage.Record) {
	rec := records(1)[0]
	rec.ID = "conf-1"
	rec.Decision.Effect = lineage.EffectAllow
	changed := rec
	changed.Decision.Effect = lineage.EffectDeny
	return rec, changed
}

// A record whose id is already in the log with other content is answered as a conflict and
// quarantined at once, instead of "accepted" and then silently dropped by JetStream's dedupe.
func TestHTTPConflictIsAnsweredAndQuarantined(t *testing.T) {
	r := newRig(t)
	h := r.api(t)
	rec, changed := conflictRecord()
	if a := post(t, h, "/v1/records", mustJSON([]any{rec})); a.status != http.StatusAccepted || a.body.Results[0].Status != "accepted" {
		t.Fatalf("first publish: %d %+v", a.status, a.body)
	}
	if n := r.settle(t); n != 1 {
		t.Fatalf("log size %d, want 1", n)
	}

	a := post(t, h, "/v1/records", mustJSON([]any{changed}))
	res := a.body.Results[0]
	if a.status != http.StatusConflict || res.Status != "quarantined" || res.Reason == nil || res.Reason.Code != ingest.ReasonConflict ||
		a.raw["conflicts"] != float64(1) || a.header.Get("Retry-After") != "" {
		t.Fatalf("changed record: %d %+v reason %+v, body %v", a.status, a.body, res.Reason, a.raw)
	}
	if n := r.settle(t); n != 1 {
		t.Fatalf("log size %d after the conflict, want 1", n)
	}
	if n := testutil.ToFloat64(r.metrics.Quarantined.WithLabelValues(ingest.ReasonConflict)); n != 1 {
		t.Fatalf("quarantined{id_conflict} = %v, want 1", n)
	}
	qs := r.quarantined(t)
	if len(qs) != 1 {
		t.Fatalf("%d quarantine entries, want 1", len(qs))
	}
	q := ingest.ParseQuarantined(qs[0].Header, qs[0].Data)
	if q.Reason.Code != ingest.ReasonConflict || !bytes.Equal(q.Payload, mustJSON(changed)) || qs[0].Subject != ingest.QuarantinePrefix+rec.Tenant {
		t.Fatalf("quarantine entry %s: %+v %s", qs[0].Subject, q.Reason, q.Payload)
	}
	got, err := r.store.Get(context.Background(), rec.Tenant, rec.ID)
	if err != nil || got.Record.Decision.Effect != lineage.EffectAllow {
		t.Fatalf("logged record: %+v, %v", got.Record.Decision, err)
	}

	// An identical retry is still just accepted: exactly one log entry, nothing quarantined.
	if a := post(t, h, "/v1/records", mustJSON([]any{rec})); a.status != http.StatusAccepted || a.body.Results[0].Status != "accepted" {
		t.Fatalf("identical retry: %d %+v", a.status, a.body)
	}
	if n := r.settle(t); n != 1 || len(r.quarantined(t)) != 1 {
		t.Fatalf("after an identical retry: log size %d, %d quarantined", n, len(r.quarantined(t)))
	}

	// Both versions in one request: the second is the conflict, whatever the log holds.
	fresh, freshChanged := withID(rec, "conf-2"), withID(changed, "conf-2")
	a = post(t, h, "/v1/records", mustJSON([]any{fresh, freshChanged}))
	if a.status != http.StatusAccepted || a.body.Results[0].Status != "accepted" || a.body.Results[1].Status != "quarantined" ||
		a.body.Results[1].Reason.Code != ingest.ReasonConflict {
		t.Fatalf("both versions in one request: %d %+v", a.status, a.body)
	}
	if n := r.settle(t); n != 2 {
		t.Fatalf("log size %d, want 2", n)
	}
	if n := testutil.ToFloat64(r.metrics.Quarantined.WithLabelValues(ingest.ReasonConflict)); n != 2 {
		t.Fatalf("quarantined{id_conflict} = %v, want 2", n)
	}
}

// pastWindow is comfortably past the records stream's dedupe window (the server purges the ids
// it remembers on a timer, up to 50 ms late).
const pastWindow = 300 * time.Millisecond

// A NATS publisher that still sets the old-style Nats-Msg-Id <tenant>/<id> cannot hide a changed
// record behind JetStream's dedupe window: the stream's window is the server's minimum, and an
// existing stream with a longer one is shrunk by EnsureStreams.
func TestNATSOldStyleMsgIDConflictQuarantined(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	// A stream created by an older version keeps its 10-minute window until EnsureStreams runs.
	s, err := r.js.Stream(ctx, ingest.RecordsStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	cfg.Duplicates = 10 * time.Minute
	if _, err := r.js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}

	rec, changed := conflictRecord()
	oldID := map[string]string{jetstream.MsgIDHeader: rec.Tenant + "/" + rec.ID}
	r.publish(t, ingest.RecordsPrefix+rec.Tenant, mustJSON(rec), oldID)
	if n := r.settle(t); n != 1 {
		t.Fatalf("log size %d, want 1", n)
	}
	if err := ingest.EnsureStreams(ctx, r.js, ingest.StreamOptions{MaxMsgSize: maxMsg}); err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil || info.Config.Duplicates != ingest.DuplicateWindow || ingest.DuplicateWindow > pastWindow/3 {
		t.Fatalf("duplicate window after EnsureStreams: %v (%v), want %v", info.Config.Duplicates, err, ingest.DuplicateWindow)
	}
	// Within the window JetStream still drops it, and says so to the publisher (PubAck
	// duplicate); past it, the ingester sees the changed record.
	time.Sleep(pastWindow)
	ack := r.publishAck(t, ingest.RecordsPrefix+rec.Tenant, mustJSON(changed), oldID)
	if ack.Duplicate {
		t.Fatalf("the changed record was dropped by JetStream as a duplicate: %+v", ack)
	}
	if n := r.settle(t); n != 1 {
		t.Fatalf("log size %d, want 1", n)
	}
	if n := testutil.ToFloat64(r.metrics.Quarantined.WithLabelValues(ingest.ReasonConflict)); n != 1 {
		t.Fatalf("quarantined{id_conflict} = %v, want 1", n)
	}

	// An identical retry with the same header is a duplicate: no quarantine, one log entry.
	time.Sleep(pastWindow)
	dups := testutil.ToFloat64(r.metrics.Duplicates)
	r.publish(t, ingest.RecordsPrefix+rec.Tenant, mustJSON(rec), oldID)
	if n := r.settle(t); n != 1 {
		t.Fatalf("log size %d after an identical retry, want 1", n)
	}
	if d := testutil.ToFloat64(r.metrics.Duplicates); d != dups+1 {
		t.Fatalf("duplicates %v, want %v", d, dups+1)
	}
	if n := len(r.quarantined(t)); n != 1 {
		t.Fatalf("%d quarantine entries, want 1", n)
	}
	got, err := r.store.Get(ctx, rec.Tenant, rec.ID)
	if err != nil || got.Record.Decision.Effect != lineage.EffectAllow {
		t.Fatalf("logged record: %+v, %v", got.Record.Decision, err)
	}
}

// RecordMsg's Nats-Msg-Id covers the exact bytes: a retry is deduplicated by JetStream, a
// changed record published right after is not, and reaches quarantine.
func TestRecordMsgIDCoversContent(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	rec, changed := conflictRecord()
	a, b := ingest.RecordMsg(rec.Tenant, rec.ID, mustJSON(rec)), ingest.RecordMsg(rec.Tenant, rec.ID, mustJSON(changed))
	if !strings.HasPrefix(a.Header.Get(jetstream.MsgIDHeader), rec.Tenant+"/"+rec.ID+"/") ||
		a.Header.Get(jetstream.MsgIDHeader) == b.Header.Get(jetstream.MsgIDHeader) {
		t.Fatalf("ids %q and %q", a.Header.Get(jetstream.MsgIDHeader), b.Header.Get(jetstream.MsgIDHeader))
	}
	for i, m := range []*nats.Msg{a, ingest.RecordMsg(rec.Tenant, rec.ID, mustJSON(rec)), b} {
		ack, err := r.js.PublishMsg(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		if ack.Duplicate != (i == 1) {
			t.Fatalf("publish %d: duplicate = %v", i, ack.Duplicate)
		}
	}
	if n := r.settle(t); n != 1 {
		t.Fatalf("log size %d, want 1", n)
	}
	if n := testutil.ToFloat64(r.metrics.Quarantined.WithLabelValues(ingest.ReasonConflict)); n != 1 {
		t.Fatalf("quarantined{id_conflict} = %v, want 1", n)
	}
}

// Records too large for the stream are a permanent rejection: a 4xx without Retry-After (a
// 2xx for OPA, which re-sends any other answer forever), and the record is kept in quarantine,
// cut to fit, with its original size and SHA-256.
func TestHTTPOversizedRecordsQuarantined(t *testing.T) {
	r := newRig(t)
	h := r.api(t)
	big := func(id string, n int) []byte {
		rec := withID(records(1)[0], id)
		rec.PolicyContext = json.RawMessage(`{"blob":"` + strings.Repeat("x", n) + `"}`)
		return mustJSON(rec)
	}
	opaEvent := mustJSON([]map[string]any{{"path": "lending/allow", "result": true, "timestamp": "2026-11-01T10:00:00Z",
		"input": map[string]any{"blob": strings.Repeat("y", 140<<10)}}})
	tenant := records(1)[0].Tenant
	cases := []struct {
		name, path     string
		body, original []byte
		status         int
		reason         string
	}{
		{"200 KB record", "/v1/records", nil, big("big-200k", 200<<10), http.StatusRequestEntityTooLarge, lineage.CodeTooLarge},
		{"2 MB record", "/v1/records", nil, big("big-2m", 2<<20), http.StatusRequestEntityTooLarge, lineage.CodeTooLarge},
		{"140 KB OPA event without decision_id", "/v1/opa/" + tenant + "/logs", opaEvent, nil, http.StatusAccepted, ingest.ReasonOPAUnmappable},
	}
	for i, c := range cases {
		body := c.body
		if body == nil {
			body = append(append([]byte("["), c.original...), ']')
		} else {
			var evs []json.RawMessage
			if err := json.Unmarshal(body, &evs); err != nil {
				t.Fatal(err)
			}
			c.original = evs[0]
		}
		a := post(t, h, c.path, body)
		res := a.body.Results[0]
		if a.status != c.status || a.header.Get("Retry-After") != "" || res.Status != "quarantined" || res.Reason.Code != c.reason {
			t.Fatalf("%s: %d Retry-After %q, %+v", c.name, a.status, a.header.Get("Retry-After"), a.body)
		}
		qs := r.quarantined(t)
		if len(qs) != i+1 {
			t.Fatalf("%s: %d quarantine entries, want %d", c.name, len(qs), i+1)
		}
		m := qs[i]
		sum := sha256.Sum256(c.original)
		if m.Subject != ingest.QuarantinePrefix+tenant || m.Header.Get(ingest.HeaderReason) != c.reason ||
			m.Header.Get("Lineage-Original-Size") != strconv.Itoa(len(c.original)) ||
			m.Header.Get("Lineage-Original-SHA256") != hex.EncodeToString(sum[:]) ||
			len(m.Data) == 0 || !bytes.HasPrefix(c.original, m.Data) || len(m.Data) > 2*maxMsg {
			t.Fatalf("%s: quarantine entry on %s, headers %v, %d bytes kept", c.name, m.Subject, m.Header, len(m.Data))
		}
		if n := testutil.ToFloat64(r.metrics.Quarantined.WithLabelValues(c.reason)); n == 0 {
			t.Fatalf("%s: quarantined{%s} not counted", c.name, c.reason)
		}
	}
	if n := r.settle(t); n != 0 {
		t.Fatalf("log size %d, want 0", n)
	}
}

// publishAck publishes like publish and returns JetStream's ack.
func (r *rig) publishAck(t *testing.T, subject string, body []byte, hdr map[string]string) *jetstream.PubAck {
	t.Helper()
	m := nats.NewMsg(subject)
	m.Data = body
	for k, v := range hdr {
		m.Header.Set(k, v)
	}
	ack, err := r.js.PublishMsg(context.Background(), m)
	if err != nil {
		t.Fatalf("publish %s: %v", subject, err)
	}
	return ack
}

// On a NATS server whose payload limit is above the quarantine stream's (an external server
// with the default 1 MB, say), the stream's own refusal makes PublishQuarantine cut the entry to
// the stream's limit; original headers too large to leave room are dropped and counted.
func TestQuarantineFitsTheStreamLimit(t *testing.T) {
	ns, err := ingest.StartEmbedded(ingest.EmbeddedOptions{Addr: "127.0.0.1:0", StoreDir: t.TempDir(), MaxPayload: 1 << 20})
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
	payload := bytes.Repeat([]byte("z"), 300<<10)
	sum := sha256.Sum256(payload)
	bigHeaders := nats.Header{}
	for i := range 100 {
		bigHeaders.Set("X-Pad-"+strconv.Itoa(i), strings.Repeat("h", 1<<10))
	}
	for i, hdr := range []nats.Header{{"X-Small": {"kept"}}, bigHeaders} {
		q := ingest.Quarantined{Reason: ingest.Rejection{Code: lineage.CodeTooLarge, Detail: "test"}, Subject: "test",
			ReceivedAt: time.Now(), Payload: payload, Headers: hdr}
		if err := ingest.PublishQuarantine(ctx, js, "acme", q, "q-test-"+strconv.Itoa(i)); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		s, _ := js.Stream(ctx, ingest.QuarantineStream)
		m, err := s.GetMsg(ctx, uint64(i+1))
		if err != nil {
			t.Fatal(err)
		}
		got := ingest.ParseQuarantined(m.Header, m.Data)
		if !got.Truncated || got.OriginalSize != len(payload) || got.OriginalSHA256 != hex.EncodeToString(sum[:]) ||
			len(got.Payload) == 0 || len(got.Payload) > 2*maxMsg || !bytes.HasPrefix(payload, got.Payload) {
			t.Fatalf("entry %d: truncated %v, size %d, sha %s, %d bytes kept", i, got.Truncated, got.OriginalSize, got.OriginalSHA256, len(got.Payload))
		}
		if kept := got.Headers["X-Small"]; (i == 0) != (len(kept) == 1) || (i == 1) != (got.DroppedHeaders == 100) {
			t.Fatalf("entry %d: headers %v, %d dropped", i, got.Headers, got.DroppedHeaders)
		}
	}
}
