package extsort

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
)

func TestSortSpillsAndMerges(t *testing.T) {
	for _, n := range []int{0, 1, 1000, 50_000} {
		dir := t.TempDir()
		s := New(dir, 1<<16) // tiny budget: many runs, and more than maxFanIn for the largest n
		rng := rand.New(rand.NewPCG(1, uint64(n)))
		var want []string
		for i := 0; i < n; i++ {
			line := fmt.Sprintf("%08d-%s", rng.IntN(1_000_000), bytes.Repeat([]byte{'x'}, rng.IntN(40)))
			want = append(want, line)
			if err := s.Add([]byte(line)); err != nil {
				t.Fatal(err)
			}
		}
		slices.Sort(want)
		var got []string
		if err := s.Each(func(l []byte) error { got = append(got, string(l)); return nil }); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("n=%d: sorted output differs (got %d lines, want %d)", n, len(got), len(want))
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if left, _ := os.ReadDir(dir); len(left) != 0 {
			t.Fatalf("n=%d: %d run files left after Close", n, len(left))
		}
	}
}

func TestLongLinesAndNewlines(t *testing.T) {
	s := New(t.TempDir(), 1<<16)
	defer s.Close()
	long := bytes.Repeat([]byte{'a'}, 300_000) // longer than the merge's read buffer
	for i := 0; i < 5; i++ {
		if err := s.Add(append([]byte{byte('0' + i)}, long...)); err != nil {
			t.Fatal(err)
		}
	}
	i := 0
	if err := s.Each(func(l []byte) error {
		if len(l) != len(long)+1 || l[0] != byte('0'+i) {
			return fmt.Errorf("line %d: %d bytes starting %q", i, len(l), l[0])
		}
		i++
		return nil
	}); err != nil || i != 5 {
		t.Fatalf("%v, %d lines", err, i)
	}
	if err := New(t.TempDir(), 0).Add([]byte("a\nb")); err == nil {
		t.Fatal("a line with a newline was accepted")
	}
}
