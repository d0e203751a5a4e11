package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lineage-audit/lineage/query/findings"
)

// findingsMigrations are the findings tables' schema changes, versioned apart from the index's
// (findings_schema), so the two projections evolve independently. Released ones are never
// edited.
var findingsMigrations = []string{
	// Version 1. A finding's queryable columns plus its whole JSON (explanation, evidence) in
	// body; published_count is the count last published on lineage.findings.<tenant> (an
	// outbox: what changed since is published again). findings_state holds the engine's state
	// items; findings_position counts the log entries the findings reflect.
	`
CREATE TABLE findings (
	id              TEXT    PRIMARY KEY,
	tenant          TEXT    NOT NULL,
	kind            TEXT    NOT NULL,
	severity        TEXT    NOT NULL,
	agent           TEXT    NOT NULL,
	user_id         TEXT    NOT NULL,
	first_ns        INTEGER NOT NULL,
	last_ns         INTEGER NOT NULL,
	first_index     INTEGER NOT NULL,
	count           INTEGER NOT NULL,
	published_count INTEGER NOT NULL DEFAULT 0,
	changed_seq     INTEGER NOT NULL,
	body            BLOB    NOT NULL
);
CREATE INDEX findings_tenant ON findings (tenant, first_index DESC, id);
CREATE INDEX findings_outbox ON findings (changed_seq) WHERE count > published_count;
CREATE TABLE findings_state (
	tenant TEXT NOT NULL,
	space  TEXT NOT NULL,
	key    TEXT NOT NULL,
	value  BLOB NOT NULL,
	PRIMARY KEY (tenant, space, key)
) WITHOUT ROWID;
CREATE TABLE findings_position (
	singleton  INTEGER PRIMARY KEY CHECK (singleton = 0),
	next_index INTEGER NOT NULL CHECK (next_index >= 0)
);
INSERT INTO findings_position (singleton, next_index) VALUES (0, 0);
`,
}

// Findings is the findings.Store of an SQLite index: its tables live in the index file.
type Findings struct{ s *Store }

var _ findings.Store = (*Findings)(nil)

// Findings returns the store's findings projection, creating or upgrading its tables.
func (s *Store) Findings(ctx context.Context) (*Findings, error) {
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS findings_schema (
	version    INTEGER PRIMARY KEY,
	applied_ns INTEGER NOT NULL
)`); err != nil {
		return nil, fmt.Errorf("sqlite: findings schema: %w", err)
	}
	for {
		done, err := s.migrateFindingsOne(ctx)
		if err != nil {
			return nil, fmt.Errorf("sqlite: findings schema: %w", err)
		}
		if done {
			return &Findings{s: s}, nil
		}
	}
}

func (s *Store) migrateFindingsOne(ctx context.Context) (bool, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer tx.Rollback()
	var version int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM findings_schema`).Scan(&version); err != nil {
		return false, err
	}
	switch {
	case version > len(findingsMigrations):
		return false, fmt.Errorf("version %d is newer than this binary's %d", version, len(findingsMigrations))
	case version == len(findingsMigrations):
		return true, nil
	}
	if _, err := tx.ExecContext(ctx, findingsMigrations[version]); err != nil {
		return false, fmt.Errorf("to version %d: %w", version+1, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO findings_schema (version, applied_ns) VALUES (?, ?)`, version+1, time.Now().UnixNano()); err != nil {
		return false, err
	}
	return false, tx.Commit()
}

// FindingsPosition implements findings.Store.
func (f *Findings) FindingsPosition(ctx context.Context) (uint64, error) {
	var p int64
	if err := f.s.db.QueryRowContext(ctx, `SELECT next_index FROM findings_position WHERE singleton = 0`).Scan(&p); err != nil {
		return 0, fmt.Errorf("sqlite: findings position: %w", err)
	}
	return uint64(p), nil
}

// FindingsState implements findings.Store.
func (f *Findings) FindingsState(ctx context.Context) ([]findings.StateItem, error) {
	rows, err := f.s.db.QueryContext(ctx, `SELECT tenant, space, key, value FROM findings_state ORDER BY tenant, space, key`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: findings state: %w", err)
	}
	defer rows.Close()
	var out []findings.StateItem
	for rows.Next() {
		var it findings.StateItem
		if err := rows.Scan(&it.Tenant, &it.Space, &it.Key, &it.Value); err != nil {
			return nil, fmt.Errorf("sqlite: findings state: %w", err)
		}
		out = append(out, it)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: findings state: %w", err)
	}
	return out, nil
}

// ApplyFindings implements findings.Store in one transaction.
func (f *Findings) ApplyFindings(ctx context.Context, from, to uint64, occ []findings.Occurrence, state []findings.StateItem) ([]findings.Change, error) {
	if to < from {
		return nil, fmt.Errorf("sqlite: apply findings [%d,%d): inverted", from, to)
	}
	if err := f.s.acquireWrite(ctx); err != nil {
		return nil, fmt.Errorf("sqlite: apply findings [%d,%d): %w", from, to, err)
	}
	defer f.s.releaseWrite()
	ch, err := f.apply(ctx, from, to, occ, state)
	if err != nil {
		return nil, fmt.Errorf("sqlite: apply findings [%d,%d): %w", from, to, err)
	}
	return ch, nil
}

func (f *Findings) apply(ctx context.Context, from, to uint64, occ []findings.Occurrence, state []findings.StateItem) ([]findings.Change, error) {
	tx, err := f.s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	var pos int64
	if err := tx.QueryRowContext(ctx, `SELECT next_index FROM findings_position WHERE singleton = 0`).Scan(&pos); err != nil {
		return nil, fmt.Errorf("read position: %w", err)
	}
	if uint64(pos) != from {
		return nil, fmt.Errorf("position is %d: %w", pos, findings.ErrPosition)
	}
	changes, err := findings.Merge(occ, func(id string) (findings.Finding, bool, error) {
		var body []byte
		err := tx.QueryRowContext(ctx, `SELECT body FROM findings WHERE id = ?`, id).Scan(&body)
		if errors.Is(err, sql.ErrNoRows) {
			return findings.Finding{}, false, nil
		}
		if err != nil {
			return findings.Finding{}, false, fmt.Errorf("read finding %s: %w", id, err)
		}
		var fd findings.Finding
		if err := json.Unmarshal(body, &fd); err != nil {
			return findings.Finding{}, false, fmt.Errorf("finding %s: stored body: %w", id, err)
		}
		return fd, true, nil
	})
	if err != nil {
		return nil, err
	}
	for i, c := range changes {
		fd := &c.Finding
		body, err := json.Marshal(fd)
		if err != nil {
			return nil, fmt.Errorf("finding %s: %w", fd.ID, err)
		}
		// changed_seq orders the outbox: the log position of the batch, then the order within it.
		seq := int64(to)<<16 | int64(min(i, 1<<16-1))
		if _, err := tx.ExecContext(ctx, `INSERT INTO findings (id, tenant, kind, severity, agent, user_id, first_ns, last_ns, first_index, count, changed_seq, body)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET severity = excluded.severity, agent = excluded.agent, user_id = excluded.user_id,
	first_ns = excluded.first_ns, last_ns = excluded.last_ns, count = excluded.count, changed_seq = excluded.changed_seq, body = excluded.body`,
			fd.ID, fd.Tenant, string(fd.Kind), string(fd.Severity), fd.Agent, fd.User, fd.First.UnixNano(), fd.Last.UnixNano(),
			int64(fd.FirstIndex), int64(fd.Count), seq, body); err != nil {
			return nil, fmt.Errorf("store finding %s: %w", fd.ID, err)
		}
	}
	for _, it := range state {
		var err error
		if it.Value == nil {
			_, err = tx.ExecContext(ctx, `DELETE FROM findings_state WHERE tenant = ? AND space = ? AND key = ?`, it.Tenant, it.Space, it.Key)
		} else {
			_, err = tx.ExecContext(ctx, `INSERT INTO findings_state (tenant, space, key, value) VALUES (?, ?, ?, ?)
ON CONFLICT (tenant, space, key) DO UPDATE SET value = excluded.value`, it.Tenant, it.Space, it.Key, it.Value)
		}
		if err != nil {
			return nil, fmt.Errorf("state %s/%s: %w", it.Tenant, it.Space, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE findings_position SET next_index = ? WHERE singleton = 0`, int64(to)); err != nil {
		return nil, fmt.Errorf("update position: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	return changes, nil
}

// Findings implements findings.Store.
func (f *Findings) Findings(ctx context.Context, q findings.Query) ([]findings.Finding, error) {
	var where []string
	args := []any{q.Tenant}
	where = append(where, "tenant = ?")
	if len(q.Kinds) > 0 {
		where = append(where, "kind IN ("+placeholders(len(q.Kinds))+")")
		for _, k := range q.Kinds {
			args = append(args, string(k))
		}
	}
	if len(q.Severities) > 0 {
		where = append(where, "severity IN ("+placeholders(len(q.Severities))+")")
		for _, s := range q.Severities {
			args = append(args, string(s))
		}
	}
	if q.Agent != "" {
		where = append(where, "agent = ?")
		args = append(args, q.Agent)
	}
	if q.User != "" {
		where = append(where, "user_id = ?")
		args = append(args, q.User)
	}
	if !q.From.IsZero() {
		where = append(where, "last_ns >= ?")
		args = append(args, q.From.UnixNano())
	}
	if !q.To.IsZero() {
		where = append(where, "first_ns < ?")
		args = append(args, q.To.UnixNano())
	}
	if q.After != "" {
		where = append(where, "(first_index < ? OR (first_index = ? AND id > ?))")
		args = append(args, int64(q.AfterIndex), int64(q.AfterIndex), q.After)
	}
	args = append(args, q.EffectiveLimit())
	rows, err := f.s.db.QueryContext(ctx, `SELECT body FROM findings WHERE `+strings.Join(where, " AND ")+
		` ORDER BY first_index DESC, id LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: findings: %w", err)
	}
	return scanFindings(rows)
}

// Unpublished implements findings.Store.
func (f *Findings) Unpublished(ctx context.Context, limit int) ([]findings.Finding, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := f.s.db.QueryContext(ctx, `SELECT body FROM findings WHERE count > published_count ORDER BY changed_seq LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: unpublished findings: %w", err)
	}
	return scanFindings(rows)
}

// MarkPublished implements findings.Store. A finding changed again since stays unpublished.
func (f *Findings) MarkPublished(ctx context.Context, id string, count uint64) error {
	if err := f.s.acquireWrite(ctx); err != nil {
		return fmt.Errorf("sqlite: mark published %s: %w", id, err)
	}
	defer f.s.releaseWrite()
	if _, err := f.s.db.ExecContext(ctx, `UPDATE findings SET published_count = MAX(published_count, ?) WHERE id = ?`, int64(count), id); err != nil {
		return fmt.Errorf("sqlite: mark published %s: %w", id, err)
	}
	return nil
}

func scanFindings(rows *sql.Rows) ([]findings.Finding, error) {
	defer rows.Close()
	out := []findings.Finding{}
	for rows.Next() {
		var body []byte
		if err := rows.Scan(&body); err != nil {
			return nil, fmt.Errorf("sqlite: findings: %w", err)
		}
		var fd findings.Finding
		if err := json.Unmarshal(body, &fd); err != nil {
			return nil, fmt.Errorf("sqlite: findings: stored body: %w", err)
		}
		out = append(out, fd)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: findings: %w", err)
	}
	return out, nil
}

func placeholders(n int) string { return strings.TrimSuffix(strings.Repeat("?,", n), ",") }
