package ingest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	lineage "github.com/lineage-audit/lineage"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Reasons a message is quarantined. Decoder reasons (too_large, unknown_field, …) are passed
// through from lineage.DecodeError codes.
const (
	ReasonBadSubject     = "bad_subject"
	ReasonTenantMismatch = "tenant_mismatch"
	ReasonConflict       = "id_conflict"
	ReasonInvalid        = "invalid_record"
)

// A quarantine message carries the rejected message's bytes unchanged as its body, so nothing
// about the original is lost or re-encoded; the reason travels in headers.
const (
	HeaderReason     = "Lineage-Reason"
	HeaderField      = "Lineage-Reason-Field"
	HeaderDetail     = "Lineage-Reason-Detail"
	HeaderSubject    = "Lineage-Subject"
	HeaderStreamSeq  = "Lineage-Stream-Seq"
	HeaderReceivedAt = "Lineage-Received-At"
	HeaderOrigPrefix = "Lineage-Orig-"
	maxDetailHeader  = 1024
)

// Rejection says why a message was not appended.
type Rejection struct {
	Code   string `json:"code"`
	Field  string `json:"field,omitempty"`
	Detail string `json:"detail"`
}

// Quarantined is a quarantine message decoded (see ParseQuarantined).
type Quarantined struct {
	Reason     Rejection           `json:"reason"`
	Subject    string              `json:"subject"`
	StreamSeq  uint64              `json:"stream_seq"`
	ReceivedAt time.Time           `json:"received_at"`
	Payload    []byte              `json:"payload"`
	Headers    map[string][]string `json:"headers,omitempty"`
}

// ParseQuarantined reads a message of the quarantine stream.
func ParseQuarantined(h nats.Header, body []byte) Quarantined {
	q := Quarantined{
		Reason:  Rejection{Code: h.Get(HeaderReason), Field: h.Get(HeaderField), Detail: h.Get(HeaderDetail)},
		Subject: h.Get(HeaderSubject),
		Payload: body,
	}
	q.StreamSeq, _ = strconv.ParseUint(h.Get(HeaderStreamSeq), 10, 64)
	q.ReceivedAt, _ = time.Parse(time.RFC3339Nano, h.Get(HeaderReceivedAt))
	for k, v := range h {
		if orig, ok := strings.CutPrefix(k, HeaderOrigPrefix); ok {
			if q.Headers == nil {
				q.Headers = map[string][]string{}
			}
			q.Headers[orig] = v
		}
	}
	return q
}

func rejectDecode(err error) *Rejection {
	var de *lineage.DecodeError
	if errors.As(err, &de) {
		return &Rejection{Code: de.Code, Field: de.Field, Detail: de.Error()}
	}
	return &Rejection{Code: ReasonInvalid, Detail: err.Error()}
}

func conflict(idx uint64) *Rejection {
	return &Rejection{Code: ReasonConflict, Field: "id",
		Detail: fmt.Sprintf("a record with this id and different content is already in the log at index %d; records are never overwritten", idx)}
}

// quarantine publishes the message with its reason to the quarantine stream, waits for
// JetStream to store it, and only then acks the original. If the quarantine publish fails the
// original is handed back for redelivery, so a rejected record is never lost either.
func (in *Ingester) quarantine(ctx context.Context, it *item) {
	seq := uint64(0)
	if md, err := it.msg.Metadata(); err == nil {
		seq = md.Sequence.Stream
	}
	// One quarantine entry per original message, however often it is redelivered.
	q := Quarantined{Reason: *it.reject, Subject: it.msg.Subject(), StreamSeq: seq, ReceivedAt: in.cfg.Now().UTC(),
		Payload: it.msg.Data(), Headers: it.msg.Headers()}
	if err := PublishQuarantine(ctx, in.cfg.JS, it.tenant, q, "q-"+strconv.FormatUint(seq, 10)); err != nil {
		in.cfg.Logger.Error("ingest: quarantine publish", "subject", it.msg.Subject(), "err", err)
		in.retry(it)
		return
	}
	in.cfg.Metrics.Quarantined.WithLabelValues(it.reject.Code).Inc()
	in.cfg.Logger.Info("ingest: quarantined", "subject", it.msg.Subject(), "seq", seq, "reason", it.reject.Code, "field", it.reject.Field)
	in.ack(it)
}

// PublishQuarantine stores q on lineage.quarantine.<tenant> ("_unknown" when the tenant could
// not be told) and waits for JetStream's ack. The payload travels unchanged as the body; the
// reason, origin and original headers travel as headers. msgID dedupes repeated quarantines of
// the same input within the stream's dedupe window.
func PublishQuarantine(ctx context.Context, js jetstream.JetStream, tenant string, q Quarantined, msgID string) error {
	if !validTenant(tenant) {
		tenant = "_unknown"
	}
	out := nats.NewMsg(QuarantinePrefix + tenant)
	out.Data = q.Payload
	for k, v := range q.Headers {
		if k == jetstream.MsgIDHeader {
			k = "Msg-Id" // the original id must not trigger dedupe in the quarantine stream
		}
		out.Header[HeaderOrigPrefix+k] = v
	}
	detail := q.Reason.Detail
	if len(detail) > maxDetailHeader {
		detail = detail[:maxDetailHeader]
	}
	out.Header.Set(HeaderReason, q.Reason.Code)
	out.Header.Set(HeaderField, q.Reason.Field)
	out.Header.Set(HeaderDetail, strings.ToValidUTF8(strings.NewReplacer("\r", " ", "\n", " ").Replace(detail), "?"))
	out.Header.Set(HeaderSubject, q.Subject)
	out.Header.Set(HeaderStreamSeq, strconv.FormatUint(q.StreamSeq, 10))
	out.Header.Set(HeaderReceivedAt, q.ReceivedAt.UTC().Format(time.RFC3339Nano))
	out.Header.Set(jetstream.MsgIDHeader, msgID)
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := js.PublishMsg(pctx, out); err != nil {
		return fmt.Errorf("ingest: quarantine %s: %w", out.Subject, err)
	}
	return nil
}
