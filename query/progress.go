package query

import (
	"context"
	"sync"
	"sync/atomic"
)

// progress is a position in the log (the indexer's, the findings worker's) that other
// goroutines read and wait for.
type progress struct {
	pos     atomic.Uint64
	mu      sync.Mutex
	changed chan struct{} // closed and replaced whenever the position moves
}

func newProgress(p uint64) *progress {
	pr := &progress{changed: make(chan struct{})}
	pr.pos.Store(p)
	return pr
}

// Load is the position.
func (p *progress) Load() uint64 { return p.pos.Load() }

// Set moves the position and wakes every waiter.
func (p *progress) Set(v uint64) {
	p.pos.Store(v)
	p.mu.Lock()
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
}

// WaitFor blocks until the position is at least n or ctx ends.
func (p *progress) WaitFor(ctx context.Context, n uint64) error {
	for {
		p.mu.Lock()
		ch := p.changed
		p.mu.Unlock()
		if p.pos.Load() >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}
