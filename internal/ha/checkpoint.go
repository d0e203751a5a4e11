package ha

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/lineage-audit/lineage/ledger/trillian"
	"github.com/nats-io/nats.go/jetstream"
)

// MaxCheckpoint bounds a stored checkpoint (a signed note of a few hundred bytes, with room for
// cosignatures).
const MaxCheckpoint = 64 << 10

// CheckpointStore keeps a cluster's latest signed checkpoint in the CheckpointBucket bucket, one
// key per log (tree), so every node serves the checkpoint the writer signed last and a new
// writer starts from it: its first checkpoint is checked against this one with a consistency
// proof before it is signed (ledger/trillian). It implements trillian.CheckpointStore.
type CheckpointStore struct {
	kv  jetstream.KeyValue
	key string
}

var _ trillian.CheckpointStore = (*CheckpointStore)(nil)

// OpenCheckpointStore creates or opens the bucket with that many replicas; name identifies the
// log within it (for Trillian, the tree id). With replicas 0 it only opens an existing bucket
// and changes nothing (tools such as rebuild-index).
func OpenCheckpointStore(ctx context.Context, js jetstream.JetStream, replicas int, name string) (*CheckpointStore, error) {
	if replicas <= 0 {
		kv, err := js.KeyValue(ctx, CheckpointBucket)
		if err != nil {
			return nil, fmt.Errorf("ha: checkpoint bucket %s (has a lineaged --ha node run on this NATS?): %w", CheckpointBucket, err)
		}
		return &CheckpointStore{kv: kv, key: "log-" + name}, nil
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: CheckpointBucket, Description: "Lineage: the latest signed checkpoint of each log",
		History: 1, Replicas: replicas, Storage: jetstream.FileStorage, MaxValueSize: MaxCheckpoint,
	})
	if err != nil {
		return nil, fmt.Errorf("ha: checkpoint bucket %s: %w", CheckpointBucket, err)
	}
	return &CheckpointStore{kv: kv, key: "log-" + name}, nil
}

// TreeKey is the name OpenCheckpointStore takes for a Trillian tree.
func TreeKey(treeID int64) string { return "trillian-" + strconv.FormatInt(treeID, 10) }

// Load returns the stored checkpoint (nil when there is none yet) and its version for Store.
func (s *CheckpointStore) Load(ctx context.Context) ([]byte, uint64, error) {
	e, err := s.kv.Get(ctx, s.key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("ha: load checkpoint: %w", err)
	}
	return e.Value(), e.Revision(), nil
}

// Store replaces the checkpoint at version (0: there was none) with signed, and returns the new
// version. If the stored checkpoint is no longer at version, another writer stored one since:
// the error wraps trillian.ErrCheckpointMoved and nothing is written.
func (s *CheckpointStore) Store(ctx context.Context, signed []byte, version uint64) (uint64, error) {
	var rev uint64
	var err error
	if version == 0 {
		rev, err = s.kv.Create(ctx, s.key, signed)
	} else {
		rev, err = s.kv.Update(ctx, s.key, signed, version)
	}
	switch {
	case err == nil:
		return rev, nil
	case errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch):
		return 0, fmt.Errorf("ha: store checkpoint: another writer stored a checkpoint since version %d: %w", version, trillian.ErrCheckpointMoved)
	default:
		return 0, fmt.Errorf("ha: store checkpoint: %w", err)
	}
}
