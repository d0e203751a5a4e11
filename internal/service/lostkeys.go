package service

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/lineage-audit/lineage/ledger"
	"github.com/lineage-audit/lineage/ledger/seal"
	"golang.org/x/mod/sumdb/note"
)

// LostKey is a subject key the log's entries need and the key store has lost: neither the key
// nor a tombstone (docs/ERASURE.md, "Backups and restores").
type LostKey struct {
	Tenant string
	KeyID  seal.KeyID
	// Entries is how many log entries hold a field sealed under it; First is the first one.
	Entries uint64
	First   uint64
}

// lostKeysBatch is how many entries LostKeys reads at a time.
const lostKeysBatch = 1000

// LostKeys reads every entry of the log (lineaged must be stopped: the data dir lock enforces
// it) and returns the subject keys its sealed fields name that the key store has neither as a
// key nor as a tombstone, in log order of their first entry. With declare set it then records
// a tombstone for each (SQLiteStore.DeclareLost, basis recorded), so that their fields read as
// erased and indexing goes on past them. progress is called after every batch.
func LostKeys(ctx context.Context, c Config, v note.Verifier, declare bool, basis string, progress func(done, total uint64)) ([]LostKey, error) {
	c.Defaults()
	if declare && basis == "" {
		return nil, errors.New("lost keys: declaring keys lost needs a basis (what happened, recorded in each tombstone)")
	}
	unlock, err := LockDataDir(c.DataDir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	keys, err := openErasureKeys(ctx, c)
	if err != nil {
		return nil, err
	}
	if keys == nil {
		return nil, fmt.Errorf("lost keys: erasure is off for the log in %s: it has no subject keys", c.DataDir)
	}
	defer keys.Close()
	lg, _, err := openLedger(ctx, c, nil, v, ledgerMode{readOnly: true})
	if err != nil {
		return nil, err
	}
	defer lg.Close(ctx)
	cp, err := lg.Checkpoint(ctx)
	if errors.Is(err, ledger.ErrNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("lost keys: %w", err)
	}
	type ref struct {
		tenant string
		kid    seal.KeyID
	}
	var lost []LostKey
	at := map[ref]int{} // every key checked: its place in lost, or -1 (the store has it)
	for from := uint64(0); from < cp.Size; {
		n := min(lostKeysBatch, cp.Size-from)
		entries, err := lg.Entries(ctx, from, n, cp.Size)
		if err != nil {
			return nil, fmt.Errorf("lost keys: read entries %d-%d: %w", from, from+n-1, err)
		}
		for i, e := range entries {
			idx := from + uint64(i)
			if !seal.IsV2(e) {
				continue
			}
			env, err := seal.DecodeEnvelopeV2(e)
			if err != nil {
				return nil, fmt.Errorf("lost keys: entry %d: %w", idx, err)
			}
			seen := map[seal.KeyID]bool{}
			for _, f := range env.Sealed {
				r := ref{env.Record.Tenant, f.KeyID}
				if seen[f.KeyID] {
					continue
				}
				seen[f.KeyID] = true
				i, ok := at[r]
				if !ok {
					has, err := keys.HasKey(ctx, r.tenant, r.kid)
					if err != nil {
						return nil, fmt.Errorf("lost keys: %w", err)
					}
					_, tomb, err := keys.Tombstone(ctx, r.tenant, r.kid)
					if err != nil {
						return nil, fmt.Errorf("lost keys: %w", err)
					}
					i = -1
					if !has && !tomb {
						i = len(lost)
						lost = append(lost, LostKey{Tenant: r.tenant, KeyID: r.kid, First: idx})
					}
					at[r] = i
				}
				if i >= 0 {
					lost[i].Entries++
				}
			}
		}
		from += n
		if progress != nil {
			progress(from, cp.Size)
		}
	}
	if !declare || len(lost) == 0 {
		return lost, nil
	}
	byTenant := map[string][]seal.KeyID{}
	var tenants []string
	for _, l := range lost {
		if _, ok := byTenant[l.Tenant]; !ok {
			tenants = append(tenants, l.Tenant)
		}
		byTenant[l.Tenant] = append(byTenant[l.Tenant], l.KeyID)
	}
	slices.Sort(tenants)
	for _, t := range tenants {
		if _, err := keys.DeclareLost(ctx, t, byTenant[t], basis); err != nil {
			return lost, fmt.Errorf("lost keys: tenant %s: %w", t, err)
		}
	}
	return lost, nil
}
