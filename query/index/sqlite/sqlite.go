// Package sqlite is the embedded index.Store driver: the default index of a single-machine
// lineaged, kept in one SQLite file under the data directory.
//
// It sits at the end of the pipeline, after the Merkle log: the indexer (package query) reads
// entries from the log and hands them to Apply in batches, and the query API reads them back
// with Lookup, FindID, Get, UserActions and the lineage queries (Records, PolicyStats), and
// ingest deduplicates with LookupMany. Like every index, the file is a projection of the log
// and can be deleted and rebuilt from it (lineagectl rebuild-index).
//
// The driver uses github.com/mattn/go-sqlite3, so building it needs cgo.
package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"runtime"
	"strings"

	sqlite3 "github.com/mattn/go-sqlite3"

	"github.com/lineage-audit/lineage/query/index"
)

// busyTimeoutMS is how long a connection waits for a lock held by another connection or process
// (for example lineagectl reading the file while lineaged writes it) before failing with
// SQLITE_BUSY. In WAL mode readers never wait for the writer, so this only bounds writer-writer
// and checkpoint contention.
const busyTimeoutMS = 5000

// Store is an index.Store kept in one SQLite database file.
//
// Concurrency: there is one *sql.DB, a pool of a few connections. Any number of goroutines may
// read at once, each on its own pooled connection; in WAL mode a reader sees the last committed
// transaction and is never blocked by Apply, and Apply is never blocked by readers. Writes are
// serialized by writeSlot, so at most one Apply runs at a time in this process.
//
// We deliberately do not SetMaxOpenConns(1), which is the other common way to serialize SQLite
// writes: that would also serialize every read behind the indexer's write transaction (and the
// indexer behind a long UserActions scan), which defeats WAL. A second *sql.DB dedicated to writes
// would work as well, but costs a second pool and configuration for no gain over one semaphore.
type Store struct {
	db *sql.DB

	// writeSlot holds one token; Apply takes it for the whole write transaction. It is a channel
	// rather than a sync.Mutex so a caller whose context is cancelled stops waiting promptly.
	// Write transactions also start with BEGIN IMMEDIATE (_txlock=immediate in the DSN), so a
	// writer in another process waits on busy_timeout at BEGIN instead of failing half-way when
	// its read lock cannot be upgraded.
	writeSlot chan struct{}
}

var (
	_ index.Store       = (*Store)(nil)
	_ index.BatchLookup = (*Store)(nil)
)

// Open opens (creating it if needed) the SQLite index at path and migrates its schema to the
// current version.
//
// Durability: the database runs in WAL mode with synchronous=NORMAL, so a commit appends to the
// write-ahead log without an fsync and the WAL is fsynced at checkpoints. A power loss can
// therefore lose the last few committed batches, but never corrupts the file and never separates
// rows from the position: each batch and its position commit in the same transaction, so after a
// crash the position is exactly as far as the rows that survived, and the indexer re-applies the
// rest from the Merkle log, which is the durable record (it fsyncs before ingest acks). Paying an
// fsync per batch (synchronous=FULL) would buy nothing an audit needs: the index is a rebuildable
// projection, not evidence.
//
// path must name a file: ":memory:" and "" are rejected because every pooled connection would see
// a different private database.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" || strings.ContainsAny(path, "?") {
		// go-sqlite3 splits the DSN at the first '?', so such a path would be misread.
		return nil, fmt.Errorf("sqlite: open %q: path must be a non-empty file path without '?'", path)
	}
	// WAL mode is set by setupConn, after the page size: a new file's page size can only be
	// chosen before it is in WAL mode.
	dsn := path + "?" + strings.Join([]string{
		"_synchronous=NORMAL",
		// Deleted and overwritten cells are zeroed in the file, so an erasure's purge leaves
		// no clear value behind in free space (docs/ERASURE.md). The index only appends in
		// normal operation, so this costs nothing there.
		"_secure_delete=on",
		fmt.Sprintf("_busy_timeout=%d", busyTimeoutMS),
		"_txlock=immediate",
		// Each connection keeps its prepared statements, so the handful of queries this driver
		// runs are parsed once per connection rather than once per call.
		"_stmt_cache_size=16",
	}, "&")
	db := sql.OpenDB(connector{dsn: dsn, driver: &sqlite3.SQLiteDriver{ConnectHook: setupConn}})
	// A few connections are enough for 2-core machines and bound the memory spent on per-connection
	// page caches; keep them all idle rather than reopening (and re-running pragmas) under load.
	conns := max(4, 2*runtime.GOMAXPROCS(0))
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)

	s := &Store{db: db, writeSlot: make(chan struct{}, 1)}
	if err := s.checkWAL(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: open %q: %w", path, err)
	}
	if err := migrate(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: open %q: %w", path, err)
	}
	return s, nil
}

// Per-connection settings the DSN cannot express.
const (
	// walAutocheckpointBytes is how much WAL a commit may leave before it checkpoints it
	// into the database file. SQLite's default (1,000 pages, 4 MB) checkpoints about every other
	// 1,000-record batch; the checkpoint is where synchronous=NORMAL fsyncs, and the secondary
	// index pages are rewritten by every batch, so checkpointing ten times less often writes and
	// fsyncs each hot page ten times less. The price is a WAL of up to ~40 MB and slightly slower
	// page lookups for readers.
	walAutocheckpointBytes = 40 << 20
	// pageSize is the page size of a new index file. A record's row is about 1.5 KB, so with
	// SQLite's default 4 KiB pages only two fit a leaf page and B-tree pages split often;
	// 16 KiB pages hold ten: BenchmarkApply measured 24-29 instead of 35-38 CPU-µs per record
	// and 1,617 instead of 1,704 bytes per record (issue #14). An existing file keeps its page
	// size (changing it would need a VACUUM, i.e. a rebuild: lineagectl rebuild-index).
	pageSize = 16 << 10
	// cacheKiB is each connection's page cache. The indexer's connection touches every secondary
	// index on every batch; 32 MB keeps their upper levels and recent leaves in memory. Readers'
	// caches fill only as far as their queries need.
	cacheKiB = 32 << 10
)

// setupConn applies the per-connection settings to each new pooled connection: the page size
// of a new file (a no-op on an existing one), WAL mode, and the autocheckpoint in pages of the
// file's actual page size.
func setupConn(c *sqlite3.SQLiteConn) error {
	if _, err := c.Exec(fmt.Sprintf("PRAGMA page_size = %d; PRAGMA journal_mode = WAL", pageSize), nil); err != nil {
		return err
	}
	rows, err := c.Query("PRAGMA page_size", nil)
	if err != nil {
		return err
	}
	dest := make([]driver.Value, 1)
	err = rows.Next(dest)
	rows.Close()
	if err != nil {
		return fmt.Errorf("page size: %w", err)
	}
	ps, ok := dest[0].(int64)
	if !ok || ps <= 0 {
		return fmt.Errorf("page size: %v", dest[0])
	}
	_, err = c.Exec(fmt.Sprintf("PRAGMA wal_autocheckpoint = %d; PRAGMA cache_size = -%d",
		walAutocheckpointBytes/ps, cacheKiB), nil)
	return err
}

// connector opens connections with our own driver value (for its ConnectHook) instead of the
// globally registered "sqlite3" one, so the package changes no global state.
type connector struct {
	dsn    string
	driver *sqlite3.SQLiteDriver
}

// Connect opens one connection; database/sql calls it as the pool grows.
func (c connector) Connect(context.Context) (driver.Conn, error) { return c.driver.Open(c.dsn) }

// Driver returns the driver behind the connector.
func (c connector) Driver() driver.Driver { return c.driver }

// checkWAL confirms the database really is in WAL mode: SQLite silently keeps another journal
// mode where WAL is impossible (":memory:", some network file systems), and without WAL readers
// and the writer would block each other.
func (s *Store) checkWAL(ctx context.Context) error {
	var mode string
	if err := s.db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("journal mode: %w", err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("journal mode is %q, want wal", mode)
	}
	return nil
}

// Close closes the database: calls already running finish first, later calls fail. Closing the
// last connection checkpoints the WAL into the database file.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("sqlite: close: %w", err)
	}
	return nil
}

// acquireWrite waits for the write slot or for ctx to end.
func (s *Store) acquireWrite(ctx context.Context) error {
	select {
	case s.writeSlot <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// releaseWrite returns the write slot taken by acquireWrite.
func (s *Store) releaseWrite() { <-s.writeSlot }

// errNotFound wraps index.ErrNotFound with what was looked for.
func errNotFound(op, tenant, id string) error {
	return fmt.Errorf("sqlite: %s %q/%q: %w", op, tenant, id, index.ErrNotFound)
}

// isNoRows reports whether err is database/sql's "no rows" from QueryRow.Scan.
func isNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }
