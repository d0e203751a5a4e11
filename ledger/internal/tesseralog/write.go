package tesseralog

import (
	"context"
	"fmt"

	"github.com/lineage-audit/lineage/ledger"
	"github.com/transparency-dev/tessera"
)

// Writer is a driver's write side: Tessera's appender, its shutdown and the cancel of its
// background work. The zero Writer is a read-only log's.
type Writer struct {
	// Name prefixes the errors the Writer makes ("tessera", "tesseraaws").
	Name     string
	Appender *tessera.Appender
	Shutdown func(context.Context) error
	Cancel   context.CancelFunc
}

// Add is ledger.Log's Add: ledger.ErrReadOnly on a read-only log.
func (w *Writer) Add(ctx context.Context, entry []byte) ledger.IndexFuture {
	if w.Appender == nil {
		return func() (uint64, error) { return 0, ledger.ErrReadOnly }
	}
	f := w.Appender.Add(ctx, tessera.NewEntry(entry))
	return func() (uint64, error) {
		idx, err := f()
		if err != nil {
			return 0, fmt.Errorf("%s: add: %w", w.Name, err)
		}
		return idx.Index, nil
	}
}

// Close is ledger.Log's Close: it waits for added entries to be integrated and a checkpoint
// committing to them to be published, then stops the background work. A read-only log has
// nothing to stop.
func (w *Writer) Close(ctx context.Context) error {
	if w.Appender == nil {
		return nil
	}
	err := w.Shutdown(ctx)
	w.Cancel()
	if err != nil {
		return fmt.Errorf("%s: shutdown: %w", w.Name, err)
	}
	return nil
}
