package clickhouse

import (
	"context"
	"fmt"
	"time"
)

// migration is one versioned schema change. Its statements depend on the server's features, so
// the same version creates the 18.16 schema on an old server and the richer one on a new server;
// schema_migrations records which features each version was applied with.
type migration struct {
	name  string
	stmts func(s *Store) []string
}

// migrations are the schema changes in order: migrations[i] takes the schema from version i to
// version i+1. Released migrations are never edited, only appended to.
//
// ClickHouse has no transactional DDL, so a migration cannot commit together with its
// schema_migrations row as SQLite's do. Instead every statement is idempotent (IF NOT EXISTS) and
// the row is written after the last statement succeeded: a migration interrupted half-way is
// simply run again, in full, by the next Open. Migrations that cannot be written idempotently
// must check the current state themselves before changing it.
var migrations = []migration{
	{name: "records, records_by_id, records_by_agent, position, retention", stmts: schemaV1},
	{name: "records_by_subject for agent, policy and parent queries; drop records_by_agent", stmts: schemaV2},
}

// migrate creates the database if needed and brings its schema to len(migrations). It refuses a
// schema newer than this binary knows, because writing a schema it does not understand could
// silently corrupt the projection.
//
// Open is not meant to run concurrently with another process's Open on a new database (the
// indexer runs in one process per log); if it does, both run the same IF NOT EXISTS statements,
// which is harmless except that one of them may fail and need a retry.
func (s *Store) migrate(ctx context.Context) error {
	if err := s.createDatabase(ctx); err != nil {
		return err
	}
	if err := s.conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+s.table("schema_migrations")+` (
	version        UInt32,
	name           String,
	applied_ns     Int64,
	server_version String,
	features       String
) ENGINE = ReplacingMergeTree ORDER BY version`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	version, err := s.schemaVersion(ctx)
	if err != nil {
		return err
	}
	if version > len(migrations) {
		return fmt.Errorf("migrate: schema version %d is newer than this binary's %d", version, len(migrations))
	}
	for v := version; v < len(migrations); v++ {
		if err := s.runMigration(ctx, v); err != nil {
			return err
		}
	}
	return nil
}

// createDatabase creates the database unless it exists. It checks first rather than relying on
// IF NOT EXISTS alone because a user granted only its own database may not run CREATE DATABASE
// at all, even for one that exists.
func (s *Store) createDatabase(ctx context.Context) error {
	var n uint64
	if err := s.conn.QueryRow(ctx, `SELECT count() FROM system.databases WHERE name = ?`, s.db).Scan(&n); err != nil {
		return fmt.Errorf("migrate: look up database: %w", err)
	}
	if n > 0 {
		return nil
	}
	if err := s.conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+s.db); err != nil {
		return fmt.Errorf("migrate: create database: %w", err)
	}
	return nil
}

// schemaVersion returns the highest migration applied, 0 for a new database.
func (s *Store) schemaVersion(ctx context.Context) (int, error) {
	var version uint32
	if err := s.conn.QueryRow(ctx, `SELECT max(version) FROM `+s.table("schema_migrations")).Scan(&version); err != nil {
		return 0, fmt.Errorf("migrate: read version: %w", err)
	}
	return int(version), nil
}

// runMigration applies migrations[v], taking the schema to version v+1, and records it.
func (s *Store) runMigration(ctx context.Context, v int) error {
	m := migrations[v]
	for i, stmt := range m.stmts(s) {
		if err := s.conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("migrate: to version %d (%s), statement %d: %w", v+1, m.name, i+1, err)
		}
	}
	batch, err := s.conn.PrepareBatch(ctx, `INSERT INTO `+s.table("schema_migrations")+
		` (version, name, applied_ns, server_version, features)`)
	if err != nil {
		return fmt.Errorf("migrate: to version %d: %w", v+1, err)
	}
	defer batch.Close()
	if err := batch.Append(uint32(v+1), m.name, time.Now().UnixNano(), s.server.String(), s.feat.String()); err != nil {
		return fmt.Errorf("migrate: to version %d: %w", v+1, err)
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("migrate: to version %d: record: %w", v+1, err)
	}
	s.log.Info("clickhouse index: schema migrated", "database", s.db, "version", v+1,
		"migration", m.name, "server", s.server.String(), "features", s.feat.String())
	return nil
}
