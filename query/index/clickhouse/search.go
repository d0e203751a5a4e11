package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/ext"

	"github.com/lineage-audit/lineage/query/index"
)

// The lineage API's queries (index.Searcher) and ingest's batched id lookup. Like every read in
// this package they keep the package doc's two rules: rows at or above the position are
// invisible (log_index < positionSQL in the same query), and each log index counts once even
// where a re-applied batch left copies (LIMIT 1 BY log_index for rows, FINAL for the aggregate).

// Records implements index.Searcher.
//
// A user query reads records directly: (tenant, user_id) is a prefix of its sorting key, so the
// window, the cursor and the order come from the key and the other filters are applied to the
// user's rows. The other subjects read records_by_subject (schemaV2), whose key is (tenant, kind,
// subject, time_ns, log_index) and which carries every filtered column but the action target
// (a query filtering on the target reads records, see recordsQuery), so the whole query —
// filters, cursor, one row per log index, the limit — runs there on narrow rows, and only the
// page's rows are then read from records, through records' full sorting key (a whole-key tuple
// IN a subquery, which 18.16 answers from the primary key).
func (s *Store) Records(ctx context.Context, q index.Query) ([]index.Row, error) {
	if q.Subjects() != 1 {
		return nil, errors.New("clickhouse: records: set exactly one of user, agent, policy or parent")
	}
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	limit = min(limit, MaxLimit)
	if outsideTime(q.From, q.To) {
		return []index.Row{}, nil // no time an entry can have is in the window
	}
	query, args := s.recordsQuery(q, limit)
	rows, err := s.readRows(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: records %q: %w", q.Tenant, err)
	}
	return rows, nil
}

// recordsQuery builds Records' SQL for a query with exactly one subject.
//
// records_by_subject has no action_target column (schemaV2 in schema.go), so a query of another
// subject that filters on the target reads records directly too, like a user query: the
// subject's column, the target and the other filters are tested on the tenant's rows (the
// tenant is the first column of records' sorting key, the subject is not in it), and
// ClickHouse's move to PREWHERE of conditions on narrow columns spares reading canonical for
// most rows that do not match. That costs a scan of the tenant's narrow columns instead of one
// key range; adding action_target to records_by_subject in a schema migration would restore
// the key range.
func (s *Store) recordsQuery(q index.Query, limit int) (string, []any) {
	filters, fargs := s.searchFilters(q)
	if q.UserID != "" || q.ActionTarget != "" {
		col, subject := "user_id", q.UserID
		switch {
		case q.AgentID != "":
			col, subject = "agent_id", q.AgentID
		case q.PolicyID != "":
			col, subject = "policy_id", q.PolicyID
		case q.ParentID != "":
			col, subject = "parent_id", q.ParentID
		}
		target, targs := targetFilter(q)
		return `SELECT log_index, record_hash, canonical FROM ` + s.table("records") + `
WHERE tenant = ? AND ` + col + ` = ?` + target + filters + `
ORDER BY time_ns, log_index LIMIT 1 BY log_index LIMIT ?`,
			append(append(append([]any{q.Tenant, subject}, targs...), fargs...), limit)
	}
	kind, subject := kindAgent, q.AgentID
	switch {
	case q.PolicyID != "":
		kind, subject = kindPolicy, q.PolicyID
	case q.ParentID != "":
		kind, subject = kindParent, q.ParentID
	}
	// The outer LIMIT 1 BY skips copies in records; the page's size is the inner LIMIT's.
	return `SELECT log_index, record_hash, canonical FROM ` + s.table("records") + `
WHERE (tenant, user_id, time_ns, log_index) IN (
	SELECT tenant, user_id, time_ns, log_index FROM ` + s.table("records_by_subject") + `
	WHERE tenant = ? AND kind = ` + strconv.Itoa(kind) + ` AND subject = ?` + filters + `
	ORDER BY time_ns, log_index LIMIT 1 BY log_index LIMIT ?
)
ORDER BY time_ns, log_index LIMIT 1 BY log_index`,
		append(append([]any{q.Tenant, subject}, fargs...), limit)
}

// searchFilters returns Records' conditions after the subject's, which records and
// records_by_subject both have columns for, and their arguments. Effects and ActionTypes are
// bound as arrays and tested with has(): ClickHouse 18.16 cannot bind a slice to "IN ?", and
// neither column is in a sorting key, so an IN list would not read less. The window's bounds
// are left out when open or beyond UnixNano's range, as in UserActions.
func (s *Store) searchFilters(q index.Query) (string, []any) {
	var (
		b    strings.Builder
		args []any
	)
	if !q.From.IsZero() && !q.From.Before(index.MinTime) {
		b.WriteString(` AND time_ns >= ?`)
		args = append(args, q.From.UnixNano())
	}
	if !q.To.IsZero() && !q.To.After(index.MaxTime) {
		b.WriteString(` AND time_ns < ?`)
		args = append(args, q.To.UnixNano())
	}
	if q.Agent != "" {
		b.WriteString(` AND agent_id = ?`)
		args = append(args, q.Agent)
	}
	if len(q.Effects) > 0 {
		b.WriteString(` AND has(?, effect)`)
		args = append(args, q.Effects)
	}
	if len(q.ActionTypes) > 0 {
		b.WriteString(` AND has(?, action_type)`)
		args = append(args, q.ActionTypes)
	}
	if q.After != nil {
		// Strictly after the cursor in (time, log index) order; ClickHouse turns the OR into
		// key ranges, so a later page does not re-read the earlier ones.
		b.WriteString(` AND (time_ns > ? OR (time_ns = ? AND log_index > ?))`)
		args = append(args, q.After.TimeNS, q.After.TimeNS, q.After.Index)
	}
	b.WriteString(` AND log_index < ` + s.positionSQL())
	return b.String(), args
}

// targetFilter returns q's action-target condition on records (see index.Query.ActionTarget)
// and its argument: equality, or startsWith(), which compares bytes and has no pattern
// characters to escape. A lone "*" is no condition.
func targetFilter(q index.Query) (string, []any) {
	if q.ActionTarget == "" {
		return "", nil
	}
	target, prefix := q.TargetPrefix()
	switch {
	case !prefix:
		return ` AND action_target = ?`, []any{target}
	case target == "":
		return "", nil
	default:
		return ` AND startsWith(action_target, ?)`, []any{target}
	}
}

// PolicyStats implements index.Searcher, from records_by_subject's policy rows alone.
//
// The aggregate reads FINAL, which merges the copies a re-applied batch left (same sorting key)
// while it reads, in sorted streams, so memory stays bounded however many decisions the policy
// has; LIMIT 1 BY log_index or uniqExact would hold every log index of the window in a hash set.
func (s *Store) PolicyStats(ctx context.Context, tenant, policyID string, from, to time.Time) (index.PolicyStats, error) {
	st := index.PolicyStats{ByEffect: map[string]int{}, ByVersion: map[string]int{}}
	if outsideTime(from, to) {
		return st, nil
	}
	filters, args := s.searchFilters(index.Query{From: from, To: to})
	rows, err := s.conn.Query(ctx, `SELECT effect, policy_version, count() FROM `+s.table("records_by_subject")+` FINAL
WHERE tenant = ? AND kind = `+strconv.Itoa(kindPolicy)+` AND subject = ?`+filters+`
GROUP BY effect, policy_version`, append([]any{tenant, policyID}, args...)...)
	if err != nil {
		return index.PolicyStats{}, fmt.Errorf("clickhouse: policy stats %q/%q: %w", tenant, policyID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			effect, version string
			n               uint64
		)
		if err := rows.Scan(&effect, &version, &n); err != nil {
			return index.PolicyStats{}, fmt.Errorf("clickhouse: policy stats %q/%q: %w", tenant, policyID, err)
		}
		st.Total += int(n)
		st.ByEffect[effect] += int(n)
		st.ByVersion[version] += int(n)
	}
	if err := rows.Err(); err != nil {
		return index.PolicyStats{}, fmt.Errorf("clickhouse: policy stats %q/%q: %w", tenant, policyID, err)
	}
	return st, nil
}

// LookupMany implements index.BatchLookup: one query for all keys, where Lookup costs a query of
// about 2 ms each. The keys travel as an external table, like Apply's duplicate check, and
// "(id, tenant) IN lookup_keys" is answered from records_by_id's primary key, a granule per key
// at most.
func (s *Store) LookupMany(ctx context.Context, keys []index.Key) (map[index.Key]index.Ref, error) {
	out := make(map[index.Key]index.Ref, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	tbl, err := ext.NewTable("lookup_keys", ext.Column("id", "String"), ext.Column("tenant", "String"))
	if err != nil {
		return nil, fmt.Errorf("clickhouse: lookup %d ids: %w", len(keys), err)
	}
	for _, k := range keys {
		if err := tbl.Append(k.ID, k.Tenant); err != nil {
			return nil, fmt.Errorf("clickhouse: lookup %d ids: %w", len(keys), err)
		}
	}
	rows, err := s.conn.Query(clickhouse.Context(ctx, clickhouse.WithExternalTable(tbl)),
		`SELECT tenant, id, log_index, record_hash FROM `+s.table("records_by_id")+`
WHERE (id, tenant) IN lookup_keys AND log_index < `+s.positionSQL()+`
ORDER BY log_index LIMIT 1 BY tenant, id`)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: lookup %d ids: %w", len(keys), err)
	}
	defer rows.Close()
	for rows.Next() {
		var ref index.Ref
		if err := rows.Scan(&ref.Tenant, &ref.ID, &ref.Index, &ref.RecordHash); err != nil {
			return nil, fmt.Errorf("clickhouse: lookup %d ids: %w", len(keys), err)
		}
		out[index.Key{Tenant: ref.Tenant, ID: ref.ID}] = ref
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("clickhouse: lookup %d ids: %w", len(keys), err)
	}
	return out, nil
}

// readRows runs a query returning (log_index, record_hash, canonical) and decodes every row; an
// empty answer is an empty slice, not nil, as the SQLite driver returns.
func (s *Store) readRows(ctx context.Context, query string, args ...any) ([]index.Row, error) {
	rows, err := s.conn.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []index.Row{}
	for rows.Next() {
		r, err := scanRow(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// outsideTime reports whether the window [from, to) lies wholly beyond the times an entry can
// have (UnixNano's range, which Batch.Check enforces): then the answer is empty, and the bound
// must not reach SQL, where UnixNano of it would be undefined.
func outsideTime(from, to time.Time) bool {
	return (!from.IsZero() && from.After(index.MaxTime)) || (!to.IsZero() && to.Before(index.MinTime))
}
