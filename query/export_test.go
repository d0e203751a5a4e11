package query

import (
	"context"

	"github.com/lineage-audit/lineage/ledger"
)

// Leaves exposes API.leaves to the external tests, with bundlesPerReader readers set to per.
func Leaves(ctx context.Context, lg ledger.Log, idx []uint64, size uint64, per int) ([][]byte, error) {
	old := bundlesPerReader
	bundlesPerReader = per
	defer func() { bundlesPerReader = old }()
	return (&API{Log: lg}).leaves(ctx, idx, size)
}

// InclusionProofsAndLeafHashes exposes inclusionProofs with leaf hashes to the external tests,
// with tilesPerWorker tiles per proof-building goroutine set to per.
func InclusionProofsAndLeafHashes(ctx context.Context, lg ledger.Log, idx []uint64, size uint64, per int) ([][][]byte, [][]byte, error) {
	old := tilesPerWorker
	tilesPerWorker = per
	defer func() { tilesPerWorker = old }()
	return inclusionProofs(ctx, lg, idx, size, true)
}
