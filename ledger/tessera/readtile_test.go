package tessera_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/lineage-audit/lineage/ledger"
	"github.com/lineage-audit/lineage/ledger/ledgertest"
	"github.com/lineage-audit/lineage/ledger/tessera"
	"github.com/transparency-dev/tessera/api/layout"
)

// TestReadTileInto: ReadTileInto returns what ReadTile returns, for full tiles (read into the
// caller's buffer, which it reuses), partial tiles and a buffer too small (both read by
// ReadTile), and fails like ReadTile on a tile that does not exist; a full tile file of the
// wrong length is refused.
func TestReadTileInto(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	signer, vkey, err := ledger.LoadOrCreateSigner(filepath.Join(t.TempDir(), "log.key"), "lineage.test/readtile")
	if err != nil {
		t.Fatal(err)
	}
	v, _ := ledger.NewVerifier(vkey)
	lg, err := tessera.Open(ctx, tessera.DefaultOptions(dir, signer, v))
	if err != nil {
		t.Fatal(err)
	}
	defer lg.Close(context.Background())
	const n = 700 // tiles 0/0 and 0/1 full, 0/2 partial at width 188; tile 1/0 partial at width 2
	entries := make([][]byte, n)
	for i := range entries {
		entries[i] = fmt.Appendf(nil, "entry %d", i)
	}
	if _, err := ledgertest.AddAll(ctx, lg, entries); err != nil {
		t.Fatal(err)
	}
	if _, err := ledgertest.WaitCheckpoint(ctx, lg, v, n); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 0, 256*32+1)
	for _, c := range []struct {
		level, index uint64
		p            uint8
		buf          []byte
		into         bool // read into buf
	}{
		{0, 0, 0, buf, true}, {0, 1, 0, buf, true}, {0, 2, 188, buf, false}, {0, 2, 100, buf, false},
		{1, 0, 2, buf, false}, {0, 1, 0, make([]byte, 0, 100), false},
	} {
		want, err := lg.ReadTile(ctx, c.level, c.index, c.p)
		if err != nil {
			t.Fatal(err)
		}
		got, err := lg.ReadTileInto(ctx, c.level, c.index, c.p, c.buf)
		if err != nil {
			t.Fatalf("tile %d/%d.p/%d: %v", c.level, c.index, c.p, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("tile %d/%d.p/%d: ReadTileInto differs from ReadTile", c.level, c.index, c.p)
		}
		if shared := len(got) > 0 && &got[0] == &c.buf[:1][0]; shared != c.into {
			t.Fatalf("tile %d/%d.p/%d: read into the buffer %v, want %v", c.level, c.index, c.p, shared, c.into)
		}
	}
	if _, err := lg.ReadTileInto(ctx, 0, 9, 0, buf); err == nil {
		t.Fatal("a tile beyond the log was read")
	}
	// A full tile file cut short is not a tile.
	path := filepath.Join(dir, filepath.FromSlash(layout.TilePath(0, 0, 0)))
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, raw[:len(raw)-1], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := lg.ReadTileInto(ctx, 0, 0, 0, buf); err == nil {
		t.Fatal("a short full tile was read")
	}
}
