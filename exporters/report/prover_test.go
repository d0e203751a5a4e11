package report

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"
)

// TestProverMatchesReference checks the exporter's proofs byte for byte against the reference
// RFC 6962 tree of transparency-dev/merkle, across block boundaries and partial last blocks.
func TestProverMatchesReference(t *testing.T) {
	ref := testonly.New(rfc6962.DefaultHasher)
	maxN := 3*blockSize + 77
	entries := make([][]byte, maxN)
	for i := range entries {
		entries[i] = []byte(fmt.Sprintf("entry %d", i))
		ref.AppendData(entries[i])
	}
	for _, n := range []int{1, 2, 3, 5, 1023, blockSize, blockSize + 1, 2 * blockSize, 2*blockSize + 513, 3 * blockSize, maxN} {
		p, err := newProver(uint64(n), t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		var cited []uint64
		for i := 0; i < n; i++ {
			// Cite every 7th leaf, the first and the last, and every leaf of small trees.
			if n < 40 || i%7 == 0 || i == n-1 {
				p.cite(uint64(i))
				cited = append(cited, uint64(i))
			}
			if err := p.push(p.leafHash(entries[i])); err != nil {
				t.Fatal(err)
			}
		}
		root, err := p.finish()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(root, ref.HashAt(uint64(n))) {
			t.Fatalf("n=%d: root differs", n)
		}
		pr := p.proofs()
		for _, i := range cited {
			got, err := pr.next(i)
			if err != nil {
				t.Fatalf("n=%d index %d: %v", n, i, err)
			}
			want, _ := ref.InclusionProof(i, uint64(n))
			if len(got) != len(want) {
				t.Fatalf("n=%d index %d: %d hashes, want %d", n, i, len(got), len(want))
			}
			for k := range got {
				if !bytes.Equal(got[k], want[k]) {
					t.Fatalf("n=%d index %d: hash %d differs", n, i, k)
				}
			}
		}
		p.close()
	}
}
