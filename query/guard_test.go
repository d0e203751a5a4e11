package query_test

import (
	"net/http"
	"testing"

	"github.com/lineage-audit/lineage/internal/demo"
)

// TestTilePathsAndSecurityHeaders: malformed tile paths are 404 (they were 500 with an ERROR
// log line), and every answer carries nosniff, a CSP and a frame ban.
func TestTilePathsAndSecurityHeaders(t *testing.T) {
	srv, _, _ := apiRig(t, demo.Generate(demo.Options{Seed: 9, Tenants: 1}, 3))
	for _, tc := range []struct {
		path string
		want int
	}{
		{"/log/tile/0", 404}, {"/log/tile/entries", 404}, {"/log/tile/%00", 404}, {"/log/tile/0/x000", 404},
		{"/log/tile/0/000.p/0", 404}, {"/log/tile/64/000", 404}, {"/log/tile/entries/000.p/3", 200},
		{"/v1/records/%3Cb%3E", 404}, {"/healthz", 200},
	} {
		resp, err := http.Get(srv.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("GET %s: %s, want %d", tc.path, resp.Status, tc.want)
		}
		for h, want := range map[string]string{"X-Content-Type-Options": "nosniff",
			"Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'", "X-Frame-Options": "DENY"} {
			if got := resp.Header.Get(h); got != want {
				t.Errorf("GET %s: %s = %q, want %q", tc.path, h, got, want)
			}
		}
	}
}

// TestHostGuardWithoutAuth: with no credentials configured only loopback names and IP literals
// are served (DNS rebinding).
func TestHostGuardWithoutAuth(t *testing.T) {
	srv, _, _ := apiRig(t, demo.Generate(demo.Options{Seed: 9, Tenants: 1}, 1))
	for host, want := range map[string]int{"attacker.example": 403, "attacker.example:80": 403, "localhost.attacker.example": 403,
		"localhost:1": 200, "LOCALHOST.": 200, "127.0.0.2:9": 200, "[::1]:8080": 200, "10.0.0.1": 200} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/checkpoint", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Host %q: %s, want %d", host, resp.Status, want)
		}
	}
}
