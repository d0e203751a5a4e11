package indextest

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/lineage-audit/lineage/query/index"
)

// TestSuiteOnReference runs the suite against memStore, a deliberately naive store, so a failure
// in a real driver points at the driver and not at the suite's own expectations.
func TestSuiteOnReference(t *testing.T) {
	dirs := map[string]*memData{}
	Run(t, func(t *testing.T, dir string) index.Store {
		if dirs[dir] == nil {
			dirs[dir] = &memData{}
		}
		return &memStore{data: dirs[dir]}
	})
}

// memData is what a memStore keeps "on disk": it outlives Close, like a directory.
type memData struct {
	mu      sync.RWMutex
	pos     uint64
	entries []index.Entry
	byKey   map[[2]string]index.Entry // (tenant, id)
}

// memStore is the reference index.Store: brute force over every entry applied.
type memStore struct{ data *memData }

func (m *memStore) Apply(_ context.Context, b index.Batch) error {
	m.data.mu.Lock()
	defer m.data.mu.Unlock()
	if b.From != m.data.pos {
		return fmt.Errorf("mem: apply [%d,%d) at %d: %w", b.From, b.To, m.data.pos, index.ErrPosition)
	}
	if m.data.byKey == nil {
		m.data.byKey = map[[2]string]index.Entry{}
	}
	for _, e := range b.Entries {
		m.data.byKey[[2]string{e.Record.Tenant, e.Record.ID}] = e
	}
	m.data.entries = append(m.data.entries, b.Entries...)
	m.data.pos = b.To
	return nil
}

func (m *memStore) Position(context.Context) (uint64, error) {
	m.data.mu.RLock()
	defer m.data.mu.RUnlock()
	return m.data.pos, nil
}

func (m *memStore) Lookup(_ context.Context, tenant, id string) (index.Ref, error) {
	m.data.mu.RLock()
	defer m.data.mu.RUnlock()
	e, ok := m.data.byKey[[2]string{tenant, id}]
	if !ok {
		return index.Ref{}, index.ErrNotFound
	}
	return index.Ref{Tenant: tenant, ID: id, Index: e.Index, RecordHash: e.RecordHash}, nil
}

func (m *memStore) FindID(_ context.Context, id string) ([]index.Ref, error) {
	m.data.mu.RLock()
	defer m.data.mu.RUnlock()
	var refs []index.Ref
	for _, e := range m.data.entries {
		if e.Record.ID == id {
			refs = append(refs, index.Ref{Tenant: e.Record.Tenant, ID: id, Index: e.Index, RecordHash: e.RecordHash})
		}
	}
	if len(refs) == 0 {
		return nil, index.ErrNotFound
	}
	return refs, nil
}

func (m *memStore) Get(_ context.Context, tenant, id string) (index.Row, error) {
	m.data.mu.RLock()
	defer m.data.mu.RUnlock()
	e, ok := m.data.byKey[[2]string{tenant, id}]
	if !ok {
		return index.Row{}, index.ErrNotFound
	}
	return row(e)
}

func (m *memStore) UserActions(_ context.Context, q index.UserQuery) ([]index.Row, error) {
	m.data.mu.RLock()
	defer m.data.mu.RUnlock()
	if q.Limit <= 0 {
		q.Limit = 10_000
	}
	var rows []index.Row
	for _, e := range bruteUserActions(m.data.entries, q) {
		r, err := row(e)
		if err != nil {
			return nil, err
		}
		rows = append(rows, r)
	}
	return rows, nil
}

func (m *memStore) Records(_ context.Context, q index.Query) ([]index.Row, error) {
	if q.Subjects() != 1 {
		return nil, fmt.Errorf("mem: records: %d subjects", q.Subjects())
	}
	m.data.mu.RLock()
	defer m.data.mu.RUnlock()
	rows := []index.Row{}
	for _, e := range ReferenceRecords(m.data.entries, q) {
		r, err := row(e)
		if err != nil {
			return nil, err
		}
		rows = append(rows, r)
	}
	return rows, nil
}

func (m *memStore) PolicyStats(_ context.Context, tenant, policyID string, from, to time.Time) (index.PolicyStats, error) {
	m.data.mu.RLock()
	defer m.data.mu.RUnlock()
	return ReferencePolicyStats(m.data.entries, tenant, policyID, from, to), nil
}

func (m *memStore) LookupMany(_ context.Context, keys []index.Key) (map[index.Key]index.Ref, error) {
	m.data.mu.RLock()
	defer m.data.mu.RUnlock()
	out := map[index.Key]index.Ref{}
	for _, k := range keys {
		if e, ok := m.data.byKey[[2]string{k.Tenant, k.ID}]; ok {
			out[k] = index.Ref{Tenant: k.Tenant, ID: k.ID, Index: e.Index, RecordHash: e.RecordHash}
		}
	}
	return out, nil
}

func (m *memStore) Close() error { return nil }

// row decodes e's canonical bytes, as a driver that stores only bytes would.
func row(e index.Entry) (index.Row, error) {
	r := index.Row{Index: e.Index, Canonical: e.Canonical, RecordHash: e.RecordHash}
	err := json.Unmarshal(e.Canonical, &r.Record)
	return r, err
}
