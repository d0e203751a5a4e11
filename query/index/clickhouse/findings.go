package clickhouse

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/ext"

	"github.com/lineage-audit/lineage/query/findings"
)

// The findings projection (query/findings/store.go) kept in the index's database, beside the
// record tables but with its own schema versions (findings_schema_migrations), so the two
// projections evolve independently, as in the SQLite driver (query/index/sqlite/findings.go).
//
// # Tables
//
//   - findings_rows: one row per (finding, version): the finding as it stood after the log
//     entries [0, version), its queryable columns and its whole JSON in body.
//   - findings_state_rows: one row per (engine state item, version), with a deleted flag: a
//     deletion is a tombstone row, so a deletion is versioned like any other change.
//   - findings_position: one row per ApplyFindings; the position is max(next_index).
//   - findings_published: the count each finding was last published at (the outbox), one
//     row per MarkPublished, keyed by id, ReplacingMergeTree(published_count).
//   - findings_gen: the generation new rows are written to (see Compaction).
//
// # Crashes and retries
//
// ClickHouse has no multi-statement transactions, so ApplyFindings writes in order, findings
// rows, then state rows, then the position row, each row of findings_rows and
// findings_state_rows carrying the batch's to as its version, and every read (FindingsState,
// Findings, Unpublished, and the lookup of the current findings inside ApplyFindings) keeps, per
// finding or state item, the row with the highest version at or below the stored position
// (version <= position, then ORDER BY version DESC LIMIT 1 BY the key). So:
//
//  1. A half-written batch is invisible. Its rows have version to > from = position until the
//     position row is written, which is the last write; a crash or an error anywhere before it
//     (inside an INSERT too) leaves the answers exactly as they were.
//  2. Re-applying is exact. The position did not move, so the retry passes the position check,
//     reads the findings as of from (the leftovers are above it), merges the same occurrences
//     once and writes rows at version to again: an exact copy under the same sorting key, which
//     reads deduplicate (LIMIT 1 BY) and merges remove. A retry with a different split of the
//     log ([from, m) then [m, to), as the findings worker may read it back from the log) is
//     also exact, because a row written at version v holds the finding (or state item) as of
//     the log prefix [0, v): the engine's output is a function of the log prefix, whatever the
//     batch boundaries (TestStateSurvivesRestart in query/findings/engine_test.go checks that),
//     so a leftover at version v that the position later reaches holds what a committed write
//     at v holds, and whichever of the two a read or a merge keeps, the answer is the same.
//  3. Background merges cannot lose a committed row. The version is part of the sorting key
//     (tenant, id, version), not only the ReplacingMergeTree's version column: with a key of
//     (tenant, id) alone a merge keeps only the highest version, which may be a leftover above
//     the position, and the committed row below it, the only visible one, would be gone (the
//     finding would vanish, and a retry would count it from scratch as New). Only exact copies
//     (same key: same id, same version) are merged away.
//  4. The position only grows: it is max(next_index) over its rows, as the index's is
//     (clickhouse.go, point 3). A crash after the position row and before ApplyFindings
//     returned is a lost acknowledgement: the retry gets findings.ErrPosition and the caller
//     re-reads the position.
//
// Within one process a Findings serializes its ApplyFindings calls (and compaction) with its
// own write slot; use one Findings per Store, and one process writing findings per database:
// two writers would also pass the position check together (each would get ErrPosition at its
// next batch), and a compaction of one would drop the generation the other still writes to.
//
// # Compaction
//
// Keeping every version means a finding has a row per batch that touched it, and a tenant's
// watermark state item a row per batch. Compaction bounds that: rows are partitioned by a
// generation (gen); Compact copies, for every finding and live state item, the row visible at
// the position into generation g+1, records g+1 in findings_gen, and then drops every older
// generation's partitions. Each step is harmless if interrupted: copies are exact copies
// (same sorting key) of visible rows, so reads see the same answers whether the old
// generation is still there or not; an interrupted copy is redone by the next Compact (into
// the same generation, where exact copies merge away); a generation recorded but not yet
// dropped is dropped by the next Compact. Leftovers of crashed batches (above the position)
// and tombstones are not copied, so they go with the old generation. ApplyFindings compacts
// when the rows written since the last compaction outnumber the live rows then (and at least
// compactMinRows), which keeps the tables within about twice their live size at an amortized
// cost of one copied row per written row.
//
// Tenant isolation: Findings filters on the tenant and the batch lookup on (tenant, id).
// FindingsState, Unpublished and MarkPublished serve the engine and the publisher, which work on
// every tenant at once (their signatures name none); finding ids include the tenant (findings.ID).

// findingsMigration is one versioned change of the findings tables; like the index's migrations
// (migrate.go) every statement is idempotent and the version is recorded after the last one.
type findingsMigration struct {
	name  string
	stmts func(s *Store) []string
}

// findingsMigrations take the findings schema from version i to i+1; released ones are never
// edited.
var findingsMigrations = []findingsMigration{
	{name: "findings_rows, findings_state_rows, findings_position, findings_published, findings_gen", stmts: findingsSchemaV1},
}

// findingsSchemaV1 creates the findings tables (see the comment at the top of this file).
func findingsSchemaV1(s *Store) []string {
	r := s.ddlReplacer()
	return []string{
		r.Replace(`CREATE TABLE IF NOT EXISTS {db}.findings_rows (
	gen         UInt64,
	tenant      {lc},
	id          String,
	version     UInt64,
	kind        {lc},
	severity    {lc},
	agent       String,
	user_id     String,
	first_ns    Int64,
	last_ns     Int64,
	first_index UInt64,
	occurrences UInt64,
	changed_seq UInt64,
	body        String
) ENGINE = ReplacingMergeTree
PARTITION BY gen
ORDER BY (tenant, id, version)`),
		r.Replace(`CREATE TABLE IF NOT EXISTS {db}.findings_state_rows (
	gen      UInt64,
	tenant   {lc},
	space    {lc},
	item_key String,
	version  UInt64,
	deleted  UInt8,
	value    String
) ENGINE = ReplacingMergeTree
PARTITION BY gen
ORDER BY (tenant, space, item_key, version)`),
		r.Replace(`CREATE TABLE IF NOT EXISTS {db}.findings_position (
	singleton  UInt8,
	next_index UInt64,
	applied_ns Int64
) ENGINE = ReplacingMergeTree(next_index) ORDER BY singleton`),
		r.Replace(`CREATE TABLE IF NOT EXISTS {db}.findings_published (
	id              String,
	published_count UInt64,
	published_ns    Int64
) ENGINE = ReplacingMergeTree(published_count) ORDER BY id`),
		r.Replace(`CREATE TABLE IF NOT EXISTS {db}.findings_gen (
	singleton  UInt8,
	gen        UInt64,
	applied_ns Int64
) ENGINE = ReplacingMergeTree(gen) ORDER BY singleton`),
	}
}

// compactMinRows is the fewest rows written since the last compaction that make ApplyFindings
// compact: below it the garbage is too small to be worth a copy of the live rows.
const compactMinRows = 100_000

// Findings is the findings.Store of a ClickHouse index.
type Findings struct {
	s *Store
	// writeSlot serializes ApplyFindings and Compact (see Store.writeSlot).
	writeSlot chan struct{}
	// Guarded by writeSlot: the generation new rows go to, the rows written since the last
	// compaction, and the live rows it left (the threshold of the next one).
	gen     uint64
	written uint64
	live    uint64
}

var _ findings.Store = (*Findings)(nil)

// Findings returns the store's findings projection, creating or upgrading its tables. Call it
// once per Store and share the result (it serializes its writes).
func (s *Store) Findings(ctx context.Context) (*Findings, error) {
	if err := s.migrateFindings(ctx); err != nil {
		return nil, fmt.Errorf("clickhouse: findings schema: %w", err)
	}
	f := &Findings{s: s, writeSlot: make(chan struct{}, 1)}
	if err := s.conn.QueryRow(ctx, `SELECT max(gen) FROM `+s.table("findings_gen")+` WHERE singleton = 0`).Scan(&f.gen); err != nil {
		return nil, fmt.Errorf("clickhouse: findings generation: %w", err)
	}
	var rows uint64
	if err := s.conn.QueryRow(ctx, `SELECT (SELECT count() FROM `+s.table("findings_rows")+`) + (SELECT count() FROM `+
		s.table("findings_state_rows")+`)`).Scan(&rows); err != nil {
		return nil, fmt.Errorf("clickhouse: findings rows: %w", err)
	}
	// Unknown how many of them are garbage: treat them as live, so the next compaction comes
	// after as many new rows again.
	f.live = rows
	return f, nil
}

// migrateFindings brings the findings tables to len(findingsMigrations), refusing a newer schema.
func (s *Store) migrateFindings(ctx context.Context) error {
	if err := s.conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+s.table("findings_schema_migrations")+` (
	version        UInt32,
	name           String,
	applied_ns     Int64,
	server_version String,
	features       String
) ENGINE = ReplacingMergeTree ORDER BY version`); err != nil {
		return err
	}
	var version uint32
	if err := s.conn.QueryRow(ctx, `SELECT max(version) FROM `+s.table("findings_schema_migrations")).Scan(&version); err != nil {
		return fmt.Errorf("read version: %w", err)
	}
	if int(version) > len(findingsMigrations) {
		return fmt.Errorf("version %d is newer than this binary's %d", version, len(findingsMigrations))
	}
	for v := int(version); v < len(findingsMigrations); v++ {
		m := findingsMigrations[v]
		for i, stmt := range m.stmts(s) {
			if err := s.conn.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("to version %d (%s), statement %d: %w", v+1, m.name, i+1, err)
			}
		}
		if err := s.insertRow(ctx, `INSERT INTO `+s.table("findings_schema_migrations")+
			` (version, name, applied_ns, server_version, features)`,
			uint32(v+1), m.name, time.Now().UnixNano(), s.server.String(), s.feat.String()); err != nil {
			return fmt.Errorf("to version %d: record: %w", v+1, err)
		}
		s.log.Info("clickhouse index: findings schema migrated", "database", s.db, "version", v+1, "migration", m.name)
	}
	return nil
}

// insertRow inserts one row through a prepared batch, as every INSERT of this package does: an
// Exec of INSERT … VALUES (?, …) with bound arguments hung against 18.16 in this file's tests
// (the server kept waiting for the insert's data).
func (s *Store) insertRow(ctx context.Context, insert string, values ...any) error {
	batch, err := s.conn.PrepareBatch(ctx, insert)
	if err != nil {
		return err
	}
	defer batch.Close()
	if err := batch.Append(values...); err != nil {
		return err
	}
	return batch.Send()
}

func (f *Findings) acquireWrite(ctx context.Context) error {
	select {
	case f.writeSlot <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (f *Findings) releaseWrite() { <-f.writeSlot }

// positionSQL is the findings position as a scalar subquery, read in the same query as the rows
// it filters.
func (f *Findings) positionSQL() string {
	return `(SELECT max(next_index) FROM ` + f.s.table("findings_position") + ` WHERE singleton = 0)`
}

// FindingsPosition implements findings.Store.
func (f *Findings) FindingsPosition(ctx context.Context) (uint64, error) {
	p, err := f.readPosition(ctx)
	if err != nil {
		return 0, fmt.Errorf("clickhouse: findings position: %w", err)
	}
	return p, nil
}

func (f *Findings) readPosition(ctx context.Context) (uint64, error) {
	var p uint64
	if err := f.s.conn.QueryRow(ctx, `SELECT `+f.positionSQL()).Scan(&p); err != nil {
		return 0, err
	}
	return p, nil
}

// latestStateSQL selects, per state item, the row visible at the position (possibly a
// tombstone), with the columns named in cols.
func (f *Findings) latestStateSQL(cols string) string {
	return `SELECT ` + cols + ` FROM ` + f.s.table("findings_state_rows") + `
WHERE version <= ` + f.positionSQL() + `
ORDER BY tenant, space, item_key, version DESC LIMIT 1 BY tenant, space, item_key`
}

// FindingsState implements findings.Store: every tenant's live state items.
func (f *Findings) FindingsState(ctx context.Context) ([]findings.StateItem, error) {
	rows, err := f.s.conn.Query(ctx, `SELECT tenant, space, item_key, value FROM (`+
		f.latestStateSQL("tenant, space, item_key, deleted, value")+`) WHERE deleted = 0 ORDER BY tenant, space, item_key`)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: findings state: %w", err)
	}
	defer rows.Close()
	var out []findings.StateItem
	for rows.Next() {
		var (
			it    findings.StateItem
			value string
		)
		if err := rows.Scan(&it.Tenant, &it.Space, &it.Key, &value); err != nil {
			return nil, fmt.Errorf("clickhouse: findings state: %w", err)
		}
		it.Value = []byte(value) // a copy: the driver's string may share its buffer
		out = append(out, it)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("clickhouse: findings state: %w", err)
	}
	return out, nil
}

// ApplyFindings implements findings.Store; the comment at the top of this file explains why its
// three INSERTs are as good as one transaction.
func (f *Findings) ApplyFindings(ctx context.Context, from, to uint64, occ []findings.Occurrence, state []findings.StateItem) ([]findings.Change, error) {
	if to < from {
		return nil, fmt.Errorf("clickhouse: apply findings [%d,%d): inverted", from, to)
	}
	if to == from && (len(occ) > 0 || len(state) > 0) {
		// Rows are versioned by to, and only a version above the position is invisible until
		// the position is written: an empty range has no version of its own to write at.
		return nil, fmt.Errorf("clickhouse: apply findings [%d,%d): an empty range cannot carry occurrences or state", from, to)
	}
	if err := f.acquireWrite(ctx); err != nil {
		return nil, fmt.Errorf("clickhouse: apply findings [%d,%d): %w", from, to, err)
	}
	defer f.releaseWrite()
	ch, err := f.apply(ctx, from, to, occ, state)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: apply findings [%d,%d): %w", from, to, err)
	}
	if f.written > max(f.live, compactMinRows) {
		// The batch is stored; a failed compaction only leaves garbage for the next one.
		if err := f.compact(ctx); err != nil {
			f.s.log.Error("clickhouse index: compacting findings", "database", f.s.db, "err", err)
		}
	}
	return ch, nil
}

// apply runs ApplyFindings' steps; the caller holds the write slot.
func (f *Findings) apply(ctx context.Context, from, to uint64, occ []findings.Occurrence, state []findings.StateItem) ([]findings.Change, error) {
	pos, err := f.readPosition(ctx)
	if err != nil {
		return nil, fmt.Errorf("read position: %w", err)
	}
	if pos != from {
		return nil, fmt.Errorf("position is %d: %w", pos, findings.ErrPosition)
	}
	if to == from {
		return nil, nil
	}
	changes, err := f.merge(ctx, from, occ)
	if err != nil {
		return nil, err
	}
	if err := f.writeRows(ctx, to, changes, state); err != nil {
		return nil, err
	}
	if err := f.writePosition(ctx, to); err != nil {
		return nil, err
	}
	return changes, nil
}

// merge looks up, in one query, the stored findings the occurrences touch as of the position
// from, and merges the occurrences into them (findings.Merge).
func (f *Findings) merge(ctx context.Context, from uint64, occ []findings.Occurrence) ([]findings.Change, error) {
	if len(occ) == 0 {
		return nil, nil
	}
	keys, err := ext.NewTable("batch_findings", ext.Column("tenant", "String"), ext.Column("id", "String"))
	if err != nil {
		return nil, fmt.Errorf("look up findings: %w", err)
	}
	seen := map[string]bool{}
	for _, o := range occ {
		id := findings.ID(o.Tenant, o.Kind, o.Key)
		if seen[id] {
			continue
		}
		seen[id] = true
		if err := keys.Append(o.Tenant, id); err != nil {
			return nil, fmt.Errorf("look up findings: %w", err)
		}
	}
	// (tenant, id) is a prefix of findings_rows' key, so the server reads a granule per finding
	// at most; the external table keeps a large batch's ids out of the SQL text (see
	// checkDuplicates in apply.go).
	rows, err := f.s.conn.Query(clickhouse.Context(ctx, clickhouse.WithExternalTable(keys)),
		`SELECT id, body FROM `+f.s.table("findings_rows")+`
WHERE (tenant, id) IN batch_findings AND version <= ?
ORDER BY id, version DESC LIMIT 1 BY id`, from)
	if err != nil {
		return nil, fmt.Errorf("look up %d findings: %w", len(seen), err)
	}
	stored := make(map[string]findings.Finding, len(seen))
	for rows.Next() {
		var id, body string
		if err := rows.Scan(&id, &body); err != nil {
			rows.Close()
			return nil, fmt.Errorf("look up findings: %w", err)
		}
		var fd findings.Finding
		if err := json.Unmarshal([]byte(body), &fd); err != nil {
			rows.Close()
			return nil, fmt.Errorf("finding %s: stored body: %w", id, err)
		}
		stored[id] = fd
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("look up findings: %w", err)
	}
	return findings.Merge(occ, func(id string) (findings.Finding, bool, error) {
		fd, ok := stored[id]
		return fd, ok, nil
	})
}

// writeRows writes the batch's findings and state rows at version to, into the current
// generation. Until the position reaches to they are invisible.
func (f *Findings) writeRows(ctx context.Context, to uint64, changes []findings.Change, state []findings.StateItem) error {
	if len(changes) > 0 {
		batch, err := f.s.conn.PrepareBatch(ctx, `INSERT INTO `+f.s.table("findings_rows")+` (gen, tenant, id, version, kind, severity,
	agent, user_id, first_ns, last_ns, first_index, occurrences, changed_seq, body)`)
		if err != nil {
			return fmt.Errorf("prepare findings: %w", err)
		}
		defer batch.Close()
		for i, c := range changes {
			fd := &c.Finding
			body, err := json.Marshal(fd)
			if err != nil {
				return fmt.Errorf("finding %s: %w", fd.ID, err)
			}
			// changed_seq orders the outbox: the batch's position, then the order within it
			// (the SQLite driver's order).
			seq := to<<16 | uint64(min(i, 1<<16-1))
			if err := batch.Append(f.gen, fd.Tenant, fd.ID, to, string(fd.Kind), string(fd.Severity), fd.Agent, fd.User,
				fd.First.UnixNano(), fd.Last.UnixNano(), fd.FirstIndex, fd.Count, seq, string(body)); err != nil {
				return fmt.Errorf("finding %s: %w", fd.ID, err)
			}
		}
		if err := batch.Send(); err != nil {
			return fmt.Errorf("store %d findings: %w", len(changes), err)
		}
		f.written += uint64(len(changes))
	}
	if len(state) > 0 {
		batch, err := f.s.conn.PrepareBatch(ctx, `INSERT INTO `+f.s.table("findings_state_rows")+
			` (gen, tenant, space, item_key, version, deleted, value)`)
		if err != nil {
			return fmt.Errorf("prepare state: %w", err)
		}
		defer batch.Close()
		for _, it := range state {
			var deleted uint8
			if it.Value == nil {
				deleted = 1
			}
			if err := batch.Append(f.gen, it.Tenant, it.Space, it.Key, to, deleted, string(it.Value)); err != nil {
				return fmt.Errorf("state %s/%s: %w", it.Tenant, it.Space, err)
			}
		}
		if err := batch.Send(); err != nil {
			return fmt.Errorf("store %d state items: %w", len(state), err)
		}
		f.written += uint64(len(state))
	}
	return nil
}

// writePosition records that the findings reflect the log up to next: a new row, the position
// being the maximum over all rows.
func (f *Findings) writePosition(ctx context.Context, next uint64) error {
	if err := f.s.insertRow(ctx, `INSERT INTO `+f.s.table("findings_position")+` (singleton, next_index, applied_ns)`,
		uint8(0), next, time.Now().UnixNano()); err != nil {
		return fmt.Errorf("write position %d: %w", next, err)
	}
	return nil
}

// latestFindingsSQL selects, per finding, the row visible at the position, with the columns
// named in cols, restricted by where (conditions on columns no version changes: tenant, id,
// kind, first_index; the others must be tested on the latest row, outside).
func (f *Findings) latestFindingsSQL(cols, where string) string {
	return `SELECT ` + cols + ` FROM ` + f.s.table("findings_rows") + `
WHERE ` + where + `version <= ` + f.positionSQL() + `
ORDER BY tenant, id, version DESC LIMIT 1 BY tenant, id`
}

// Findings implements findings.Store.
func (f *Findings) Findings(ctx context.Context, q findings.Query) ([]findings.Finding, error) {
	inner := []string{"tenant = ?"}
	innerArgs := []any{q.Tenant}
	if len(q.Kinds) > 0 {
		kinds := make([]string, len(q.Kinds))
		for i, k := range q.Kinds {
			kinds[i] = string(k)
		}
		inner = append(inner, "has(?, kind)")
		innerArgs = append(innerArgs, kinds)
	}
	if q.After != "" {
		inner = append(inner, "(first_index < ? OR (first_index = ? AND id > ?))")
		innerArgs = append(innerArgs, q.AfterIndex, q.AfterIndex, q.After)
	}
	outer := []string{"1"}
	var outerArgs []any
	if len(q.Severities) > 0 {
		sevs := make([]string, len(q.Severities))
		for i, s := range q.Severities {
			sevs[i] = string(s)
		}
		outer = append(outer, "has(?, severity)")
		outerArgs = append(outerArgs, sevs)
	}
	if q.Agent != "" {
		outer = append(outer, "agent = ?")
		outerArgs = append(outerArgs, q.Agent)
	}
	if q.User != "" {
		outer = append(outer, "user_id = ?")
		outerArgs = append(outerArgs, q.User)
	}
	if !q.From.IsZero() {
		outer = append(outer, "last_ns >= ?")
		outerArgs = append(outerArgs, q.From.UnixNano())
	}
	if !q.To.IsZero() {
		outer = append(outer, "first_ns < ?")
		outerArgs = append(outerArgs, q.To.UnixNano())
	}
	query := `SELECT body FROM (` + f.latestFindingsSQL("tenant, id, severity, agent, user_id, first_ns, last_ns, first_index, body",
		strings.Join(inner, " AND ")+" AND ") + `)
WHERE ` + strings.Join(outer, " AND ") + `
ORDER BY first_index DESC, id LIMIT ` + strconv.Itoa(q.EffectiveLimit())
	out, err := f.readFindings(ctx, query, append(innerArgs, outerArgs...)...)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: findings %q: %w", q.Tenant, err)
	}
	return out, nil
}

// Unpublished implements findings.Store, over every tenant.
func (f *Findings) Unpublished(ctx context.Context, limit int) ([]findings.Finding, error) {
	if limit <= 0 {
		return nil, nil
	}
	// A finding never published has no findings_published row; the LEFT JOIN's default for
	// published is then 0, below any stored count (a finding has at least one occurrence).
	query := `SELECT body FROM (` + f.latestFindingsSQL("tenant, id, occurrences, changed_seq, body", "") + `)
ANY LEFT JOIN (
	SELECT id, max(published_count) AS published FROM ` + f.s.table("findings_published") + ` GROUP BY id
) USING id
WHERE occurrences > published
ORDER BY changed_seq, id LIMIT ` + strconv.Itoa(limit)
	out, err := f.readFindings(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: unpublished findings: %w", err)
	}
	return out, nil
}

// MarkPublished implements findings.Store. The published count is the maximum of the rows
// written for the id (ReplacingMergeTree(published_count), read with max()), so a mark at an
// older count, even one arriving after a newer, never lowers it, and a finding changed since
// stays unpublished.
func (f *Findings) MarkPublished(ctx context.Context, id string, count uint64) error {
	if err := f.s.insertRow(ctx, `INSERT INTO `+f.s.table("findings_published")+` (id, published_count, published_ns)`,
		id, count, time.Now().UnixNano()); err != nil {
		return fmt.Errorf("clickhouse: mark published %s: %w", id, err)
	}
	return nil
}

// readFindings runs a query returning findings' bodies and decodes them; none is an empty slice.
func (f *Findings) readFindings(ctx context.Context, query string, args ...any) ([]findings.Finding, error) {
	rows, err := f.s.conn.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []findings.Finding{}
	for rows.Next() {
		var body string
		if err := rows.Scan(&body); err != nil {
			return nil, err
		}
		var fd findings.Finding
		if err := json.Unmarshal([]byte(body), &fd); err != nil {
			return nil, fmt.Errorf("stored body: %w", err)
		}
		out = append(out, fd)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// Compact copies the rows visible at the position into a new generation and drops the older
// generations (see Compaction at the top of this file). ApplyFindings calls it when enough
// garbage has accumulated; it is exported for operators and tests.
func (f *Findings) Compact(ctx context.Context) error {
	if err := f.acquireWrite(ctx); err != nil {
		return fmt.Errorf("clickhouse: compact findings: %w", err)
	}
	defer f.releaseWrite()
	if err := f.compact(ctx); err != nil {
		return fmt.Errorf("clickhouse: compact findings: %w", err)
	}
	return nil
}

// compact runs Compact; the caller holds the write slot, so the position cannot move meanwhile.
func (f *Findings) compact(ctx context.Context) error {
	next := f.gen + 1
	gen := strconv.FormatUint(next, 10)
	if err := f.s.conn.Exec(ctx, `INSERT INTO `+f.s.table("findings_rows")+` (gen, tenant, id, version, kind, severity,
	agent, user_id, first_ns, last_ns, first_index, occurrences, changed_seq, body)
SELECT `+gen+` AS gen, tenant, id, version, kind, severity, agent, user_id, first_ns, last_ns, first_index, occurrences, changed_seq, body
FROM (`+f.latestFindingsSQL("tenant, id, version, kind, severity, agent, user_id, first_ns, last_ns, first_index, occurrences, changed_seq, body", "")+`)`); err != nil {
		return fmt.Errorf("copy findings to generation %d: %w", next, err)
	}
	if err := f.s.conn.Exec(ctx, `INSERT INTO `+f.s.table("findings_state_rows")+` (gen, tenant, space, item_key, version, deleted, value)
SELECT `+gen+` AS gen, tenant, space, item_key, version, deleted, value
FROM (`+f.latestStateSQL("tenant, space, item_key, version, deleted, value")+`) WHERE deleted = 0`); err != nil {
		return fmt.Errorf("copy state to generation %d: %w", next, err)
	}
	if err := f.s.insertRow(ctx, `INSERT INTO `+f.s.table("findings_gen")+` (singleton, gen, applied_ns)`,
		uint8(0), next, time.Now().UnixNano()); err != nil {
		return fmt.Errorf("record generation %d: %w", next, err)
	}
	f.gen, f.written = next, 0
	if err := f.dropGenerationsBefore(ctx, next); err != nil {
		return err
	}
	var live uint64
	if err := f.s.conn.QueryRow(ctx, `SELECT (SELECT count() FROM `+f.s.table("findings_rows")+`) + (SELECT count() FROM `+
		f.s.table("findings_state_rows")+`)`).Scan(&live); err != nil {
		return fmt.Errorf("count rows: %w", err)
	}
	f.live = live
	f.s.log.Info("clickhouse index: findings compacted", "database", f.s.db, "generation", next, "rows", live)
	return nil
}

// dropGenerationsBefore drops the partitions of generations below gen, found in system.parts.
func (f *Findings) dropGenerationsBefore(ctx context.Context, gen uint64) error {
	tables := []string{"findings_rows", "findings_state_rows"}
	rows, err := f.s.conn.Query(ctx, `SELECT DISTINCT table, partition_id FROM system.parts
WHERE database = ? AND active AND has(?, table)`, f.s.db, tables)
	if err != nil {
		return fmt.Errorf("list generations: %w", err)
	}
	type part struct{ table, id string }
	var old []part
	for rows.Next() {
		var p part
		if err := rows.Scan(&p.table, &p.id); err != nil {
			rows.Close()
			return fmt.Errorf("list generations: %w", err)
		}
		g, err := strconv.ParseUint(p.id, 10, 64)
		if err != nil {
			rows.Close()
			return fmt.Errorf("list generations: partition %q of %s: %w", p.id, p.table, err)
		}
		if g < gen {
			old = append(old, p)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("list generations: %w", err)
	}
	for _, p := range old {
		if err := f.s.conn.Exec(ctx, `ALTER TABLE `+f.s.table(p.table)+` DROP PARTITION ID ?`, p.id); err != nil {
			return fmt.Errorf("drop generation %s of %s: %w", p.id, p.table, err)
		}
	}
	return nil
}
