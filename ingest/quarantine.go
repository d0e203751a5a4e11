package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
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

	// A rejected input too large for the quarantine stream is kept cut to fit: the body is its
	// first bytes, and these headers give the whole input's size and SHA-256 (hex). When the
	// original headers alone would not leave room, they are dropped and counted instead.
	HeaderOriginalSize   = "Lineage-Original-Size"
	HeaderOriginalSHA256 = "Lineage-Original-SHA256"
	HeaderDroppedHeaders = "Lineage-Dropped-Headers"
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
	// Truncated says Payload is only the first bytes of the rejected input, whose size and
	// SHA-256 are OriginalSize and OriginalSHA256.
	Truncated      bool   `json:"truncated,omitempty"`
	OriginalSize   int    `json:"original_size,omitempty"`
	OriginalSHA256 string `json:"original_sha256,omitempty"`
	// DroppedHeaders counts original headers left out of a truncated entry.
	DroppedHeaders int `json:"dropped_headers,omitempty"`
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
	if size := h.Get(HeaderOriginalSize); size != "" {
		q.Truncated = true
		q.OriginalSize, _ = strconv.Atoi(size)
		q.OriginalSHA256 = h.Get(HeaderOriginalSHA256)
		q.DroppedHeaders, _ = strconv.Atoi(h.Get(HeaderDroppedHeaders))
	}
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

// conflictInRequest rejects a record whose id an earlier record of the same request has, with
// different content.
func conflictInRequest(first int) *Rejection {
	return &Rejection{Code: ReasonConflict, Field: "id",
		Detail: fmt.Sprintf("record %d of this request has this id and different content; records are never overwritten", first)}
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
//
// An input too large for the quarantine stream (an HTTP record far over the record limit, say)
// is kept cut to fit, with its size and SHA-256 (see HeaderOriginalSize): a rejected input is
// never lost, and never turned into a transient failure that its publisher would retry forever.
func PublishQuarantine(ctx context.Context, js jetstream.JetStream, tenant string, q Quarantined, msgID string) error {
	if !validTenant(tenant) {
		tenant = "_unknown"
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out := quarantineMsg(tenant, q, msgID)
	// The server's limit is known locally; the stream's own, when lower, only from its refusal.
	if limit := js.Conn().MaxPayload(); limit > 0 && int64(msgSize(out)) > limit {
		out = quarantineMsg(tenant, fitQuarantine(q, int(limit)), msgID)
	}
	_, err := js.PublishMsg(pctx, out)
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamMessageExceedsMaximum {
		s, ierr := js.Stream(pctx, QuarantineStream)
		if ierr != nil {
			return fmt.Errorf("ingest: quarantine %s: %w (stream info: %v)", out.Subject, err, ierr)
		}
		if limit := s.CachedInfo().Config.MaxMsgSize; limit > 0 {
			out = quarantineMsg(tenant, fitQuarantine(q, int(limit)), msgID)
			_, err = js.PublishMsg(pctx, out)
		}
	}
	if err != nil {
		return fmt.Errorf("ingest: quarantine %s: %w", out.Subject, err)
	}
	return nil
}

// quarantineMsg encodes q as a message of the quarantine stream.
func quarantineMsg(tenant string, q Quarantined, msgID string) *nats.Msg {
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
	if q.Truncated {
		out.Header.Set(HeaderOriginalSize, strconv.Itoa(q.OriginalSize))
		out.Header.Set(HeaderOriginalSHA256, q.OriginalSHA256)
		if q.DroppedHeaders > 0 {
			out.Header.Set(HeaderDroppedHeaders, strconv.Itoa(q.DroppedHeaders))
		}
	}
	out.Header.Set(jetstream.MsgIDHeader, msgID)
	return out
}

// fitQuarantine cuts q's payload so that its quarantine message fits in limit bytes (headers
// included), recording the whole payload's size and SHA-256. The original headers are kept
// unless they alone would take more than half the room.
func fitQuarantine(q Quarantined, limit int) Quarantined {
	sum := sha256.Sum256(q.Payload)
	payload := q.Payload
	q.Truncated, q.OriginalSize, q.OriginalSHA256 = true, len(payload), hex.EncodeToString(sum[:])
	q.Payload = nil
	// Room for the header values that are not known yet (the msg id, the sizes) and rounding.
	const slack = 512
	hs := msgSize(quarantineMsg("_unknown", q, ""))
	if hs+slack > limit/2 {
		for _, v := range q.Headers {
			q.DroppedHeaders += len(v)
		}
		q.Headers = nil
		hs = msgSize(quarantineMsg("_unknown", q, ""))
	}
	keep := max(0, min(len(payload), limit-hs-slack))
	q.Payload = payload[:keep]
	return q
}

// msgSize is a message's size as the server counts it against its limits: encoded headers plus
// payload.
func msgSize(m *nats.Msg) int {
	n := len(m.Data)
	if len(m.Header) > 0 {
		n += len("NATS/1.0\r\n") + len("\r\n")
		for k, vs := range m.Header {
			for _, v := range vs {
				n += len(k) + len(v) + len(": \r\n")
			}
		}
	}
	return n
}
