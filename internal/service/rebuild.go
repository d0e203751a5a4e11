package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/lineage-audit/lineage/ledger"
	"github.com/lineage-audit/lineage/query"
	"github.com/lineage-audit/lineage/query/index/sqlite"
	"golang.org/x/mod/sumdb/note"
)

// RebuildIndex recreates the SQLite index of c.DataDir from the log alone (c.Ledger and its
// settings say which log). It builds the new index beside the old one and swaps it in only once
// it has caught up with the latest checkpoint, so an interrupted rebuild leaves the old index
// untouched. The daemon must not be running (the data dir lock enforces it). progress is called
// after every batch.
func RebuildIndex(ctx context.Context, c Config, v note.Verifier, progress func(done, total uint64)) (uint64, error) {
	c.Defaults()
	dataDir := c.DataDir
	unlock, err := LockDataDir(dataDir)
	if err != nil {
		return 0, err
	}
	defer unlock()
	lg, _, err := openLedger(ctx, c, nil, v, true)
	if err != nil {
		return 0, err
	}
	defer lg.Close(ctx)
	cp, err := lg.Checkpoint(ctx)
	if errors.Is(err, ledger.ErrNotFound) {
		cp = ledger.Checkpoint{}
	} else if err != nil {
		return 0, fmt.Errorf("rebuild: %w", err)
	}
	final := IndexPath(dataDir)
	tmp := final + ".rebuild"
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Remove(tmp + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return 0, fmt.Errorf("rebuild: clear %s: %w", tmp+suffix, err)
		}
	}
	store, err := sqlite.Open(ctx, tmp)
	if err != nil {
		return 0, err
	}
	ix, err := query.NewIndexer(ctx, lg, store, nil, slog.Default())
	if err != nil {
		store.Close()
		return 0, err
	}
	ix.BatchSize = 5000
	for ix.Position() < cp.Size {
		if _, err := ix.Step(ctx); err != nil {
			store.Close()
			return ix.Position(), fmt.Errorf("rebuild: %w", err)
		}
		if progress != nil {
			progress(ix.Position(), cp.Size)
		}
	}
	if err := store.Close(); err != nil {
		return ix.Position(), fmt.Errorf("rebuild: close: %w", err)
	}
	for _, suffix := range []string{"-wal", "-shm"} {
		if err := os.Remove(final + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return 0, fmt.Errorf("rebuild: remove %s: %w", final+suffix, err)
		}
	}
	if err := os.Rename(tmp, final); err != nil {
		return 0, fmt.Errorf("rebuild: swap in the new index: %w", err)
	}
	return ix.Position(), nil
}
