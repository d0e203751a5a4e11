package sqlite

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lineage-audit/lineage/query/index"
)

// Records implements index.Searcher. Each subject has an index led by (tenant, subject,
// time_ns), and log_index is the rowid that ends every index entry, so the (time, index) order
// and the cursor predicate are answered from the index without a sort.
func (s *Store) Records(ctx context.Context, q index.Query) ([]index.Row, error) {
	if q.Subjects() != 1 {
		return nil, errors.New("sqlite: records: set exactly one of user, agent, policy or parent")
	}
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	limit = min(limit, MaxLimit)
	if outsideTime(q.From, q.To) {
		return []index.Row{}, nil
	}
	var b strings.Builder
	args := []any{q.Tenant}
	b.WriteString(`SELECT ` + rowColumns + ` FROM records WHERE tenant = ?`)
	switch {
	case q.UserID != "":
		b.WriteString(` AND user_id = ?`)
		args = append(args, q.UserID)
	case q.AgentID != "":
		b.WriteString(` AND agent_id = ?`)
		args = append(args, q.AgentID)
	case q.PolicyID != "":
		b.WriteString(` AND policy_id = ?`)
		args = append(args, q.PolicyID)
	default:
		b.WriteString(` AND parent_id = ?`)
		args = append(args, q.ParentID)
	}
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
	args = in(&b, "effect", q.Effects, args)
	args = in(&b, "action_type", q.ActionTypes, args)
	args = targetFilter(&b, q, args)
	if q.After != nil {
		b.WriteString(` AND (time_ns > ? OR (time_ns = ? AND log_index > ?))`)
		args = append(args, q.After.TimeNS, q.After.TimeNS, int64(q.After.Index))
	}
	b.WriteString(` ORDER BY time_ns, log_index LIMIT ?`)
	args = append(args, limit)
	rows, err := s.db.QueryContext(ctx, b.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: records %q: %w", q.Tenant, err)
	}
	defer rows.Close()
	out, err := scanRows(rows, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: records %q: %w", q.Tenant, err)
	}
	return out, nil
}

// in appends "AND col IN (?, …)" for a non-empty list.
func in(b *strings.Builder, col string, vals []string, args []any) []any {
	if len(vals) == 0 {
		return args
	}
	b.WriteString(` AND ` + col + ` IN (`)
	for i, v := range vals {
		if i > 0 {
			b.WriteString(`, `)
		}
		b.WriteString(`?`)
		args = append(args, v)
	}
	b.WriteString(`)`)
	return args
}

// targetFilter appends q's action-target condition (see index.Query.ActionTarget), if any.
//
// A prefix is matched with LIKE, its %, _ and \ escaped with ESCAPE '\' so that they match
// themselves, and then compared byte for byte: SQLite's LIKE folds ASCII case (unless the
// connection sets case_sensitive_like, which neither Open's DSN nor setupConn in sqlite.go
// does), so LIKE alone would let "customers/*" match "Customers/9". The second test compares
// the first len(prefix) bytes as BLOBs, which counts bytes, not characters. No index has
// action_target, so both are evaluated on the rows the subject's index selects.
func targetFilter(b *strings.Builder, q index.Query, args []any) []any {
	if q.ActionTarget == "" {
		return args
	}
	target, prefix := q.TargetPrefix()
	switch {
	case !prefix:
		b.WriteString(` AND action_target = ?`)
		return append(args, target)
	case target == "":
		return args // a lone "*": every target
	default:
		b.WriteString(` AND action_target LIKE ? ESCAPE '\' AND substr(CAST(action_target AS BLOB), 1, ?) = CAST(? AS BLOB)`)
		return append(args, likeEscaper.Replace(target)+"%", len(target), target)
	}
}

// likeEscaper escapes LIKE's wildcards and its escape character for ESCAPE '\'.
var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// PolicyStats implements index.Searcher; records_policy serves it.
func (s *Store) PolicyStats(ctx context.Context, tenant, policyID string, from, to time.Time) (index.PolicyStats, error) {
	st := index.PolicyStats{ByEffect: map[string]int{}, ByVersion: map[string]int{}}
	if outsideTime(from, to) {
		return st, nil
	}
	q := `SELECT effect, policy_version, COUNT(*) FROM records WHERE tenant = ? AND policy_id = ?`
	args := []any{tenant, policyID}
	if !from.IsZero() && !from.Before(index.MinTime) {
		q += ` AND time_ns >= ?`
		args = append(args, from.UnixNano())
	}
	if !to.IsZero() && !to.After(index.MaxTime) {
		q += ` AND time_ns < ?`
		args = append(args, to.UnixNano())
	}
	q += ` GROUP BY effect, policy_version`
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return index.PolicyStats{}, fmt.Errorf("sqlite: policy stats %q/%q: %w", tenant, policyID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var effect, version string
		var n int
		if err := rows.Scan(&effect, &version, &n); err != nil {
			return index.PolicyStats{}, fmt.Errorf("sqlite: policy stats %q/%q: %w", tenant, policyID, err)
		}
		st.Total += n
		st.ByEffect[effect] += n
		st.ByVersion[version] += n
	}
	if err := rows.Err(); err != nil {
		return index.PolicyStats{}, fmt.Errorf("sqlite: policy stats %q/%q: %w", tenant, policyID, err)
	}
	return st, nil
}

// outsideTime reports whether the window [from, to) lies wholly beyond the times an entry can
// have (UnixNano's range, which Batch.Check enforces): then the answer is empty, and the bound
// must not reach SQL, where UnixNano of it would be undefined.
func outsideTime(from, to time.Time) bool {
	return (!from.IsZero() && from.After(index.MaxTime)) || (!to.IsZero() && to.Before(index.MinTime))
}
