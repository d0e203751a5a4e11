package query_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/lineage-audit/lineage/ledger"
	"github.com/lineage-audit/lineage/query"
	"github.com/lineage-audit/lineage/verify"
)

// TestKeysRoute: GET /v1/keys serves the origin, the current key and the statements, and a
// client that trusts the old key reaches the current one through them.
func TestKeysRoute(t *testing.T) {
	const origin = "lineage.test/keys-route"
	oldS, oldV, _ := ledger.GenerateKey(origin)
	newS, newV, _ := ledger.GenerateKey(origin)
	r, err := ledger.SignRotation(oldS, newS, 3, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer((&query.API{Verifier: newV + "\n", Rotations: [][]byte{r.Note}}).Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/v1/keys")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/keys: %s %s", resp.Status, b)
	}
	k, err := verify.DecodeKeys(b)
	if err != nil {
		t.Fatal(err)
	}
	if k.Origin != origin || k.Current != newV || len(k.Rotations) != 1 {
		t.Fatalf("answer %+v", k)
	}
	var sts [][]byte
	for _, s := range k.Rotations {
		sts = append(sts, []byte(s))
	}
	keys, err := verify.FollowRotations(oldV, sts)
	if err != nil || !slices.Equal(keys, []string{oldV, newV}) {
		t.Fatalf("follow from the old key: %v, %v", keys, err)
	}

	// A log never rotated answers an empty list, not null (the decoder requires the field).
	srv2 := httptest.NewServer((&query.API{Verifier: oldV}).Handler())
	defer srv2.Close()
	resp2, err := http.Get(srv2.URL + "/v1/keys")
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	b2, _ := io.ReadAll(resp2.Body)
	if k, err := verify.DecodeKeys(b2); err != nil || len(k.Rotations) != 0 || k.Current != oldV {
		t.Fatalf("unrotated log: %+v, %v (%s)", k, err, b2)
	}
}
