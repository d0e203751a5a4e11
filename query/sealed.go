package query

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/ledger/seal"
	"github.com/lineage-audit/lineage/query/index"
)

// Decoder turns log entries of both versions into index entries: v1 entries as DecodeEntry
// does, v2 entries (sealed fields, docs/ERASURE.md) by opening them with the key store. The
// zero Decoder (no key store) decodes v1 entries only and fails on v2 with ErrNoKeyStore.
type Decoder struct {
	Keys seal.KeyStore
}

// ErrNoKeyStore: a v2 entry met a reader configured without the erasure key store.
var ErrNoKeyStore = errors.New("query: the log holds sealed (v2) entries but no erasure key store is configured")

// KeyStoreError marks a decoding failure that is the key store's, not the entry's: the key
// store is unreachable, wrong, or incomplete (seal.ErrKeyMissing). Unlike a malformed entry,
// which the indexer counts and skips, it must stop whoever reads: skipping the entry would
// lose it from the index, and showing its fields as erased would be a lie.
type KeyStoreError struct{ Err error }

func (e *KeyStoreError) Error() string { return e.Err.Error() }
func (e *KeyStoreError) Unwrap() error { return e.Err }

// IsKeyStoreError reports whether err is (or wraps) a KeyStoreError.
func IsKeyStoreError(err error) bool {
	var ke *KeyStoreError
	return errors.As(err, &ke)
}

// Decode decodes one log entry at index idx. For a v2 entry, Record and Canonical hold the
// clear record as far as the keys exist (erased fields keep their sealed tokens), RecordHash
// is SHA-256 of those canonical bytes (the hash of the clear record while every key exists,
// which is what ingest compares a redelivery with; of the redacted record once erased, so the
// index keeps no hash a guess could be checked against), and Sealed says which field is which.
func (d Decoder) Decode(ctx context.Context, idx uint64, entry []byte) (index.Entry, error) {
	if !seal.IsV2(entry) {
		return DecodeEntry(idx, entry)
	}
	if d.Keys == nil {
		return index.Entry{}, &KeyStoreError{fmt.Errorf("entry %d: %w", idx, ErrNoKeyStore)}
	}
	env, err := seal.DecodeEnvelopeV2(entry)
	if err != nil {
		return index.Entry{}, fmt.Errorf("entry %d: %w", idx, err)
	}
	rec := env.Record
	clear, _, status, err := seal.Open(ctx, d.Keys, rec.Tenant, rec.ID, env.Canonical, env.Sealed)
	if err != nil {
		if errors.Is(err, seal.ErrIntegrity) {
			return index.Entry{}, fmt.Errorf("entry %d: %w", idx, err)
		}
		return index.Entry{}, &KeyStoreError{fmt.Errorf("entry %d: %w", idx, err)}
	}
	if len(env.Sealed) > 0 && hasClear(status) {
		if rec, err = lineage.DecodeRecord(clear); err != nil {
			return index.Entry{}, fmt.Errorf("entry %d: opened record: %w", idx, err)
		}
	}
	t, err := rec.ParsedTime()
	if err != nil {
		return index.Entry{}, fmt.Errorf("entry %d: %w", idx, err)
	}
	return index.Entry{
		Index:          idx,
		Record:         rec,
		Canonical:      clear,
		RecordHash:     sha256.Sum256(clear),
		Time:           t,
		ReceivedAt:     env.ReceivedAt,
		SourceVerified: env.SourceVerified,
		Sealed:         status,
	}, nil
}

func hasClear(st []seal.FieldStatus) bool {
	for _, s := range st {
		if s.State == seal.Clear {
			return true
		}
	}
	return false
}

// OpenEntry opens a v2 entry for an answer: the clear record as far as the keys exist, the
// openings of its clear fields (which the client checks against the commitments in the leaf)
// and the state of every sealed field. A v1 entry returns its record and no openings.
func (d Decoder) OpenEntry(ctx context.Context, entry []byte) (*lineage.Record, []seal.Opening, []seal.FieldStatus, error) {
	if !seal.IsV2(entry) {
		env, err := lineage.DecodeEnvelope(entry)
		if err != nil {
			return nil, nil, nil, err
		}
		return env.Record, nil, nil, nil
	}
	if d.Keys == nil {
		return nil, nil, nil, &KeyStoreError{ErrNoKeyStore}
	}
	env, err := seal.DecodeEnvelopeV2(entry)
	if err != nil {
		return nil, nil, nil, err
	}
	clear, openings, status, err := seal.Open(ctx, d.Keys, env.Record.Tenant, env.Record.ID, env.Canonical, env.Sealed)
	if err != nil {
		if errors.Is(err, seal.ErrIntegrity) {
			return nil, nil, nil, err
		}
		return nil, nil, nil, &KeyStoreError{err}
	}
	rec := env.Record
	if hasClear(status) {
		if rec, err = lineage.DecodeRecord(clear); err != nil {
			return nil, nil, nil, fmt.Errorf("opened record: %w", err)
		}
	}
	return rec, openings, status, nil
}
