package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/query/auth"
	"github.com/lineage-audit/lineage/query/index"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// HTTP is record ingest over HTTP, for enforcement points that do not speak NATS: a batch of
// records (POST /v1/records) or OPA's decision-log uploads (POST /v1/opa/{tenant}/logs). It
// does not append to the log itself: valid records are published to the same JetStream
// subjects as NATS publishers use, so they take the one durable path through the ingester
// (dedupe, conflicts, group commit), and "accepted" means "durably accepted by JetStream".
// Invalid records are quarantined here, with the same reasons the ingester uses, and so is a
// record whose id is already in the log (Seen) with other content (id_conflict): the caller
// learns of the conflict in the answer. A conflict with a record still on its way to the log
// is caught by the ingester, which quarantines it.
type HTTP struct {
	JS  jetstream.JetStream
	OPA OPAConfig
	// Seen is the index the ingester asks (Config.Seen); nil skips the check at submit time and
	// leaves every conflict to the ingester.
	Seen    Lookup
	Metrics *Metrics
	Logger  *slog.Logger
	// MaxBody bounds a request body (and a decompressed OPA upload); MaxRecords the records in it.
	MaxBody    int64
	MaxRecords int
	Now        func() time.Time
}

// Defaults for HTTP ingest limits.
const (
	DefaultMaxBody    = 16 << 20
	DefaultMaxRecords = 10_000
)

// Mount registers the ingest and quarantine routes on an authenticated /v1 group.
func (h *HTTP) Mount(v1 *gin.RouterGroup) {
	if h.MaxBody <= 0 {
		h.MaxBody = DefaultMaxBody
	}
	if h.MaxRecords <= 0 {
		h.MaxRecords = DefaultMaxRecords
	}
	if h.Now == nil {
		h.Now = time.Now
	}
	if h.Logger == nil {
		h.Logger = slog.Default()
	}
	if h.Metrics == nil {
		h.Metrics = NewMetrics(nil)
	}
	v1.POST("/records", auth.Require(auth.RolePublisher), h.postRecords)
	v1.POST("/opa/:tenant/logs", auth.Require(auth.RolePublisher), h.postOPALogs)
	v1.GET("/quarantine", auth.Require(auth.RoleAdmin), h.listQuarantine)
}

// Result is the outcome for one submitted record.
type Result struct {
	Index  int        `json:"index"`
	ID     string     `json:"id,omitempty"`
	Tenant string     `json:"tenant,omitempty"`
	Status string     `json:"status"` // accepted | quarantined | failed
	Reason *Rejection `json:"reason,omitempty"`
}

// Response is the body of every answer to an ingest request that got as far as its records:
//
//   - 503 with Retry-After when some record could not be stored for now ("failed"): retry the
//     request (records already accepted are deduplicated);
//   - otherwise 202, with one result per record, "accepted" or "quarantined" with its reason;
//   - except, on POST /v1/records, when no record at all was accepted (all were quarantined,
//     a permanent rejection that must not be retried): 409 when every one is an id_conflict,
//     413 when every one is too_large, else 422. OPA uploads get 202 then too: OPA re-sends
//     any upload answered with something other than a 2xx, forever, and the events are kept
//     in quarantine.
//
// Conflicts counts the quarantined records whose id is already taken by different content.
type Response struct {
	Accepted    int      `json:"accepted"`
	Quarantined int      `json:"quarantined"`
	Conflicts   int      `json:"conflicts"`
	Failed      int      `json:"failed"`
	Results     []Result `json:"results"`
}

func httpError(c *gin.Context, status int, format string, args ...any) {
	c.Abort()
	c.PureJSON(status, gin.H{"error": fmt.Sprintf(format, args...)})
}

// readBody reads the request body within MaxBody, gunzipping it when Content-Encoding says so
// (bounded after decompression too: a small gzip bomb must not become a large allocation).
func (h *HTTP) readBody(c *gin.Context) ([]byte, bool) {
	r := io.Reader(http.MaxBytesReader(c.Writer, c.Request.Body, h.MaxBody))
	if c.GetHeader("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r)
		if err != nil {
			httpError(c, http.StatusBadRequest, "body is not gzip: %v", err)
			return nil, false
		}
		defer zr.Close()
		r = zr
	}
	b, err := io.ReadAll(io.LimitReader(r, h.MaxBody+1))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) || int64(len(b)) > h.MaxBody {
		httpError(c, http.StatusRequestEntityTooLarge, "body exceeds %d bytes", h.MaxBody)
		return nil, false
	}
	if err != nil {
		httpError(c, http.StatusBadRequest, "read body: %v", err)
		return nil, false
	}
	return b, true
}

// splitRecords splits a JSON array or NDJSON body into raw records.
func splitRecords(body []byte, max int) ([][]byte, error) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	var out [][]byte
	if len(trimmed) > 0 && trimmed[0] == '[' {
		d := json.NewDecoder(bytes.NewReader(trimmed))
		if _, err := d.Token(); err != nil {
			return nil, err
		}
		for d.More() {
			var raw json.RawMessage
			if err := d.Decode(&raw); err != nil {
				return nil, fmt.Errorf("record %d: %w", len(out), err)
			}
			if out = append(out, raw); len(out) > max {
				return nil, fmt.Errorf("more than %d records in one request", max)
			}
		}
		if _, err := d.Token(); err != nil {
			return nil, fmt.Errorf("after the array: %w", err)
		}
		if d.More() {
			return nil, errors.New("data after the array")
		}
		return out, nil
	}
	// NDJSON: the lines are slices of body itself (a bufio.Scanner's would be overwritten by
	// its next Scan once a body outgrows its buffer).
	for rest := body; len(rest) > 0; {
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line, rest = rest[:i], rest[i+1:]
		} else {
			rest = nil
		}
		if line = bytes.TrimSpace(line); len(line) > 0 {
			if out = append(out, line); len(out) > max {
				return nil, fmt.Errorf("more than %d records in one request", max)
			}
		}
	}
	return out, nil
}

func (h *HTTP) postRecords(c *gin.Context) {
	body, ok := h.readBody(c)
	if !ok {
		return
	}
	raws, err := splitRecords(body, h.MaxRecords)
	if err != nil {
		httpError(c, http.StatusBadRequest, "body must be a JSON array of records or NDJSON: %v", err)
		return
	}
	if len(raws) == 0 {
		httpError(c, http.StatusBadRequest, "no records in the body")
		return
	}
	p := auth.From(c)
	subs := make([]submission, len(raws))
	for i, raw := range raws {
		subs[i] = submission{raw: raw}
		rec, err := lineage.DecodeRecord(raw)
		if err != nil {
			subs[i].reject = rejectDecode(err)
			subs[i].tenant = soleTenant(p)
			if t := recordTenant(raw); t != "" && p.CanSee(t) {
				subs[i].tenant = t
			}
			continue
		}
		subs[i].rec, subs[i].tenant = rec, rec.Tenant
		if subs[i].canon, err = rec.Canonical(); err != nil {
			subs[i].reject = &Rejection{Code: ReasonInvalid, Detail: err.Error()}
		}
	}
	h.submit(c, p, subs, "http")
}

func (h *HTTP) postOPALogs(c *gin.Context) {
	tenant := c.Param("tenant")
	if !validTenant(tenant) {
		httpError(c, http.StatusBadRequest, "tenant %q is not a valid tenant name", tenant)
		return
	}
	body, ok := h.readBody(c)
	if !ok {
		return
	}
	events, err := ParseOPAEvents(body)
	if errors.Is(err, ErrTooManyOPAEvents) {
		httpError(c, http.StatusRequestEntityTooLarge, "%v", err)
		return
	}
	if err != nil {
		httpError(c, http.StatusBadRequest, "not an OPA decision-log upload: %v", err)
		return
	}
	subs := make([]submission, len(events))
	for i, ev := range events {
		subs[i] = submission{tenant: tenant, raw: ev}
		rec, rej := MapOPAEvent(ev, tenant, h.OPA)
		if rej != nil {
			subs[i].reject = rej
			continue
		}
		canon, err := rec.Canonical()
		if err != nil {
			subs[i].reject = &Rejection{Code: ReasonInvalid, Detail: err.Error()}
			continue
		}
		subs[i].rec, subs[i].raw, subs[i].canon = rec, canon, canon
	}
	h.submit(c, auth.From(c), subs, "opa")
}

// submission is one record of a request on its way to JetStream.
type submission struct {
	raw    []byte
	rec    *lineage.Record
	canon  []byte // the record's canonical form, whose SHA-256 the index keeps
	tenant string
	reject *Rejection
	inLog  bool // the same record is already in the log: accepted, not published again
}

// recordTenant reads the top-level "tenant" member of a record that could not be decoded (too
// large, say) without decoding the rest: a token scan of at most its first 64 KiB. It returns
// "" when the member is not there, or not a valid tenant name.
func recordTenant(raw []byte) string {
	d := json.NewDecoder(bytes.NewReader(raw[:min(len(raw), lineage.MaxRecordSize)]))
	if t, err := d.Token(); err != nil || t != json.Delim('{') {
		return ""
	}
	for {
		t, err := d.Token()
		key, ok := t.(string)
		if err != nil || !ok {
			return ""
		}
		if key == "tenant" {
			t, err := d.Token()
			if v, ok := t.(string); err == nil && ok && validTenant(v) {
				return v
			}
			return ""
		}
		for depth := 0; ; { // skip the member's value
			t, err := d.Token()
			if err != nil {
				return ""
			}
			switch t {
			case json.Delim('{'), json.Delim('['):
				depth++
			case json.Delim('}'), json.Delim(']'):
				depth--
			}
			if depth == 0 {
				break
			}
		}
	}
}

// checkConflicts rejects, before anything is published, each record whose id an earlier
// record of the request or a record in the log has with different content (id_conflict), and
// marks the ones already in the log unchanged. A failed lookup is logged and skipped: the
// ingester checks every record again.
func (h *HTTP) checkConflicts(ctx context.Context, subs []submission) {
	type first struct {
		i    int
		hash [32]byte
	}
	seen := map[string]first{}
	hashes := make([][32]byte, len(subs))
	var ask []index.Key
	for i := range subs {
		s := &subs[i]
		if s.reject != nil {
			continue
		}
		hashes[i] = sha256.Sum256(s.canon)
		key := recordKey(s.tenant, s.rec.ID)
		if f, ok := seen[key]; ok {
			if f.hash != hashes[i] {
				s.reject = conflictInRequest(f.i)
			}
			continue
		}
		seen[key] = first{i, hashes[i]}
		ask = append(ask, index.Key{Tenant: s.tenant, ID: s.rec.ID})
	}
	if h.Seen == nil || len(ask) == 0 {
		return
	}
	known := map[index.Key]index.Ref{}
	if bl, ok := h.Seen.(index.BatchLookup); ok {
		refs, err := bl.LookupMany(ctx, ask)
		if err != nil {
			h.Logger.Warn("ingest: http id lookup; conflicts are left to the ingester", "records", len(ask), "err", err)
		}
		known = refs
	} else {
		for _, k := range ask {
			ref, err := h.Seen.Lookup(ctx, k.Tenant, k.ID)
			switch {
			case errors.Is(err, index.ErrNotFound):
			case err != nil:
				h.Logger.Warn("ingest: http id lookup; conflicts are left to the ingester", "tenant", k.Tenant, "id", k.ID, "err", err)
			default:
				known[k] = ref
			}
		}
	}
	for i := range subs {
		s := &subs[i]
		if s.reject != nil {
			continue
		}
		ref, ok := known[index.Key{Tenant: s.tenant, ID: s.rec.ID}]
		switch {
		case !ok:
		case ref.RecordHash == hashes[i]:
			s.inLog = true
		default:
			s.reject = conflict(ref.Index)
		}
	}
}

// soleTenant is the tenant an undecodable record is quarantined under: the caller's only
// tenant, or none.
func soleTenant(p *auth.Principal) string {
	if len(p.Tenants) == 1 && p.Tenants[0] != auth.AllTenants {
		return p.Tenants[0]
	}
	return ""
}

// submit checks the caller may write every tenant named, then publishes valid records and
// quarantines the rest, and answers with one result per record. A request naming a tenant the
// caller may not write is refused whole, before anything is published.
func (h *HTTP) submit(c *gin.Context, p *auth.Principal, subs []submission, via string) {
	for i, s := range subs {
		if s.tenant != "" && !p.CanSee(s.tenant) {
			h.Logger.Warn("ingest: http publish to a foreign tenant refused", "principal", p.Subject, "tenant", s.tenant, "via", via)
			httpError(c, http.StatusForbidden, "record %d is for tenant %q, which %s may not write; nothing was accepted", i, s.tenant, p.Subject)
			return
		}
	}
	ctx, cancel := context.WithTimeout(c, 30*time.Second)
	defer cancel()
	h.checkConflicts(ctx, subs)
	resp := Response{Results: make([]Result, len(subs))}
	futures := make([]jetstream.PubAckFuture, len(subs))
	now := h.Now().UTC()
	for i, s := range subs {
		r := &resp.Results[i]
		r.Index, r.Tenant = i, s.tenant
		if s.rec != nil {
			r.ID = s.rec.ID
		}
		if s.reject != nil {
			r.Reason = s.reject
			q := Quarantined{Reason: *s.reject, Subject: "http:" + via, ReceivedAt: now, Payload: s.raw,
				Headers: nats.Header{"Lineage-Principal": {p.Subject}}}
			sum := sha256.Sum256(s.raw)
			if err := PublishQuarantine(ctx, h.JS, s.tenant, q, "q-http-"+hex.EncodeToString(sum[:16])); err != nil {
				h.Logger.Error("ingest: http quarantine", "err", err)
				r.Status = "failed"
				continue
			}
			h.Metrics.Quarantined.WithLabelValues(s.reject.Code).Inc()
			r.Status = "quarantined"
			continue
		}
		if s.inLog {
			h.Metrics.Duplicates.Inc()
			r.Status = "accepted"
			continue
		}
		m := RecordMsg(s.rec.Tenant, s.rec.ID, s.raw)
		m.Header.Set("Lineage-Principal", p.Subject)
		if sig := c.GetHeader(HeaderSignature); sig != "" && len(subs) == 1 && via == "http" {
			// A single-record request may carry the source signature over its record bytes;
			// the ingester verifies it like on NATS.
			m.Header.Set(HeaderSignature, sig)
		}
		f, err := h.JS.PublishMsgAsync(m)
		for errors.Is(err, jetstream.ErrTooManyStalledMsgs) && ctx.Err() == nil {
			time.Sleep(5 * time.Millisecond)
			f, err = h.JS.PublishMsgAsync(m)
		}
		if err != nil {
			r.Status = "failed"
			continue
		}
		futures[i] = f
	}
	for i, f := range futures {
		if f == nil {
			continue
		}
		select {
		case <-f.Ok():
			resp.Results[i].Status = "accepted"
		case <-f.Err():
			resp.Results[i].Status = "failed"
		case <-ctx.Done():
			resp.Results[i].Status = "failed"
		}
	}
	codes := map[string]int{}
	for _, r := range resp.Results {
		switch r.Status {
		case "accepted":
			resp.Accepted++
		case "quarantined":
			resp.Quarantined++
			codes[r.Reason.Code]++
		default:
			resp.Failed++
		}
	}
	resp.Conflicts = codes[ReasonConflict]
	status := http.StatusAccepted
	switch {
	case resp.Failed > 0:
		// The caller must retry the failed ones; retries of accepted ones are deduplicated.
		status = http.StatusServiceUnavailable
		c.Header("Retry-After", "1")
	case resp.Accepted == 0 && via == "http":
		// Every record was quarantined: a permanent rejection, not to be retried (see Response).
		switch {
		case codes[ReasonConflict] == resp.Quarantined:
			status = http.StatusConflict
		case codes[lineage.CodeTooLarge] == resp.Quarantined:
			status = http.StatusRequestEntityTooLarge
		default:
			status = http.StatusUnprocessableEntity
		}
	}
	c.PureJSON(status, resp)
}

// QuarantineEntry is one item of GET /v1/quarantine.
type QuarantineEntry struct {
	Seq uint64 `json:"seq"`
	Quarantined
}

func (h *HTTP) listQuarantine(c *gin.Context) {
	p := auth.From(c)
	tenant := c.Query("tenant")
	subject := QuarantineSubject
	if tenant != "" {
		if !validTenant(tenant) && tenant != "_unknown" {
			httpError(c, http.StatusBadRequest, "invalid tenant %q", tenant)
			return
		}
		if !p.CanSee(tenant) {
			httpError(c, http.StatusForbidden, "%s may not read tenant %q", p.Subject, tenant)
			return
		}
		subject = QuarantinePrefix + tenant
	} else if !p.AllTenantsVisible() {
		httpError(c, http.StatusForbidden, "name a tenant: %s does not see every tenant", p.Subject)
		return
	}
	after, _ := strconv.ParseUint(c.DefaultQuery("after", "0"), 10, 64)
	limit, err := strconv.Atoi(c.DefaultQuery("limit", "100"))
	if err != nil || limit < 1 || limit > 1000 {
		httpError(c, http.StatusBadRequest, "limit must be 1..1000")
		return
	}
	entries, err := ListQuarantine(c, h.JS, subject, after, limit)
	if err != nil {
		h.Logger.Error("ingest: list quarantine", "err", err)
		httpError(c, http.StatusInternalServerError, "list quarantine failed")
		return
	}
	out := gin.H{"entries": entries}
	if len(entries) == limit {
		out["next"] = entries[len(entries)-1].Seq
	}
	c.PureJSON(http.StatusOK, out)
}

// ListQuarantine reads up to limit quarantine entries on subject with stream sequence > after.
func ListQuarantine(ctx context.Context, js jetstream.JetStream, subject string, after uint64, limit int) ([]QuarantineEntry, error) {
	s, err := js.Stream(ctx, QuarantineStream)
	if err != nil {
		return nil, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, err
	}
	entries := []QuarantineEntry{}
	if info.State.Msgs == 0 || after >= info.State.LastSeq {
		return entries, nil
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subject},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    after + 1,
	})
	if err != nil {
		return nil, err
	}
	batch, err := c.Fetch(limit, jetstream.FetchMaxWait(300*time.Millisecond))
	if err != nil {
		return nil, err
	}
	for m := range batch.Messages() {
		md, err := m.Metadata()
		if err != nil {
			return nil, err
		}
		entries = append(entries, QuarantineEntry{Seq: md.Sequence.Stream, Quarantined: ParseQuarantined(m.Headers(), m.Data())})
		if md.NumPending == 0 {
			break
		}
	}
	return entries, batch.Error()
}

// recordKey is a record's key in a map of strings: ids are unique per tenant.
func recordKey(tenant, id string) string { return tenant + "\x00" + id }
