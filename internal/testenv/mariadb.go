package testenv

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// The database Trillian uses inside each private MariaDB.
const (
	trillianDB       = "trillian"
	trillianUser     = "trillian"
	trillianPassword = "trillian"
	// templateFormat changes whenever the template's contents or the flags below change, so
	// an old cached template is never reused.
	templateFormat = "2"
)

// mariaDBBins are the MariaDB programs testenv runs.
type mariaDBBins struct {
	server, installDB, client string
}

// ensureMariaDB finds MariaDB, installing it from Debian packages (scripts/deps-trillian.sh,
// which needs root) when it is missing. Without it the Trillian tests cannot run, and they fail
// saying so rather than skip.
func ensureMariaDB(t testing.TB) mariaDBBins {
	t.Helper()
	find := func() (mariaDBBins, error) {
		var b mariaDBBins
		var err error
		if b.server, err = lookBin("mariadbd"); err != nil {
			return b, err
		}
		if b.installDB, err = lookBin("mariadb-install-db"); err != nil {
			return b, err
		}
		b.client, err = lookBin("mariadb")
		return b, err
	}
	if b, err := find(); err == nil {
		return b
	}
	withCacheLock(t, func(string) {
		if _, err := find(); err == nil {
			return // another test binary installed it while we waited
		}
		root, err := repoRoot()
		if err != nil {
			t.Fatal(err)
		}
		script := filepath.Join(root, "scripts", "deps-trillian.sh")
		t.Logf("testenv: MariaDB is missing; running %s", script)
		out, err := exec.Command("bash", script).CombinedOutput()
		if err != nil {
			t.Fatalf("testenv: MariaDB is required for the Trillian tests and could not be installed "+
				"(run scripts/deps-trillian.sh as root, or apt-get install mariadb-server-core mariadb-client-core): %v\n%s", err, out)
		}
	})
	b, err := find()
	if err != nil {
		t.Fatalf("testenv: MariaDB still missing after installing it: %v", err)
	}
	return b
}

// serverArgs are the flags of every private mariadbd. --no-defaults (which must come first)
// keeps any system-wide my.cnf out. The settings are durable ones — InnoDB flushes its redo log
// at every commit, as in production — so benchmarks measure real group commits; only memory is
// trimmed for small test machines.
func serverArgs(datadir, socket string) []string {
	u := "root"
	if cur, err := user.Current(); err == nil {
		u = cur.Username
	}
	return []string{
		"--no-defaults",
		"--datadir=" + datadir,
		"--socket=" + socket,
		"--user=" + u,
		"--skip-name-resolve",
		"--skip-log-bin",
		"--innodb-flush-log-at-trx-commit=1",
		"--innodb-buffer-pool-size=64M",
		"--innodb-log-file-size=16M",
		"--max-connections=300",
	}
}

// mariaDBTemplate returns a MariaDB data directory, initialised with mariadb-install-db and
// holding Trillian's database, user and schema, built once per (MariaDB, schema) and cached:
// each stack copies it (tens of milliseconds) instead of initialising its own (seconds).
func mariaDBTemplate(t testing.TB, bins mariaDBBins, schema []byte) string {
	t.Helper()
	ver, err := exec.Command(bins.server, "--version").Output()
	if err != nil {
		t.Fatalf("testenv: mariadbd --version: %v", err)
	}
	h := sha256.New()
	for _, part := range [][]byte{[]byte(templateFormat), ver, schema} {
		fmt.Fprintf(h, "%d:", len(part))
		h.Write(part)
	}
	key := hex.EncodeToString(h.Sum(nil))[:16]
	var dir string
	withCacheLock(t, func(cache string) {
		dir = filepath.Join(cache, "mariadb-"+key)
		if _, err := os.Stat(filepath.Join(dir, "ready")); err == nil {
			return
		}
		start := time.Now()
		if err := buildTemplate(bins, dir, schema); err != nil {
			t.Fatalf("testenv: MariaDB template: %v", err)
		}
		t.Logf("testenv: initialised the MariaDB template with Trillian's schema in %v", time.Since(start).Round(time.Millisecond))
	})
	return filepath.Join(dir, "data")
}

// buildTemplate initialises dir/data in a scratch dir and renames it into place, so a crash
// half-way leaves no template that looks ready.
func buildTemplate(bins mariaDBBins, dir string, schema []byte) error {
	tmp := dir + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	datadir := filepath.Join(tmp, "data")
	sockDir, err := os.MkdirTemp("", "lineage-mdb-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(sockDir)
	socket := filepath.Join(sockDir, "mysqld.sock")
	args := serverArgs(datadir, socket)
	install := append(args[:len(args):len(args)], "--auth-root-authentication-method=normal", "--skip-test-db")
	if out, err := exec.Command(bins.installDB, install...).CombinedOutput(); err != nil {
		return fmt.Errorf("mariadb-install-db: %v\n%s", err, out)
	}
	p, err := startProc("mariadbd (template)", filepath.Join(tmp, "mariadbd.log"), bins.server,
		append(args, "--skip-networking", "--log-error="+filepath.Join(tmp, "mariadbd.err"))...)
	if err != nil {
		return err
	}
	defer p.stop(30 * time.Second)
	if err := waitUnix(socket, p, time.Minute); err != nil {
		return fmt.Errorf("%v\n%s", err, readTail(filepath.Join(tmp, "mariadbd.err")))
	}
	setup := fmt.Sprintf("CREATE DATABASE %s; CREATE USER '%s'@'127.0.0.1' IDENTIFIED BY '%s'; GRANT ALL ON %s.* TO '%s'@'127.0.0.1';",
		trillianDB, trillianUser, trillianPassword, trillianDB, trillianUser)
	client := []string{"--no-defaults", "--socket=" + socket, "--user=root"}
	if out, err := exec.Command(bins.client, append(client, "-e", setup)...).CombinedOutput(); err != nil {
		return fmt.Errorf("create Trillian database: %v\n%s", err, out)
	}
	load := exec.Command(bins.client, append(client, trillianDB)...)
	load.Stdin = bytes.NewReader(schema)
	if out, err := load.CombinedOutput(); err != nil {
		return fmt.Errorf("load Trillian schema: %v\n%s", err, out)
	}
	// A clean shutdown flushes InnoDB, so copies of the directory start without recovery.
	p.stop(time.Minute)
	if err := os.Rename(tmp, dir); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "ready"), nil, 0o644)
}

// mariaDB is one private mariadbd serving Trillian's database on loopback.
type mariaDB struct {
	port   int
	socket string
	client string
	proc   *proc
}

// dsn is Trillian's --mysql_uri for this server.
func (m *mariaDB) dsn() string {
	return fmt.Sprintf("%s:%s@tcp(127.0.0.1:%d)/%s", trillianUser, trillianPassword, m.port, trillianDB)
}

// startMariaDB copies the template into a test temp dir and starts mariadbd on it, listening on a
// free loopback port (and a private socket); no system service or system datadir is touched.
func startMariaDB(t testing.TB, bins mariaDBBins, template string) *mariaDB {
	t.Helper()
	dir := t.TempDir()
	datadir := filepath.Join(dir, "data")
	if out, err := exec.Command("cp", "-a", template, datadir).CombinedOutput(); err != nil {
		t.Fatalf("testenv: copy MariaDB template: %v\n%s", err, out)
	}
	// Unix socket paths are limited to 108 bytes; test temp dirs named after long subtests can
	// exceed that, so the socket lives in a short dir of its own.
	sockDir, err := os.MkdirTemp("", "lineage-mdb-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	m := &mariaDB{port: freePort(t), socket: filepath.Join(sockDir, "mysqld.sock"), client: bins.client}
	args := append(serverArgs(datadir, m.socket),
		"--port="+strconv.Itoa(m.port), "--bind-address=127.0.0.1",
		"--log-error="+filepath.Join(dir, "mariadbd.err"), "--pid-file="+filepath.Join(dir, "mariadbd.pid"))
	m.proc, err = startProc("mariadbd", filepath.Join(dir, "mariadbd.log"), bins.server, args...)
	if err != nil {
		t.Fatal(err)
	}
	// The data is thrown away with the temp dir, so there is nothing to shut down cleanly.
	t.Cleanup(func() { m.proc.stop(0) })
	if err := waitTCP(net.JoinHostPort("127.0.0.1", strconv.Itoa(m.port)), m.proc, time.Minute); err != nil {
		t.Fatalf("testenv: %v\n%s", err, readTail(filepath.Join(dir, "mariadbd.err")))
	}
	return m
}

// sql runs statements as the database's root user and returns the tab-separated output.
func (m *mariaDB) sql(query string) (string, error) {
	out, err := exec.Command(m.client, "--no-defaults", "--socket="+m.socket, "--user=root",
		"--batch", "--skip-column-names", trillianDB, "-e", query).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%v: %s", err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// waitUnix waits until the unix socket accepts connections.
func waitUnix(socket string, p *proc, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("unix", socket, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if p.exited() {
			return fmt.Errorf("%s exited before listening on %s", p.name, socket)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not listening on %s after %v: %w", p.name, socket, timeout, err)
		}
		time.Sleep(15 * time.Millisecond)
	}
}

func readTail(path string) string {
	p := &proc{logPath: path}
	return p.tail(30)
}
