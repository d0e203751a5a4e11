package findings

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"time"
)

// Subject is the NATS subject a tenant's findings are published on.
func Subject(tenant string) string { return "lineage.findings." + tenant }

// Publisher publishes new and changed findings from a store's outbox (Store.Unpublished), each
// as its JSON on Subject(tenant) with the message id "<finding id>:<count>", and marks them
// published. A finding that changes again before it is published is published once, as it is
// then. Delivery is at least once: a crash between publishing and marking publishes again with
// the same message id, which JetStream's duplicate window drops.
type Publisher struct {
	Store Store
	// Publish sends one message; it returns once the server has it (a JetStream ack).
	Publish func(ctx context.Context, subject, msgID string, data []byte) error
	Logger  *slog.Logger
	// Published and Failed, when set, count messages sent and attempts that failed.
	Published, Failed func()

	wake chan struct{}
}

// NewPublisher returns a publisher; call Run.
func NewPublisher(s Store, publish func(ctx context.Context, subject, msgID string, data []byte) error, logger *slog.Logger) *Publisher {
	if logger == nil {
		logger = slog.Default()
	}
	return &Publisher{Store: s, Publish: publish, Logger: logger, wake: make(chan struct{}, 1)}
}

// Wake makes Run look at the outbox now.
func (p *Publisher) Wake() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Run publishes until ctx ends, retrying failures with backoff (1 s doubling to 30 s).
func (p *Publisher) Run(ctx context.Context) error {
	backoff := time.Second
	for {
		n, err := p.Flush(ctx)
		wait := 5 * time.Second
		switch {
		case err != nil && ctx.Err() == nil:
			p.Logger.Warn("findings: publish", "err", err, "retry_in", backoff)
			wait, backoff = backoff, min(2*backoff, 30*time.Second)
		case err == nil:
			backoff = time.Second
			if n > 0 {
				continue
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-p.wake:
		case <-time.After(wait):
		}
	}
}

// Flush publishes one page of the outbox and returns how many findings it published.
func (p *Publisher) Flush(ctx context.Context) (int, error) {
	fs, err := p.Store.Unpublished(ctx, 256)
	if err != nil {
		return 0, err
	}
	for i, f := range fs {
		data, err := json.Marshal(f)
		if err != nil {
			return i, fmt.Errorf("finding %s: %w", f.ID, err)
		}
		if err := p.Publish(ctx, Subject(f.Tenant), f.ID+":"+strconv.FormatUint(f.Count, 10), data); err != nil {
			if p.Failed != nil {
				p.Failed()
			}
			return i, fmt.Errorf("finding %s: %w", f.ID, err)
		}
		if p.Published != nil {
			p.Published()
		}
		if err := p.Store.MarkPublished(ctx, f.ID, f.Count); err != nil {
			return i, err
		}
	}
	return len(fs), nil
}
