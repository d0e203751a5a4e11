package clickhouse

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/lineage-audit/lineage/query/index"
)

// Limits on UserActions rows, the same as the SQLite driver's so both answer the same query with
// the same rows. The default keeps an unbounded API request from materializing a user's whole
// history; the maximum bounds the memory one query can take, since every row is decoded into a
// lineage.Record.
const (
	DefaultLimit = 10_000
	MaxLimit     = 100_000
)

// errNoRows is what clickhouse-go's QueryRow.Scan returns when the query matched nothing.
var errNoRows = sql.ErrNoRows

// Every read below compares log_index with the position in the same query (the package doc,
// point 1), and returns one row per log index even where a re-applied batch left copies (point 2):
// Lookup and Get keep the first row (LIMIT 1), FindID the first per tenant (LIMIT 1 BY tenant),
// and UserActions the first per log index (LIMIT 1 BY log_index, which ClickHouse applies after
// ORDER BY and before LIMIT). The copies are identical, so which one is kept does not matter.
// This is what FINAL would do, at about half the cost on 18.16 while the indexer's small parts
// are not merged yet (FINAL merges every part's rows in one stream); measured in
// docs/CLICKHOUSE.md.

// Lookup returns where the record (tenant, id) sits in the log, or index.ErrNotFound (wrapped).
func (s *Store) Lookup(ctx context.Context, tenant, id string) (index.Ref, error) {
	ref := index.Ref{Tenant: tenant, ID: id}
	err := s.conn.QueryRow(ctx, `SELECT log_index, record_hash FROM `+s.table("records_by_id")+`
WHERE id = ? AND tenant = ? AND log_index < `+s.positionSQL()+`
ORDER BY log_index LIMIT 1`, id, tenant).Scan(&ref.Index, &ref.RecordHash)
	if errors.Is(err, errNoRows) {
		return index.Ref{}, errNotFound("lookup", tenant, id)
	}
	if err != nil {
		return index.Ref{}, fmt.Errorf("clickhouse: lookup %q/%q: %w", tenant, id, err)
	}
	return ref, nil
}

// FindID returns every record with this id, in any tenant, in log order; ids are unique only
// within a tenant. It returns index.ErrNotFound (wrapped) when there is none, like the other
// lookups, so callers branch on one sentinel.
func (s *Store) FindID(ctx context.Context, id string) ([]index.Ref, error) {
	rows, err := s.conn.Query(ctx, `SELECT tenant, log_index, record_hash FROM `+s.table("records_by_id")+`
WHERE id = ? AND log_index < `+s.positionSQL()+`
ORDER BY log_index LIMIT 1 BY tenant`, id)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: find id %q: %w", id, err)
	}
	defer rows.Close()
	var refs []index.Ref
	for rows.Next() {
		ref := index.Ref{ID: id}
		if err := rows.Scan(&ref.Tenant, &ref.Index, &ref.RecordHash); err != nil {
			return nil, fmt.Errorf("clickhouse: find id %q: %w", id, err)
		}
		refs = append(refs, ref)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("clickhouse: find id %q: %w", id, err)
	}
	if len(refs) == 0 {
		return nil, fmt.Errorf("clickhouse: find id %q: %w", id, index.ErrNotFound)
	}
	return refs, nil
}

// Get returns the stored record (tenant, id), decoded from its canonical bytes, or
// index.ErrNotFound (wrapped).
//
// records is ordered for user queries, not by id, so Get finds the row's full records key
// (tenant, user_id, time_ns, log_index) in records_by_id and reads records by that key; 18.16
// uses the primary key for a whole-key tuple IN a subquery (not for a partial one).
func (s *Store) Get(ctx context.Context, tenant, id string) (index.Row, error) {
	rows, err := s.conn.Query(ctx, `SELECT log_index, record_hash, canonical FROM `+s.table("records")+`
WHERE (tenant, user_id, time_ns, log_index) IN (
	SELECT tenant, user_id, time_ns, log_index FROM `+s.table("records_by_id")+`
	WHERE id = ? AND tenant = ? AND log_index < `+s.positionSQL()+`
)
ORDER BY log_index LIMIT 1`, id, tenant)
	if err != nil {
		return index.Row{}, fmt.Errorf("clickhouse: get %q/%q: %w", tenant, id, err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return index.Row{}, fmt.Errorf("clickhouse: get %q/%q: %w", tenant, id, err)
		}
		return index.Row{}, errNotFound("get", tenant, id)
	}
	r, err := scanRow(rows)
	if err != nil {
		return index.Row{}, fmt.Errorf("clickhouse: get %q/%q: %w", tenant, id, err)
	}
	return r, nil
}

// UserActions returns the records q.UserID authorized in q.Tenant with q.From <= time < q.To,
// ordered by time then log index. A zero From or To leaves that side open; Limit 0 (or less) means
// DefaultLimit, and a Limit above MaxLimit is lowered to it. The filter is a prefix of records'
// sorting key, so the server reads only the user's granules.
func (s *Store) UserActions(ctx context.Context, q index.UserQuery) ([]index.Row, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	limit = min(limit, MaxLimit)
	if outsideTime(q.From, q.To) {
		return []index.Row{}, nil // no time an entry can have is in the window
	}
	query, args := s.userActionsQuery(q, limit)
	rows, err := s.readRows(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: user actions %q/%q: %w", q.Tenant, q.UserID, err)
	}
	return rows, nil
}

// userActionsQuery builds UserActions' SQL. A bound is left out of the SQL, rather than set to
// an extreme, when it is open or lies beyond what UnixNano represents, so no stored time can fall
// outside an "open" side. Both bounds compare UnixNano values, which keep every nanosecond, so the
// window is exact whatever time zone the caller wrote it in.
func (s *Store) userActionsQuery(q index.UserQuery, limit int) (string, []any) {
	query := `SELECT log_index, record_hash, canonical FROM ` + s.table("records") + `
WHERE tenant = ? AND user_id = ?`
	args := []any{q.Tenant, q.UserID}
	if !q.From.IsZero() && !q.From.Before(index.MinTime) {
		query += ` AND time_ns >= ?`
		args = append(args, q.From.UnixNano())
	}
	if !q.To.IsZero() && !q.To.After(index.MaxTime) {
		query += ` AND time_ns < ?`
		args = append(args, q.To.UnixNano())
	}
	query += ` AND log_index < ` + s.positionSQL() + `
ORDER BY time_ns, log_index LIMIT 1 BY log_index LIMIT ?`
	return query, append(args, limit)
}

// scanRow reads (log_index, record_hash, canonical) and decodes the record. The record is decoded
// from the canonical bytes the log committed to, not rebuilt from the indexed columns, so what a
// query returns is exactly what an inclusion proof covers.
func scanRow(rows driver.Rows) (index.Row, error) {
	var (
		r         index.Row
		canonical string
	)
	// canonical is scanned as a string and copied: clickhouse-go fills a []byte destination
	// with an unsafe view of a Go string, which must never be modified, and callers own the
	// Canonical they get.
	if err := rows.Scan(&r.Index, &r.RecordHash, &canonical); err != nil {
		return index.Row{}, err
	}
	r.Canonical = []byte(canonical)
	if err := json.Unmarshal(r.Canonical, &r.Record); err != nil {
		return index.Row{}, fmt.Errorf("decode record at index %d: %w", r.Index, err)
	}
	return r, nil
}
