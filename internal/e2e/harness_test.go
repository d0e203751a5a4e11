package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lineage-audit/lineage/internal/testenv"
)

// bins holds the binaries built once for the whole package.
var bins struct{ lineaged, lineagectl string }

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "lineage-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bins.lineaged = filepath.Join(dir, "lineaged")
	bins.lineagectl = filepath.Join(dir, "lineagectl")
	for out, pkg := range map[string]string{bins.lineaged: "../../cmd/lineaged", bins.lineagectl: "../../cmd/lineagectl"} {
		cmd := exec.Command("go", "build", "-o", out, pkg)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build", pkg, err)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// daemon is a lineaged child process.
type daemon struct {
	t        testing.TB
	dataDir  string
	natsAddr string
	httpAddr string
	cmd      *exec.Cmd
	logs     *testenv.SyncBuffer
	done     chan struct{} // closed once the process has exited; err is then how
	err      error
	// expected is set before the test stops the process itself (kill, stop, a fencing check),
	// so that a supervisor can tell those exits from the ones the daemon chose.
	expected atomic.Bool
}

func startDaemon(t testing.TB, dataDir, natsAddr, httpAddr string, extra ...string) *daemon {
	t.Helper()
	d, err := launchDaemon(t, dataDir, natsAddr, httpAddr, extra...)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// launchDaemon starts lineaged and waits for its /healthz. Unlike startDaemon it does not end
// the test, so a goroutine other than the test's may call it.
func launchDaemon(t testing.TB, dataDir, natsAddr, httpAddr string, extra ...string) (*daemon, error) {
	d := &daemon{t: t, dataDir: dataDir, natsAddr: natsAddr, httpAddr: httpAddr, logs: &testenv.SyncBuffer{}, done: make(chan struct{})}
	args := append([]string{"serve", "--data-dir", dataDir, "--nats-addr", natsAddr,
		"--http-addr", httpAddr, "--checkpoint-interval", "100ms", "--log-origin", "lineage.test/e2e"}, extra...)
	d.cmd = exec.Command(bins.lineaged, args...)
	// If the test binary dies (a timeout, a crash), the daemon dies with it instead of lingering.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	d.cmd.Stdout, d.cmd.Stderr = d.logs, d.logs
	if err := d.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { d.err = d.cmd.Wait(); close(d.done) }()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if d.exited() {
			return nil, fmt.Errorf("lineaged exited early: %v\n%s", d.err, d.logs)
		}
		if resp, err := http.Get(d.url("/healthz")); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return d, nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	d.expected.Store(true)
	d.cmd.Process.Kill()
	return nil, fmt.Errorf("lineaged not healthy after 30s\n%s", d.logs)
}

// exited reports whether the process has exited (d.err says how).
func (d *daemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

func (d *daemon) url(path string) string { return "http://" + d.httpAddr + path }

// kill sends SIGKILL: no shutdown code runs, as in a crash or an OOM kill.
func (d *daemon) kill() {
	d.t.Helper()
	d.expected.Store(true)
	_ = d.cmd.Process.Kill()
	<-d.done
}

// stop sends SIGTERM and waits for a clean exit.
func (d *daemon) stop() {
	d.t.Helper()
	d.expected.Store(true)
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
		if d.err != nil {
			d.t.Fatalf("lineaged exited with %v\n%s", d.err, d.logs)
		}
	case <-time.After(60 * time.Second):
		d.cmd.Process.Kill()
		d.t.Fatalf("lineaged did not stop within 60s\n%s", d.logs)
	}
}

func (d *daemon) getJSON(t testing.TB, path string, v any) int {
	t.Helper()
	resp, err := http.Get(d.url(path))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if v != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("GET %s: %v\n%s", path, err, b)
		}
	}
	return resp.StatusCode
}

func (d *daemon) getText(t testing.TB, path string) []byte {
	t.Helper()
	resp, err := http.Get(d.url(path))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", path, resp.Status, b)
	}
	return b
}

// waitIndexed waits until the index holds n log entries.
func (d *daemon) waitIndexed(t *testing.T, n uint64) { t.Helper(); d.waitIndexedFor(t, n, time.Minute) }

// waitIndexedFor waits up to timeout until the index holds n log entries, and fails if it holds
// more (a duplicate), or if it stops growing for 30 s short of n (records lost: redeliveries
// after a crash arrive within the daemon's --ack-wait).
func (d *daemon) waitIndexedFor(t *testing.T, n uint64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	lastPos, lastMove := uint64(0), time.Now()
	var h struct {
		IndexPosition  uint64 `json:"index_position"`
		CheckpointSize uint64 `json:"checkpoint_size"`
	}
	for time.Now().Before(deadline) {
		if d.getJSON(t, "/healthz", &h) == http.StatusOK && h.IndexPosition >= n {
			if h.IndexPosition > n {
				t.Fatalf("index holds %d entries, want exactly %d", h.IndexPosition, n)
			}
			return
		}
		if h.IndexPosition != lastPos {
			lastPos, lastMove = h.IndexPosition, time.Now()
		} else if time.Since(lastMove) > 30*time.Second {
			t.Fatalf("index stalled at %d of %d entries for 30s: %d records lost\n%s", h.IndexPosition, n, n-h.IndexPosition, d.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("index reached %d of %d entries in %s\n%s", h.IndexPosition, n, timeout, d.logs)
}

// getQuiet fetches a URL and returns the body of a 200 answer.
func getQuiet(u string) ([]byte, error) { return getWithin(u, 0) }

// getWithin is getQuiet with a time limit (0: none): a paused daemon accepts connections but
// never answers.
func getWithin(u string, d time.Duration) ([]byte, error) {
	c := http.Client{Timeout: d}
	resp, err := c.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", u, resp.Status, b)
	}
	return b, nil
}

// ctl runs lineagectl and returns its combined output and error.
//
// `publish --demo` runs without the demo's failure modes (internal/demo Options.FailureModes)
// unless the arguments set --failure-modes: the tests compare what lineaged logged with
// demo.Generate's stream, which has none.
func ctl(args ...string) (string, error) {
	if slices.Contains(args, "publish") && slices.Contains(args, "--demo") &&
		!slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--failure-modes") }) {
		args = append(args, "--failure-modes=false")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bins.lineagectl, args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}
