package ingest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// RecordMsg builds the NATS message a publisher sends for one record: subject
// lineage.records.<tenant> and Nats-Msg-Id <tenant>/<id>, so JetStream drops the publisher's
// own retries within the dedupe window.
func RecordMsg(tenant, id string, data []byte) *nats.Msg {
	m := nats.NewMsg(RecordsPrefix + tenant)
	m.Data = data
	m.Header.Set(jetstream.MsgIDHeader, tenant+"/"+id)
	return m
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
