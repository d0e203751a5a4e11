package testenv

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// The S3-compatible object store of the tests of ledger/tesseraaws. By default it is
// internal/testenv/s3server: gofakes3 (github.com/johannesboyne/gofakes3) on its on-disk bolt
// backend behind an AWS Signature Version 4 check, a Go module of its own (its go.mod beside its
// main.go) built once per machine in about a minute. LINEAGE_TEST_S3=seaweedfs runs SeaweedFS's
// `weed server` instead (seaweedfs.go; its first build takes about 20 minutes on two cores, so
// it is the manual `make test-seaweedfs` target, not part of `make test`).
const (
	// S3Env selects the S3 server: "gofakes3" (or empty) or "seaweedfs".
	S3Env = "LINEAGE_TEST_S3"
	// s3serverDir is the s3server module, relative to the repository root.
	s3serverDir = "internal/testenv/s3server"
)

// s3StartTimeout bounds how long an S3 server may take to answer S3 requests.
const s3StartTimeout = 90 * time.Second

// The one S3 identity every test server accepts.
const s3KeyID, s3Secret = "lineage-test", "lineage-test-secret"

// S3Server is a running S3-compatible server on loopback with its S3 endpoint at Endpoint.
// Requests must be signed (SigV4, region Region) with the one identity's KeyID and Secret.
type S3Server struct {
	Kind     string // "gofakes3" or "seaweedfs"
	Endpoint string // "http://127.0.0.1:PORT"
	Region   string
	KeyID    string
	Secret   string
	proc     *proc
	dir      string
}

// Tail returns the last n lines of the server's log, for failure messages.
func (s *S3Server) Tail(n int) string { return s.proc.tail(n) }

// StartS3 starts the S3 server LINEAGE_TEST_S3 selects (gofakes3 by default) with a data
// directory in the test's temp dir, waits until it listens and stops it when the test ends.
func StartS3(t testing.TB) *S3Server {
	t.Helper()
	switch kind := os.Getenv(S3Env); kind {
	case "", "gofakes3":
		return startGoFakeS3(t)
	case "seaweedfs":
		return startSeaweedFS(t)
	default:
		t.Fatalf("testenv: %s=%q: want gofakes3 or seaweedfs", S3Env, kind)
		return nil
	}
}

// startGoFakeS3 runs internal/testenv/s3server on a free loopback port, its bolt file in the
// test's temp dir. The identity's credentials reach it in a file (not on its command line).
func startGoFakeS3(t testing.TB) *S3Server {
	t.Helper()
	bin := s3serverBinary(t)
	dir := t.TempDir()
	port := strconv.Itoa(freePort(t))
	s := &S3Server{Kind: "gofakes3", Endpoint: "http://127.0.0.1:" + port, Region: "us-east-1", KeyID: s3KeyID, Secret: s3Secret, dir: dir}
	creds := filepath.Join(dir, "credentials")
	if err := os.WriteFile(creds, []byte(s.KeyID+":"+s.Secret), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := startProc("s3server", filepath.Join(dir, "s3server.log"), bin,
		"-addr=127.0.0.1:"+port, "-db="+filepath.Join(dir, "s3.bolt"), "-region="+s.Region, "-credentials-file="+creds)
	if err != nil {
		t.Fatal(err)
	}
	s.proc = p
	s.await(t, port)
	return s
}

// await stops s's process when the test ends and waits until it listens on port.
func (s *S3Server) await(t testing.TB, port string) {
	t.Helper()
	t.Cleanup(func() { s.proc.stop(10 * time.Second) })
	if err := waitTCP(net.JoinHostPort("127.0.0.1", port), s.proc, s3StartTimeout); err != nil {
		t.Fatalf("testenv: %v\n%s", err, s.proc.tail(40))
	}
}

// s3serverBinary returns internal/testenv/s3server built from the repository's copy, building it
// into the cache on first use. The cache entry is keyed by a hash of the module's go.mod, go.sum
// and main.go, so an edit rebuilds it. The module is built as the main module (GOWORK=off,
// -mod=readonly: go.sum must be complete) with the environment's CGO_ENABLED and no -trimpath,
// the settings of `make lint`'s `go vet` of it: under `make test` every package it needs is then
// already in the Go build cache and the build is a link of about a second.
func s3serverBinary(t testing.TB) string {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(root, s3serverDir)
	h := sha256.New()
	for _, f := range []string{"go.mod", "go.sum", "main.go"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatalf("testenv: s3server source: %v", err)
		}
		fmt.Fprintf(h, "%s %d\n", f, len(b))
		h.Write(b)
	}
	key := hex.EncodeToString(h.Sum(nil))[:16]
	return cachedBinary(t, "s3server-"+key, "s3server", s3serverDir+" (gofakes3; once per machine, about a minute)", func(out string) {
		build := goCmd("build", "-o", out, ".")
		build.Dir = src // its own go.mod: the main module of this build
		build.Env = append(os.Environ(), "GOFLAGS=-mod=readonly -buildvcs=false", "GOWORK=off")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("testenv: build %s: %v\n%s", s3serverDir, err, out)
		}
	})
}
