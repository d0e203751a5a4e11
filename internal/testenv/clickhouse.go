package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// ClickHouseServerPath is the server binary the Debian package installs (release 18.16 on
// bookworm). Tests run this binary with their own configuration; the package's system service
// is never used.
const ClickHouseServerPath = "/usr/sbin/clickhouse-server"

// Timeouts of a test server's life cycle. They are generous because the 2-core test machines are
// shared: the server is normally ready in about 0.2 s and stops in well under a second.
const (
	clickHouseReadyTimeout = 60 * time.Second
	clickHouseStopTimeout  = 15 * time.Second
	// clickHouseStartAttempts bounds retries when the ports picked as free were taken by someone
	// else before the server could bind them.
	clickHouseStartAttempts = 3
)

// ClickHouse is a clickhouse-server child process with its own configuration, data and logs under
// one temporary directory, listening on loopback only.
type ClickHouse struct {
	// Addr is the native-protocol address (host:port) for clickhouse-go; HTTP is not used by
	// Lineage, because clickhouse-go's HTTP handshake needs settings 18.16 lacks.
	Addr string
	// HTTPAddr is the HTTP interface's address, for curl while debugging a test.
	HTTPAddr string
	// Version is what the server answered to SELECT version().
	Version string
	// StartupTime is how long the server took from exec to answering its first query.
	StartupTime time.Duration
	// Dir holds config.xml, users.xml, data/ and log/.
	Dir string

	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has been waited for
	dbSeq  atomic.Int64
	stop   sync.Once
	err    error // the result of Stop
}

// StartClickHouse installs ClickHouse from Debian packages if it is missing, starts a server for
// t under t.TempDir(), waits until it answers a query over the native protocol, and stops it
// (by PID) when t and its subtests have finished. Tests share the one server through
// NewDatabase, which gives each its own database. A failure to start fails the test: the
// ClickHouse tests are meant to run for real in `make test`, never to skip.
func StartClickHouse(t testing.TB) *ClickHouse {
	t.Helper()
	c, err := LaunchClickHouse(context.Background(), t.TempDir())
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("testenv: %v", err)
		}
	})
	t.Logf("testenv: ClickHouse %s on %s, ready in %v", c.Version, c.Addr, c.StartupTime.Round(time.Millisecond))
	return c
}

// LaunchClickHouse is StartClickHouse for callers without a testing.TB, such as a benchmark's
// process-wide index built once and removed in TestMain: the server lives until Stop, and dir
// (which must exist) is left for the caller to remove. The child is also sent SIGKILL when the
// thread that started it exits, so a test binary killed by a timeout does not leave a server
// behind.
func LaunchClickHouse(ctx context.Context, dir string) (*ClickHouse, error) {
	if err := installClickHouse(ctx); err != nil {
		return nil, err
	}
	var err error
	for range clickHouseStartAttempts {
		var c *ClickHouse
		c, err = launchClickHouse(ctx, dir)
		if err == nil {
			return c, nil
		}
		if !errors.Is(err, errClickHousePortTaken) {
			return nil, err
		}
	}
	return nil, err
}

// errClickHousePortTaken reports that the server could not bind a port picked as free: another
// process took it in between, and picking new ports will do.
var errClickHousePortTaken = errors.New("port taken")

// launchClickHouse makes one attempt at starting a server in dir with fresh ports.
func launchClickHouse(ctx context.Context, dir string) (*ClickHouse, error) {
	ipv6 := clickHouseLoopbackIPv6()
	ports, err := clickHouseFreePorts(2)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: pick ports: %w", err)
	}
	// Each attempt gets a fresh directory so a half-started server leaves nothing behind for
	// the next one.
	dir, err = os.MkdirTemp(dir, "clickhouse-")
	if err != nil {
		return nil, fmt.Errorf("clickhouse: %w", err)
	}
	if err := writeClickHouseConfig(dir, ports[0], ports[1], ipv6); err != nil {
		return nil, fmt.Errorf("clickhouse: write config: %w", err)
	}

	c := &ClickHouse{
		Addr:     net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0])),
		HTTPAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1])),
		Dir:      dir,
		exited:   make(chan struct{}),
	}
	c.cmd = exec.Command(ClickHouseServerPath, "--config-file="+filepath.Join(dir, "config.xml"))
	c.cmd.Dir = dir
	// The server logs to files under dir/log; stdout and stderr only carry start-up failures
	// that happen before the logger is configured.
	out, err := os.Create(filepath.Join(dir, "log", "stdout.log"))
	if err != nil {
		return nil, fmt.Errorf("clickhouse: %w", err)
	}
	defer out.Close() // the child holds its own descriptor
	c.cmd.Stdout, c.cmd.Stderr = out, out
	// Pdeathsig: if the test binary dies without running its cleanups (a panic in another
	// goroutine, a -timeout kill), the kernel kills the server instead of leaving it running
	// on a shared machine.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}

	start := time.Now()
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("clickhouse: start %s: %w", ClickHouseServerPath, err)
	}
	var waitErr error
	go func() {
		// This goroutine owns Wait; it ends when the process exits, which Stop or Pdeathsig
		// guarantee.
		waitErr = c.cmd.Wait()
		close(c.exited)
	}()

	version, err := c.waitReady(ctx)
	if err != nil {
		exited := "was killed"
		select {
		case <-c.exited:
			exited = fmt.Sprintf("exited (%v)", waitErr)
		default:
			c.kill()
		}
		logs := c.logTail()
		if bytes.Contains(logs, []byte("Address already in use")) {
			return nil, fmt.Errorf("clickhouse: %w: %s", errClickHousePortTaken, logs)
		}
		return nil, fmt.Errorf("clickhouse: server %s before it was ready: %w\n%s", exited, err, logs)
	}
	c.Version = version
	c.StartupTime = time.Since(start)
	return c, nil
}

// waitReady polls the native port with a real query until the server answers, exits, or the
// timeout passes, and returns the server's version.
func (c *ClickHouse) waitReady(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, clickHouseReadyTimeout)
	defer cancel()
	var last error
	for {
		version, err := c.queryVersion(ctx)
		if err == nil {
			return version, nil
		}
		last = err
		select {
		case <-c.exited:
			return "", fmt.Errorf("not ready: %w", last)
		case <-ctx.Done():
			return "", fmt.Errorf("not ready after %v: %w", clickHouseReadyTimeout, last)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// queryVersion connects once and runs SELECT version(), the same path the index driver takes.
func (c *ClickHouse) queryVersion(ctx context.Context) (string, error) {
	conn, err := c.Connect()
	if err != nil {
		return "", err
	}
	defer conn.Close()
	qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var version string
	if err := conn.QueryRow(qctx, "SELECT version()").Scan(&version); err != nil {
		return "", err
	}
	return version, nil
}

// PID is the server's process id.
func (c *ClickHouse) PID() int { return c.cmd.Process.Pid }

// Connect opens a clickhouse-go connection pool to the server's native port as the default
// user, for tests that need to run SQL of their own. The caller closes it.
func (c *ClickHouse) Connect() (clickhouse.Conn, error) {
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr:        []string{c.Addr},
		DialTimeout: 2 * time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("clickhouse: connect %s: %w", c.Addr, err)
	}
	return conn, nil
}

// DatabaseName returns a database name not used before on this server, without creating it, for
// drivers that create their own database (the index driver does, in its migrations).
func (c *ClickHouse) DatabaseName() string {
	return fmt.Sprintf("test_%d", c.dbSeq.Add(1))
}

// NewDatabase creates a fresh, empty database for t and drops it when t ends, so that one
// server serves many tests without their tables meeting.
func (c *ClickHouse) NewDatabase(t testing.TB) string {
	t.Helper()
	name := c.DatabaseName()
	conn, err := c.Connect()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	defer conn.Close()
	if err := conn.Exec(context.Background(), "CREATE DATABASE "+name); err != nil {
		t.Fatalf("testenv: create database %s: %v", name, err)
	}
	t.Cleanup(func() { c.DropDatabase(t, name) })
	return name
}

// DropDatabase drops a database and its tables, if it exists; a stopped server has nothing left
// to drop, since its data directory goes with the test.
func (c *ClickHouse) DropDatabase(t testing.TB, name string) {
	t.Helper()
	select {
	case <-c.exited:
		return
	default:
	}
	conn, err := c.Connect()
	if err != nil {
		t.Errorf("testenv: %v", err)
		return
	}
	defer conn.Close()
	if err := conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name); err != nil {
		t.Errorf("testenv: drop database %s: %v", name, err)
	}
}

// Stop stops the server by PID: SIGTERM, which lets it finish writing parts and exit cleanly,
// then SIGKILL if it has not exited within clickHouseStopTimeout. It is safe to call more than
// once; later calls return the first call's result.
func (c *ClickHouse) Stop() error {
	c.stop.Do(func() {
		if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			c.err = fmt.Errorf("clickhouse: stop pid %d: %w", c.cmd.Process.Pid, err)
		}
		select {
		case <-c.exited:
		case <-time.After(clickHouseStopTimeout):
			c.kill()
			c.err = fmt.Errorf("clickhouse: pid %d ignored SIGTERM for %v; killed", c.cmd.Process.Pid, clickHouseStopTimeout)
		}
	})
	return c.err
}

// kill sends SIGKILL and waits for the process to be reaped.
func (c *ClickHouse) kill() {
	_ = c.cmd.Process.Kill()
	<-c.exited
}

// logTail returns the end of the server's error log and stdout, for failure messages.
func (c *ClickHouse) logTail() []byte {
	var out []byte
	for _, name := range []string{"stdout.log", "server.err.log"} {
		b, err := os.ReadFile(filepath.Join(c.Dir, "log", name))
		if err != nil {
			continue
		}
		if len(b) > 4000 {
			b = b[len(b)-4000:]
		}
		out = append(out, b...)
	}
	return out
}

// writeClickHouseConfig writes config.xml and users.xml into dir and creates the directories they
// name. The configuration is derived from the Debian package's /etc/clickhouse-server files with
// every path moved under dir, loopback-only listening, no interserver port (no replication in
// tests), no remote_servers/zookeeper/graphite sections, and caches sized for a shared 2-core
// test machine instead of a dedicated server (the defaults reserve 8 GB + 5 GB).
func writeClickHouseConfig(dir string, tcpPort, httpPort int, ipv6 bool) error {
	for _, sub := range []string{"data", "tmp", "user_files", "format_schemas", "log"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return err
		}
	}
	listen := "<listen_host>127.0.0.1</listen_host>"
	if ipv6 {
		listen += "\n    <listen_host>::1</listen_host>"
	}
	config := fmt.Sprintf(`<?xml version="1.0"?>
<!-- Written by internal/testenv for one test run; removed with the test's temporary directory. -->
<yandex>
    <logger>
        <level>warning</level>
        <log>%[1]s/log/server.log</log>
        <errorlog>%[1]s/log/server.err.log</errorlog>
        <size>10M</size>
        <count>1</count>
    </logger>
    %[2]s
    <tcp_port>%[3]d</tcp_port>
    <http_port>%[4]d</http_port>
    <path>%[1]s/data/</path>
    <tmp_path>%[1]s/tmp/</tmp_path>
    <user_files_path>%[1]s/user_files/</user_files_path>
    <format_schema_path>%[1]s/format_schemas/</format_schema_path>
    <users_config>%[1]s/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <max_connections>256</max_connections>
    <max_concurrent_queries>100</max_concurrent_queries>
    <keep_alive_timeout>3</keep_alive_timeout>
    <mark_cache_size>268435456</mark_cache_size>
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
    <mlock_executable>false</mlock_executable>
</yandex>
`, dir, listen, tcpPort, httpPort)
	users := `<?xml version="1.0"?>
<yandex>
    <profiles>
        <default>
            <max_memory_usage>4000000000</max_memory_usage>
            <use_uncompressed_cache>0</use_uncompressed_cache>
            <load_balancing>random</load_balancing>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks>
                <ip>127.0.0.1</ip>
                <ip>::1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
`
	if err := os.WriteFile(filepath.Join(dir, "config.xml"), []byte(config), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "users.xml"), []byte(users), 0o644)
}

// clickHouseLoopbackIPv6 reports whether ::1 can be listened on; containers often run without IPv6, and
// the server refuses to start when a listen_host cannot be bound.
func clickHouseLoopbackIPv6() bool {
	l, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// clickHouseFreePorts returns n distinct TCP ports that were free on 127.0.0.1 a moment ago. The listeners
// are closed before the server binds them, so another process can take one in between; the
// caller retries with new ports when that happens (errClickHousePortTaken).
func clickHouseFreePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close() // held until all are picked, so the n ports differ
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// clickHouseInstallMu makes concurrent tests of one binary wait for a single install.
var clickHouseInstallMu sync.Mutex

// installClickHouse runs scripts/deps-clickhouse.sh when the server binary is missing. The script
// is the one place that knows how to install ClickHouse (the Makefile runs it before the tests
// too); it takes a file lock, so test binaries of several packages running at once install once.
func installClickHouse(ctx context.Context) error {
	clickHouseInstallMu.Lock()
	defer clickHouseInstallMu.Unlock()
	if _, err := os.Stat(ClickHouseServerPath); err == nil {
		return nil
	}
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return errors.New("clickhouse: cannot locate scripts/deps-clickhouse.sh")
	}
	script := filepath.Join(filepath.Dir(file), "..", "..", "scripts", "deps-clickhouse.sh")
	cmd := exec.CommandContext(ctx, script)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("clickhouse: %s: %w\n%s", script, err, out)
	}
	if _, err := os.Stat(ClickHouseServerPath); err != nil {
		return fmt.Errorf("clickhouse: %s ran but %w", script, err)
	}
	return nil
}
