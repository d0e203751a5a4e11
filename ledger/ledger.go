// Package ledger defines ledger.Log, the append-only Merkle transparency log that is the single
// source of truth in Lineage, and the checkpoint and proof code shared by every driver.
//
// Entries are opaque bytes to the log (Lineage puts canonical envelopes in them). Leaves are
// hashed per RFC 6962, so inclusion and consistency proofs from any driver (ledger/tessera,
// ledger/trillian) are checked with the same transparency-dev/merkle code. Checkpoints are C2SP
// signed notes (https://c2sp.org/tlog-checkpoint) signed with the service's Ed25519 key.
package ledger

import (
	"context"
	"errors"
)

// ErrNotFound is returned when asking for entries or proofs beyond the published tree, or for a
// checkpoint before the first one is published.
var ErrNotFound = errors.New("ledger: not found")

// ErrReadOnly is returned by Add on a log opened for reading only.
var ErrReadOnly = errors.New("ledger: log is read-only")

// ErrConflict is returned for an add whose index another writer of the same log had already
// taken (ledger/trillian): the add did not happen, and the log holds entries this writer has
// not seen. A caller that dedupes against an index must let it catch up before retrying.
var ErrConflict = errors.New("ledger: index already holds another entry")

// ErrFenced is returned by a writer that may no longer write: another node took the writer
// role over (internal/ha). What it had not stored is not stored; the caller must stop writing.
var ErrFenced = errors.New("ledger: this writer was fenced off (another node is the writer)")

// IndexFuture resolves to the log index assigned to an added entry. It blocks until the entry
// is durably sequenced (or failed); calling it again returns the same answer.
type IndexFuture func() (uint64, error)

// Checkpoint is a signed commitment to the first Size entries of the log.
type Checkpoint struct {
	Origin string
	Size   uint64
	Hash   []byte
	// Note is the signed note exactly as published; clients verify it with the public key.
	Note []byte
}

// Log is the interface every ledger driver implements.
type Log interface {
	// Add queues one entry and returns a future for its index. Entries added by one goroutine
	// are normally sequenced in the order of the calls, but the index a future returns is what
	// counts: Tessera's queue may sequence a batch it flushed on age after the next one, flushed
	// on size (both are handed to its worker after its lock is released), so callers must not
	// derive indexes from the order of their calls. Callers add a whole batch first and then resolve
	// the futures, so the driver can group many entries into one durable write. Once a future
	// resolves without error a crash cannot lose the entry, and the next published checkpoint
	// commits to it.
	Add(ctx context.Context, entry []byte) IndexFuture
	// Size is the number of durably sequenced entries; it may run ahead of the latest checkpoint.
	Size(ctx context.Context) (uint64, error)
	// Checkpoint returns the latest published signed checkpoint (ErrNotFound before the first).
	Checkpoint(ctx context.Context) (Checkpoint, error)
	// Entries returns count entries starting at start, all below treeSize (a checkpointed size).
	Entries(ctx context.Context, start, count, treeSize uint64) ([][]byte, error)
	// InclusionProof proves entry index is in the tree of size treeSize.
	InclusionProof(ctx context.Context, index, treeSize uint64) ([][]byte, error)
	// ConsistencyProof proves the tree of size from is a prefix of the tree of size to.
	ConsistencyProof(ctx context.Context, from, to uint64) ([][]byte, error)
	// Close waits for added entries to be sequenced and releases the log.
	Close(ctx context.Context) error
}
