package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/internal/demo"
	"github.com/lineage-audit/lineage/internal/testenv"
	"github.com/lineage-audit/lineage/ledger"
)

// TestEndToEndClickHouse runs the ingest → ledger → index → API path with the ClickHouse index
// on a real ClickHouse server: records arrive over NATS (a republished overlap must be
// deduplicated against the index), every record verifies with the public key alone, and every
// lineage answer shape verifies offline with lineagectl. Then the daemon stops, lineagectl
// rebuild-index --index clickhouse refills the index from the log, and the restarted daemon gives
// byte-identical answers.
//
// The DSN reaches both binaries through LINEAGE_CLICKHOUSE_DSN only, as an operator should pass
// one that holds a password: the test checks it appears neither on the daemon's command line
// nor in any output.
func TestEndToEndClickHouse(t *testing.T) {
	ch := testenv.StartClickHouse(t)
	db := ch.DatabaseName()
	dsn := "clickhouse://" + ch.Addr + "/" + db
	t.Setenv("LINEAGE_CLICKHOUSE_DSN", dsn) // inherited by lineaged and lineagectl
	dataDir := t.TempDir()
	natsAddr, httpAddr := freeAddr(t), freeAddr(t)
	natsURL := "nats://" + natsAddr
	vfile := filepath.Join(dataDir, "keys", "log.key.pub")

	d := startDaemon(t, dataDir, natsAddr, httpAddr, "--index", "clickhouse")
	defer func() {
		if t.Failed() {
			t.Logf("lineaged logs:\n%s", d.logs)
		}
	}()
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", d.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(cmdline, []byte(dsn)) || bytes.Contains(cmdline, []byte("clickhouse-dsn")) {
		t.Fatalf("the DSN is on lineaged's command line: %q", cmdline)
	}
	v, err := ledger.ReadVerifierFile(vfile)
	if err != nil {
		t.Fatal(err)
	}

	const n = 1500
	recs := demo.Generate(demo.Options{Seed: 31, Tenants: 3}, n)
	start := time.Now()
	if out, err := ctl("publish", "--nats-url", natsURL, "--demo", "1000", "--seed", "31"); err != nil {
		t.Fatalf("publish: %v\n%s", err, out)
	}
	d.waitIndexed(t, 1000)
	first := time.Since(start)
	// Republishing overlaps the first 1000: ingest must find them in the index, and only 500
	// new entries may appear.
	start = time.Now()
	if out, err := ctl("publish", "--nats-url", natsURL, "--demo", fmt.Sprint(n), "--seed", "31"); err != nil {
		t.Fatalf("publish: %v\n%s", err, out)
	}
	d.waitIndexed(t, n)
	t.Logf("published and indexed 1000 new records in %v; 1000 duplicates and 500 new in %v",
		first.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	mustCheckpoint(t, d, v, n)

	idx := verifyAll(t, d, v, recs)
	if len(idx) != n {
		t.Fatalf("%d distinct records in the log, want %d", len(idx), n)
	}
	before := checkLineage(t, d, recs)
	cliBefore := verifyLineageCLI(t, d, recs, vfile)

	d.stop()
	if strings.Contains(d.logs.String(), dsn) || strings.Contains(cliBefore, dsn) {
		t.Fatal("the DSN appears in lineaged's logs or lineagectl's output")
	}

	// Rebuild from the log alone; the DSN again comes from the environment.
	rebuildStart := time.Now()
	out, err := ctl("rebuild-index", "--data-dir", dataDir, "--index", "clickhouse")
	if err != nil {
		t.Fatalf("rebuild-index: %v\n%s", err, out)
	}
	if !strings.Contains(out, fmt.Sprintf("rebuilt the ClickHouse index from %d log entries", n)) || strings.Contains(out, dsn) {
		t.Fatalf("rebuild-index printed:\n%s", out)
	}
	t.Logf("rebuild-index took %v", time.Since(rebuildStart).Round(time.Millisecond))
	// The index really was rebuilt: its position rows are all younger than the rebuild.
	conn, err := ch.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var oldest int64
	if err := conn.QueryRow(context.Background(), "SELECT min(applied_ns) FROM "+db+".position").Scan(&oldest); err != nil {
		t.Fatal(err)
	}
	if oldest < rebuildStart.UnixNano() {
		t.Fatalf("position row from %v survived a rebuild started at %v", time.Unix(0, oldest), rebuildStart)
	}

	d = startDaemon(t, dataDir, natsAddr, httpAddr, "--index", "clickhouse")
	defer d.stop()
	d.waitIndexed(t, n)
	if after := checkLineage(t, d, recs); !bytes.Equal(after, before) {
		t.Fatal("lineage answers differ after rebuilding the ClickHouse index")
	}
	if after := verifyLineageCLI(t, d, recs, vfile); after != cliBefore {
		t.Fatalf("lineagectl lineage answers differ after the rebuild:\n%s\n---\n%s", cliBefore, after)
	}
	if again := verifyAll(t, d, v, recs); !mapsEqual(idx, again) {
		t.Fatal("the rebuilt index maps records to other log indexes")
	}
}

// verifyLineageCLI asks lineagectl for a user's, an agent's, an action's and a policy's lineage
// (the policy also filtered by effect) in the first record's tenant, with --verify, and returns
// the answers and verification lines, so runs can be compared.
func verifyLineageCLI(t *testing.T, d *daemon, recs []lineage.Record, vfile string) string {
	t.Helper()
	r := recs[0]
	action := r
	for _, x := range recs {
		if x.Tenant == r.Tenant && x.ParentID != "" {
			action = x // a chain of more than one action
			break
		}
	}
	var all strings.Builder
	for _, subj := range [][]string{
		{"--user", r.User.ID},
		{"--agent", r.Agent.ID},
		{"--action", action.ID},
		{"--policy", r.Decision.Policy.ID},
		{"--policy", r.Decision.Policy.ID, "--effect", "deny,escalate"},
	} {
		args := append([]string{"lineage", "--api", d.url(""), "--tenant", r.Tenant, "--verify", "--verifier-file", vfile, "--json"}, subj...)
		out, err := ctl(args...)
		if err != nil || !strings.Contains(out, "VERIFIED") {
			t.Fatalf("lineage %v --verify: %v\n%s", subj, err, out)
		}
		all.WriteString(out + "\n")
	}
	return all.String()
}
