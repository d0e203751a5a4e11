package web_test

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lineage-audit/lineage/query"
	"github.com/lineage-audit/lineage/web"
)

// TestHandler checks routes, content types and headers of the UI as mounted in the API's gin
// engine, whose guards still run (a foreign Host is refused).
func TestHandler(t *testing.T) {
	h := (&query.API{UI: web.Handler()}).Engine()
	for _, c := range []struct {
		path, host string
		status     int
		ctype      string
	}{
		{"/", "", http.StatusFound, ""},
		{"/ui/", "", http.StatusOK, "text/html; charset=utf-8"},
		{"/ui/users/alice%40example.com?tenant=acme", "", http.StatusOK, "text/html; charset=utf-8"},
		{"/ui/agents/spiffe:%2F%2Fa%2Fb", "", http.StatusOK, "text/html; charset=utf-8"},
		{"/ui/findings?tenant=acme&severity=high&sel=0123", "", http.StatusOK, "text/html; charset=utf-8"},
		{"/ui/js/views/findings.js", "", http.StatusOK, "text/javascript; charset=utf-8"},
		{"/ui/js/app.js", "", http.StatusOK, "text/javascript; charset=utf-8"},
		{"/ui/js/verify.js", "", http.StatusOK, "text/javascript; charset=utf-8"},
		{"/ui/css/app.css", "", http.StatusOK, "text/css; charset=utf-8"},
		{"/ui/js/missing.js", "", http.StatusNotFound, ""},
		{"/ui/nosuchview/x", "", http.StatusNotFound, ""},
		{"/ui/", "evil.example", http.StatusForbidden, ""},
	} {
		req := httptest.NewRequest(http.MethodGet, c.path, nil)
		req.Host = "127.0.0.1:8080"
		if c.host != "" {
			req.Host = c.host
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != c.status {
			t.Errorf("GET %s (host %q): %d, want %d", c.path, c.host, w.Code, c.status)
			continue
		}
		if c.ctype != "" && w.Header().Get("Content-Type") != c.ctype {
			t.Errorf("GET %s: Content-Type %q, want %q", c.path, w.Header().Get("Content-Type"), c.ctype)
		}
		if w.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: no nosniff", c.path)
		}
		if c.status == http.StatusOK {
			if got := w.Header().Get("Content-Security-Policy"); got != web.CSP {
				t.Errorf("GET %s: CSP %q", c.path, got)
			}
			if w.Header().Get("ETag") == "" || w.Header().Get("Cache-Control") != "no-cache" {
				t.Errorf("GET %s: cache headers %v", c.path, w.Header())
			}
		}
	}
}

// TestNoMarkupFromData keeps the scripts free of the DOM sinks that parse markup: data is only
// ever set as text (static/js/dom.js).
func TestNoMarkupFromData(t *testing.T) {
	h := web.Handler()
	// Every script the UI ships, so a new view is covered without editing this list.
	var files []string
	err := filepath.WalkDir("static/js", func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".js") {
			files = append(files, strings.TrimPrefix(filepath.ToSlash(path), "static/js/"))
		}
		return err
	})
	if err != nil || len(files) < 10 {
		t.Fatalf("scripts under static/js: %v, %v", files, err)
	}
	for _, f := range files {
		if f == "verify.js" {
			continue // parses bytes and JSON only; it never touches the DOM
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/ui/js/"+f, nil))
		if w.Code != http.StatusOK {
			t.Fatalf("%s: %d", f, w.Code)
		}
		for _, sink := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "setAttribute(\"style\""} {
			if strings.Contains(w.Body.String(), sink) {
				t.Errorf("%s uses %s", f, sink)
			}
		}
	}
}
