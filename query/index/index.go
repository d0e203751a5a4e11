// Package index defines index.Store, the queryable projection of the ledger.
//
// An index is never the source of truth: the indexer (package query) follows the Merkle log from
// the store's Position and hands each run of entries to Apply, which must store the rows and the
// new position in one transaction. Because of that, a crash between "rows written" and "position
// written" cannot happen, and any store can be dropped and rebuilt from the log alone
// (lineagectl rebuild-index) with identical answers. Drivers live in sub-packages
// (index/sqlite, index/clickhouse) and all pass the shared suite in index/indextest.
package index

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/ledger/seal"
	"github.com/lineage-audit/lineage/verify"
)

// ErrNotFound is returned by lookups that match nothing.
var ErrNotFound = errors.New("index: not found")

// ErrPosition is returned by Apply when a batch does not start at the store's current position:
// applying it would leave a gap or count entries twice.
var ErrPosition = errors.New("index: batch does not start at the store position")

// Entry is one decoded ledger entry, ready to be indexed.
type Entry struct {
	// Index is the entry's position in the Merkle log.
	Index uint64
	// Record is the decoded decision record.
	Record *lineage.Record
	// Canonical is the record's RFC 8785 canonical JSON, as committed to by the log.
	Canonical []byte
	// RecordHash is SHA-256 over Canonical; it detects a re-published id with other content.
	RecordHash [32]byte
	// Time is Record.Time parsed; windows are queried on it.
	Time time.Time
	// ReceivedAt is when the ingester accepted the record.
	ReceivedAt time.Time
	// SourceVerified tells whether the record carried a valid source signature.
	SourceVerified bool
	// Sealed lists the sealed fields of a v2 entry (ledger/seal, docs/ERASURE.md): each one's
	// path, key id, commitment and whether Record holds its clear value (clear while the key
	// exists) or its sealed token (erased). Empty for a v1 entry. The key ids let the index
	// find the rows an erasure must purge.
	Sealed []seal.FieldStatus
}

// Batch is a contiguous run of the log: entries with indexes in [From, To). Entries may be fewer
// than To-From only if some log entries are not decision records (they are still counted in the
// position so the indexer never re-reads them).
type Batch struct {
	From, To uint64
	Entries  []Entry
}

// MinTime and MaxTime are the times Unix nanoseconds represent exactly; an entry outside them
// cannot be indexed (records are bounded well inside, see lineage.MinTime).
var (
	MinTime = time.Unix(0, math.MinInt64)
	MaxTime = time.Unix(0, math.MaxInt64)
)

// Check rejects batches the indexer should never build: entries outside [From, To) or out of
// order, missing records, and values no driver can store (log indexes beyond int64, times
// beyond what UnixNano represents). Drivers call it first: failing loudly stops the indexer at
// the bad batch instead of storing a projection that disagrees with the log.
func (b Batch) Check() error {
	if b.To < b.From || b.To > math.MaxInt64 {
		return errors.New("invalid range")
	}
	if uint64(len(b.Entries)) > b.To-b.From {
		return fmt.Errorf("%d entries do not fit in the range", len(b.Entries))
	}
	next := b.From
	for i := range b.Entries {
		e := &b.Entries[i]
		if e.Index < next || e.Index >= b.To {
			return fmt.Errorf("entry %d: index %d out of order or outside the range", i, e.Index)
		}
		next = e.Index + 1
		if e.Record == nil {
			return fmt.Errorf("entry %d (index %d): no record", i, e.Index)
		}
		if e.Time.Before(MinTime) || e.Time.After(MaxTime) {
			return fmt.Errorf("entry %d (index %d): time %s out of range", i, e.Index, e.Time)
		}
	}
	return nil
}

// Ref locates a record in the log.
type Ref struct {
	Tenant     string
	ID         string
	Index      uint64
	RecordHash [32]byte
}

// Row is a stored record with its log position.
type Row struct {
	Index      uint64
	Record     lineage.Record
	Canonical  []byte
	RecordHash [32]byte
	// ReceivedAt and SourceVerified are the ledger entry's inputs besides Canonical
	// (lineage.NewEnvelope; Entry.ReceivedAt and Entry.SourceVerified when it was applied), so
	// the entry can be rebuilt from the row (Row.Entry) instead of being read from the log. A
	// zero ReceivedAt means the driver does not have them: ClickHouse does not store them, and
	// SQLite rows written before its schema version 3 hold NULL. They are not evidence: the
	// lineage API serves a rebuilt entry only if its leaf hash matches the log's
	// (query/lineage_api.go).
	ReceivedAt     time.Time
	SourceVerified bool
}

// Entry rebuilds the ledger entry the row was indexed from (lineage.NewEnvelope), or returns
// false if the row lacks ReceivedAt. It is a claim of the index, to be checked against the
// log's leaf hash before it is served.
func (r *Row) Entry() ([]byte, bool) {
	if r.ReceivedAt.IsZero() || len(r.Canonical) == 0 {
		return nil, false
	}
	return lineage.NewEnvelope(r.Canonical, r.ReceivedAt, r.SourceVerified), true
}

// UserQuery selects the records authorized by one user of one tenant in a time window:
// From <= time < To, compared as instants to the nanosecond. A zero From or To leaves that side
// open; an empty or inverted window returns no rows (not an error). Tenant and user ids compare
// exactly. Rows come ordered by time, then log index, and Limit keeps the first ones in that
// order (0 means the driver default, 10,000; drivers cap it at 100,000).
type UserQuery struct {
	Tenant string
	UserID string
	From   time.Time
	To     time.Time
	Limit  int
}

// Query selects one tenant's records about one subject — exactly one of UserID (what a person
// authorized), AgentID (what an agent did), PolicyID (what a policy decided) or ParentID (the
// actions an action caused) — with optional filters, one page at a time. Rows come in
// (time, log index) order; After continues from the last row of the previous page. The window
// is From <= time < To as in UserQuery; empty filter lists match everything.
type Query struct {
	Tenant   string
	UserID   string
	AgentID  string
	PolicyID string
	ParentID string

	From, To    time.Time
	Effects     []string
	ActionTypes []string
	// Agent narrows a user or policy query to one agent.
	Agent string
	// ActionTarget narrows the query to one action target, compared exactly (case-sensitive,
	// byte for byte), or to the targets that begin with a prefix when it ends with "*": then
	// everything before the star is the prefix, taken literally (no other character is special,
	// so "100%_*" is the prefix "100%_"), and a lone "*" matches every target. Empty means no
	// filter. A target that itself ends with "*" can only be found by prefix. The lineage API
	// passes only valid UTF-8 without NUL (query/lineage_api.go), which drivers may rely on.
	ActionTarget string

	After *Cursor
	Limit int
}

// TargetPrefix splits q.ActionTarget into the compared string and whether it is a prefix (the
// value ended with "*", which is cut off). An empty ActionTarget is no filter, which callers
// check first.
func (q Query) TargetPrefix() (target string, prefix bool) {
	return strings.CutSuffix(q.ActionTarget, "*")
}

// Cursor is a position in (time, log index) order: a page continues strictly after it.
type Cursor struct {
	TimeNS int64
	Index  uint64
}

// PolicyStats counts a policy's decisions in a window (an answer type of the verify package).
type PolicyStats = verify.PolicyStats

// Searcher is the query surface of the lineage API: filtered, paginated record queries by
// subject, and policy aggregates. Every Store implements it (Store embeds it), so the API never
// has to ask whether the configured index can answer; it stays a separate interface for
// consumers that only search.
type Searcher interface {
	// Records answers a Query (see its comment). It returns an error unless exactly one subject
	// is set. Limit 0 (or less) means the driver default, 10,000 rows; drivers cap it at
	// 100,000, like UserQuery's.
	Records(ctx context.Context, q Query) ([]Row, error)
	// PolicyStats counts the decisions of policyID in tenant within [from, to), each log entry
	// once; a zero bound leaves that side open, as in Query. Its maps are empty, not nil, when
	// nothing matches.
	PolicyStats(ctx context.Context, tenant, policyID string, from, to time.Time) (PolicyStats, error)
}

// Key names a record: ids are unique within a tenant only.
type Key struct {
	Tenant string
	ID     string
}

// BatchLookup is implemented by stores that answer many Lookups in one round trip. Ingest asks
// "is this id already in the log?" for every record it receives; on a server-side index
// (ClickHouse) each Lookup is a network round trip of milliseconds, so ingest batches its
// questions when the store can.
type BatchLookup interface {
	// LookupMany returns the Ref of every key that Lookup would find; keys it would not find
	// are absent from the map (not an error). Repeated keys are allowed.
	LookupMany(ctx context.Context, keys []Key) (map[Key]Ref, error)
}

// Subjects reports how many subjects q sets; Records needs exactly one.
func (q Query) Subjects() int {
	n := 0
	for _, s := range []string{q.UserID, q.AgentID, q.PolicyID, q.ParentID} {
		if s != "" {
			n++
		}
	}
	return n
}

// Store is the interface every index driver implements.
type Store interface {
	Searcher
	// Apply stores the batch's rows and sets the position to b.To atomically. It returns
	// ErrPosition (wrapped) unless b.From equals the current position.
	Apply(ctx context.Context, b Batch) error
	// Position is the number of log entries already applied.
	Position(ctx context.Context) (uint64, error)
	// Lookup finds a record by tenant and id.
	Lookup(ctx context.Context, tenant, id string) (Ref, error)
	// FindID finds records with this id in any tenant (ids are unique per tenant only); it
	// returns ErrNotFound when no tenant has it.
	FindID(ctx context.Context, id string) ([]Ref, error)
	// Get returns the stored record by tenant and id.
	Get(ctx context.Context, tenant, id string) (Row, error)
	// UserActions returns the records the user authorized in the window, ordered by time then
	// log index.
	UserActions(ctx context.Context, q UserQuery) ([]Row, error)
	// Close releases the store.
	Close() error
}
