package service

import (
	"context"
	"errors"
	"fmt"
	"github.com/lineage-audit/lineage/internal/ha"
	"github.com/nats-io/nats.go/jetstream"
	"log/slog"
	"os"

	"github.com/lineage-audit/lineage/ledger"
	"github.com/lineage-audit/lineage/ledger/seal"
	"github.com/lineage-audit/lineage/ledger/seal/sqlitekeys"
	"github.com/lineage-audit/lineage/query"
	"github.com/lineage-audit/lineage/query/index"
	"github.com/lineage-audit/lineage/query/index/clickhouse"
	"github.com/lineage-audit/lineage/query/index/sqlite"
	"golang.org/x/mod/sumdb/note"
)

// Indexer batch sizes of a rebuild. SQLite commits a transaction per batch; ClickHouse writes
// new parts per batch at a cost that barely depends on their size, so it gets 10,000-entry
// batches, the size at which docs/CLICKHOUSE.md measured its apply rate at about twice that of
// 1,000-entry ones (a batch's records are held in memory, so larger ones buy little more).
const (
	rebuildBatchSQLite     = 5000
	rebuildBatchClickHouse = 10_000
)

// RebuildIndex recreates the index c.Index names (sqlite, the default, or clickhouse) from the log
// alone (c.Ledger and its settings say which log), and returns the position it reached. The
// daemon must not be running (the data dir lock enforces it for this data dir). progress is
// called after every batch.
//
// SQLite: the new index is built beside the old one and swapped in only once it has caught up
// with the latest checkpoint, so an interrupted rebuild leaves the old index untouched.
//
// ClickHouse: the index's tables are dropped (clickhouse.Reset) and the log is applied to a
// fresh schema, in place. ClickHouse 18.16 cannot swap a second database in safely (see Reset),
// and in-place is safe because the driver's position makes every intermediate state one it
// recovers from: an interrupted rebuild leaves a consistent prefix of the log, which running the
// rebuild again or starting lineaged (whose indexer resumes from the position) completes. The log
// and its checkpoint are opened before anything is dropped, so a rebuild that cannot read the
// log changes nothing. Stop every lineaged using the index (on any host) first: the data dir lock
// covers this machine only.
func RebuildIndex(ctx context.Context, c Config, v note.Verifier, progress func(done, total uint64)) (uint64, error) {
	c.Defaults()
	switch {
	case c.Index != "sqlite" && c.Index != "clickhouse":
		return 0, fmt.Errorf("rebuild: --index %q is not available (sqlite, clickhouse)", c.Index)
	case c.Index == "clickhouse" && c.ClickHouseDSN == "":
		return 0, errors.New("rebuild: --index clickhouse needs --clickhouse-dsn")
	}
	unlock, err := LockDataDir(c.DataDir)
	if err != nil {
		return 0, err
	}
	defer unlock()
	mode := ledgerMode{readOnly: true}
	if c.HA {
		// A cluster's checkpoint is the shared one in NATS, not a data dir's.
		if c.Ledger != "trillian" || c.NATSURL == "" {
			return 0, errors.New("rebuild: --ha needs --ledger trillian and the cluster's --nats-url")
		}
		nc, _, stop, err := connectNATS(c, c.Logger)
		if err != nil {
			return 0, err
		}
		defer stop()
		js, err := jetstream.New(nc)
		if err != nil {
			return 0, fmt.Errorf("rebuild: jetstream: %w", err)
		}
		if mode.shared, err = ha.OpenCheckpointStore(ctx, js, 0, ha.TreeKey(c.TrillianTreeID)); err != nil {
			return 0, err
		}
	}
	lg, _, err := openLedger(ctx, c, nil, v, mode)
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
	keys, err := openErasureKeys(ctx, c)
	if err != nil {
		return 0, err
	}
	if keys != nil {
		defer keys.Close()
	}
	dec := query.Decoder{}
	if keys != nil {
		dec.Keys = keys
	}
	if c.Index == "clickhouse" {
		return rebuildClickHouse(ctx, c, lg, cp.Size, dec, progress)
	}
	return rebuildSQLite(ctx, c, lg, cp.Size, keys, dec, progress)
}

// openErasureKeys opens the erasure key store of a log whose erasure mode is on (nil when off),
// for readers of an existing log (rebuild-index): it never creates the master key or the store.
func openErasureKeys(ctx context.Context, c Config) (*sqlitekeys.SQLiteStore, error) {
	mode, err := readErasureMode(ErasureModeFile(c.DataDir))
	if err != nil || mode != ErasureOn {
		return nil, err
	}
	mk, err := loadMasterKey(c, false)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(c.ErasureKeyStore); err != nil {
		return nil, fmt.Errorf("rebuild: this log has erasure on, but its key store is unavailable (restore it from a backup): %w", err)
	}
	return sqlitekeys.OpenSQLite(ctx, c.ErasureKeyStore, mk, sqlitekeys.SQLiteOptions{})
}

// rebuildSQLite builds a new SQLite index file beside the old one and renames it over the old.
func rebuildSQLite(ctx context.Context, c Config, lg ledger.Log, size uint64, keys *sqlitekeys.SQLiteStore, dec query.Decoder, progress func(done, total uint64)) (uint64, error) {
	final := IndexPath(c.DataDir)
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
	pos, err := catchUp(ctx, lg, store, size, rebuildBatchSQLite, dec, progress)
	if err != nil {
		store.Close()
		return pos, err
	}
	if keys != nil {
		// Rows were decoded after every erasure so far: none holds an erased key's values.
		tombs, err := keys.Tombstones(ctx)
		if err != nil {
			store.Close()
			return pos, fmt.Errorf("rebuild: %w", err)
		}
		kids := make([]seal.KeyID, len(tombs))
		for i, t := range tombs {
			kids[i] = t.KeyID
		}
		if err := store.Purge(ctx, "", nil, nil, kids); err != nil {
			store.Close()
			return pos, fmt.Errorf("rebuild: %w", err)
		}
	}
	if err := store.Close(); err != nil {
		return pos, fmt.Errorf("rebuild: close: %w", err)
	}
	for _, suffix := range []string{"-wal", "-shm"} {
		if err := os.Remove(final + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return 0, fmt.Errorf("rebuild: remove %s: %w", final+suffix, err)
		}
	}
	if err := os.Rename(tmp, final); err != nil {
		return 0, fmt.Errorf("rebuild: swap in the new index: %w", err)
	}
	return pos, nil
}

// rebuildClickHouse empties the ClickHouse index and applies the log to it again.
func rebuildClickHouse(ctx context.Context, c Config, lg ledger.Log, size uint64, dec query.Decoder, progress func(done, total uint64)) (uint64, error) {
	o := clickHouseOptions(c)
	if err := clickhouse.Reset(ctx, o); err != nil {
		return 0, fmt.Errorf("rebuild: %w", err)
	}
	store, err := clickhouse.Open(ctx, o)
	if err != nil {
		return 0, fmt.Errorf("rebuild: %w", err)
	}
	pos, err := catchUp(ctx, lg, store, size, rebuildBatchClickHouse, dec, progress)
	if err != nil {
		store.Close()
		return pos, err
	}
	if err := store.Close(); err != nil {
		return pos, fmt.Errorf("rebuild: close: %w", err)
	}
	return pos, nil
}

// catchUp applies the log to store, batch entries at a time, until it reaches size.
func catchUp(ctx context.Context, lg ledger.Log, store index.Store, size, batch uint64, dec query.Decoder, progress func(done, total uint64)) (uint64, error) {
	ix, err := query.NewIndexer(ctx, lg, store, nil, slog.Default())
	if err != nil {
		return 0, fmt.Errorf("rebuild: %w", err)
	}
	ix.Decoder = dec
	ix.BatchSize = batch
	for ix.Position() < size {
		if _, err := ix.Step(ctx); err != nil {
			return ix.Position(), fmt.Errorf("rebuild: %w", err)
		}
		if progress != nil {
			progress(ix.Position(), size)
		}
	}
	return ix.Position(), nil
}
