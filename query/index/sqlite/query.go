package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/query/index"
)

// Limits on UserActions rows. The default keeps an unbounded API request from materializing a
// user's whole history; the maximum bounds the memory one query can take, since every row is
// decoded into a lineage.Record.
const (
	DefaultLimit = 10_000
	MaxLimit     = 100_000
)

// Lookup returns where the record (tenant, id) sits in the log, or index.ErrNotFound (wrapped).
func (s *Store) Lookup(ctx context.Context, tenant, id string) (index.Ref, error) {
	var (
		idx  int64
		hash []byte
	)
	err := s.db.QueryRowContext(ctx,
		`SELECT log_index, record_hash FROM records WHERE tenant = ? AND id = ?`,
		tenant, id).Scan(&idx, &hash)
	if isNoRows(err) {
		return index.Ref{}, errNotFound("lookup", tenant, id)
	}
	if err != nil {
		return index.Ref{}, fmt.Errorf("sqlite: lookup %q/%q: %w", tenant, id, err)
	}
	ref := index.Ref{Tenant: tenant, ID: id, Index: uint64(idx)}
	if err := copyHash(&ref.RecordHash, hash); err != nil {
		return index.Ref{}, fmt.Errorf("sqlite: lookup %q/%q: %w", tenant, id, err)
	}
	return ref, nil
}

// lookupManyChunk bounds the ids of one LookupMany query, far below SQLite's limit on bound
// parameters (32,766), so the statement stays small enough to parse quickly.
const lookupManyChunk = 500

// LookupMany implements index.BatchLookup: the keys are grouped by tenant and looked up with
// "tenant = ? AND id IN (…)", which the UNIQUE (tenant, id) index answers one probe per id. A
// SQLite Lookup costs microseconds, so this saves little next to calling Lookup in a loop; it
// exists so that ingest takes one path whatever the driver.
func (s *Store) LookupMany(ctx context.Context, keys []index.Key) (map[index.Key]index.Ref, error) {
	byTenant := map[string][]string{}
	for _, k := range keys {
		byTenant[k.Tenant] = append(byTenant[k.Tenant], k.ID)
	}
	out := make(map[index.Key]index.Ref, len(keys))
	for tenant, ids := range byTenant {
		for chunk := range slices.Chunk(ids, lookupManyChunk) {
			if err := s.lookupIDs(ctx, tenant, chunk, out); err != nil {
				return nil, fmt.Errorf("sqlite: lookup %d ids of %q: %w", len(ids), tenant, err)
			}
		}
	}
	return out, nil
}

// lookupIDs looks up ids of one tenant and adds what it finds to out.
func (s *Store) lookupIDs(ctx context.Context, tenant string, ids []string, out map[index.Key]index.Ref) error {
	args := make([]any, 0, 1+len(ids))
	args = append(args, tenant)
	for _, id := range ids {
		args = append(args, id)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT id, log_index, record_hash FROM records
WHERE tenant = ? AND id IN (?`+strings.Repeat(", ?", len(ids)-1)+`)`, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			ref  = index.Ref{Tenant: tenant}
			idx  int64
			hash []byte
		)
		if err := rows.Scan(&ref.ID, &idx, &hash); err != nil {
			return err
		}
		ref.Index = uint64(idx)
		if err := copyHash(&ref.RecordHash, hash); err != nil {
			return err
		}
		out[index.Key{Tenant: tenant, ID: ref.ID}] = ref
	}
	return rows.Err()
}

// FindID returns every record with this id, in any tenant, in log order; ids are unique only
// within a tenant. It returns index.ErrNotFound (wrapped) when there is none, like the other
// lookups, so callers branch on one sentinel.
func (s *Store) FindID(ctx context.Context, id string) ([]index.Ref, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT tenant, log_index, record_hash FROM records WHERE id = ? ORDER BY log_index`, id)
	if err != nil {
		return nil, fmt.Errorf("sqlite: find id %q: %w", id, err)
	}
	defer rows.Close()
	var refs []index.Ref
	for rows.Next() {
		var (
			ref  = index.Ref{ID: id}
			idx  int64
			hash []byte
		)
		if err := rows.Scan(&ref.Tenant, &idx, &hash); err != nil {
			return nil, fmt.Errorf("sqlite: find id %q: %w", id, err)
		}
		ref.Index = uint64(idx)
		if err := copyHash(&ref.RecordHash, hash); err != nil {
			return nil, fmt.Errorf("sqlite: find id %q: %w", id, err)
		}
		refs = append(refs, ref)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: find id %q: %w", id, err)
	}
	if len(refs) == 0 {
		return nil, fmt.Errorf("sqlite: find id %q: %w", id, index.ErrNotFound)
	}
	return refs, nil
}

// Get returns the stored record (tenant, id), decoded from its canonical bytes, or
// index.ErrNotFound (wrapped).
func (s *Store) Get(ctx context.Context, tenant, id string) (index.Row, error) {
	row := s.db.QueryRowContext(ctx,
		`SELECT `+rowColumns+` FROM records WHERE tenant = ? AND id = ?`, tenant, id)
	r, err := scanRow(row)
	if isNoRows(err) {
		return index.Row{}, errNotFound("get", tenant, id)
	}
	if err != nil {
		return index.Row{}, fmt.Errorf("sqlite: get %q/%q: %w", tenant, id, err)
	}
	return r, nil
}

// UserActions returns the records q.UserID authorized in q.Tenant with q.From <= time < q.To,
// ordered by time then log index. A zero From or To leaves that side open; Limit 0 (or less) means
// DefaultLimit, and a Limit above MaxLimit is lowered to it. The query is answered from
// records_user alone, in index order, so it reads only the rows it returns.
func (s *Store) UserActions(ctx context.Context, q index.UserQuery) ([]index.Row, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	limit = min(limit, MaxLimit)
	if outsideTime(q.From, q.To) {
		return []index.Row{}, nil // no time an entry can have is in the window
	}
	query, args := userActionsQuery(q, limit)
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: user actions %q/%q: %w", q.Tenant, q.UserID, err)
	}
	defer rows.Close()
	out, err := scanRows(rows, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: user actions %q/%q: %w", q.Tenant, q.UserID, err)
	}
	return out, nil
}

// userActionsQuery builds UserActions' SQL. A bound is left out of the SQL, rather than set to
// an extreme, when it is open or lies beyond what UnixNano represents, so no stored time can fall
// outside an "open" side. Both bounds compare UnixNano values, which keep every nanosecond, so the
// window is exact whatever time zone the caller wrote it in.
func userActionsQuery(q index.UserQuery, limit int) (string, []any) {
	query := `SELECT ` + rowColumns + ` FROM records
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
	query += ` ORDER BY time_ns, log_index LIMIT ?`
	return query, append(args, limit)
}

// decodeChunk is how many scanned rows a decoder takes at a time.
const decodeChunk = 256

// scanRows reads every row of rows (at most limit, the query's LIMIT) (rowColumns) and decodes
// the records (decodeRecord). SQLite steps through the rows on this goroutine while up to
// GOMAXPROCS-1 others decode the rows already read, chunk by chunk, so a big answer costs about the larger of the two rather than their sum; this goroutine decodes
// what is left when the scan ends. Rows are kept in chunks of decodeChunk, each handed whole to
// a decoder and never touched again by the scan, and joined at the end: memory follows the
// rows found, not the LIMIT asked for.
func scanRows(rows *sql.Rows, limit int) ([]index.Row, error) {
	var (
		wg      sync.WaitGroup
		work    chan []index.Row
		errMu   sync.Mutex
		decErr  error
		workers = runtime.GOMAXPROCS(0) - 1
		full    [][]index.Row // chunks handed to decoders, in order
		n       int
	)
	decode := func(rs []index.Row) {
		for i := range rs {
			if err := decodeRecord(&rs[i]); err != nil {
				errMu.Lock()
				if decErr == nil {
					decErr = err
				}
				errMu.Unlock()
				return
			}
		}
	}
	stop := func() {
		if work != nil {
			close(work)
			work = nil
		}
		wg.Wait()
	}
	cur := make([]index.Row, 0, min(max(limit, 1), decodeChunk))
	for rows.Next() {
		r, err := scanColumns(rows)
		if err != nil {
			stop()
			return nil, err
		}
		if limit > 0 && n == limit {
			stop()
			return nil, fmt.Errorf("more rows than the limit of %d", limit)
		}
		cur = append(cur, r)
		n++
		if len(cur) == decodeChunk {
			if work == nil && workers > 0 {
				work = make(chan []index.Row, 64)
				for range workers {
					wg.Add(1)
					go func(work <-chan []index.Row) {
						defer wg.Done()
						for rs := range work {
							decode(rs)
						}
					}(work)
				}
			}
			if work != nil {
				work <- cur
			} else {
				decode(cur)
			}
			full = append(full, cur)
			cur = make([]index.Row, 0, decodeChunk)
		}
	}
	if err := rows.Err(); err != nil {
		stop()
		return nil, err
	}
	decode(cur)
	stop()
	if decErr != nil {
		return nil, decErr
	}
	if len(full) == 0 {
		return cur, nil
	}
	out := make([]index.Row, 0, n)
	for _, c := range full {
		out = append(out, c...)
	}
	return append(out, cur...), nil
}

// scanner is what scanRow needs from *sql.Row and *sql.Rows.
type scanner interface {
	Scan(dest ...any) error
}

// rowColumns are the columns scanColumns reads, in order.
const rowColumns = `log_index, record_hash, canonical, received_ns, source_verified`

// scanColumns reads rowColumns into a Row, without decoding the record. ReceivedAt is left zero
// (index.Row: not available) unless both envelope columns are set (rows written before schema
// version 3 hold NULL).
func scanColumns(sc scanner) (index.Row, error) {
	var (
		r        index.Row
		idx      int64
		hash     []byte
		received sql.NullInt64
		verified sql.NullInt64
	)
	if err := sc.Scan(&idx, &hash, &r.Canonical, &received, &verified); err != nil {
		return index.Row{}, err
	}
	r.Index = uint64(idx)
	if err := copyHash(&r.RecordHash, hash); err != nil {
		return index.Row{}, err
	}
	if received.Valid && verified.Valid {
		r.ReceivedAt = time.Unix(0, received.Int64).UTC()
		r.SourceVerified = verified.Int64 != 0
	}
	return r, nil
}

// scanRow reads rowColumns and decodes the record. The record is decoded from the canonical
// bytes the log committed to, not rebuilt from the indexed columns, so what a query returns is
// exactly what an inclusion proof covers.
func scanRow(sc scanner) (index.Row, error) {
	r, err := scanColumns(sc)
	if err != nil {
		return index.Row{}, err
	}
	if err := decodeRecord(&r); err != nil {
		return index.Row{}, err
	}
	return r, nil
}

// decodeRecord decodes r.Canonical into r.Record.
func decodeRecord(r *index.Row) error {
	// The lineage decoder is several times faster than encoding/json on these rows; a row it
	// refuses (data written by a test or an older version) is read the generic way.
	if rec, err := lineage.DecodeTrusted(r.Canonical); err == nil {
		r.Record = *rec
	} else if err := json.Unmarshal(r.Canonical, &r.Record); err != nil {
		return fmt.Errorf("decode record at index %d: %w", r.Index, err)
	}
	return nil
}

// copyHash copies a stored record_hash into dst; a hash of the wrong length means a corrupt row.
func copyHash(dst *[32]byte, b []byte) error {
	if len(b) != len(dst) {
		return fmt.Errorf("record hash has %d bytes, want %d", len(b), len(dst))
	}
	copy(dst[:], b)
	return nil
}
