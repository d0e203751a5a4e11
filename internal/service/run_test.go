package service

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
	"k8s.io/klog/v2"
)

func TestDefaultsFillFromDefaultConfig(t *testing.T) {
	var c Config
	c.Defaults()
	d := DefaultConfig()
	if c.DataDir != d.DataDir || c.Ledger != d.Ledger || c.Index != d.Index || c.NATSAddr != d.NATSAddr ||
		c.HTTPAddr != d.HTTPAddr || c.OPAIdentityPath != d.OPAIdentityPath || c.OIDC.RolesClaim != d.OIDC.RolesClaim || c.OIDC.TenantsClaim != d.OIDC.TenantsClaim ||
		c.CheckpointInterval != d.CheckpointInterval || c.BatchSize != d.BatchSize || c.AckWait != d.AckWait ||
		c.HTTPReadHeaderTimeout != d.HTTPReadHeaderTimeout || c.HTTPReadTimeout != d.HTTPReadTimeout ||
		c.HTTPWriteTimeout != d.HTTPWriteTimeout || c.HTTPIdleTimeout != d.HTTPIdleTimeout ||
		c.HTTPMaxConns != d.HTTPMaxConns || c.HTTPMaxInflightBytes != d.HTTPMaxInflightBytes ||
		c.HTTPInflightWait != d.HTTPInflightWait {
		t.Errorf("Defaults of a zero Config = %+v, want DefaultConfig's values %+v", c, d)
	}
	if c.KeyFile != filepath.Join("data", "keys", "log.key") || c.ExportDir != filepath.Join("data", "exports") {
		t.Errorf("derived paths: key %q, exports %q", c.KeyFile, c.ExportDir)
	}
	if !strings.HasPrefix(c.LogOrigin, "lineage.local/") || c.Logger == nil {
		t.Errorf("LogOrigin %q, Logger %v", c.LogOrigin, c.Logger)
	}

	// Set fields stay; derived ones follow DataDir; non-positive limits mean the default.
	c = Config{DataDir: "/d", BatchSize: 7, HTTPAddr: "127.0.0.1:1", HTTPMaxConns: -1, AckWait: -time.Second}
	c.Defaults()
	if c.BatchSize != 7 || c.HTTPAddr != "127.0.0.1:1" || c.KeyFile != "/d/keys/log.key" || c.ExportDir != "/d/exports" ||
		c.HTTPMaxConns != d.HTTPMaxConns || c.AckWait != d.AckWait {
		t.Errorf("Defaults over a set Config = %+v", c)
	}
}

func TestSpawnFailureStopsGroup(t *testing.T) {
	g, gctx := errgroup.WithContext(context.Background())
	// One stopped by its stop function: not a failure.
	stopQuiet := spawn(g, context.Background(), "quiet", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
	// One returning while running: a failure that ends gctx.
	boom := errors.New("boom")
	stopBoom := spawn(g, gctx, "boom", func(context.Context) error { return boom })
	select {
	case <-gctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("a failing goroutine did not cancel the group's context")
	}
	stopQuiet()
	stopBoom()
	stopBoom() // stop is idempotent
	if err := g.Wait(); !errors.Is(err, boom) || err.Error() != "service: boom stopped: boom" {
		t.Fatalf("g.Wait() = %v, want the failure named", err)
	}

	// Returning nil early is a failure too; returning after the context ended is not.
	g, _ = errgroup.WithContext(context.Background())
	spawn(g, context.Background(), "early", func(context.Context) error { return nil })
	if err := g.Wait(); err == nil || !strings.Contains(err.Error(), "early stopped") {
		t.Fatalf("g.Wait() = %v, want an early return reported", err)
	}
}

// servingAddr captures the HTTP address Run logs once it serves.
type servingAddr struct {
	slog.Handler
	addr chan string
}

func (h servingAddr) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "lineaged serving" {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "http" {
				h.addr <- a.Value.String()
			}
			return true
		})
	}
	return h.Handler.Handle(ctx, r)
}

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestRunServesAndStops runs the whole daemon in-process: it serves, and once ctx ends Run
// returns nil with every stage undone (NATS stopped, the data dir unlocked).
func TestRunServesAndStops(t *testing.T) {
	dir := t.TempDir()
	c := testConfig(dir)
	c.NATSAddr = freePort(t)
	addr, stop := startRun(t, c)
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /healthz = %d", resp.StatusCode)
	}
	stop()
	assertUndone(t, dir, c.NATSAddr)
}

// startRun runs the daemon with c until it serves, and returns the HTTP address it serves on and
// stop, which ends it and fails the test unless Run then returns nil within 60s. Run is stopped
// when the test ends in any case. c.Logger's handler (a discarding one if c.Logger is nil) is
// wrapped to learn the address, so what the daemon logs still reaches it.
func startRun(t *testing.T, c Config) (addr string, stop func()) {
	t.Helper()
	var inner slog.Handler = slog.NewTextHandler(io.Discard, nil)
	if c.Logger != nil {
		inner = c.Logger.Handler()
	}
	h := servingAddr{Handler: inner, addr: make(chan string, 1)}
	c.Logger = slog.New(h)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	done := make(chan error, 1)
	go func() { done <- Run(ctx, c) }()
	select {
	case addr = <-h.addr:
	case err := <-done:
		t.Fatalf("Run returned before serving: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("Run did not serve within 60s")
	}
	return addr, func() {
		t.Helper()
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Run after ctx ended = %v, want nil", err)
			}
		case <-time.After(60 * time.Second):
			t.Fatal("Run did not return within 60s of ctx ending")
		}
	}
}

// TestRunUndoesStagesOnServeFailure: the HTTP address is taken, so the last stage fails after
// the stores are open and the workers run; Run returns the error with everything undone.
func TestRunUndoesStagesOnServeFailure(t *testing.T) {
	dir := t.TempDir()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	c := testConfig(dir)
	c.NATSAddr = freePort(t)
	c.HTTPAddr = taken.Addr().String()
	if err := run(t, c); err == nil || !strings.Contains(err.Error(), "service: listen") {
		t.Fatalf("Run with the HTTP address taken = %v, want a listen error", err)
	}
	assertUndone(t, dir, c.NATSAddr)
}

func assertUndone(t *testing.T, dir, natsAddr string) {
	t.Helper()
	if conn, err := net.DialTimeout("tcp", natsAddr, time.Second); err == nil {
		conn.Close()
		t.Error("embedded NATS still listens after Run returned")
	}
	unlock, err := LockDataDir(dir)
	if err != nil {
		t.Fatalf("data dir still locked after Run returned: %v", err)
	}
	unlock()
}

// TestKlogFollowsTheLatestRun: Tessera's klog output goes to the logger of the latest Run, and
// pointing it there is safe while an earlier log still logs (the race detector checks).
func TestKlogFollowsTheLatestRun(t *testing.T) {
	var first, second bytes.Buffer
	routeKlog(slog.New(slog.NewTextHandler(&first, nil)))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 100; i++ {
			klog.InfoS("from an earlier log", "i", i)
		}
	}()
	routeKlog(slog.New(slog.NewTextHandler(&second, nil)))
	<-done
	klog.InfoS("after the second run", "k", "v")
	klog.Flush()
	if !strings.Contains(second.String(), "after the second run") || !strings.Contains(second.String(), "component=tessera") {
		t.Fatalf("klog output did not reach the latest logger with its component:\n%s", second.String())
	}
}
