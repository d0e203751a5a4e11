// Package clickhouse is the index.Store driver for scale: the lineage index kept in ClickHouse,
// a columnar engine that answers user, agent and report queries over hundreds of millions of
// decision records and scales out to replicated, sharded tables (docs/ARCHITECTURE.md, "Scale-out").
//
// It sits where the SQLite driver sits, after the Merkle log: the indexer (package query) follows
// the log from Position and hands each run of entries to Apply, and the query API reads them back
// with Lookup, FindID, Get, UserActions and the lineage queries (Records, PolicyStats); ingest
// deduplicates with LookupMany. Like every index it is a projection of the log, so it can be
// emptied (Reset) and rebuilt from it (lineagectl rebuild-index), and it passes the same
// conformance suite (index/indextest) as SQLite, with the same answers.
//
// # Tables
//
// All tables live in one database (Options.Database) and are created and migrated by the driver
// (migrate.go, schema_migrations):
//
//   - records: one row per record with the indexed fields and the canonical bytes, ordered by
//     (tenant, user_id, time_ns, log_index), which is exactly UserActions' filter and order, and
//     a user's Records.
//   - records_by_id: (id, tenant, log_index) → where the row sits in records; serves Lookup,
//     LookupMany and FindID, and Get through the records key.
//   - records_by_subject (migration 2): one narrow row per record and subject kind — its agent,
//     its policy, and its parent when it has one — ordered by (tenant, kind, subject, time_ns,
//     log_index), with the columns Records filters on and PolicyStats groups by. It serves
//     Records for agents, policies and parents, and PolicyStats (search.go). It replaced
//     records_by_agent of migration 1, which ordered an agent's rows but lacked the filter
//     columns, so a filtered page could not be limited before its rows were fetched.
//   - position: the number of log entries applied, one row per Apply.
//
// records_by_id and records_by_subject are filled by materialized views on records, so one INSERT
// from the driver writes all three. Times are Int64 Unix nanoseconds (DateTime64 does not exist
// on ClickHouse 18.16, the Debian release, and nanoseconds are what the queries compare). The
// three record tables are partitioned by the month in which Lineage received the record, which
// keeps each batch in one or two partitions and lets retention drop whole months.
//
// Why one records_by_subject rather than a table per subject, or a second copy of the records:
// a query by agent, policy or parent runs entirely on the narrow table (filters, the
// (time, log index) cursor, one row per log index, the limit), and only the page's rows are then
// read from records, by records' full sorting key. Each kind is a key prefix, so one table serves
// all three at the cost of one part per Apply instead of three, and the canonical JSON, the bulk
// of the index, is stored once. The price is that second step: a page's rows sit wherever their
// users' rows do, a granule each at worst (the benchmarks measure it: tens of milliseconds for a
// 1,000-row agent page of a 200,000-record index).
//
// # Idempotency and crashes
//
// ClickHouse has no transactions, so Apply cannot write the rows and the position atomically as
// the SQLite driver does. It writes them in order, rows first (one INSERT into records, which the
// views fan out), then a position row with the batch's To, and the design makes every
// intermediate state harmless:
//
//  1. Reads see only committed batches. Every query restricts itself to
//     log_index < (SELECT max(next_index) FROM position), evaluated in the same query before
//     the rows are read. Rows are inserted before the position that covers them, so everything
//     below the position is visible, and rows of an Apply still running, or of one that
//     crashed before writing its position, are not.
//  2. Re-applying a batch never double-counts. The log is append-only and the indexer is
//     deterministic, so a log index always carries the same entry and re-inserting it produces
//     an exact copy of the row. Every read returns one row per log index (LIMIT 1, LIMIT 1 BY
//     tenant or LIMIT 1 BY log_index, cheaper than FINAL on 18.16; query.go), and every record
//     table is a ReplacingMergeTree whose sorting key ends in log_index, so background merges
//     remove the copies from disk and an aggregate over FINAL counts each record once. So after
//     a crash at any point the indexer re-applies from the old position (Apply accepts it: the
//     position did not move) and each table ends with one visible row per entry, whether the
//     crash hit before, during or after the insert, or inside the views. Queries added later
//     must keep this: deduplicate by log_index (FINAL, LIMIT 1 BY log_index, uniqExact) and
//     filter by the position. Records does both in records_by_subject, before its LIMIT, and
//     keeps one row per log index again when it reads records; PolicyStats aggregates over
//     FINAL (search.go). Reset (reset.go) relies on the same two rules to rebuild in place.
//  3. The position is explicit and only grows. It is the batch's To, stored, not derived from
//     max(log_index)+1, because a batch may end with non-record log entries. Reading it as
//     max(next_index) makes it monotone whatever order rows are merged in, and a crash after the
//     position row was written (before Apply returned) is the same as a lost commit
//     acknowledgement in SQLite: a retry gets index.ErrPosition and the indexer re-reads Position.
//
// Within one process Apply calls are serialized, like SQLite's. Two processes applying the same
// log at once (a fail-over overlap) cannot corrupt the index either: they write identical rows
// and the same position rows, and whichever falls behind gets ErrPosition at its next batch.
// Because the same (tenant, id) twice in the log is a bug upstream,
// Apply refuses it like SQLite's UNIQUE constraint does, by looking the batch's ids up in
// records_by_id first.
//
// Durability: ClickHouse does not fsync new parts by default. On servers with fsync_after_insert
// (see features) the record tables set it, so rows are on disk before the position that covers
// them is written and a power loss can only lose whole trailing batches, which the indexer
// re-applies from the log. On older servers a power loss (not a process crash) can lose rows
// whose position survived; rebuild the index after a host crash there.
//
// # Server versions
//
// The base schema works on ClickHouse 18.16 and current releases. Newer features (TTL for
// retention, bloom-filter skip indexes, LowCardinality columns, ZSTD for the canonical bytes,
// fsync_after_insert) are used only when SELECT version() says the server has them; see
// features.go and docs/CLICKHOUSE.md. The driver speaks the native protocol only: clickhouse-go's
// HTTP handshake needs settings 18.16 lacks.
package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/lineage-audit/lineage/query/index"
)

// DefaultDatabase is the database the index lives in when Options name none.
const DefaultDatabase = "lineage"

// MinRetention is the shortest retention window Open accepts without ForceShortRetention: the EU
// AI Act (Art. 19 and 26(6)) requires automatically generated logs to be kept for at least six
// months, and 183 days covers six months of any length.
const MinRetention = 183 * 24 * time.Hour

// Options configure Open. The zero value is not usable: set DSN or Addr.
type Options struct {
	// DSN is a clickhouse-go native DSN, "clickhouse://user:password@host:9000/database?…". When
	// set, Addr, User and Password are ignored, and the DSN's database is used unless Database
	// is set.
	DSN string
	// Addr is the server's native-protocol address, host:port (port 9000 by default on servers).
	Addr string
	// Database holds the index's tables; Open creates it if missing. Default DefaultDatabase.
	// It must be a plain identifier (letters, digits, underscores).
	Database string
	// User and Password authenticate; an empty User is ClickHouse's "default" user.
	User     string
	Password string

	// Retention is how long the index keeps a record after Lineage received it; 0 keeps records
	// forever. The log always stays whole: an expired record can still be proved and exported
	// from the log, it is just no longer in the index. Open refuses a window shorter than
	// MinRetention unless ForceShortRetention is set (for tests and non-EU deployments).
	Retention           time.Duration
	ForceShortRetention bool

	// DialTimeout bounds connecting to the server; default 10 s.
	DialTimeout time.Duration
	// MaxOpenConns bounds the connection pool; default 8, enough for the indexer plus the query
	// API's concurrent readers on the 2-core machines Lineage is sized for.
	MaxOpenConns int
	// Logger receives retention events and errors from background work that has no caller to
	// return them to. Default slog.Default().
	Logger *slog.Logger
}

// Store is an index.Store kept in one ClickHouse database.
//
// Concurrency: conn is clickhouse-go's pool, safe for concurrent use; any number of goroutines
// may read at once, each query on its own pooled connection. Writes are serialized by writeSlot,
// so at most one Apply runs at a time in this process (the crash-safety argument in the package
// doc does not need it, but it keeps two Apply calls of one indexer from both passing the
// position check and doing the work twice).
type Store struct {
	conn   driver.Conn
	db     string // validated identifier, spliced into SQL as db.table
	server serverVersion
	feat   features
	log    *slog.Logger

	retention time.Duration

	// writeSlot holds one token; Apply takes it for the whole batch. A channel rather than a
	// sync.Mutex so a caller whose context is cancelled stops waiting promptly.
	writeSlot chan struct{}

	// retentionMu serializes retention enforcement (from Open, Apply and EnforceRetention) and
	// guards lastRetention.
	retentionMu   sync.Mutex
	lastRetention time.Time
}

var (
	_ index.Store       = (*Store)(nil)
	_ index.BatchLookup = (*Store)(nil)
)

// identifier is what Open accepts as a database name. Names are spliced into SQL (ClickHouse
// cannot bind identifiers), so only plain identifiers are allowed, which also need no quoting on
// any server version.
var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

// Open connects to the server, creates the database if needed, migrates its schema to the current
// version, reconciles the retention window, and enforces it once.
func Open(ctx context.Context, o Options) (*Store, error) {
	if err := checkRetention(o.Retention, o.ForceShortRetention); err != nil {
		return nil, fmt.Errorf("clickhouse: open: %w", err)
	}
	copts, db, err := connOptions(o)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: open: %w", err)
	}
	conn, err := clickhouse.Open(copts)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: open %s: %w", strings.Join(copts.Addr, ","), err)
	}
	s := &Store{
		conn:      conn,
		db:        db,
		log:       o.Logger,
		retention: o.Retention,
		writeSlot: make(chan struct{}, 1),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if err := s.open(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("clickhouse: open %s/%s: %w", strings.Join(copts.Addr, ","), db, err)
	}
	return s, nil
}

// open runs Open's steps that talk to the server.
func (s *Store) open(ctx context.Context) error {
	var version string
	if err := s.conn.QueryRow(ctx, "SELECT version()").Scan(&version); err != nil {
		return fmt.Errorf("server version: %w", err)
	}
	v, err := parseVersion(version)
	if err != nil {
		return err
	}
	s.server, s.feat = v, featuresOf(v)
	if err := s.migrate(ctx); err != nil {
		return err
	}
	if err := s.reconcileTTL(ctx); err != nil {
		return err
	}
	if err := s.EnforceRetention(ctx); err != nil {
		return err
	}
	return nil
}

// connOptions turns Options into clickhouse-go options and the database name.
func connOptions(o Options) (*clickhouse.Options, string, error) {
	var copts *clickhouse.Options
	db := o.Database
	switch {
	case o.DSN != "":
		var err error
		if copts, err = clickhouse.ParseDSN(o.DSN); err != nil {
			return nil, "", fmt.Errorf("parse DSN: %w", err)
		}
		if copts.Protocol != clickhouse.Native {
			return nil, "", errors.New("DSN: only the native protocol (clickhouse://, port 9000) is supported")
		}
		if db == "" {
			db = copts.Auth.Database
		}
	case o.Addr != "":
		copts = &clickhouse.Options{
			Addr: []string{o.Addr},
			Auth: clickhouse.Auth{Username: o.User, Password: o.Password},
		}
	default:
		return nil, "", errors.New("neither DSN nor Addr is set")
	}
	if db == "" {
		db = DefaultDatabase
	}
	if !identifier.MatchString(db) {
		return nil, "", fmt.Errorf("database name %q is not a plain identifier", db)
	}
	// Connect to the server's default database: ours may not exist yet (migrate creates it),
	// and every statement names its tables as db.table anyway.
	copts.Auth.Database = ""
	if o.DialTimeout > 0 {
		copts.DialTimeout = o.DialTimeout
	} else if copts.DialTimeout == 0 {
		copts.DialTimeout = 10 * time.Second
	}
	if o.MaxOpenConns > 0 {
		copts.MaxOpenConns = o.MaxOpenConns
	} else if copts.MaxOpenConns == 0 {
		copts.MaxOpenConns = 8
	}
	copts.MaxIdleConns = copts.MaxOpenConns
	if copts.Compression == nil {
		// The canonical bytes dominate what Apply sends and Get and UserActions receive, and
		// JSON compresses about 4:1 with LZ4 at a cost far below a network round trip.
		copts.Compression = &clickhouse.Compression{Method: clickhouse.CompressionLZ4}
	}
	return copts, db, nil
}

// Close closes the connection pool: calls already running finish first, later calls fail.
func (s *Store) Close() error {
	if err := s.conn.Close(); err != nil {
		return fmt.Errorf("clickhouse: close: %w", err)
	}
	return nil
}

// ServerVersion is the version the server reported at Open, as "major.minor.patch".
func (s *Store) ServerVersion() string { return s.server.String() }

// Database is the database the index lives in.
func (s *Store) Database() string { return s.db }

// table returns the qualified name of one of the index's tables.
func (s *Store) table(name string) string { return s.db + "." + name }

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
	return fmt.Errorf("clickhouse: %s %q/%q: %w", op, tenant, id, index.ErrNotFound)
}
