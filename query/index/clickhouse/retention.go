package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Retention removes records from the index once they are older than Options.Retention, counted
// from when Lineage received them; the log keeps them, so they stay provable and exportable. It is
// always coarse and errs on the side of keeping: whole monthly partitions (or, with TTL, whole
// parts) go once every row in them is past the window, so a record stays up to about a month
// longer than the window, never shorter.
//
// Servers with TTL (features.ttl) expire rows themselves: Open sets the tables' TTL to the
// window, with ttl_only_drop_parts. On older servers the driver drops expired partitions itself,
// at Open and then at most once per retentionInterval from Apply.

// retentionInterval is how often Apply enforces retention on servers without TTL. Partitions are
// months, so checking hourly costs one small system.parts query an hour and expires a month at
// most an hour late.
const retentionInterval = time.Hour

// checkRetention validates Options.Retention: the EU AI Act needs logs kept at least six months,
// so a shorter window must be asked for explicitly.
func checkRetention(d time.Duration, force bool) error {
	switch {
	case d < 0:
		return fmt.Errorf("retention %v is negative (0 keeps records forever)", d)
	case d == 0:
		return nil
	case d < time.Second:
		return fmt.Errorf("retention %v is shorter than a second", d)
	case d < MinRetention && !force:
		return fmt.Errorf("retention %v is shorter than %v (six months, the EU AI Act minimum for "+
			"automatically generated logs); set ForceShortRetention to allow it", d, MinRetention)
	}
	return nil
}

// ttlExpr is the TTL clause for a window of d, whole seconds.
func ttlExpr(d time.Duration) string {
	return "received + toIntervalSecond(" + strconv.FormatInt(int64(d/time.Second), 10) + ")"
}

// reconcileTTL makes the record tables' TTL match the retention window on servers that support
// TTL. Changing a TTL makes the server recompute it for every part, so it is done only when the
// window differs from the one ttl_state says was last applied (including a table created on an
// older server and opened after an upgrade, which has no ttl_state row).
func (s *Store) reconcileTTL(ctx context.Context) error {
	if !s.feat.ttl {
		return nil
	}
	var (
		applied int64
		n       uint64
	)
	if err := s.conn.QueryRow(ctx, `SELECT argMax(ttl_seconds, applied_ns), count() FROM `+
		s.table("ttl_state")).Scan(&applied, &n); err != nil {
		return fmt.Errorf("retention: read TTL state: %w", err)
	}
	want := int64(s.retention / time.Second)
	if applied == want && (n > 0 || want == 0) {
		return nil
	}
	for _, t := range recordTables {
		stmt := `ALTER TABLE ` + s.table(t) + ` MODIFY TTL ` + ttlExpr(s.retention)
		if want == 0 {
			stmt = `ALTER TABLE ` + s.table(t) + ` REMOVE TTL`
		}
		if err := s.conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("retention: set TTL of %s: %w", t, err)
		}
	}
	batch, err := s.conn.PrepareBatch(ctx, `INSERT INTO `+s.table("ttl_state")+` (ttl_seconds, applied_ns)`)
	if err != nil {
		return fmt.Errorf("retention: record TTL: %w", err)
	}
	defer batch.Close()
	if err := batch.Append(want, time.Now().UnixNano()); err != nil {
		return fmt.Errorf("retention: record TTL: %w", err)
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("retention: record TTL: %w", err)
	}
	s.log.Info("clickhouse index: retention TTL set", "database", s.db, "retention", s.retention)
	return nil
}

// EnforceRetention drops the monthly partitions of the record tables whose newest row was
// received before the retention window, on servers without TTL; with TTL, or with no window, it
// does nothing. Open and Apply call it; it is exported for operators and schedulers that want to
// run it at a time of their choosing.
//
// A ClickHouse server refuses to drop a partition larger than max_partition_size_to_drop (50 GB
// by default); set it to 0 in the server's configuration for indexes with larger months, or the
// error repeats at every attempt.
func (s *Store) EnforceRetention(ctx context.Context) error {
	if s.retention == 0 || s.feat.ttl {
		return nil
	}
	s.retentionMu.Lock()
	defer s.retentionMu.Unlock()
	return s.dropExpired(ctx)
}

// maybeEnforceRetention runs EnforceRetention if retentionInterval has passed since the last run.
// It is called by Apply after the batch is applied, so its errors are not Apply's: they are
// logged, and the next interval tries again.
func (s *Store) maybeEnforceRetention(ctx context.Context) {
	if s.retention == 0 || s.feat.ttl {
		return
	}
	s.retentionMu.Lock()
	defer s.retentionMu.Unlock()
	if time.Since(s.lastRetention) < retentionInterval {
		return
	}
	if err := s.dropExpired(ctx); err != nil && !errors.Is(err, context.Canceled) {
		s.log.Error("clickhouse index: enforcing retention", "database", s.db, "err", err)
	}
}

// dropExpired drops expired partitions; the caller holds retentionMu. system.parts knows each
// part's newest received time (the partition key's min/max index), so "every row is past the
// window" is exact, whatever the server's time zone.
func (s *Store) dropExpired(ctx context.Context) error {
	s.lastRetention = time.Now()
	cutoff := s.lastRetention.Add(-s.retention)
	rows, err := s.conn.Query(ctx, `SELECT table, partition_id, max(max_time) AS newest
FROM system.parts
WHERE database = ? AND active AND has(?, table)
GROUP BY table, partition_id
HAVING newest < toDateTime(?)
ORDER BY table, partition_id`, s.db, recordTables, cutoff.Unix())
	if err != nil {
		return fmt.Errorf("retention: list partitions: %w", err)
	}
	type partition struct {
		table, id string
		newest    time.Time
	}
	var expired []partition
	for rows.Next() {
		var p partition
		if err := rows.Scan(&p.table, &p.id, &p.newest); err != nil {
			rows.Close()
			return fmt.Errorf("retention: list partitions: %w", err)
		}
		expired = append(expired, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("retention: list partitions: %w", err)
	}
	for _, p := range expired {
		if err := s.conn.Exec(ctx, `ALTER TABLE `+s.table(p.table)+` DROP PARTITION ID ?`, p.id); err != nil {
			return fmt.Errorf("retention: drop partition %s of %s: %w", p.id, p.table, err)
		}
		s.log.Info("clickhouse index: retention dropped a partition", "database", s.db,
			"table", p.table, "partition", p.id, "newest", p.newest, "retention", s.retention)
	}
	return nil
}
