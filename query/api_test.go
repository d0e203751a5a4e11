package query_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/internal/demo"
	"github.com/lineage-audit/lineage/ledger"
	"github.com/lineage-audit/lineage/ledger/ledgertest"
	"github.com/lineage-audit/lineage/ledger/tessera"
	"github.com/lineage-audit/lineage/query"
	"github.com/lineage-audit/lineage/query/index/sqlite"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

// apiRig serves the API over a real Tessera log and SQLite index holding recs.
// testLog opens a real Tessera log (checkpoints every 100 ms) and a SQLite index in a temporary
// directory, with a new log key for origin; both close with the test. It also returns the log's
// verifier, its key string and the log directory (served as tlog-tiles).
func testLog(t *testing.T, origin string) (*tessera.Log, *sqlite.Store, note.Verifier, string, string) {
	t.Helper()
	dir := t.TempDir()
	signer, vkey, err := ledger.LoadOrCreateSigner(filepath.Join(dir, "log.key"), origin)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := ledger.NewVerifier(vkey)
	o := tessera.DefaultOptions(filepath.Join(dir, "log"), signer, v)
	o.CheckpointInterval = 100 * time.Millisecond
	lg, err := tessera.Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lg.Close(context.Background()) })
	store, err := sqlite.Open(context.Background(), filepath.Join(dir, "index.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return lg, store, v, vkey, filepath.Join(dir, "log")
}

// envelopes are the ledger entries of recs, received now.
func envelopes(t *testing.T, recs []lineage.Record) [][]byte {
	t.Helper()
	entries := make([][]byte, len(recs))
	for i, r := range recs {
		c, err := r.Canonical()
		if err != nil {
			t.Fatal(err)
		}
		entries[i] = lineage.NewEnvelope(c, time.Now(), false)
	}
	return entries
}

func apiRig(t *testing.T, recs []lineage.Record) (*httptest.Server, ledger.Log, note.Verifier) {
	t.Helper()
	lg, store, v, vkey, logDir := testLog(t, "lineage.test/api")
	entries := envelopes(t, recs)
	if _, err := ledgertest.AddAll(context.Background(), lg, entries); err != nil {
		t.Fatal(err)
	}
	if _, err := ledgertest.WaitCheckpoint(context.Background(), lg, v, uint64(len(recs))); err != nil {
		t.Fatal(err)
	}
	ix, err := query.NewIndexer(context.Background(), lg, store, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for ix.Position() < uint64(len(recs)) {
		if _, err := ix.Step(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	api := &query.API{Log: lg, Store: store, Verifier: vkey, LogDir: logDir, Gatherer: prometheus.NewRegistry()}
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	return srv, lg, v
}

func TestAPIErrorsAndEdges(t *testing.T) {
	recs := demo.Generate(demo.Options{Seed: 5, Tenants: 2}, 40)
	twin := recs[0]
	twin.Tenant = recs[1].Tenant
	if twin.Tenant == recs[0].Tenant {
		for _, r := range recs {
			if r.Tenant != recs[0].Tenant {
				twin.Tenant = r.Tenant
			}
		}
	}
	recs = append(recs, twin) // same id in two tenants
	srv, _, _ := apiRig(t, recs)
	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	n := len(recs)
	cases := []struct {
		path string
		code int
		body string
	}{
		{"/v1/records/no-such-id", 404, "no record"},
		{"/v1/records/no-such-id?tenant=" + recs[0].Tenant, 404, "no record"},
		{"/v1/records/" + recs[0].ID, 409, "tenants"},
		{"/v1/records/" + recs[0].ID + "?tenant=" + twin.Tenant, 200, `"index":` + fmt.Sprint(n-1)},
		{"/v1/proofs/inclusion?index=5&size=5", 400, "index < size"},
		{fmt.Sprintf("/v1/proofs/inclusion?index=0&size=%d", n+1), 400, "index < size"},
		{"/v1/proofs/inclusion?index=-1&size=5", 400, "non-negative"},
		{"/v1/proofs/consistency?from=6&to=5", 400, "from <= to"},
		{"/v1/proofs/consistency?from=5&to=5", 200, `"proof":[]`},
		{"/v1/lineage/users/x", 400, "tenant"},
		{"/v1/lineage/users/x?tenant=BAD", 400, "tenant"},
		{"/v1/lineage/users/x?tenant=acme&from=yesterday", 400, "RFC 3339"},
		{"/v1/lineage/users/x?tenant=acme&from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", 400, "before"},
		{"/v1/lineage/users/x?tenant=acme&limit=0", 400, "limit"},
		{"/v1/lineage/users/nobody?tenant=acme", 200, `"actions":0`},
		{"/log/checkpoint", 200, "lineage.test/api"},
		{"/log/.state/treeState", 404, ""},
		{"/log/../log.key", 404, ""},
		{"/log/tile/../../log.key", 404, ""},
		{"/v1/schema", 200, "lineage.decision/v1"},
		{"/v1/openapi.json", 200, `"openapi"`},
		{"/metrics", 200, ""},
		{"/healthz", 200, fmt.Sprintf(`"index_position":%d`, n)},
	}
	for _, c := range cases {
		code, body := get(c.path)
		if code != c.code || !strings.Contains(body, c.body) {
			t.Errorf("GET %s = %d %q; want %d containing %q", c.path, code, body, c.code, c.body)
		}
	}

	// A user's tree honours limit, reports truncation, and keeps ids under the checkpoint.
	u := recs[0].User.ID
	var all, two query.UserLineage
	getJSON(t, srv.URL+"/v1/lineage/users/"+u+"?tenant="+recs[0].Tenant, &all)
	getJSON(t, srv.URL+"/v1/lineage/users/"+u+"?tenant="+recs[0].Tenant+"&limit=2", &two)
	if all.Actions < 3 || all.Truncated {
		t.Fatalf("user %s: %d actions, truncated %v", u, all.Actions, all.Truncated)
	}
	if two.Actions != 2 || !two.Truncated {
		t.Fatalf("limit=2: %d actions, truncated %v", two.Actions, two.Truncated)
	}
	if all.CheckpointSize != uint64(n) {
		t.Fatalf("checkpoint_size %d, want %d", all.CheckpointSize, n)
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

// TestAPIProofsAtOlderSizes asks for proofs against tree sizes the log grew past inside one
// batch, whose partial tiles Tessera never wrote: they must answer 200 with proofs
// that verify against the root of that size, and sizes beyond the checkpoint must answer 400.
func TestAPIProofsAtOlderSizes(t *testing.T) {
	recs := demo.Generate(demo.Options{Seed: 13, Tenants: 2}, 700)
	srv, lg, _ := apiRig(t, recs)
	n := uint64(len(recs))
	leaves, err := lg.Entries(context.Background(), 0, n, n)
	if err != nil {
		t.Fatal(err)
	}
	// root(s) is the RFC 6962 root of the first s leaves, computed from the leaves alone.
	root := func(s uint64) []byte {
		r := (&compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}).NewEmptyRange(0)
		for _, e := range leaves[:s] {
			if err := r.Append(ledger.LeafHash(e), nil); err != nil {
				t.Fatal(err)
			}
		}
		if s == 0 {
			return rfc6962.DefaultHasher.EmptyRoot()
		}
		h, err := r.GetRootHash(nil)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	for _, c := range [][2]uint64{{499, 500}, {256, 257}, {100, 700}, {0, 1}, {0, 300}, {299, 300}, {540, 550}, {699, 700}, {255, 256}} {
		var got struct {
			Leaf  []byte   `json:"leaf"`
			Proof [][]byte `json:"proof"`
		}
		getJSON(t, fmt.Sprintf("%s/v1/proofs/inclusion?index=%d&size=%d", srv.URL, c[0], c[1]), &got)
		if !bytes.Equal(got.Leaf, leaves[c[0]]) {
			t.Fatalf("inclusion %d@%d: leaf is not entry %d", c[0], c[1], c[0])
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, c[0], c[1], ledger.LeafHash(got.Leaf), got.Proof, root(c[1])); err != nil {
			t.Fatalf("inclusion %d@%d: %v", c[0], c[1], err)
		}
	}
	for _, c := range [][2]uint64{{500, 700}, {0, 700}, {0, 0}, {1, 1}, {1, 2}, {256, 257}, {257, 300}, {300, 550}, {513, 700}, {700, 700}} {
		var got struct {
			Proof [][]byte `json:"proof"`
		}
		getJSON(t, fmt.Sprintf("%s/v1/proofs/consistency?from=%d&to=%d", srv.URL, c[0], c[1]), &got)
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, c[0], c[1], got.Proof, root(c[0]), root(c[1])); err != nil {
			t.Fatalf("consistency %d→%d: %v", c[0], c[1], err)
		}
	}
	for _, path := range []string{
		"/v1/proofs/inclusion?index=0&size=0",
		fmt.Sprintf("/v1/proofs/inclusion?index=%d&size=%d", n, n),
		fmt.Sprintf("/v1/proofs/inclusion?index=%d&size=%d", n, n+1),
		fmt.Sprintf("/v1/proofs/consistency?from=0&to=%d", n+1),
		fmt.Sprintf("/v1/proofs/consistency?from=%d&to=%d", n+1, n+1),
	} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("GET %s = %d, want 400", path, resp.StatusCode)
		}
	}
}
