package testenv

import (
	"bytes"
	"sync"
)

// SyncBuffer is a bytes.Buffer several goroutines may write to while a test reads it: a child
// process's output, or a logger's handler shared by HTTP handlers.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
