package clickhouse

import (
	"context"
	"fmt"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// resetOrder is every table and view the driver has ever created, in the order Reset drops them.
// The order is what makes an interrupted Reset safe (see Reset); names of older schema versions
// stay listed so a Reset also clears an index left by an older binary.
var resetOrder = []string{
	"schema_migrations", // first: the next Open re-runs every (idempotent) migration
	"position",          // second: from here on every row left over is invisible
	"records_by_id_mv", "records_by_agent_mv", "records_by_subject_mv",
	"records_by_id", "records_by_agent", "records_by_subject", "records",
	"ttl_state",
	// The findings projection (findings.go), rebuilt from the log like the index; the same
	// order rule: its version table, its position, then its rows.
	"findings_schema_migrations", "findings_position",
	"findings_rows", "findings_state_rows", "findings_gen", "findings_published",
}

// Reset empties the index in the database o names, so that the next Open creates it afresh at
// position 0 and the indexer rebuilds it from the log (lineagectl rebuild-index does exactly
// that, with lineaged stopped). It drops the driver's tables one by one, not the database: the
// database may hold other tables, and a user granted only its own database may not be allowed
// to drop or create databases. A database that does not exist is already empty.
//
// Why drop in place rather than build a second database and swap it in, as the SQLite rebuild
// does with a file rename: ClickHouse 18.16 has no RENAME DATABASE and no atomic multi-table
// exchange, and the materialized views name their source and target tables, so moving tables
// between databases would leave the views writing to the old ones; a swap would be several
// statements, each a crash window, and would need twice the disk for the index. Dropping in place
// is safe instead because a crash at any point leaves a state the driver already recovers from:
//
//   - after schema_migrations is dropped, the next Open re-runs every migration; they are
//     idempotent, so the old index comes back intact and usable;
//   - after position is dropped, Open recreates it empty: position 0, every leftover row is
//     invisible (reads filter log_index < position), and re-applying the log writes exact copies
//     of them, which reads deduplicate (package doc);
//   - a view or table dropped is recreated, empty, by Open's migrations, and migration 2's
//     back-fill copies whatever records still holds, again only copies.
//
// So an interrupted Reset, or a rebuild interrupted after it, is finished by running the rebuild
// again or simply by starting lineaged, whose indexer continues from the position. What Reset
// cannot know is whether another process still writes to the index: stop every lineaged that
// uses it first.
//
// Reset validates o as Open does (retention included), so a rebuild never drops an index it then
// could not open.
func Reset(ctx context.Context, o Options) error {
	if err := checkRetention(o.Retention, o.ForceShortRetention); err != nil {
		return fmt.Errorf("clickhouse: reset: %w", err)
	}
	copts, db, err := connOptions(o)
	if err != nil {
		return fmt.Errorf("clickhouse: reset: %w", err)
	}
	conn, err := clickhouse.Open(copts)
	if err != nil {
		return fmt.Errorf("clickhouse: reset %s: %w", strings.Join(copts.Addr, ","), err)
	}
	defer conn.Close()
	var n uint64
	if err := conn.QueryRow(ctx, `SELECT count() FROM system.databases WHERE name = ?`, db).Scan(&n); err != nil {
		return fmt.Errorf("clickhouse: reset %s: look up database: %w", db, err)
	}
	if n == 0 {
		return nil
	}
	for _, t := range resetOrder {
		if err := conn.Exec(ctx, "DROP TABLE IF EXISTS "+db+"."+t); err != nil {
			return fmt.Errorf("clickhouse: reset %s: drop %s: %w", db, t, err)
		}
	}
	return nil
}
