package ingest

import (
	"bytes"
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
	if v, ok := reservedString(canon); ok {
		return nil, nil, fmt.Errorf("ingest: record %q: the string %q has the form of an erased value (a sealed token or \"erased:<key id>\"), which readers would show as an erased person", id, v)
	}
	return seal.Seal(ctx, s.Keys, tenant, id, canon, paths)
}

// reservedString finds a JSON string in canon of the two forms readers show as erased (the UI,
// web/static/js/views/common.js): a sealed token ("sealed:" and a commitment) and a findings
// placeholder ("erased:" and a key id). A record of a sealed log may hold neither: a publisher
// could otherwise make a clear value look erased. The canonical form escapes none of their
// characters, so a byte search finds every occurrence.
func reservedString(canon []byte) (string, bool) {
	for _, prefix := range [][]byte{[]byte(`"sealed:`), []byte(`"erased:`)} {
		for rest := canon; ; {
			i := bytes.Index(rest, prefix)
			if i < 0 {
				break
			}
			rest = rest[i+1:]
			j := bytes.IndexByte(rest, '"')
			if j < 0 {
				break
			}
			v := string(rest[:j])
			if seal.IsSealedToken(v) || seal.IsErasedPlaceholder(v) {
				return v, true
			}
		}
	}
	return "", false
}
