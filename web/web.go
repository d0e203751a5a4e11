// Package web is the auditors' user interface: a small static application of hand-written ES
// modules and CSS, embedded in the binary with go:embed, that lineaged serves next to the query
// API (query.API.UI). It fetches nothing from the internet: every script, style and image comes
// from this package, and every piece of data from the public, documented JSON API
// (query/openapi.json), with the caller's own credentials.
//
// The pages hold no data, so they are served without authentication; the data calls they make
// are ordinary authenticated API calls. The browser checks every proof itself with the log key
// the auditor pinned (static/js/verify.js), and treats every record field as hostile text
// (static/js/dom.js).
//
// Routes, all of them GET or HEAD:
//
//	/                  redirects to /ui/
//	/ui/<asset>        a file of static/, with its content type
//	/ui/<view>/...     index.html for the application's deep links (see views)
//
// Every answer carries the strict content security policy CSP: scripts, styles and fetches from
// this origin only, no inline script or style, no eval, no framing.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

// CSP is the content security policy of every UI answer.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// Prefix is where the UI lives.
const Prefix = "/ui/"

//go:embed static
var embedded embed.FS

// views are the first path segments of the application's deep links (static/js/app.js routes
// them); any other path that names no file is a 404, so a mistyped asset is not answered with
// the page.
var views = map[string]bool{
	"": true, "search": true, "users": true, "agents": true, "actions": true, "policies": true,
	"records": true, "findings": true, "log": true, "exports": true, "quarantine": true, "settings": true,
}

// asset is one embedded file, ready to serve.
type asset struct {
	body  []byte
	ctype string
	etag  string
}

// Handler serves the UI: "/" and everything under Prefix. Mount it at the root of the server
// (query.API.UI does).
func Handler() http.Handler {
	sub, err := fs.Sub(embedded, "static")
	if err != nil {
		panic(err) // the embed directive guarantees the directory
	}
	h := &handler{assets: map[string]*asset{}}
	err = fs.WalkDir(sub, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(sub, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		h.assets[p] = &asset{body: b, ctype: contentType(p), etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		return nil
	})
	if err != nil {
		panic(err)
	}
	return h
}

type handler struct {
	assets map[string]*asset
}

// contentType names the type of an embedded file by its extension; browsers refuse module
// scripts of any type but JavaScript, and nosniff makes them trust nothing else.
func contentType(p string) string {
	switch path.Ext(p) {
	case ".js", ".mjs":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".html":
		return "text/html; charset=utf-8"
	case ".json":
		return "application/json"
	case ".svg":
		return "image/svg+xml"
	case ".png":
		return "image/png"
	}
	if t := mime.TypeByExtension(path.Ext(p)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// Headers sets the security headers of a UI answer.
func Headers(h http.Header) {
	h.Set("Content-Security-Policy", CSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	Headers(w.Header())
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p := r.URL.Path
	if p == "/" || p == "/ui" {
		http.Redirect(w, r, Prefix, http.StatusFound)
		return
	}
	rest, ok := strings.CutPrefix(p, Prefix)
	if !ok {
		http.NotFound(w, r)
		return
	}
	a := h.assets[rest]
	if a == nil || rest == "index.html" {
		view, _, _ := strings.Cut(rest, "/")
		if !views[view] {
			http.NotFound(w, r)
			return
		}
		a = h.assets["index.html"]
	}
	// Files are not content-addressed by name, so the browser revalidates each use (a cheap
	// 304 by ETag): an upgraded binary's scripts are never mixed with a cached old verifier.
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("ETag", a.etag) // ServeContent answers If-None-Match with it
	w.Header().Set("Content-Type", a.ctype)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}
