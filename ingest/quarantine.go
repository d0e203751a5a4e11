package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
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

// HeaderReason carries the reason code on quarantine messages, so consumers can filter without
// decoding the body.
const HeaderReason = "Lineage-Reason"

// Rejection says why a message was not appended.
type Rejection struct {
	Code   string `json:"code"`
	Field  string `json:"field,omitempty"`
	Detail string `json:"detail"`
}

// Quarantined is the body of a message on lineage.quarantine.<tenant>.
type Quarantined struct {
	Reason     Rejection `json:"reason"`
	Subject    string    `json:"subject"`
	StreamSeq  uint64    `json:"stream_seq"`
	ReceivedAt time.Time `json:"received_at"`
	// Payload is the message exactly as published (base64 in JSON).
	Payload []byte `json:"payload"`
	// Headers are the message headers as published.
	Headers map[string][]string `json:"headers,omitempty"`
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
	q := Quarantined{Reason: *it.reject, Subject: it.msg.Subject(), ReceivedAt: in.cfg.Now().UTC(), Payload: it.msg.Data()}
	if h := it.msg.Headers(); len(h) > 0 {
		q.Headers = h
	}
	md, err := it.msg.Metadata()
	if err == nil {
		q.StreamSeq = md.Sequence.Stream
	}
	body, err := json.Marshal(q)
	if err != nil {
		in.cfg.Logger.Error("ingest: quarantine encode", "err", err)
		in.retry(it)
		return
	}
	out := nats.NewMsg(QuarantinePrefix + tenant)
	out.Data = body
	out.Header.Set(HeaderReason, it.reject.Code)
	// One quarantine entry per original message, however often it is redelivered.
	out.Header.Set(jetstream.MsgIDHeader, "q-"+strconv.FormatUint(q.StreamSeq, 10))
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := in.cfg.JS.PublishMsg(pctx, out); err != nil {
		in.cfg.Logger.Error("ingest: quarantine publish", "subject", out.Subject, "err", err)
		in.retry(it)
		return
	}
	in.cfg.Metrics.Quarantined.WithLabelValues(it.reject.Code).Inc()
	in.cfg.Logger.Info("ingest: quarantined", "subject", it.msg.Subject(), "seq", q.StreamSeq, "reason", it.reject.Code, "field", it.reject.Field)
	in.ack(it)
}
