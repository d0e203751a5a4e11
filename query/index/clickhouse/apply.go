package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/ext"

	"github.com/lineage-audit/lineage/query/index"
)

// insertRecordColumns is the column list of Apply's batch INSERT, explicit: 18.16 cannot infer the
// columns of a prepared batch. The materialized views copy the secondary tables' columns out of
// the same block.
const insertRecordColumns = `(
	log_index, tenant, id, time_ns, received, user_id, user_issuer, agent_id, role, parent_id,
	action_type, action_target, effect, policy_id, policy_version, delegation_token,
	ai_system_id, oversight_reviewer, source_verified, record_hash, canonical
)`

// Apply stores the batch's records and then moves the position to b.To. It returns
// index.ErrPosition (wrapped) unless b.From is the current position, and an error, changing
// nothing, if the batch is malformed or one of its (tenant, id) pairs is already stored.
//
// The rows and the position are two INSERTs, not one transaction; the package doc explains why a
// failure or crash between or inside them is harmless: the rows stay invisible until the position
// covers them, and re-applying the batch from the unchanged position replaces them.
func (s *Store) Apply(ctx context.Context, b index.Batch) error {
	if err := b.Check(); err != nil {
		return fmt.Errorf("clickhouse: apply [%d,%d): %w", b.From, b.To, err)
	}
	if err := s.acquireWrite(ctx); err != nil {
		return fmt.Errorf("clickhouse: apply [%d,%d): %w", b.From, b.To, err)
	}
	defer s.releaseWrite()
	if err := s.apply(ctx, b); err != nil {
		return fmt.Errorf("clickhouse: apply [%d,%d): %w", b.From, b.To, err)
	}
	s.maybeEnforceRetention(ctx)
	return nil
}

// apply runs Apply's steps; the caller holds the write slot.
func (s *Store) apply(ctx context.Context, b index.Batch) error {
	pos, err := s.readPosition(ctx)
	if err != nil {
		return err
	}
	if pos != b.From {
		return fmt.Errorf("position is %d: %w", pos, index.ErrPosition)
	}
	if len(b.Entries) > 0 {
		if err := s.checkDuplicates(ctx, b); err != nil {
			return err
		}
		if err := s.insertRecords(ctx, b.Entries); err != nil {
			return err
		}
	}
	if b.To == b.From {
		return nil // the position does not move; nothing to record
	}
	return s.writePosition(ctx, b.To)
}

// insertRecords sends the entries as one block. One block of up to a million rows is written
// by the server as one part per partition, so a batch normally lands in one part of each table.
func (s *Store) insertRecords(ctx context.Context, entries []index.Entry) error {
	batch, err := s.conn.PrepareBatch(ctx, `INSERT INTO `+s.table("records")+` `+insertRecordColumns)
	if err != nil {
		return fmt.Errorf("prepare insert: %w", err)
	}
	defer batch.Close() // releases the connection if Send is not reached
	for i := range entries {
		e := &entries[i]
		if err := batch.Append(insertArgs(e)...); err != nil {
			return fmt.Errorf("insert index %d (%q/%q): %w", e.Index, e.Record.Tenant, e.Record.ID, err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert %d records: %w", len(entries), err)
	}
	return nil
}

// writePosition records that the log is applied up to next. It is a new row, not an update:
// the position is the maximum over all rows, so it only ever grows.
func (s *Store) writePosition(ctx context.Context, next uint64) error {
	batch, err := s.conn.PrepareBatch(ctx, `INSERT INTO `+s.table("position")+` (singleton, next_index, applied_ns)`)
	if err != nil {
		return fmt.Errorf("prepare position: %w", err)
	}
	defer batch.Close()
	if err := batch.Append(uint8(0), next, time.Now().UnixNano()); err != nil {
		return fmt.Errorf("position %d: %w", next, err)
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("write position %d: %w", next, err)
	}
	return nil
}

// Position returns the number of log entries applied: the From of the next batch.
func (s *Store) Position(ctx context.Context) (uint64, error) {
	pos, err := s.readPosition(ctx)
	if err != nil {
		return 0, fmt.Errorf("clickhouse: %w", err)
	}
	return pos, nil
}

// positionSQL is the position as a scalar subquery; every read compares log_index with it, so it
// sees exactly the batches whose position was written (package doc, point 1). max() of an empty
// table is 0, the position of a new index. The always-true singleton = 0 is the table's key: it
// lets whole read queries run under force_primary_key, which the tests use to prove that every
// table a query touches is read through its primary key.
func (s *Store) positionSQL() string {
	return `(SELECT max(next_index) FROM ` + s.table("position") + ` WHERE singleton = 0)`
}

// readPosition reads the position.
func (s *Store) readPosition(ctx context.Context) (uint64, error) {
	var pos uint64
	if err := s.conn.QueryRow(ctx, `SELECT `+s.positionSQL()).Scan(&pos); err != nil {
		return 0, fmt.Errorf("read position: %w", err)
	}
	return pos, nil
}

// checkDuplicates fails if a (tenant, id) of the batch appears twice in it or is already stored
// below the position. The log holds each (tenant, id) once (ingest deduplicates before
// sequencing), so a second copy is a bug upstream or a corrupt index; SQLite's UNIQUE constraint
// refuses it, and so must this driver, or the two would answer differently.
//
// The batch's keys travel with the query as an external table (native-protocol "external data",
// which 18.16 has), and the lookup is (id, tenant) IN that table, which the server answers from
// records_by_id's primary key: a granule per key at most, never the whole table. A literal IN
// list would be parsed as SQL and stops fitting in max_query_size (256 KiB) at a few thousand
// ids; has() and a bound slice do not use the key on 18.16. Copies of the batch's own rows left by
// a crashed Apply sit at or above the position and do not count.
func (s *Store) checkDuplicates(ctx context.Context, b index.Batch) error {
	keys, err := ext.NewTable("batch_keys", ext.Column("id", "String"), ext.Column("tenant", "String"))
	if err != nil {
		return fmt.Errorf("look up ids: %w", err)
	}
	seen := make(map[[2]string]uint64, len(b.Entries))
	for i := range b.Entries {
		e := &b.Entries[i]
		k := [2]string{e.Record.Tenant, e.Record.ID}
		if prev, ok := seen[k]; ok {
			return fmt.Errorf("insert index %d: record %q/%q is already stored at index %d, earlier in this batch",
				e.Index, k[0], k[1], prev)
		}
		seen[k] = e.Index
		if err := keys.Append(e.Record.ID, e.Record.Tenant); err != nil {
			return fmt.Errorf("look up ids: %w", err)
		}
	}
	var (
		tenant, id string
		existing   uint64
	)
	err = s.conn.QueryRow(clickhouse.Context(ctx, clickhouse.WithExternalTable(keys)),
		`SELECT tenant, id, log_index FROM `+s.table("records_by_id")+`
WHERE (id, tenant) IN batch_keys AND log_index < ? ORDER BY log_index LIMIT 1`, b.From).
		Scan(&tenant, &id, &existing)
	switch {
	case errors.Is(err, errNoRows):
		return nil
	case err != nil:
		return fmt.Errorf("look up ids: %w", err)
	}
	return fmt.Errorf("insert index %d: record %q/%q is already stored at index %d",
		seen[[2]string{tenant, id}], tenant, id, existing)
}

// DateTime's range: received is stored as a DateTime (seconds, unsigned 32 bits), the type the
// partition key and TTL need on every server version.
var (
	minReceived = time.Unix(0, 0)
	maxReceived = time.Unix(math.MaxUint32, 0)
)

// received is the entry's receive time as stored: ReceivedAt, or the decision time when the
// entry has none, clamped to DateTime's range. It only places the row in a partition and starts
// its retention clock, so clamping an impossible time loses nothing a query compares; it must
// only be a function of the entry, so that re-applying a batch produces the same row.
func received(e *index.Entry) time.Time {
	t := e.ReceivedAt
	if t.IsZero() {
		t = e.Time
	}
	switch {
	case t.Before(minReceived):
		return minReceived
	case t.After(maxReceived):
		return maxReceived
	}
	return t
}

// insertArgs returns insertRecordColumns' values for e, in column order.
func insertArgs(e *index.Entry) []any {
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
	var verified uint8
	if e.SourceVerified {
		verified = 1
	}
	return []any{
		e.Index, r.Tenant, r.ID, e.Time.UnixNano(), received(e), r.User.ID, r.User.Issuer,
		r.Agent.ID, r.Role, r.ParentID, r.Action.Type, r.Action.Target, r.Decision.Effect,
		r.Decision.Policy.ID, r.Decision.Policy.Version, delegationToken, aiSystem, reviewer,
		verified, e.RecordHash[:], e.Canonical,
	}
}
