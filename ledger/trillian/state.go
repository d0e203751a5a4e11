package trillian

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/lineage-audit/lineage/internal/atomicfile"
	"github.com/lineage-audit/lineage/ledger"
	"golang.org/x/mod/sumdb/note"
)

// stateDir is the driver's small local state: the latest signed checkpoint ("checkpoint", the
// signed note exactly as published, so it can be served or inspected as is) and, only until the
// tree's first leaf is integrated, a copy of the entry sent for index 0 ("tree-<id>.leaf0").
//
// With a shared CheckpointStore (Options.Checkpoints) the checkpoint lives there instead, and
// version is the stored version this driver read or wrote last (its compare-and-set base).
type stateDir struct {
	dir  string
	v    note.Verifier
	lock *os.File // flock held while a writer has the dir open; nil for readers

	shared CheckpointStore
	// mu guards version and cached: read-only drivers read the shared checkpoint from every
	// API request at once. cached is the verified checkpoint at version, so a read that finds
	// the same version skips the signature check.
	mu      sync.Mutex
	version uint64
	cached  ledger.Checkpoint
}

const checkpointFile = "checkpoint"

// openStateDir creates dir if needed and, for a writer, takes an exclusive lock on it: two
// drivers signing from one state dir could each sign a root the other never checked.
func openStateDir(dir string, v note.Verifier, writer bool) (*stateDir, error) {
	s := &stateDir{dir: dir, v: v}
	if !writer {
		return s, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("trillian: state dir %s: %w", dir, err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("trillian: state dir lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("trillian: state dir %s is in use by another driver: %w", dir, err)
	}
	s.lock = f
	return s, nil
}

func (s *stateDir) close() {
	if s.lock != nil {
		s.lock.Close() // closing the descriptor releases the flock
		s.lock = nil
	}
}

// readCheckpoint returns the persisted checkpoint, verified with the log's key: a file changed
// on disk, or signed by another key, is an error, never a silent reset of what was committed.
func (s *stateDir) readCheckpoint(ctx context.Context) (ledger.Checkpoint, bool, error) {
	if s.shared != nil {
		raw, version, err := s.shared.Load(ctx)
		if err != nil {
			return ledger.Checkpoint{}, false, fmt.Errorf("trillian: read shared checkpoint: %w", err)
		}
		if raw == nil {
			return ledger.Checkpoint{}, false, nil
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if version == s.version && s.cached.Size > 0 {
			return s.cached, true, nil
		}
		cp, err := ledger.OpenCheckpoint(raw, s.v)
		if err != nil {
			return ledger.Checkpoint{}, false, fmt.Errorf("trillian: shared checkpoint (version %d): %w", version, err)
		}
		s.version, s.cached = version, cp
		return cp, true, nil
	}
	raw, err := os.ReadFile(filepath.Join(s.dir, checkpointFile))
	if errors.Is(err, fs.ErrNotExist) {
		return ledger.Checkpoint{}, false, nil
	}
	if err != nil {
		return ledger.Checkpoint{}, false, fmt.Errorf("trillian: read checkpoint: %w", err)
	}
	cp, err := ledger.OpenCheckpoint(raw, s.v)
	if err != nil {
		return ledger.Checkpoint{}, false, fmt.Errorf("trillian: persisted checkpoint in %s: %w", s.dir, err)
	}
	return cp, true, nil
}

// writeCheckpoint persists a signed checkpoint before it is published.
// With a shared store the write is a compare-and-set on the version read or written last.
func (s *stateDir) writeCheckpoint(ctx context.Context, n []byte) error {
	if s.shared != nil {
		s.mu.Lock()
		defer s.mu.Unlock()
		v, err := s.shared.Store(ctx, n, s.version)
		if err != nil {
			return fmt.Errorf("trillian: store shared checkpoint: %w", err)
		}
		s.version, s.cached = v, ledger.Checkpoint{} // read back and verified on the next read
		return nil
	}
	return atomicfile.WriteFile(filepath.Join(s.dir, checkpointFile), n, 0o600)
}

func (s *stateDir) leaf0Path(treeID int64) string {
	return filepath.Join(s.dir, fmt.Sprintf("tree-%d.leaf0", treeID))
}

// readLeaf0 returns the saved index-0 entry for the tree, if any.
func (s *stateDir) readLeaf0(treeID int64) ([]byte, bool, error) {
	b, err := os.ReadFile(s.leaf0Path(treeID))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("trillian: read index-0 copy: %w", err)
	}
	return b, true, nil
}

// writeLeaf0 saves the entry about to be sent for index 0 (see recoverSize for why).
func (s *stateDir) writeLeaf0(treeID int64, entry []byte) error {
	return atomicfile.WriteFile(s.leaf0Path(treeID), entry, 0o600)
}

func (s *stateDir) removeLeaf0(treeID int64) error {
	if err := os.Remove(s.leaf0Path(treeID)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("trillian: remove index-0 copy: %w", err)
	}
	return nil
}
