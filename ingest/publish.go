package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// RecordMsg builds the NATS message a publisher sends for one record: subject
// lineage.records.<tenant> and Nats-Msg-Id MsgID(tenant, id, data).
func RecordMsg(tenant, id string, data []byte) *nats.Msg {
	m := nats.NewMsg(RecordsPrefix + tenant)
	m.Data = data
	m.Header.Set(jetstream.MsgIDHeader, MsgID(tenant, id, data))
	return m
}

// MsgID is the Nats-Msg-Id of a record message: <tenant>/<id>/<first 128 bits of the SHA-256 of
// the exact bytes, hex>. It covers the content, not only the id, so JetStream's dedupe window
// drops a true retry (same bytes) but never a changed record with the same id: that one must
// reach the ingester, which quarantines it as id_conflict.
func MsgID(tenant, id string, data []byte) string {
	sum := sha256.Sum256(data)
	return tenant + "/" + id + "/" + hex.EncodeToString(sum[:16])
}

// PublishAsync publishes without waiting for the ack, but applies backpressure: while too many
// publishes await their ack it waits (until ctx ends) instead of failing, so a fast publisher
// slows to the speed of the stream rather than dropping records.
func PublishAsync(ctx context.Context, js jetstream.JetStream, m *nats.Msg) error {
	for {
		_, err := js.PublishMsgAsync(m)
		if !errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
			if err != nil {
				return fmt.Errorf("ingest: publish %s: %w", m.Subject, err)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}
