// Package ingest takes decision records from enforcement points and appends them to the ledger.
//
// Records arrive on NATS JetStream subjects lineage.records.<tenant>. The Ingester is a durable
// pull consumer: it fetches a batch, decodes and validates every record strictly, canonicalizes
// it (RFC 8785), drops redeliveries of ids already in the log, appends the rest as canonical
// envelopes, and acks each message only once its record is durably sequenced in the log (or
// durably quarantined). Anything it cannot accept goes to lineage.quarantine.<tenant> with a
// machine-readable reason; nothing is dropped silently.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Subject layout and stream names. The tenant is the last subject token, so NATS permissions
// can confine a publisher to its own tenant's subject.
const (
	RecordsStream     = "LINEAGE_RECORDS"
	RecordsSubjects   = "lineage.records.>"
	RecordsPrefix     = "lineage.records."
	QuarantineStream  = "LINEAGE_QUARANTINE"
	QuarantinePrefix  = "lineage.quarantine."
	QuarantineSubject = "lineage.quarantine.>"
	ConsumerName      = "lineage-ingester"
	// FindingsStream keeps the findings lineaged publishes on lineage.findings.<tenant>
	// (query/findings.Publisher) for FindingsMaxAge, so a SIEM or pager can consume them
	// durably; the message id "<finding id>:<count>" drops a re-publication after a crash.
	FindingsStream   = "LINEAGE_FINDINGS"
	FindingsSubjects = "lineage.findings.>"
	FindingsMaxAge   = 30 * 24 * time.Hour

	// DuplicateWindow is the records stream's Nats-Msg-Id dedupe window, the smallest the
	// server accepts (nats-server refuses a window under 100 ms; zero means its 2-minute
	// default). JetStream drops a message whose Nats-Msg-Id it saw within the window and answers
	// the publisher with a PubAck marked duplicate, before the ingester could compare contents.
	// RecordMsg's id covers the record's bytes, so that only drops true retries; but a publisher
	// may still send the old-style <tenant>/<id>, which would hide a changed record with the
	// same id for as long as the window lasts. Exactly-once does not depend on the window: the
	// ingester drops every message whose record is already in the log with identical content
	// and quarantines one with different content (id_conflict); see consumer.go.
	DuplicateWindow = 100 * time.Millisecond
	// QuarantineDuplicateWindow dedupes repeated quarantines of the same input (ids built by
	// the ingester and by HTTP ingest, never by publishers).
	QuarantineDuplicateWindow = 10 * time.Minute
	// HeaderAllowance is the room left for NATS headers on top of the 64 KiB record limit.
	HeaderAllowance = 4 << 10
)

// StreamOptions sizes the streams.
type StreamOptions struct {
	// MaxMsgSize is the largest record message (payload plus headers) the records stream
	// accepts. The quarantine stream takes twice that, so a rejected record always fits with
	// the reason headers added.
	MaxMsgSize int32
	// Replicas is the replication factor of every Lineage stream (records, quarantine,
	// findings): 1 on a single server (the embedded one), 3 on a 3-node cluster, so that a
	// record JetStream acked to its publisher survives the loss of any one server. Zero means 1.
	Replicas int
}

// MaxReplicas is the largest replication factor JetStream accepts for a stream.
const MaxReplicas = 5

// Validate checks the options before any stream is touched.
func (o StreamOptions) Validate() error {
	if o.Replicas < 0 || o.Replicas > MaxReplicas {
		return fmt.Errorf("ingest: stream replicas %d: must be between 1 and %d", o.Replicas, MaxReplicas)
	}
	return nil
}

// EnsureStreams creates or updates the records and quarantine streams. Both use file storage:
// a record acked by JetStream to its publisher must survive a restart of the server before
// the ingester has appended it. An existing stream is updated in place (a records stream made
// by an older version had a 10-minute dedupe window; the server forgets the ids it remembered
// beyond the new window as soon as the update applies).
//
// Shrinking the window takes two updates. On a window change the server fires its dedupe purge
// timer at once, but the purge can run before the new window is in effect; it then measures
// the remembered ids against the old window and re-arms itself for up to 10 minutes, during
// which a changed record published with an old-style id would still be dropped. The second
// update (from just above the new window to it) fires the purge again when the short window
// is already in effect (TestNATSOldStyleMsgIDConflictQuarantined caught the race under load).
//
// Replicas: an existing stream with fewer replicas is scaled up in place (the cluster copies it
// to the new peers; its consumers, which inherit the stream's replicas, follow). An existing
// stream with more replicas than asked is refused rather than scaled down, so that one node
// started with the default of 1 cannot silently take a cluster's redundancy away; scale down
// with the nats CLI if that is really meant. More replicas than the servers can place (a single
// server, or a cluster with fewer JetStream servers) fail with an error saying so.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, o StreamOptions) error {
	if err := o.Validate(); err != nil {
		return err
	}
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	records := jetstream.StreamConfig{
		Name:        RecordsStream,
		Description: "Lineage decision records from enforcement points (work queue for the ingester).",
		Subjects:    []string{RecordsSubjects},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.WorkQueuePolicy,
		Duplicates:  DuplicateWindow,
		MaxMsgSize:  o.MaxMsgSize,
		Replicas:    o.Replicas,
		Discard:     jetstream.DiscardNew,
	}
	s, err := existingStream(ctx, js, RecordsStream, o.Replicas)
	if err != nil {
		return err
	}
	if s != nil && s.CachedInfo().Config.Duplicates > DuplicateWindow+time.Millisecond {
		step := records
		step.Duplicates = DuplicateWindow + time.Millisecond
		if _, err := js.UpdateStream(ctx, step); err != nil {
			return fmt.Errorf("ingest: stream %s: shrink the dedupe window: %w", RecordsStream, replicasHint(err, o.Replicas))
		}
	}
	if _, err := js.CreateOrUpdateStream(ctx, records); err != nil {
		return fmt.Errorf("ingest: stream %s: %w", RecordsStream, replicasHint(err, o.Replicas))
	}
	if _, err := existingStream(ctx, js, QuarantineStream, o.Replicas); err != nil {
		return err
	}
	_, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        QuarantineStream,
		Description: "Lineage records rejected at ingest, with the reason. Kept for review; never read by the ingester.",
		Subjects:    []string{QuarantineSubject},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Duplicates:  QuarantineDuplicateWindow,
		MaxMsgSize:  2 * o.MaxMsgSize,
		Replicas:    o.Replicas,
	})
	if err != nil {
		return fmt.Errorf("ingest: stream %s: %w", QuarantineStream, replicasHint(err, o.Replicas))
	}
	if _, err := existingStream(ctx, js, FindingsStream, o.Replicas); err != nil {
		return err
	}
	_, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        FindingsStream,
		Description: "Lineage findings (new and changed), one subject per tenant, for subscribers such as a SIEM.",
		Subjects:    []string{FindingsSubjects},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      FindingsMaxAge,
		Duplicates:  10 * time.Minute,
		MaxMsgSize:  1 << 20,
		Replicas:    o.Replicas,
	})
	if err != nil {
		return fmt.Errorf("ingest: stream %s: %w", FindingsStream, replicasHint(err, o.Replicas))
	}
	return nil
}

// existingStream returns the stream if it exists (nil if not), and refuses one that has more
// replicas than asked for (see EnsureStreams).
func existingStream(ctx context.Context, js jetstream.JetStream, name string, replicas int) (jetstream.Stream, error) {
	s, err := js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ingest: stream %s: %w", name, err)
	}
	if have := s.CachedInfo().Config.Replicas; have > replicas {
		return nil, fmt.Errorf("ingest: stream %s has %d replicas and %d were asked for (--stream-replicas): "+
			"refusing to scale it down; start with --stream-replicas %d, or scale the stream down with the nats CLI first if that is meant",
			name, have, replicas, have)
	}
	return s, nil
}

// JetStream's error codes for a replication factor the servers cannot place.
const (
	errCodeReplicasNotSupported  jetstream.ErrorCode = 10074 // a server not in a cluster
	errCodeInsufficientResources jetstream.ErrorCode = 10023
	errCodeNoPeers               jetstream.ErrorCode = 10005 // fewer suitable servers than replicas
)

// replicasHint explains JetStream's answer when a stream's replicas cannot be placed.
func replicasHint(err error, replicas int) error {
	var apiErr *jetstream.APIError
	if replicas <= 1 || !errors.As(err, &apiErr) {
		return err
	}
	switch apiErr.ErrorCode {
	case errCodeReplicasNotSupported, errCodeInsufficientResources, errCodeNoPeers:
		return fmt.Errorf("%d replicas need a NATS cluster with at least %d JetStream servers (--stream-replicas): %w", replicas, replicas, err)
	}
	return err
}

// ensureConsumer creates the durable consumer the ingester reads from. ackWait is how long a
// delivered message may stay unacked before JetStream redelivers it: after a crash, the
// messages the dead ingester held come back after ackWait. It must comfortably exceed one
// batch's append time.
func ensureConsumer(ctx context.Context, js jetstream.JetStream, maxAckPending int, ackWait time.Duration) (jetstream.Consumer, error) {
	c, err := js.CreateOrUpdateConsumer(ctx, RecordsStream, jetstream.ConsumerConfig{
		Durable:       ConsumerName,
		Description:   "Lineage ingester: acks only after the record is durably in the log.",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxAckPending: maxAckPending,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		FilterSubject: RecordsSubjects,
	})
	if err != nil {
		return nil, fmt.Errorf("ingest: consumer %s: %w", ConsumerName, err)
	}
	return c, nil
}
