// Package tessera is the embedded default ledger driver: a Tessera POSIX log
// (github.com/transparency-dev/tessera/storage/posix) in a directory of the data dir.
//
// The directory is a complete C2SP tlog-tiles log: "checkpoint", "tile/…" and "tile/entries/…"
// can be served as static files (lineaged does, under /log/) and read by any tlog client.
//
// Durability: Tessera POSIX writes every entry bundle, tile and the tree state with O_SYNC and
// fsyncs the directory, and an Add future only resolves after the batch holding the entry has
// been sequenced *and* integrated. So a resolved future means the entry survives a crash; the
// signed checkpoint that commits to it follows within CheckpointInterval.
package tessera

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/lineage-audit/lineage/ledger"
	"github.com/lineage-audit/lineage/ledger/internal/tesseralog"
	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/client"
	"github.com/transparency-dev/tessera/storage/posix"
	"golang.org/x/mod/sumdb/note"
)

// Options configures a Tessera POSIX log.
type Options struct {
	// Dir holds the log. It is created if missing.
	Dir string
	// Signer signs checkpoints; its name is the log origin.
	Signer note.Signer
	// Verifier checks checkpoints read back from disk.
	Verifier note.Verifier
	// BatchMaxSize and BatchMaxAge bound one sequencing batch: one group of fsyncs covers up to
	// BatchMaxSize entries, and an entry waits at most BatchMaxAge for its batch to fill.
	BatchMaxSize uint
	BatchMaxAge  time.Duration
	// CheckpointInterval is how often a new signed checkpoint is published while the log grows.
	CheckpointInterval time.Duration
	// MaxOutstanding bounds entries sequenced but not yet integrated (Tessera pushback).
	MaxOutstanding uint
}

// DefaultOptions returns options tuned for the ingest path: batches of up to 1024 entries
// (one fsync group per batch, docs/ARCHITECTURE.md, "Performance principles") and checkpoints every 250 ms, which bounds the
// publish→queryable latency.
func DefaultOptions(dir string, s note.Signer, v note.Verifier) Options {
	return Options{
		Dir:                dir,
		Signer:             s,
		Verifier:           v,
		BatchMaxSize:       1024,
		BatchMaxAge:        5 * time.Millisecond,
		CheckpointInterval: 250 * time.Millisecond,
		MaxOutstanding:     1 << 16,
	}
}

// Log is a ledger.Log on Tessera POSIX.
type Log struct {
	// dir is the log directory: missing partial tiles of older tree sizes are looked for in
	// it (tiles.go).
	dir    string
	reader tessera.LogReader
	// read serves the checkpoint, entries and proofs from reader (tiles.go); write adds with
	// Tessera's appender (none on a read-only log).
	read  *tesseralog.Reader
	write tesseralog.Writer
}

var _ ledger.Log = (*Log)(nil)

// Open opens (or creates) the log for appending. Only one process may append to a directory
// at a time; Tessera serializes writers with POSIX file locks.
func Open(ctx context.Context, o Options) (*Log, error) {
	if o.Signer == nil || o.Verifier == nil {
		return nil, errors.New("tessera: signer and verifier are required")
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("tessera: create %s: %w", o.Dir, err)
	}
	driver, err := posix.New(ctx, posix.Config{Path: o.Dir})
	if err != nil {
		return nil, fmt.Errorf("tessera: posix %s: %w", o.Dir, err)
	}
	opts := tessera.NewAppendOptions().
		WithCheckpointSigner(o.Signer).
		WithBatching(o.BatchMaxSize, o.BatchMaxAge).
		WithCheckpointInterval(o.CheckpointInterval).
		WithPushback(o.MaxOutstanding)
	// The appender's background goroutines (sequencing, checkpoint publishing) live until Close.
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a, shutdown, r, err := tessera.NewAppender(bg, driver, opts)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("tessera: appender %s: %w", o.Dir, err)
	}
	return newLog(&Log{dir: o.Dir, reader: r, write: tesseralog.Writer{Name: "tessera", Appender: a, Shutdown: shutdown, Cancel: cancel}}, o.Verifier), nil
}

// OpenReadOnly opens an existing log directory for reading only (rebuild-index, offline tools).
// It takes no locks and can run beside a live appender.
func OpenReadOnly(dir string, v note.Verifier) (*Log, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("tessera: open %s: %w", dir, err)
	}
	return newLog(&Log{dir: dir, reader: fileReader{client.FileFetcher{Root: dir}}}, v), nil
}

// Add implements ledger.Log.
func (l *Log) Add(ctx context.Context, entry []byte) ledger.IndexFuture {
	return l.write.Add(ctx, entry)
}

// Size implements ledger.Log.
func (l *Log) Size(ctx context.Context) (uint64, error) {
	n, err := l.reader.IntegratedSize(ctx)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("tessera: size: %w", err)
	}
	return n, nil
}

// Checkpoint implements ledger.Log. The checkpoint file is verified on every read: a file
// altered on disk is reported, never served as if it were ours.
func (l *Log) Checkpoint(ctx context.Context) (ledger.Checkpoint, error) {
	return l.read.Checkpoint(ctx)
}

// Entries implements ledger.Log.
func (l *Log) Entries(ctx context.Context, start, count, treeSize uint64) ([][]byte, error) {
	return l.read.Entries(ctx, start, count, treeSize)
}

// InclusionProof implements ledger.Log. Any treeSize up to the integrated size is served, also
// one whose partial tiles are not on disk (tiles.go).
func (l *Log) InclusionProof(ctx context.Context, index, treeSize uint64) ([][]byte, error) {
	return l.read.InclusionProof(ctx, index, treeSize)
}

// ConsistencyProof implements ledger.Log, for any from ≤ to ≤ the integrated size (tiles.go).
// A proof from size 0, or between equal sizes, is empty.
func (l *Log) ConsistencyProof(ctx context.Context, from, to uint64) ([][]byte, error) {
	return l.read.ConsistencyProof(ctx, from, to)
}

// Close implements ledger.Log: it waits for added entries to be integrated and a checkpoint
// committing to them to be published, then stops the background work.
func (l *Log) Close(ctx context.Context) error {
	return l.write.Close(ctx)
}

// fileReader adapts client.FileFetcher to tessera.LogReader for read-only use.
type fileReader struct{ client.FileFetcher }

func (f fileReader) IntegratedSize(ctx context.Context) (uint64, error) {
	raw, err := f.ReadCheckpoint(ctx)
	if err != nil {
		return 0, err
	}
	// The size of the published checkpoint is what a reader may use; its signature is checked
	// by Checkpoint, which every proof-serving path goes through.
	body, _, _ := bytes.Cut(raw, []byte("\n\n"))
	var cp log.Checkpoint
	if _, err := cp.Unmarshal(append(body, '\n')); err != nil {
		return 0, fmt.Errorf("tessera: parse checkpoint: %w", err)
	}
	return cp.Size, nil
}

func (f fileReader) NextIndex(ctx context.Context) (uint64, error) { return f.IntegratedSize(ctx) }
