package loadgen

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"syscall"
)

// Usage is what the files of one component of a data dir take on disk.
type Usage struct {
	Files int `json:"files"`
	// Bytes is the sum of the files' sizes; Allocated the blocks the file system gave them
	// (st_blocks × 512, what du counts: more than Bytes for small files, less for sparse ones).
	Bytes     int64 `json:"bytes"`
	Allocated int64 `json:"allocated"`
}

func (u *Usage) add(size, allocated int64) {
	u.Files++
	u.Bytes += size
	u.Allocated += allocated
}

// Plus is the usage of u and v together.
func (u Usage) Plus(v Usage) Usage {
	return Usage{Files: u.Files + v.Files, Bytes: u.Bytes + v.Bytes, Allocated: u.Allocated + v.Allocated}
}

// Disk is a lineaged data dir's disk usage by component, as laid out by internal/service
// (stores.go: LogDir, IndexPath; service.go: the embedded NATS store dir).
type Disk struct {
	// Log is the Tessera POSIX log (<data-dir>/log): entry bundles, tiles, the checkpoint and
	// Tessera's state. LogPartial is the part of Log in partial entry bundles and tiles (files
	// under a "<N>.p/" directory), which Tessera's garbage collector deletes once the full
	// bundle or tile exists, at most a minute later (tessera.DefaultGarbageCollectionInterval).
	Log, LogPartial Usage
	// Index is the SQLite index: index.sqlite plus its -wal and -shm files. IndexWAL is the part
	// in -wal and -shm: the WAL holds pages written since the last checkpoint into the main
	// file, so a page can be counted twice until SQLite checkpoints and reuses the WAL.
	Index, IndexWAL Usage
	// NATS is the embedded JetStream store (<data-dir>/nats); acked messages of the work-queue
	// stream are deleted, but a message block's space may be reclaimed later.
	NATS Usage
	// Other is everything else in the data dir (keys, lock, lineaged's own log file, exports).
	Other Usage
}

// LogIndex is the log and the index together: the figure issue #14's disk goal is about.
func (d Disk) LogIndex() Usage { return d.Log.Plus(d.Index) }

// Total is the whole data dir.
func (d Disk) Total() Usage { return d.LogIndex().Plus(d.NATS).Plus(d.Other) }

// DiskUsage sums the regular files under dataDir by component. Symbolic links are not followed.
// Files that vanish during the walk (Tessera's garbage collector, SQLite's -shm) are skipped.
func DiskUsage(dataDir string) (Disk, error) {
	var d Disk
	logDir := filepath.Join(dataDir, "log")
	natsDir := filepath.Join(dataDir, "nats")
	index := filepath.Join(dataDir, "index.sqlite")
	err := filepath.WalkDir(dataDir, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && path != dataDir {
				return nil
			}
			return err
		}
		if !e.Type().IsRegular() {
			return nil
		}
		info, err := e.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		size, alloc := info.Size(), info.Size()
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			alloc = st.Blocks * 512
		}
		switch {
		case within(path, logDir):
			d.Log.add(size, alloc)
			if partial(path, logDir) {
				d.LogPartial.add(size, alloc)
			}
		case path == index:
			d.Index.add(size, alloc)
		case path == index+"-wal" || path == index+"-shm":
			d.Index.add(size, alloc)
			d.IndexWAL.add(size, alloc)
		case within(path, natsDir):
			d.NATS.add(size, alloc)
		default:
			d.Other.add(size, alloc)
		}
		return nil
	})
	if err != nil {
		return d, fmt.Errorf("loadgen: disk usage of %s: %w", dataDir, err)
	}
	return d, nil
}

func within(path, dir string) bool {
	return strings.HasPrefix(path, dir+string(filepath.Separator))
}

// partial reports whether path (under logDir) is in a partial bundle or tile directory,
// e.g. log/tile/entries/010.p/227 or log/tile/0/x001/010.p/28.
func partial(path, logDir string) bool {
	rel, err := filepath.Rel(logDir, path)
	if err != nil {
		return false
	}
	for _, part := range strings.Split(filepath.Dir(rel), string(filepath.Separator)) {
		if strings.HasSuffix(part, ".p") {
			return true
		}
	}
	return false
}
