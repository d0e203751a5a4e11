// Package extsort sorts more lines than fit in memory: lines are collected up to a memory
// budget, each full buffer is sorted and written to a temporary run file, and the runs are
// merged. The exporters use it to group a million records by use (delegation) and to order the
// uses by time without holding them all.
package extsort

import (
	"bufio"
	"bytes"
	"container/heap"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
)

// maxFanIn bounds the run files merged at once (and so the open files and read buffers).
const maxFanIn = 64

// Sorter sorts lines (byte strings without '\n') in bytes.Compare order. It is not safe for
// concurrent use. Close removes its temporary files.
type Sorter struct {
	dir    string
	maxMem int
	arena  []byte
	spans  [][2]int // [start, end) of each line in arena
	runs   []string
}

// New returns a Sorter that keeps at most maxMem bytes of lines in memory and writes run files
// in dir.
func New(dir string, maxMem int) *Sorter {
	if maxMem < 1<<16 {
		maxMem = 1 << 16
	}
	return &Sorter{dir: dir, maxMem: maxMem}
}

// Add adds a copy of line.
func (s *Sorter) Add(line []byte) error {
	if bytes.IndexByte(line, '\n') >= 0 {
		return errors.New("extsort: line contains a newline")
	}
	if len(s.arena)+len(line) > s.maxMem && len(s.spans) > 0 {
		if err := s.spill(); err != nil {
			return err
		}
	}
	if need := len(s.arena) + len(line); need > cap(s.arena) {
		// Grow by doubling but never past the budget, so the arena stays within maxMem
		// (append's own growth could overshoot it by a quarter).
		c := min(max(2*cap(s.arena), 64<<10), s.maxMem)
		grown := make([]byte, len(s.arena), max(c, need))
		copy(grown, s.arena)
		s.arena = grown
	}
	start := len(s.arena)
	s.arena = append(s.arena, line...)
	s.spans = append(s.spans, [2]int{start, len(s.arena)})
	return nil
}

func (s *Sorter) sortMem() {
	slices.SortFunc(s.spans, func(a, b [2]int) int {
		return bytes.Compare(s.arena[a[0]:a[1]], s.arena[b[0]:b[1]])
	})
}

// spill sorts the buffered lines and writes them to a new run file.
func (s *Sorter) spill() error {
	s.sortMem()
	f, err := os.CreateTemp(s.dir, "run-*")
	if err != nil {
		return fmt.Errorf("extsort: %w", err)
	}
	s.runs = append(s.runs, f.Name())
	w := bufio.NewWriterSize(f, 256<<10)
	for _, sp := range s.spans {
		w.Write(s.arena[sp[0]:sp[1]])
		w.WriteByte('\n')
	}
	err = w.Flush()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("extsort: write run: %w", err)
	}
	s.arena, s.spans = s.arena[:0], s.spans[:0]
	return nil
}

// Each calls fn with every line in sorted order. The slice passed to fn is only valid during
// the call. The Sorter must not be used for Add afterwards.
func (s *Sorter) Each(fn func(line []byte) error) error {
	if len(s.runs) == 0 {
		s.sortMem()
		for _, sp := range s.spans {
			if err := fn(s.arena[sp[0]:sp[1]]); err != nil {
				return err
			}
		}
		return nil
	}
	if len(s.spans) > 0 {
		if err := s.spill(); err != nil {
			return err
		}
	}
	s.arena, s.spans = nil, nil
	// Merge in rounds until one merge can take all runs.
	for len(s.runs) > maxFanIn {
		f, err := os.CreateTemp(s.dir, "run-*")
		if err != nil {
			return fmt.Errorf("extsort: %w", err)
		}
		w := bufio.NewWriterSize(f, 256<<10)
		err = merge(s.runs[:maxFanIn], func(line []byte) error {
			w.Write(line)
			return w.WriteByte('\n')
		})
		if err == nil {
			err = w.Flush()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		for _, r := range s.runs[:maxFanIn] {
			os.Remove(r)
		}
		s.runs = append(s.runs[maxFanIn:], f.Name())
		if err != nil {
			return fmt.Errorf("extsort: merge: %w", err)
		}
	}
	return merge(s.runs, fn)
}

// Close removes the run files.
func (s *Sorter) Close() error {
	var first error
	for _, r := range s.runs {
		if err := os.Remove(r); err != nil && !errors.Is(err, os.ErrNotExist) && first == nil {
			first = err
		}
	}
	s.runs, s.arena, s.spans = nil, nil, nil
	return first
}

// runReader is one run in the merge, with its current line.
type runReader struct {
	r    *bufio.Reader
	f    *os.File
	line []byte
}

// next reads the following line into rr.line; io.EOF at the end.
func (rr *runReader) next() error {
	rr.line = rr.line[:0]
	for {
		chunk, err := rr.r.ReadSlice('\n')
		rr.line = append(rr.line, chunk...)
		switch {
		case err == nil:
			rr.line = rr.line[:len(rr.line)-1]
			return nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(rr.line) > 0:
			return fmt.Errorf("extsort: run %s ends without a newline", rr.f.Name())
		default:
			return err
		}
	}
}

type runHeap []*runReader

func (h runHeap) Len() int           { return len(h) }
func (h runHeap) Less(i, j int) bool { return bytes.Compare(h[i].line, h[j].line) < 0 }
func (h runHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *runHeap) Push(x any)        { *h = append(*h, x.(*runReader)) }
func (h *runHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// merge calls fn with the lines of the sorted run files in order.
func merge(paths []string, fn func([]byte) error) error {
	h := make(runHeap, 0, len(paths))
	defer func() {
		for _, rr := range h {
			rr.f.Close()
		}
	}()
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return fmt.Errorf("extsort: %w", err)
		}
		rr := &runReader{r: bufio.NewReaderSize(f, 64<<10), f: f}
		if err := rr.next(); errors.Is(err, io.EOF) {
			f.Close()
			continue
		} else if err != nil {
			f.Close()
			return err
		}
		h = append(h, rr)
	}
	heap.Init(&h)
	for h.Len() > 0 {
		rr := h[0]
		if err := fn(rr.line); err != nil {
			return err
		}
		if err := rr.next(); errors.Is(err, io.EOF) {
			rr.f.Close()
			heap.Pop(&h)
			continue
		} else if err != nil {
			return err
		}
		heap.Fix(&h, 0)
	}
	return nil
}
