package clickhouse

import (
	"testing"
	"time"

	"github.com/lineage-audit/lineage/query/index/indextest"
)

func TestApplyPhases(t *testing.T) {
	ts := startServer(t)
	es := indextest.GenerateRecords(1, 40000)
	for _, size := range []int{1000, 4000, 10000} {
		s := ts.fresh(t)
		ctx := t.Context()
		var pos, dup, ins, wpos time.Duration
		bs := indextest.Batches(es, size)
		for _, b := range bs {
			t0 := time.Now()
			s.readPosition(ctx)
			t1 := time.Now()
			if err := s.checkDuplicates(ctx, b); err != nil {
				t.Fatal(err)
			}
			t2 := time.Now()
			if err := s.insertRecords(ctx, b.Entries); err != nil {
				t.Fatal(err)
			}
			t3 := time.Now()
			s.writePosition(ctx, b.To)
			t4 := time.Now()
			pos += t1.Sub(t0)
			dup += t2.Sub(t1)
			ins += t3.Sub(t2)
			wpos += t4.Sub(t3)
		}
		n := time.Duration(len(bs))
		t.Logf("size %d per batch: position %v dup %v insert %v writepos %v; %.0f rec/s", size, pos/n, dup/n, ins/n, wpos/n,
			float64(len(es))/(pos+dup+ins+wpos).Seconds())
	}
}
