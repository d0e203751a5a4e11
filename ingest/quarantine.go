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
	tenant := it.tenant
	if tenant == "" {
		tenant = "_unknown"
	}
	out := nats.NewMsg(QuarantinePrefix + tenant)
	out.Data = it.msg.Data()
	for k, v := range it.msg.Headers() {
		if k == jetstream.MsgIDHeader {
			k = "Msg-Id" // the original id must not trigger dedupe in the quarantine stream
		}
		out.Header[HeaderOrigPrefix+k] = v
	}
	seq := uint64(0)
	if md, err := it.msg.Metadata(); err == nil {
		seq = md.Sequence.Stream
	}
	detail := it.reject.Detail
	if len(detail) > maxDetailHeader {
		detail = detail[:maxDetailHeader]
	}
	out.Header.Set(HeaderReason, it.reject.Code)
	out.Header.Set(HeaderField, it.reject.Field)
	out.Header.Set(HeaderDetail, strings.ToValidUTF8(strings.NewReplacer("\r", " ", "\n", " ").Replace(detail), "?"))
	out.Header.Set(HeaderSubject, it.msg.Subject())
	out.Header.Set(HeaderStreamSeq, strconv.FormatUint(seq, 10))
	out.Header.Set(HeaderReceivedAt, in.cfg.Now().UTC().Format(time.RFC3339Nano))
	// One quarantine entry per original message, however often it is redelivered.
	out.Header.Set(jetstream.MsgIDHeader, "q-"+strconv.FormatUint(seq, 10))
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := in.cfg.JS.PublishMsg(pctx, out); err != nil {
		in.cfg.Logger.Error("ingest: quarantine publish", "subject", out.Subject, "err", err)
		in.retry(it)
		return
	}
	in.cfg.Metrics.Quarantined.WithLabelValues(it.reject.Code).Inc()
	in.cfg.Logger.Info("ingest: quarantined", "subject", it.msg.Subject(), "seq", seq, "reason", it.reject.Code, "field", it.reject.Field)
	in.ack(it)
}
