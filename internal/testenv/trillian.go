package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/google/trillian"
	ltrillian "github.com/lineage-audit/lineage/ledger/trillian"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// The signer settings of every test stack. The sequencer interval is short so that tests wait
// little for integration (production keeps Trillian's default of 100 ms or more); the batch size
// is Trillian's default and matches the driver's default batch, so one stored batch is
// integrated in one signer pass.
const (
	SignerInterval  = 50 * time.Millisecond
	SignerBatchSize = 1000
)

// trillianModule is the module whose pinned version (in go.mod) is built and run.
const trillianModule = "github.com/google/trillian"

// Trillian is a running Trillian stack: a private MariaDB, trillian_log_server and
// trillian_log_signer, all on free loopback ports, torn down when the test ends.
type Trillian struct {
	// Addr is trillian_log_server's gRPC address; it serves both the log and the admin API.
	Addr string
	// DSN is the MariaDB connection string Trillian uses (--mysql_uri).
	DSN string
	// Version is the Trillian module version the binaries were built from.
	Version string
	// Startup is how long StartTrillian took, excluding one-time builds cached for later runs.
	Startup time.Duration

	dir        string
	db         *mariaDB
	signerBin  string
	signerArgs []string
	signer     *proc
	server     *proc
}

// StartTrillian starts a fresh Trillian stack for the test. The first call on a machine installs
// MariaDB if needed (as root) and builds Trillian's binaries (a few minutes); later calls, from
// any test binary, reuse them and take well under a second.
func StartTrillian(t testing.TB) *Trillian {
	t.Helper()
	t0 := time.Now()
	bins := ensureMariaDB(t)
	mod, err := module(trillianModule)
	if err != nil {
		t.Fatal(err)
	}
	serverBin, signerBin := trillianBinaries(t, mod.Version)
	schema, err := os.ReadFile(filepath.Join(mod.Dir, "storage", "mysql", "schema", "storage.sql"))
	if err != nil {
		t.Fatalf("testenv: Trillian's MySQL schema: %v", err)
	}
	template := mariaDBTemplate(t, bins, schema)
	prepared := time.Now()

	db := startMariaDB(t, bins, template)
	tr := &Trillian{DSN: db.dsn(), Version: mod.Version, dir: t.TempDir(), db: db, signerBin: signerBin}
	port := freePort(t)
	tr.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	tr.server, err = startProc("trillian_log_server", filepath.Join(tr.dir, "log_server.log"), serverBin,
		"--storage_system=mysql",
		"--quota_system=mysql",
		"--mysql_uri="+tr.DSN,
		"--rpc_endpoint="+tr.Addr,
		"--http_endpoint=", // no metrics listener
		"--tree_gc=false",
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.server.stop(0) })
	tr.signerArgs = []string{
		"--storage_system=mysql",
		"--quota_system=mysql",
		"--mysql_uri=" + tr.DSN,
		"--http_endpoint=",
		"--force_master", // one signer, no election (etcd) needed
		"--pre_election_pause=10ms",
		"--sequencer_interval=" + SignerInterval.String(),
		"--batch_size=" + strconv.Itoa(SignerBatchSize),
		"--num_sequencers=2",
	}
	tr.StartSigner(t)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("testenv: trillian_log_server output (tail):\n%s", tr.server.tail(40))
			if tr.signer != nil {
				t.Logf("testenv: trillian_log_signer output (tail):\n%s", tr.signer.tail(40))
			}
		}
	})
	if err := waitTCP(tr.Addr, tr.server, time.Minute); err != nil {
		t.Fatalf("testenv: %v\n%s", err, tr.server.tail(40))
	}
	if err := tr.ping(); err != nil {
		t.Fatalf("testenv: Trillian is not serving: %v\n%s", err, tr.server.tail(40))
	}
	tr.Startup = time.Since(prepared)
	t.Logf("testenv: Trillian %s up at %s in %v (one-time preparation checks %v)", tr.Version, tr.Addr,
		tr.Startup.Round(time.Millisecond), prepared.Sub(t0).Round(time.Millisecond))
	return tr
}

// ping lists trees through the admin API: it proves the server reaches MariaDB and the schema.
func (tr *Trillian) ping() error {
	conn, err := grpc.NewClient(tr.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = trillian.NewTrillianAdminClient(conn).ListTrees(ctx, &trillian.ListTreesRequest{}, grpc.WaitForReady(true))
	return err
}

// CreateTree creates a fresh PREORDERED_LOG tree with the driver's CreateTree, as
// `lineagectl trillian create-tree` does.
func (tr *Trillian) CreateTree(t testing.TB) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id, err := ltrillian.CreateTree(ctx, tr.Addr, ltrillian.TreeOptions{DisplayName: "test"})
	if err != nil {
		t.Fatalf("testenv: create tree: %v", err)
	}
	return id
}

// SQL runs statements against Trillian's database as its root user and returns the output
// (tab-separated rows, no header). Tests use it to play a tampering or rolled-back database.
func (tr *Trillian) SQL(t testing.TB, query string) string {
	t.Helper()
	out, err := tr.db.sql(query)
	if err != nil {
		t.Fatalf("testenv: SQL %q: %v", query, err)
	}
	return out
}

// StopSigner kills trillian_log_signer: leaves added afterwards are stored but not integrated,
// the state a crash or a signer outage leaves behind.
func (tr *Trillian) StopSigner(t testing.TB) {
	t.Helper()
	if tr.signer != nil {
		tr.signer.stop(0)
		tr.signer = nil
	}
}

// StartSigner starts trillian_log_signer (again) on a free port.
func (tr *Trillian) StartSigner(t testing.TB) {
	t.Helper()
	if tr.signer != nil {
		return
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	p, err := startProc("trillian_log_signer", filepath.Join(tr.dir, fmt.Sprintf("log_signer.%d.log", time.Now().UnixNano())),
		tr.signerBin, append(tr.signerArgs, "--rpc_endpoint="+addr)...)
	if err != nil {
		t.Fatal(err)
	}
	tr.signer = p
	t.Cleanup(func() { p.stop(0) })
	if err := waitTCP(addr, p, time.Minute); err != nil {
		t.Fatalf("testenv: %v\n%s", err, p.tail(40))
	}
}

// trillianBinaries returns trillian_log_server and trillian_log_signer built from the module
// at version, building them into the cache on first use (installModuleBinaries).
func trillianBinaries(t testing.TB, version string) (server, signer string) {
	t.Helper()
	paths := installModuleBinaries(t, "trillian-"+version, trillianModule, version, "trillian_log_server", "trillian_log_signer")
	return paths[0], paths[1]
}
