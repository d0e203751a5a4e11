package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	sqlite3 "github.com/mattn/go-sqlite3"

	"github.com/lineage-audit/lineage/query/index"
)

// insertRecord stores one entry. A plain INSERT, not INSERT OR IGNORE / REPLACE: the log holds each
// (tenant, id) once (ingest deduplicates before sequencing), so a conflict here is a bug upstream
// or a corrupt index, and hiding it would make the projection disagree with the log. There is no
// benign conflict to tolerate: re-applying the same log index cannot get this far, because Apply
// rejects every batch that does not start at the position.
const insertRecord = `INSERT INTO records (
	log_index, tenant, id, time_ns, user_id, user_issuer, agent_id, role, parent_id,
	action_type, action_target, effect, policy_id, policy_version, delegation_token,
	ai_system_id, oversight_reviewer, record_hash, canonical, received_ns, source_verified
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

// insertSealedKey links a subject key id to a row (several fields may share a key).
const insertSealedKey = `INSERT INTO sealed_keys (key_id, log_index) VALUES (?, ?) ON CONFLICT DO NOTHING`

// Apply stores the batch's records and moves the position to b.To in one transaction, so a crash
// leaves either all of the batch or none of it. It returns index.ErrPosition (wrapped) unless
// b.From is the current position, and an error, changing nothing, if the batch is malformed or
// one of its (tenant, id) pairs is already stored.
func (s *Store) Apply(ctx context.Context, b index.Batch) error {
	if err := b.Check(); err != nil {
		return fmt.Errorf("sqlite: apply [%d,%d): %w", b.From, b.To, err)
	}
	if err := s.acquireWrite(ctx); err != nil {
		return fmt.Errorf("sqlite: apply [%d,%d): %w", b.From, b.To, err)
	}
	defer s.releaseWrite()
	if err := s.apply(ctx, b); err != nil {
		return fmt.Errorf("sqlite: apply [%d,%d): %w", b.From, b.To, err)
	}
	return nil
}

// apply runs Apply's transaction; the caller holds the write slot.
func (s *Store) apply(ctx context.Context, b index.Batch) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback() // a no-op after Commit

	pos, err := readPosition(ctx, tx)
	if err != nil {
		return err
	}
	if pos != b.From {
		return fmt.Errorf("position is %d: %w", pos, index.ErrPosition)
	}

	// The inserts run under a context without cancellation: go-sqlite3 runs each cancellable
	// statement on a goroutine of its own (to be able to interrupt it), one goroutine per row
	// here. An insert takes microseconds, and the transaction still ends with ctx.
	rowCtx := context.WithoutCancel(ctx)
	stmt, err := tx.PrepareContext(rowCtx, insertRecord)
	if err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	defer stmt.Close()
	args := make([]any, 0, insertArgCount)
	var keyStmt *sql.Stmt
	for i := range b.Entries {
		e := &b.Entries[i]
		if _, err := stmt.ExecContext(rowCtx, appendInsertArgs(args[:0], e)...); err != nil {
			return insertError(ctx, tx, e, err)
		}
		if len(e.Sealed) == 0 {
			continue
		}
		if keyStmt == nil {
			if keyStmt, err = tx.PrepareContext(rowCtx, insertSealedKey); err != nil {
				return fmt.Errorf("prepare: %w", err)
			}
			defer keyStmt.Close()
		}
		for _, f := range e.Sealed {
			if _, err := keyStmt.ExecContext(rowCtx, f.KeyID[:], int64(e.Index)); err != nil {
				return fmt.Errorf("insert sealed key of index %d: %w", e.Index, err)
			}
		}
	}

	if _, err := tx.ExecContext(ctx,
		`UPDATE position SET next_index = ? WHERE singleton = 0`, int64(b.To)); err != nil {
		return fmt.Errorf("update position: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// Position returns the number of log entries applied: the From of the next batch.
func (s *Store) Position(ctx context.Context) (uint64, error) {
	pos, err := readPosition(ctx, s.db)
	if err != nil {
		return 0, fmt.Errorf("sqlite: %w", err)
	}
	return pos, nil
}

// queryRower is what readPosition needs from *sql.DB and *sql.Tx.
type queryRower interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// readPosition reads the single position row.
func readPosition(ctx context.Context, q queryRower) (uint64, error) {
	var pos int64
	if err := q.QueryRowContext(ctx,
		`SELECT next_index FROM position WHERE singleton = 0`).Scan(&pos); err != nil {
		return 0, fmt.Errorf("read position: %w", err)
	}
	return uint64(pos), nil
}

// insertArgCount is the number of insertRecord's arguments.
const insertArgCount = 21

// appendInsertArgs appends insertRecord's arguments for e to args, in column order.
func appendInsertArgs(args []any, e *index.Entry) []any {
	r := e.Record
	var delegationToken, aiSystem, reviewer string
	if r.Delegation != nil {
		delegationToken = r.Delegation.TokenID
	}
	if r.AISystem != nil {
		aiSystem = r.AISystem.ID
	}
	if r.HumanOversight != nil {
		reviewer = r.HumanOversight.Reviewer.ID
	}
	// The envelope's inputs (migration 3), NULL together when the received time cannot be
	// stored as Unix nanoseconds (or is unset): the API then reads that entry from the log.
	// A sealed (v2) entry cannot be rebuilt from its row (the row holds the clear record, the
	// entry the sealed one): NULL, so the API reads it from the log.
	var received, verified any
	if len(e.Sealed) == 0 && !e.ReceivedAt.Before(index.MinTime) && !e.ReceivedAt.After(index.MaxTime) {
		received, verified = e.ReceivedAt.UnixNano(), 0
		if e.SourceVerified {
			verified = 1
		}
	}
	return append(args,
		int64(e.Index), r.Tenant, r.ID, e.Time.UnixNano(),
		r.User.ID, r.User.Issuer, r.Agent.ID, nullable(r.Role), nullable(r.ParentID),
		r.Action.Type, r.Action.Target, r.Decision.Effect,
		r.Decision.Policy.ID, r.Decision.Policy.Version, nullable(delegationToken),
		nullable(aiSystem), nullable(reviewer), e.RecordHash[:], e.Canonical,
		received, verified,
	)
}

// nullable stores an absent optional field as NULL rather than "", so "has a parent" is
// "parent_id IS NOT NULL" and the indexes do not collect empty strings.
func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// insertError explains a failed insert. For a uniqueness conflict it names the entry already
// stored, which is what someone debugging a duplicate in the log needs to see.
func insertError(ctx context.Context, tx *sql.Tx, e *index.Entry, err error) error {
	var serr sqlite3.Error
	if !errors.As(err, &serr) ||
		(serr.ExtendedCode != sqlite3.ErrConstraintUnique &&
			serr.ExtendedCode != sqlite3.ErrConstraintPrimaryKey) {
		return fmt.Errorf("insert index %d (%q/%q): %w", e.Index, e.Record.Tenant, e.Record.ID, err)
	}
	var existing int64
	qerr := tx.QueryRowContext(ctx, `SELECT log_index FROM records WHERE tenant = ? AND id = ?`,
		e.Record.Tenant, e.Record.ID).Scan(&existing)
	switch {
	case qerr == nil:
		return fmt.Errorf("insert index %d: record %q/%q is already stored at index %d: %w",
			e.Index, e.Record.Tenant, e.Record.ID, existing, err)
	case isNoRows(qerr):
		return fmt.Errorf("insert index %d (%q/%q): log index already stored: %w",
			e.Index, e.Record.Tenant, e.Record.ID, err)
	default:
		return fmt.Errorf("insert index %d (%q/%q): %w", e.Index, e.Record.Tenant, e.Record.ID, err)
	}
}
