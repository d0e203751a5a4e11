package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/lineage-audit/lineage/ledger/seal"
	"github.com/lineage-audit/lineage/query/findings"
	"github.com/lineage-audit/lineage/query/index"
)

// SealedRows returns the log indexes of the rows holding a field sealed under any of kids, in
// log order, with each row's stored canonical record (the clear record while the key existed).
func (s *Store) SealedRows(ctx context.Context, kids []seal.KeyID) (map[uint64][]byte, error) {
	out := map[uint64][]byte{}
	for _, kid := range kids {
		rows, err := s.db.QueryContext(ctx, `SELECT k.log_index, r.canonical FROM sealed_keys k
JOIN records r ON r.log_index = k.log_index WHERE k.key_id = ?`, kid[:])
		if err != nil {
			return nil, fmt.Errorf("sqlite: sealed rows: %w", err)
		}
		for rows.Next() {
			var idx int64
			var canon []byte
			if err := rows.Scan(&idx, &canon); err != nil {
				rows.Close()
				return nil, fmt.Errorf("sqlite: sealed rows: %w", err)
			}
			out[uint64(idx)] = canon
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("sqlite: sealed rows: %w", err)
		}
	}
	return out, nil
}

// Purge is the index side of an erasure: in one transaction it rewrites the rows given (each
// entry re-decoded from the log after the key was destroyed, so its erased fields hold
// tokens), replaces each clear value of replace (clear value → placeholder) in the findings of
// tenant and their engine state, and records kids as purged. The database runs with
// secure_delete, so the old cells are zeroed; Purge then checkpoints and truncates the WAL, so
// no copy of the old pages is left in it either.
func (s *Store) Purge(ctx context.Context, tenant string, entries []index.Entry, replace map[string]string, kids []seal.KeyID) error {
	if err := s.acquireWrite(ctx); err != nil {
		return fmt.Errorf("sqlite: purge: %w", err)
	}
	err := s.purge(ctx, tenant, entries, replace, kids)
	s.releaseWrite()
	if err != nil {
		return fmt.Errorf("sqlite: purge: %w", err)
	}
	// Best effort beyond the commit: a reader holding an old snapshot can keep the checkpoint
	// from truncating; CheckpointWAL reports it and the caller retries later.
	return s.CheckpointWAL(ctx)
}

func (s *Store) purge(ctx context.Context, tenant string, entries []index.Entry, replace map[string]string, kids []seal.KeyID) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	args := make([]any, 0, insertArgCount)
	for i := range entries {
		e := &entries[i]
		if e.Record == nil || e.Record.Tenant != tenant {
			return fmt.Errorf("entry %d is not a record of tenant %q", e.Index, tenant)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM records WHERE log_index = ?`, int64(e.Index)); err != nil {
			return fmt.Errorf("delete row %d: %w", e.Index, err)
		}
		if _, err := tx.ExecContext(ctx, insertRecord, appendInsertArgs(args[:0], e)...); err != nil {
			return fmt.Errorf("rewrite row %d: %w", e.Index, err)
		}
	}
	var haveFindings int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('findings', 'findings_state')`).Scan(&haveFindings); err != nil {
		return fmt.Errorf("findings tables: %w", err)
	}
	if haveFindings < 2 {
		replace = nil // no findings projection in this file
	}
	for clear, ph := range replace {
		if clear == "" {
			continue // an empty value names no one, and would match everywhere
		}
		// The JSON-escaped text of the value, without quotes: it is replaced wherever it
		// occurs in a finding's body or state, whole string values and inside longer ones
		// alike (explanations name users: "During user X's session…", "acts in 2 users (X,
		// Y)"). The placeholder needs no escaping, so the JSON stays valid.
		oldJSON, err := jsonText(clear)
		if err != nil {
			return err
		}
		newJSON, err := jsonText(ph)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE findings SET
	user_id = CASE WHEN user_id = ?1 THEN ?2 ELSE user_id END,
	agent = CASE WHEN agent = ?1 THEN ?2 ELSE agent END,
	body = CAST(replace(CAST(body AS TEXT), ?3, ?4) AS BLOB)
WHERE tenant = ?5 AND (user_id = ?1 OR agent = ?1 OR instr(CAST(body AS TEXT), ?3) > 0)`,
			clear, ph, string(oldJSON), string(newJSON), tenant); err != nil {
			return fmt.Errorf("findings: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE findings_state SET value = CAST(replace(CAST(value AS TEXT), ?1, ?2) AS BLOB)
WHERE tenant = ?3 AND instr(CAST(value AS TEXT), ?1) > 0`, string(oldJSON), string(newJSON), tenant); err != nil {
			return fmt.Errorf("findings state: %w", err)
		}
		// State keys are a subject id, or a subject id and more after a NUL (findings/engine.go).
		// Compared and cut as blobs: SQLite's length() and substr() of text stop at a NUL.
		if _, err := tx.ExecContext(ctx, `UPDATE OR REPLACE findings_state
SET key = CAST(CAST(?2 AS BLOB) || substr(CAST(key AS BLOB), length(CAST(?1 AS BLOB)) + 1) AS TEXT)
WHERE tenant = ?3 AND (key = ?1 OR substr(CAST(key AS BLOB), 1, length(CAST(?1 AS BLOB)) + 1) = CAST(?1 || char(0) AS BLOB))`, clear, ph, tenant); err != nil {
			return fmt.Errorf("findings state keys: %w", err)
		}
	}
	if len(replace) > 0 {
		if err := rekeyFindings(ctx, tx, tenant, replace); err != nil {
			return err
		}
	}
	now := time.Now().UnixNano()
	for _, kid := range kids {
		if _, err := tx.ExecContext(ctx, `INSERT INTO erasures_purged (key_id, purged_ns) VALUES (?, ?) ON CONFLICT DO NOTHING`, kid[:], now); err != nil {
			return fmt.Errorf("mark purged: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// Purged reports which of kids the index has finished purging.
func (s *Store) Purged(ctx context.Context, kids []seal.KeyID) (map[seal.KeyID]bool, error) {
	out := make(map[seal.KeyID]bool, len(kids))
	for _, kid := range kids {
		var n int
		if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM erasures_purged WHERE key_id = ?`, kid[:]).Scan(&n); err != nil {
			return nil, fmt.Errorf("sqlite: purged: %w", err)
		}
		out[kid] = n > 0
	}
	return out, nil
}

// CheckpointWAL copies the WAL into the database file and truncates it to zero bytes.
func (s *Store) CheckpointWAL(ctx context.Context) error {
	var busy, logPages, done int
	if err := s.db.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logPages, &done); err != nil {
		return fmt.Errorf("sqlite: wal checkpoint: %w", err)
	}
	if busy != 0 {
		return fmt.Errorf("sqlite: wal checkpoint: busy (a reader holds an old snapshot; %d of %d pages copied)", done, logPages)
	}
	return nil
}

// jsonText is v as it appears inside a JSON string: escaped, without the quotes.
func jsonText(v string) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return string(b[1 : len(b)-1]), nil
}

// rekeyFindings gives every finding of tenant whose key now holds a placeholder the id of its
// new key. A finding's id is an unkeyed hash over its key (findings.ID), and some keys start
// with a user id (scope escalation: user, agent, session start): kept, the old id would let
// anyone holding the index confirm a guess of the erased user.
func rekeyFindings(ctx context.Context, tx *sql.Tx, tenant string, replace map[string]string) error {
	type row struct {
		id   string
		body []byte
	}
	var hit []row
	for _, ph := range replace {
		rows, err := tx.QueryContext(ctx, `SELECT id, body FROM findings WHERE tenant = ? AND instr(CAST(body AS TEXT), ?) > 0`, tenant, ph)
		if err != nil {
			return fmt.Errorf("findings ids: %w", err)
		}
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.id, &r.body); err != nil {
				rows.Close()
				return fmt.Errorf("findings ids: %w", err)
			}
			hit = append(hit, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("findings ids: %w", err)
		}
	}
	for _, r := range hit {
		var fd findings.Finding
		if err := json.Unmarshal(r.body, &fd); err != nil {
			return fmt.Errorf("finding %s: stored body: %w", r.id, err)
		}
		id := findings.ID(fd.Tenant, fd.Kind, fd.Key)
		if id == r.id {
			continue
		}
		fd.ID = id
		body, err := json.Marshal(&fd)
		if err != nil {
			return fmt.Errorf("finding %s: %w", r.id, err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE OR REPLACE findings SET id = ?, body = ? WHERE id = ?`, id, body, r.id); err != nil {
			return fmt.Errorf("finding %s: new id: %w", r.id, err)
		}
	}
	return nil
}

// SealedSince reports whether a record of tenant at or after from holds a field sealed under
// kid, whatever its path (user, reviewer, a configured path): the eraser's minimum-retention
// check.
func (s *Store) SealedSince(ctx context.Context, tenant string, kid seal.KeyID, from time.Time) (bool, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM sealed_keys k JOIN records r ON r.log_index = k.log_index
WHERE k.key_id = ? AND r.tenant = ? AND r.time_ns >= ? LIMIT 1)`, kid[:], tenant, from.UnixNano()).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("sqlite: sealed since: %w", err)
	}
	return n > 0, nil
}
