package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// migrations are the schema changes in order: migrations[i] takes the schema from version i to
// version i+1. Released migrations are never edited, only appended to, so a file written by any
// earlier version can be brought forward; each runs in its own transaction together with the row
// that records it in schema_migrations.
var migrations = []string{
	// Version 1: the records table and the applied log position.
	//
	// log_index is the INTEGER PRIMARY KEY, so it is the table's rowid: rows are stored in log
	// order (the indexer appends at the right edge of the B-tree), and every secondary index
	// already ends with it, which is what makes "ORDER BY time_ns, log_index" free on
	// records_user. (tenant, id) is the logical key and is enforced by UNIQUE, which is equivalent
	// to declaring it the primary key of a rowid table but saves a separate index on log_index.
	// Optional record fields are NULL when absent.
	//
	// records_user serves UserActions (equality on tenant and user, range on time, order by time
	// then index) without a sort; records_agent serves "everything an agent did"; records_id
	// serves FindID across tenants; records_parent walks the action → caused-action edges.
	`
CREATE TABLE records (
	log_index          INTEGER PRIMARY KEY,
	tenant             TEXT    NOT NULL,
	id                 TEXT    NOT NULL,
	time_ns            INTEGER NOT NULL,
	user_id            TEXT    NOT NULL,
	user_issuer        TEXT    NOT NULL,
	agent_id           TEXT    NOT NULL,
	role               TEXT,
	parent_id          TEXT,
	action_type        TEXT    NOT NULL,
	action_target      TEXT    NOT NULL,
	effect             TEXT    NOT NULL,
	policy_id          TEXT    NOT NULL,
	policy_version     TEXT    NOT NULL,
	delegation_token   TEXT,
	ai_system_id       TEXT,
	oversight_reviewer TEXT,
	record_hash        BLOB    NOT NULL,
	canonical          BLOB    NOT NULL,
	UNIQUE (tenant, id)
);
CREATE INDEX records_user   ON records (tenant, user_id, time_ns, log_index);
CREATE INDEX records_agent  ON records (tenant, agent_id, time_ns);
CREATE INDEX records_id     ON records (id);
CREATE INDEX records_parent ON records (tenant, parent_id);

-- position is the number of log entries applied; the CHECK keeps it a single row.
CREATE TABLE position (
	singleton  INTEGER PRIMARY KEY CHECK (singleton = 0),
	next_index INTEGER NOT NULL CHECK (next_index >= 0)
);
INSERT INTO position (singleton, next_index) VALUES (0, 0);
`,
	// Version 2: "what did this policy decide" (policy → decisions) without a table scan.
	`CREATE INDEX records_policy ON records (tenant, policy_id, time_ns);`,
	// Version 3: the ledger envelope's other inputs besides the canonical record
	// (lineage.NewEnvelope: received_at and source_verified; its version is always
	// lineage.EnvelopeV1), so the API can rebuild an entry from its row and check it against the
	// leaf hash in the log's tile instead of reading the entry bundle (query/lineage_api.go).
	// received_ns is the received time in Unix nanoseconds and source_verified is 0 or 1. Rows
	// written before this version keep NULL in both and are served from the log as before.
	`ALTER TABLE records ADD COLUMN received_ns INTEGER;
ALTER TABLE records ADD COLUMN source_verified INTEGER;`,
	// Version 4: erasure (docs/ERASURE.md). sealed_keys maps each subject key id to the rows
	// holding a field sealed under it, so an erasure finds the rows to purge; erasures_purged
	// records the key ids whose purge finished, so a restart completes any purge a crash cut
	// short (the key store's tombstones minus this table).
	`CREATE TABLE sealed_keys (
	key_id    BLOB    NOT NULL,
	log_index INTEGER NOT NULL,
	PRIMARY KEY (key_id, log_index)
) WITHOUT ROWID;
CREATE TABLE erasures_purged (
	key_id    BLOB    PRIMARY KEY,
	purged_ns INTEGER NOT NULL
) WITHOUT ROWID;`,
}

// migrate brings the schema to len(migrations). It refuses a database whose version is newer than
// this binary knows, because reading or writing a schema it does not understand could silently
// corrupt the projection.
func migrate(ctx context.Context, db *sql.DB) error {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    INTEGER PRIMARY KEY,
	applied_ns INTEGER NOT NULL
)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for {
		done, err := migrateOne(ctx, db)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
	}
}

// migrateOne applies the next pending migration, if any, and reports whether the schema is
// current. The version is re-read inside the write transaction (BEGIN IMMEDIATE), so two processes
// opening the same new file at once cannot both apply a migration.
func migrateOne(ctx context.Context, db *sql.DB) (done bool, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback()

	var version int
	if err := tx.QueryRowContext(ctx,
		`SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&version); err != nil {
		return false, fmt.Errorf("migrate: read version: %w", err)
	}
	switch {
	case version > len(migrations):
		return false, fmt.Errorf("migrate: schema version %d is newer than this binary's %d",
			version, len(migrations))
	case version == len(migrations):
		return true, nil
	}
	next := version + 1
	if _, err := tx.ExecContext(ctx, migrations[version]); err != nil {
		return false, fmt.Errorf("migrate: to version %d: %w", next, err)
	}
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO schema_migrations (version, applied_ns) VALUES (?, ?)`,
		next, time.Now().UnixNano()); err != nil {
		return false, fmt.Errorf("migrate: to version %d: %w", next, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("migrate: to version %d: commit: %w", next, err)
	}
	return next == len(migrations), nil
}
