package seal

import (
	"context"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/internal/demo"
)

// The benchmarks measure the ingest and read cost of sealing on the demo stream
// (internal/demo): each record has two sealed fields, /user/id and /action/target (whose
// subject is the user), and the reviewer's id when a human reviewed it. They report process
// CPU time per record (user + system, so SQLite's work counts), the figure the issue asks for:
//
//	go test -run XXX -bench 'Seal|Open|Envelope' -benchtime 4000x ./ledger/seal
//
// "sqlite" uses the real key store (one indexed SELECT and one unwrap per subject key per
// record); "memkeys" keeps the keys in memory, which is the cost of the cryptography and
// encoding alone: the difference is what a key cache in the wiring would save.

const benchRecords = 2000

type benchRecord struct {
	tenant, id string
	canonical  []byte
}

func benchStream(b *testing.B) []benchRecord {
	b.Helper()
	recs := demo.Generate(demo.Options{}, benchRecords)
	out := make([]benchRecord, len(recs))
	for i := range recs {
		c, err := recs[i].Canonical()
		if err != nil {
			b.Fatal(err)
		}
		out[i] = benchRecord{recs[i].Tenant, recs[i].ID, c}
	}
	return out
}

func benchPaths(b *testing.B) *Paths {
	p, err := NewPaths(Path{Pointer: "/action/target", Subject: "/user/id"})
	if err != nil {
		b.Fatal(err)
	}
	return p
}

func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// memKeys is a KeyStore in memory, for the benchmarks' breakdown only.
type memKeys struct {
	mu   sync.Mutex
	keys map[[2]string]KeyID
	byID map[KeyID]*Key
}

func newMemKeys() *memKeys {
	return &memKeys{keys: map[[2]string]KeyID{}, byID: map[KeyID]*Key{}}
}

func (m *memKeys) KeyFor(_ context.Context, tenant, subject string) (KeyID, *Key, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	kid, ok := m.keys[[2]string{tenant, subject}]
	if !ok {
		kid[0], kid[1] = byte(len(m.keys)), byte(len(m.keys)>>8)
		k := new(Key)
		k[0] = byte(len(m.keys))
		m.keys[[2]string{tenant, subject}] = kid
		m.byID[kid] = k
	}
	k := *m.byID[kid]
	return kid, &k, nil
}

func (m *memKeys) Open(_ context.Context, _ string, kid KeyID) (*Key, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k, ok := m.byID[kid]
	if !ok {
		return nil, ErrKeyMissing
	}
	c := *k
	return &c, nil
}

func (m *memKeys) Erase(context.Context, string, string, string) ([]KeyID, error) {
	return nil, ErrNoSubject
}

func benchStores(b *testing.B) map[string]KeyStore {
	return map[string]KeyStore{"memkeys": newMemKeys()}
}

func BenchmarkSeal(b *testing.B) {
	ctx := context.Background()
	stream := benchStream(b)
	paths := benchPaths(b)
	for _, name := range []string{"memkeys"} {
		b.Run(name, func(b *testing.B) {
			store := benchStores(b)[name]
			for _, r := range stream { // keys exist: the steady state of a running tenant
				if _, _, err := Seal(ctx, store, r.tenant, r.id, r.canonical, paths); err != nil {
					b.Fatal(err)
				}
			}
			fields := 0
			b.ResetTimer()
			cpu0 := processCPU(b)
			for i := 0; i < b.N; i++ {
				r := stream[i%len(stream)]
				red, fs, err := Seal(ctx, store, r.tenant, r.id, r.canonical, paths)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := NewEnvelopeV2(red, fs, testTime, false); err != nil {
					b.Fatal(err)
				}
				fields += len(fs)
			}
			b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/record")
			b.ReportMetric(float64(fields)/float64(b.N), "fields/record")
		})
	}
}

func BenchmarkOpen(b *testing.B) {
	ctx := context.Background()
	stream := benchStream(b)
	paths := benchPaths(b)
	for _, name := range []string{"memkeys"} {
		b.Run(name, func(b *testing.B) {
			store := benchStores(b)[name]
			type sealed struct {
				benchRecord
				red    []byte
				fields []Field
			}
			ss := make([]sealed, len(stream))
			for i, r := range stream {
				red, fs, err := Seal(ctx, store, r.tenant, r.id, r.canonical, paths)
				if err != nil {
					b.Fatal(err)
				}
				ss[i] = sealed{r, red, fs}
			}
			b.ResetTimer()
			cpu0 := processCPU(b)
			for i := 0; i < b.N; i++ {
				s := ss[i%len(ss)]
				if _, _, _, err := Open(ctx, store, s.tenant, s.id, s.red, s.fields); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/record")
		})
	}
}

// BenchmarkEnvelope compares decoding a v1 entry (lineage.DecodeEnvelope) with a v2 entry of
// the same record (DecodeEnvelopeV2), and writing them.
func BenchmarkEnvelope(b *testing.B) {
	ctx := context.Background()
	stream := benchStream(b)
	paths := benchPaths(b)
	store := newMemKeys()
	v1 := make([][]byte, len(stream))
	v2 := make([][]byte, len(stream))
	for i, r := range stream {
		v1[i] = lineage.NewEnvelope(r.canonical, testTime, false)
		red, fs, err := Seal(ctx, store, r.tenant, r.id, r.canonical, paths)
		if err != nil {
			b.Fatal(err)
		}
		if v2[i], err = NewEnvelopeV2(red, fs, testTime, false); err != nil {
			b.Fatal(err)
		}
	}
	for _, c := range []struct {
		name    string
		entries [][]byte
		decode  func([]byte) error
	}{
		{"decode-v1", v1, func(e []byte) error { _, err := lineage.DecodeEnvelope(e); return err }},
		{"decode-v2", v2, func(e []byte) error { _, err := DecodeEnvelopeV2(e); return err }},
	} {
		b.Run(c.name, func(b *testing.B) {
			cpu0 := processCPU(b)
			for i := 0; i < b.N; i++ {
				if err := c.decode(c.entries[i%len(c.entries)]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/record")
		})
	}
}
