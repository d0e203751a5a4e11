package sqlitekeys

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/lineage-audit/lineage/ledger/seal"
)

// Tenants lists the tenants that have subject keys, in order: the tenants a retention window
// that applies to every tenant (lineaged --erasure-retention-days) has to look at.
func (s *SQLiteStore) Tenants(ctx context.Context) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT DISTINCT tenant FROM subject_keys ORDER BY tenant")
	if err != nil {
		return nil, fmt.Errorf("seal: tenants: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			return nil, fmt.Errorf("seal: tenants: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("seal: tenants: %w", err)
	}
	return out, nil
}

// erasureTagLabel separates the erasure-tag key from every other use of a tenant's pepper.
const erasureTagLabel = "lineage/seal/v1 erasure tag key\x00"

// ErasureTag authenticates the list of key ids an erasure destroyed, for the erasure's decision
// record: HMAC-SHA256 under a key derived from the tenant's pepper (which is never erased) over
// the tenant and the key ids in order. Only the holder of the key store (and so of the master
// key) can compute it, so a store restored from a backup older than an erasure can re-apply the
// erasures its log records (internal/service/retention.go, reapplyErasures) without trusting a
// record anyone could have published.
func (s *SQLiteStore) ErasureTag(ctx context.Context, tenant string, kids []seal.KeyID) ([]byte, error) {
	p, err := s.pepper(ctx, tenant, true)
	if err != nil {
		return nil, fmt.Errorf("seal: erasure tag: %w", err)
	}
	k := sha256.Sum256(append([]byte(erasureTagLabel), p...))
	h := hmac.New(sha256.New, k[:])
	clear(k[:])
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(tenant)))
	h.Write(n[:])
	h.Write([]byte(tenant))
	for _, kid := range kids {
		h.Write(kid[:])
	}
	return h.Sum(nil), nil
}

// HasKey reports whether tenant still holds the key kid (false: erased or unknown), without
// unwrapping it.
func (s *SQLiteStore) HasKey(ctx context.Context, tenant string, kid seal.KeyID) (bool, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, "SELECT count(*) FROM subject_keys WHERE key_id = ? AND tenant = ?", kid[:], tenant).Scan(&n); err != nil {
		return false, fmt.Errorf("seal: has key: %w", err)
	}
	return n > 0, nil
}

// SubjectKey returns the key id of subject in tenant, if the store holds a key for it, without
// creating one or unwrapping it (the eraser's retention check looks up the records sealed
// under it).
func (s *SQLiteStore) SubjectKey(ctx context.Context, tenant, subject string) (seal.KeyID, bool, error) {
	p, err := s.pepper(ctx, tenant, false)
	if err != nil || p == nil {
		return seal.KeyID{}, false, err
	}
	var kidb []byte
	err = s.db.QueryRowContext(ctx, "SELECT key_id FROM subject_keys WHERE tenant = ? AND subject_mac = ?", tenant, subjectMAC(p, subject)).Scan(&kidb)
	if errors.Is(err, sql.ErrNoRows) {
		return seal.KeyID{}, false, nil
	}
	if err != nil {
		return seal.KeyID{}, false, fmt.Errorf("seal: subject key: %w", err)
	}
	var kid seal.KeyID
	if len(kidb) != seal.KeyIDSize {
		return seal.KeyID{}, false, fmt.Errorf("seal: subject key: key id of %d bytes in the store", len(kidb))
	}
	copy(kid[:], kidb)
	return kid, true, nil
}

// LostBasisPrefix starts the basis of a tombstone DeclareLost records.
const LostBasisPrefix = "key lost, declared by an operator: "

// DeclareLost records tombstones for keys of tenant that the store has lost: ids with neither a
// key nor a tombstone (a restore from a backup older than their first record). Their sealed
// fields then read as erased instead of stopping every reader with ErrKeyMissing. An id whose
// key the store holds is refused; one already tombstoned is skipped. It returns the ids it
// recorded.
func (s *SQLiteStore) DeclareLost(ctx context.Context, tenant string, kids []seal.KeyID, basis string) ([]seal.KeyID, error) {
	if err := checkBasis(basis, ""); err != nil {
		return nil, err
	}
	basis = LostBasisPrefix + basis
	if len(basis) > maxBasisLen {
		return nil, fmt.Errorf("seal: declare lost: basis longer than %d bytes", maxBasisLen-len(LostBasisPrefix))
	}
	var done []seal.KeyID
	defer func() { s.cache.drop(done) }()
	err := s.tx(ctx, func(tx *sql.Tx) error {
		for _, kid := range kids {
			var keys, tombs int
			if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM subject_keys WHERE key_id = ?", kid[:]).Scan(&keys); err != nil {
				return err
			}
			if keys > 0 {
				return fmt.Errorf("key %s is in the store: not lost", kid)
			}
			if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM tombstones WHERE key_id = ?", kid[:]).Scan(&tombs); err != nil {
				return err
			}
			if tombs > 0 {
				continue
			}
			if err := s.insertTombstone(ctx, tx, tenant, kid, basis); err != nil {
				return err
			}
			done = append(done, kid)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("seal: declare lost: %w", err)
	}
	return done, nil
}
