// Package testenv starts real external servers for tests: Lineage's tests run against the real
// engines, never mocks (docs/ARCHITECTURE.md, "Testing"). Each Start function brings up a private
// instance on free loopback ports and tears it down with the test: StartTrillian runs a private
// MariaDB plus Trillian's log server and signer, StartClickHouse a ClickHouse server,
// StartOIDCProvider an OpenID provider process (internal/testenv/oidcop), and StartWitness a
// C2SP tlog-witness (torchwood's litewitness, its key in an ssh-agent served by the test).
//
// It is a normal (non-_test) package so that the tests of every package (ledger/trillian, ingest,
// the end-to-end tests) can share it. Expensive preparation is done once per machine and cached
// under CacheDir, guarded by a file lock, because `go test ./...` runs several test binaries at
// once: Trillian's binaries are built from the module version pinned in go.mod (litewitness from
// the torchwood version pinned in witness.go), and a MariaDB data directory with Trillian's
// schema loaded is initialised once and copied for each stack.
package testenv

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// CacheDir is where built binaries and data templates are kept across test runs:
// $LINEAGE_TESTENV_CACHE if set, else "lineage-testenv" beside Go's build cache.
func CacheDir() (string, error) {
	if d := os.Getenv("LINEAGE_TESTENV_CACHE"); d != "" {
		return d, os.MkdirAll(d, 0o755)
	}
	out, err := goCmd("env", "GOCACHE").Output()
	base := strings.TrimSpace(string(out))
	if err != nil || base == "" || base == "off" {
		if base, err = os.UserCacheDir(); err != nil {
			return "", fmt.Errorf("testenv: no cache dir: %w", err)
		}
		base = filepath.Join(base, "go-build")
	}
	d := filepath.Join(filepath.Dir(base), "lineage-testenv")
	return d, os.MkdirAll(d, 0o755)
}

// withCacheLock runs f holding an exclusive lock on the cache dir, so that parallel test
// binaries build and initialise each cached thing once; the others wait and then reuse it.
func withCacheLock(t testing.TB, f func(cache string)) {
	t.Helper()
	cache, err := CacheDir()
	if err != nil {
		t.Fatal(err)
	}
	lf, err := os.OpenFile(filepath.Join(cache, "lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatalf("testenv: cache lock: %v", err)
	}
	defer lf.Close() // releases the lock
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatalf("testenv: cache lock: %v", err)
	}
	f(cache)
}

// goCmd runs the go command. `go test` puts its own GOROOT/bin first in PATH, so this is the
// toolchain running the tests.
func goCmd(args ...string) *exec.Cmd {
	return exec.Command("go", args...)
}

// moduleInfo is the part of `go list -m -json` testenv uses.
type moduleInfo struct {
	Path, Version, Dir, GoMod string
	Main                      bool
}

// module returns the build-list entry of path in the module under test, downloading it if the
// module cache lacks it.
func module(path string) (moduleInfo, error) {
	var m moduleInfo
	out, err := goCmd("list", "-m", "-json", path).Output()
	if err == nil {
		err = json.Unmarshal(out, &m)
	}
	if err == nil && m.Dir == "" {
		out, err = goCmd("mod", "download", "-json", path).Output()
		if err == nil {
			err = json.Unmarshal(out, &m)
		}
	}
	if err != nil {
		return m, fmt.Errorf("testenv: module %s: %w%s", path, err, stderrOf(err))
	}
	if m.Dir == "" || m.Version == "" {
		return m, fmt.Errorf("testenv: module %s is not in the build list of the module under test", path)
	}
	return m, nil
}

// repoRoot is the directory of the main module (where scripts/ lives).
func repoRoot() (string, error) {
	out, err := goCmd("env", "GOMOD").Output()
	gomod := strings.TrimSpace(string(out))
	if err != nil || gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("testenv: not inside the Lineage module (GOMOD=%q): %v", gomod, err)
	}
	return filepath.Dir(gomod), nil
}

func stderrOf(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) && len(ee.Stderr) > 0 {
		return ": " + string(bytes.TrimSpace(ee.Stderr))
	}
	return ""
}

// freePort returns a loopback TCP port that was free a moment ago. The tiny window before the
// server binds it is accepted; every server here fails loudly if the port was taken.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// waitTCP waits until addr accepts connections, the process exits, or timeout passes.
func waitTCP(addr string, p *proc, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if p.exited() {
			return fmt.Errorf("%s exited before listening on %s", p.name, addr)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not listening on %s after %v: %w", p.name, addr, timeout, err)
		}
		time.Sleep(15 * time.Millisecond)
	}
}

// lookBin finds a binary in PATH or the sbin directories (non-root PATHs often lack them).
func lookBin(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found", name)
}

// installModuleBinaries returns the paths of the commands names (module/cmd/NAME) of module at
// version, building them into the cache directory cacheSubdir on first use, under the cache
// lock. `go install module/cmd/NAME@version` runs outside any module, so it builds with the
// module's own go.mod, exactly as released, independent of Lineage's build list; CGO is off.
// Each binary is renamed into place when built: a binary at its final path is complete.
func installModuleBinaries(t testing.TB, cacheSubdir, module, version string, names ...string) []string {
	t.Helper()
	paths := make([]string, len(names))
	withCacheLock(t, func(cache string) {
		dir := filepath.Join(cache, cacheSubdir)
		missing := false
		for i, n := range names {
			paths[i] = filepath.Join(dir, n)
			if _, err := os.Stat(paths[i]); err != nil {
				missing = true
			}
		}
		if !missing {
			return
		}
		start := time.Now()
		t.Logf("testenv: building %s %s (%s) (once per machine; takes a minute or more)", module, version, strings.Join(names, ", "))
		tmp, err := os.MkdirTemp(cache, "build-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(tmp)
		args := []string{"install"}
		for _, n := range names {
			args = append(args, module+"/cmd/"+n+"@"+version)
		}
		cmd := goCmd(args...)
		cmd.Dir = tmp // outside any module: built with the module's own go.mod
		cmd.Env = append(os.Environ(), "GOBIN="+tmp, "CGO_ENABLED=0", "GOFLAGS=-trimpath", "GOWORK=off")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("testenv: build %s %s: %v\n%s", module, version, err, out)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, n := range names {
			if err := os.Rename(filepath.Join(tmp, n), paths[i]); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("testenv: built %s %s in %v", module, version, time.Since(start).Round(time.Second))
	})
	return paths
}
