package findings

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"time"
)

// ID names a finding: the first 16 bytes of SHA-256 over tenant, kind and key, in hex. It is
// stable across rebuilds, so links to a finding keep working.
func ID(tenant string, kind Kind, key string) string {
	h := sha256.New()
	h.Write([]byte(tenant))
	h.Write([]byte{0})
	h.Write([]byte(kind))
	h.Write([]byte{0})
	h.Write([]byte(key))
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// Change is a finding an ApplyFindings created (New) or updated, as stored after it.
type Change struct {
	Finding Finding
	New     bool
}

// ErrPosition is returned (wrapped) by ApplyFindings when from is not the stored position.
var ErrPosition = errors.New("findings: batch does not start at the findings position")

// Store keeps findings, the engine's state and the findings position: how many log entries the
// findings reflect. Index drivers implement it beside their rows (query/index/sqlite,
// query/index/clickhouse); the shared suite in findingstest checks them.
type Store interface {
	// FindingsPosition is the number of log entries the stored findings reflect.
	FindingsPosition(ctx context.Context) (uint64, error)
	// FindingsState returns the engine state stored (for Engine.Load).
	FindingsState(ctx context.Context) ([]StateItem, error)
	// ApplyFindings merges the occurrences of log entries [from, to) into the stored findings
	// (Finding.Add, or New for a new ID), stores the state changes (a nil Value deletes) and sets
	// the position to to, all or nothing. It returns ErrPosition (wrapped) unless from is the
	// position, and the findings it created or changed, in the order first touched.
	ApplyFindings(ctx context.Context, from, to uint64, occ []Occurrence, state []StateItem) ([]Change, error)
	// Findings answers a query (see Query).
	Findings(ctx context.Context, q Query) ([]Finding, error)
	// Unpublished returns up to limit findings changed since they were last marked published
	// (MarkPublished), oldest change first.
	Unpublished(ctx context.Context, limit int) ([]Finding, error)
	// MarkPublished records that the finding was published at its count.
	MarkPublished(ctx context.Context, id string, count uint64) error
}

// Query selects one tenant's findings. Empty lists and zero values match everything; the window
// keeps findings with evidence in [From, To) (Last >= From and First < To). Findings come newest
// detection first (FirstIndex descending, then ID); After (an ID from the previous page, with
// AfterIndex its FirstIndex) continues a listing. Limit 0 means DefaultLimit; at most MaxLimit.
type Query struct {
	Tenant     string
	Kinds      []Kind
	Severities []Severity
	Agent      string
	User       string
	From, To   time.Time
	After      string
	AfterIndex uint64
	Limit      int
}

// Limits of Query.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// EffectiveLimit is the limit a store applies.
func (q Query) EffectiveLimit() int {
	switch {
	case q.Limit <= 0:
		return DefaultLimit
	case q.Limit > MaxLimit:
		return MaxLimit
	}
	return q.Limit
}

// Merge applies occurrences to findings looked up by ID (get returns the stored one, or false):
// the aggregation every store shares. It returns the changes in the order first touched.
func Merge(occ []Occurrence, get func(id string) (Finding, bool, error)) ([]Change, error) {
	byID := map[string]int{}
	var out []Change
	for _, o := range occ {
		id := ID(o.Tenant, o.Kind, o.Key)
		if i, ok := byID[id]; ok {
			out[i].Finding.Add(o)
			continue
		}
		f, found, err := get(id)
		if err != nil {
			return nil, err
		}
		if found {
			f.Add(o)
		} else {
			f = New(o)
		}
		f.ID = id
		byID[id] = len(out)
		out = append(out, Change{Finding: f, New: !found})
	}
	return out, nil
}
