package ingest

import (
	"context"
	"fmt"
	"sync"

	"github.com/lineage-audit/lineage/ledger/seal"
)

// ReasonSealFailed: the record is valid but its personal fields could not be sealed (a
// configured path names a value that is not a string, or one the schema constrains).
const ReasonSealFailed = "seal_failed"

// Sealer seals the personal fields of every record of an erasure-enabled log before it is
// appended (docs/ERASURE.md): the entry is the v2 envelope, whose record holds commitments in
// place of the personal values and whose sealed fields hold them encrypted under per-subject
// keys kept in Keys.
type Sealer struct {
	Keys seal.KeyStore
	// Paths returns the sealed paths of a tenant (the defaults plus its configured ones).
	Paths func(tenant string) *seal.Paths

	// mu is held shared by each ingest batch from sealing until its entries are handed to the
	// indexer, and exclusively by an erasure while it destroys a key and pauses the indexer
	// (Lock): so no entry sealed under a destroyed key is handed over after the purge began.
	mu sync.RWMutex
}

// Lock keeps ingest batches from sealing and handing entries over until Unlock.
func (s *Sealer) Lock() { s.mu.Lock() }

// Unlock lets ingest batches run again.
func (s *Sealer) Unlock() { s.mu.Unlock() }

// sealed seals one record's canonical bytes.
func (s *Sealer) seal(ctx context.Context, tenant, id string, canon []byte) ([]byte, []seal.Field, error) {
	paths := s.Paths(tenant)
	if paths == nil {
		return nil, nil, fmt.Errorf("ingest: no sealed paths for tenant %q", tenant)
	}
	return seal.Seal(ctx, s.Keys, tenant, id, canon, paths)
}
