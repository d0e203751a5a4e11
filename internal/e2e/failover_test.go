package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/ingest"
	"github.com/lineage-audit/lineage/internal/demo"
	"github.com/lineage-audit/lineage/internal/ha"
	"github.com/lineage-audit/lineage/internal/testenv"
	"github.com/lineage-audit/lineage/ledger"
	"github.com/lineage-audit/lineage/ledger/trillian"
	"github.com/lineage-audit/lineage/query"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

// TestHAFailover runs the cluster of docs/OPERATIONS.md as real processes on loopback: three
// NATS servers (the server as a library, streams on 3 replicas), MariaDB with Trillian's log
// server and signer, ClickHouse, and three `lineaged serve --ha` nodes sharing one signing key.
// A publisher streams records the way a gateway does while the test
//
//  1. SIGKILLs the writer (the node holding the writer lease) and restarts it,
//  2. stops the records stream's NATS leader for 3 s and restarts it,
//  3. SIGSTOPs the writer past its lease, lets a standby take over, then SIGCONTs it: the old
//     writer must find its lease gone and exit without writing (fencing),
//
// and at the end checks that every acked record is in the log exactly once with a valid
// inclusion proof, the index holds the whole log, every checkpoint seen on any node (across
// both takeovers) is consistent with every other, and nothing was quarantined. It logs the
// takeover times and the ingest rate before, during and after the failovers.
//
// LINEAGE_HA_RATE sets the publishing rate (records/s, default 300).
func TestHAFailover(t *testing.T) {
	rate := envInt("LINEAGE_HA_RATE", 300)
	cl := testenv.StartNATSCluster(t, testenv.NATSClusterOptions{MaxPayload: 2 * (64<<10 + ingest.HeaderAllowance)})
	seeds := cl.SeedURLs()
	tr := testenv.StartTrillian(t)
	ch := testenv.StartClickHouse(t)
	dsn := "clickhouse://" + ch.Addr + "/" + ch.NewDatabase(t)
	treeID := createTree(t, tr.Addr, "ha")
	// One signing key for the cluster, made once and given to every node.
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "keys", "log.key")
	if out, err := ctl("keygen", "--origin", "lineage.test/ha", "--out", keyFile); err != nil {
		t.Fatalf("keygen: %v\n%s", err, out)
	}
	v, err := ledger.ReadVerifierFile(keyFile + ".pub")
	if err != nil {
		t.Fatal(err)
	}

	const ttl = 5 * time.Second // the default --lease-ttl
	type node struct {
		name, dataDir, httpAddr string
		d                       *daemon
	}
	nodes := make([]*node, 3)
	args := func(n *node) []string {
		return []string{"--ha", "--node-id", n.name,
			"--ledger", "trillian", "--trillian-addr", tr.Addr, "--trillian-tree-id", fmt.Sprint(treeID),
			"--index", "clickhouse", "--clickhouse-dsn", dsn, "--key-file", keyFile,
			"--nats-url", seeds, "--stream-replicas", "3", "--ack-wait", "5s", "--log-level", "info"}
	}
	// A node runs under a supervisor, as with compose's `restart: unless-stopped`: a writer that
	// loses its lease exits by design (docs/OPERATIONS.md), e.g. when renewals cannot reach
	// NATS before the deadline while a NATS server is down, and comes back as a standby. Only
	// that exit is allowed; any other the daemon did not expect fails the test.
	var (
		nodesMu     sync.Mutex // guards nodes[*].d and stopping
		stopping    bool
		supervisors sync.WaitGroup
		revived     atomic.Int32
		logf        = t.Logf // replaced by one with timings once the publisher starts
		logfMu      sync.Mutex
	)
	say := func(format string, a ...any) {
		logfMu.Lock()
		f := logf
		logfMu.Unlock()
		f(format, a...)
	}
	var supervise func(n *node, d *daemon)
	supervise = func(n *node, d *daemon) {
		defer supervisors.Done()
		<-d.done
		nodesMu.Lock()
		ours := stopping || d.expected.Load() || n.d != d
		nodesMu.Unlock()
		if ours {
			return
		}
		logs := d.logs.String()
		if !strings.Contains(logs, "lost the writer lease") {
			t.Errorf("%s exited on its own (%v) without losing the writer lease:\n%s", n.name, d.err, tail(logs, 60))
			return
		}
		revived.Add(1)
		say("%s exited on its own: %s; restarted as its supervisor would", n.name, firstLine(grepLines(logs, "lost the writer lease")))
		nd, err := launchDaemon(t, n.dataDir, freeAddr(t), n.httpAddr, args(n)...)
		nodesMu.Lock()
		defer nodesMu.Unlock()
		switch {
		case err != nil:
			t.Errorf("restart %s: %v", n.name, err)
		case stopping:
			nd.expected.Store(true)
			_ = nd.cmd.Process.Kill()
			<-nd.done
		default:
			n.d = nd
			supervisors.Add(1)
			go supervise(n, nd)
		}
	}
	start := func(n *node) {
		d := startDaemon(t, n.dataDir, freeAddr(t), n.httpAddr, args(n)...)
		nodesMu.Lock()
		defer nodesMu.Unlock()
		n.d = d
		supervisors.Add(1)
		go supervise(n, d)
	}
	defer func() {
		nodesMu.Lock()
		stopping = true
		for _, n := range nodes {
			if n != nil && n.d != nil {
				if t.Failed() {
					t.Logf("%s log (tail):\n%s", n.name, tail(n.d.logs.String(), 40))
				}
				n.d.expected.Store(true)
				_ = n.d.cmd.Process.Signal(syscall.SIGCONT)
				_ = n.d.cmd.Process.Kill()
			}
		}
		nodesMu.Unlock()
		supervisors.Wait()
	}()
	for i := range nodes {
		n := &node{name: fmt.Sprintf("node-%d", i+1), dataDir: filepath.Join(dir, fmt.Sprintf("node-%d", i+1)), httpAddr: freeAddr(t)}
		nodesMu.Lock()
		nodes[i] = n
		nodesMu.Unlock()
		start(n)
	}

	type health struct {
		IndexPosition  uint64 `json:"index_position"`
		CheckpointSize uint64 `json:"checkpoint_size"`
		Cluster        struct {
			Node        string `json:"node"`
			Writer      bool   `json:"writer"`
			LeaseHolder string `json:"lease_holder"`
		} `json:"cluster"`
	}
	healthOf := func(n *node) (health, bool) {
		var h health
		// A paused node never answers; a loaded one (make test runs packages side by side) can
		// take a while.
		b, err := getWithin("http://"+n.httpAddr+"/healthz", 3*time.Second)
		return h, err == nil && json.Unmarshal(b, &h) == nil
	}
	// writer returns the node whose /healthz says it runs the writer's workers.
	// Asked of every node at once; the first writer to answer is the answer, so a paused node's
	// silence does not delay it.
	writer := func() *node {
		nodesMu.Lock()
		defer nodesMu.Unlock()
		found := make(chan *node, len(nodes))
		for _, n := range nodes {
			go func() {
				if h, ok := healthOf(n); ok && h.Cluster.Writer {
					found <- n
					return
				}
				found <- nil
			}()
		}
		for range nodes {
			if n := <-found; n != nil {
				return n
			}
		}
		return nil
	}
	var first *node
	waitUntil(t, 30*time.Second, "a writer among the nodes", func() bool { first = writer(); return first != nil })
	t.Logf("writer: %s", first.name)

	// Sample the index position (ClickHouse, shared) and every checkpoint served, on any live
	// node, every 50 ms.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		smu     sync.Mutex
		samples []posSample
		cps     = map[uint64]ledger.Checkpoint{}
		acked   atomic.Int64
	)
	sampleDone := make(chan struct{})
	go func() {
		defer close(sampleDone)
		for i := 0; ctx.Err() == nil; i++ {
			nodesMu.Lock()
			n := nodes[i%len(nodes)]
			nodesMu.Unlock()
			if h, ok := healthOf(n); ok {
				smu.Lock()
				samples = append(samples, posSample{time.Now(), h.IndexPosition, uint64(acked.Load())})
				smu.Unlock()
			}
			if raw, err := getWithin("http://"+n.httpAddr+"/v1/checkpoint", time.Second); err == nil {
				if cp, err := ledger.OpenCheckpoint(raw, v); err == nil {
					smu.Lock()
					if old, ok := cps[cp.Size]; ok && string(old.Hash) != string(cp.Hash) {
						t.Errorf("two checkpoints of size %d with different roots: %x and %x", cp.Size, old.Hash, cp.Hash)
					}
					cps[cp.Size] = cp
					smu.Unlock()
				}
			}
			time.Sleep(50 * time.Millisecond / time.Duration(len(nodes)))
		}
	}()
	position := func() uint64 {
		smu.Lock()
		defer smu.Unlock()
		if len(samples) == 0 {
			return 0
		}
		return samples[len(samples)-1].pos
	}

	recs := demo.Generate(demo.Options{Seed: 17, Tenants: 3}, rate*120)
	begin := time.Now()
	pub := startPublisher(ctx, seeds, recs, rate, &acked)
	mark := func(format string, args ...any) {
		t.Logf("%6.2fs %s (acked %d, indexed %d)", time.Since(begin).Seconds(), fmt.Sprintf(format, args...), acked.Load(), position())
	}
	logfMu.Lock()
	logf = mark
	logfMu.Unlock()
	// takeover waits for a writer other than old and for ingest to move past what was indexed
	// when old went away; it returns both times from since.
	takeover := func(old *node, since time.Time) (role, ingest time.Duration, nw *node) {
		pos := position()
		waitUntil(t, 30*time.Second, "a new writer", func() bool { nw = writer(); return nw != nil && nw != old })
		role = time.Since(since)
		waitUntil(t, 30*time.Second, "ingest to resume", func() bool { return position() > pos })
		return role, time.Since(since), nw
	}

	time.Sleep(5 * time.Second)
	duringFrom := time.Now()

	// 1. SIGKILL the writer.
	w1 := writer()
	if w1 == nil {
		t.Fatal("no writer")
	}
	mark("SIGKILL the writer %s", w1.name)
	killed := time.Now()
	w1.d.kill()
	role1, ingest1, w2 := takeover(w1, killed)
	mark("%s took over: writer role after %s, ingest resumed after %s", w2.name, role1.Round(10*time.Millisecond), ingest1.Round(10*time.Millisecond))
	if role1 > 10*time.Second {
		t.Errorf("takeover after SIGKILL took %s, over the 10 s goal", role1)
	}
	start(w1) // back as a standby
	mark("%s restarted", w1.name)
	time.Sleep(3 * time.Second)

	// 2. Stop the records stream's NATS leader for 3 s.
	leader := cl.WaitStreamLeader(ingest.RecordsStream, 10*time.Second)
	mark("stop NATS %s (records stream leader)", cl.Name(leader))
	cl.Stop(leader)
	time.Sleep(3 * time.Second)
	cl.Start(leader)
	mark("NATS %s restarted", cl.Name(leader))
	time.Sleep(3 * time.Second)

	// 3. Pause the writer past its lease, then wake it: it must stop, not write.
	w3 := writer()
	if w3 == nil {
		t.Fatal("no writer after the NATS failover")
	}
	mark("SIGSTOP the writer %s", w3.name)
	paused := time.Now()
	w3.d.expected.Store(true) // it must exit once woken (checked below)
	if err := w3.d.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	role3, ingest3, w4 := takeover(w3, paused)
	mark("%s took over from the paused writer: writer role after %s, ingest resumed after %s", w4.name, role3.Round(10*time.Millisecond), ingest3.Round(10*time.Millisecond))
	time.Sleep(2 * time.Second)
	mark("SIGCONT %s", w3.name)
	if err := w3.d.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w3.d.done:
		if w3.d.err == nil {
			t.Fatalf("the woken writer exited cleanly; it should fail with a lost lease\n%s", w3.d.logs)
		}
	case <-time.After(ttl + 20*time.Second):
		t.Fatalf("the woken writer %s did not stop after losing its lease\n%s", w3.name, w3.d.logs)
	}
	if logs := w3.d.logs.String(); !strings.Contains(logs, "lost the writer lease") {
		t.Fatalf("the woken writer did not say it lost its lease\n%s", logs)
	}
	mark("%s stopped on waking: %s", w3.name, firstLine(grepLines(w3.d.logs.String(), "lost the writer lease")))
	start(w3)
	mark("%s restarted", w3.name)
	duringTo := time.Now()
	time.Sleep(5 * time.Second)
	total := pub.finish(t)
	pubEnd := time.Now()
	mark("publisher stopped: %d records acked", total)

	final := writer()
	if final == nil {
		t.Fatal("no writer at the end")
	}
	final.d.waitIndexedFor(t, uint64(total), 2*time.Minute)
	caughtUp := time.Now()
	for deadline := time.Now().Add(time.Minute); ; {
		nodesMu.Lock()
		var behind []string
		for _, n := range nodes {
			if h, ok := healthOf(n); !ok {
				behind = append(behind, n.name+": /healthz unanswered")
			} else if h.CheckpointSize < uint64(total) {
				behind = append(behind, fmt.Sprintf("%s: checkpoint %d", n.name, h.CheckpointSize))
			}
		}
		nodesMu.Unlock()
		if len(behind) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint covering all %d records on every node after a minute: %s", total, strings.Join(behind, "; "))
		}
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	<-sampleDone

	// Exactly once: read the whole log from Trillian, recompute its Merkle root and compare it
	// with the signed checkpoint every node serves, and count every record id in it.
	var standby *node
	for _, n := range nodes {
		if n != final {
			standby = n
		}
	}
	h, _ := healthOf(standby)
	cp := mustCheckpoint(t, standby.d, v, h.CheckpointSize)
	inLog := readWholeLog(t, seeds, tr.Addr, treeID, v, cp)
	distinct := 0
	for _, r := range recs[:total] {
		switch n := inLog[r.Tenant+"/"+r.ID]; {
		case n == 1:
			distinct++
		case n > 1:
			t.Errorf("record %s/%s is in the log %d times", r.Tenant, r.ID, n)
		}
	}
	duplicates, lost := int(cp.Size)-distinct, total-distinct
	if duplicates != 0 || lost != 0 || h.IndexPosition != cp.Size {
		t.Fatalf("log %d entries, index %d, distinct records %d of %d: duplicates %d, lost %d", cp.Size, h.IndexPosition, distinct, total, duplicates, lost)
	}
	// Inclusion proofs through the API of a standby (every node serves the shared log): every
	// 20th record and every record published within 2 s of a failover.
	var sample []lineage.Record
	for i, r := range recs[:total] {
		at := begin.Add(time.Duration(float64(i) / float64(rate) * float64(time.Second)))
		near := false
		for _, e := range []time.Time{killed, paused} {
			near = near || (at.After(e.Add(-2*time.Second)) && at.Before(e.Add(2*time.Second)))
		}
		if i%20 == 0 || near {
			sample = append(sample, r)
		}
	}
	verifyAll(t, standby.d, v, sample)
	t.Logf("whole log read back (%d entries, root matches checkpoint %d); %d inclusion proofs verified", cp.Size, cp.Size, len(sample))

	// Every checkpoint any node served, across both takeovers, is consistent with the others.
	smu.Lock()
	list := make([]ledger.Checkpoint, 0, len(cps))
	for _, cp := range cps {
		list = append(list, cp)
	}
	smu.Unlock()
	pairs := verifyConsistencyPairs(t, standby.d, list)

	nc, err := nats.Connect(seeds)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	cctx, ccancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer ccancel()
	checkNoQuarantine(t, cctx, js)

	// An export submitted to a standby runs on the writer; the writer is SIGKILLed while it
	// runs, and the next writer restarts it: it succeeds once, is logged once, and its bundle,
	// downloaded from another node, verifies offline.
	type job struct {
		ID       string `json:"id"`
		Status   string `json:"status"`
		Error    string `json:"error"`
		Node     string `json:"node"`
		Attempts int    `json:"attempts"`
		Bundle   string `json:"bundle"`
		RecordID string `json:"record_id"`
	}
	ew := writer()
	var via, other *node
	for _, n := range nodes {
		switch {
		case n == ew:
		case via == nil:
			via = n
		default:
			other = n
		}
	}
	body := `{"kind":"fannie-mae","tenant":"acme-bank","from":"2020-01-01","to":"2030-01-01"}`
	resp, err := http.Post("http://"+via.httpAddr+"/v1/exports", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var j job
	err = json.NewDecoder(resp.Body).Decode(&j)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusAccepted && resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		t.Fatalf("submit export to standby %s: %s %v %+v", via.name, resp.Status, err, j)
	}
	// jobOn reads the job from n's API; the answer (or why there is none) is kept for the
	// failure message.
	lastSeen := map[string]string{}
	jobOn := func(n *node) job {
		var j2 job
		b, err := getWithin("http://"+n.httpAddr+"/v1/exports/"+j.ID, 2*time.Second)
		if err == nil {
			err = json.Unmarshal(b, &j2)
		}
		if err != nil {
			lastSeen[n.name] = fmt.Sprintf("%s: %v", time.Now().Format("15:04:05.000"), err)
		} else {
			lastSeen[n.name] = fmt.Sprintf("%s: %s on %s, attempt %d", time.Now().Format("15:04:05.000"), j2.Status, j2.Node, j2.Attempts)
		}
		return j2
	}
	seen := func() string {
		var out []string
		for _, n := range nodes {
			out = append(out, n.name+" "+lastSeen[n.name])
		}
		return strings.Join(out, "; ")
	}
	waitUntil(t, 30*time.Second, "the export running on the writer", func() bool {
		j2 := jobOn(via)
		return j2.Status == "running" || j2.Status == "succeeded" || j2.Status == "failed"
	})
	j = jobOn(via)
	restarted := j.Status == "running"
	if restarted {
		mark("export %s running on %s (attempt %d): SIGKILL it", j.ID, j.Node, j.Attempts)
		ew.d.kill() // restarted once the export is done, so that another node must finish it
	} else {
		mark("export %s already %s before the writer could be killed; no restart to check", j.ID, j.Status)
	}
	// Another node takes the writer lease (5-7 s), then the job's lease, then runs the whole
	// export again (about 10 s alone; much longer beside the rest of `make test`). Every node
	// is asked; then the node that neither ran nor submitted it must show the same.
	terminal := func(j job) bool { return j.Status == "succeeded" || j.Status == "failed" }
	for deadline := time.Now().Add(4 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		done := false
		for _, n := range nodes {
			if j2 := jobOn(n); terminal(j2) {
				j, done = j2, true
			}
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the export did not finish in 4 minutes; last answers: %s", seen())
		}
	}
	for deadline := time.Now().Add(30 * time.Second); !terminal(jobOn(other)); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("export %s is %s on %s but not on %s after 30 s; last answers: %s", j.ID, j.Status, j.Node, other.name, seen())
		}
	}
	if j.Status != "succeeded" {
		t.Fatalf("export %s: %s: %s", j.ID, j.Status, j.Error)
	}
	// More than 2 attempts only if the node that took it over was restarted meanwhile.
	if restarted && (j.Attempts < 2 || j.Attempts > 2+int(revived.Load()) || j.Node == ew.name) {
		t.Fatalf("export after its node died: attempts %d on %s (%d supervisor restarts), want a second attempt on another node", j.Attempts, j.Node, revived.Load())
	}
	mark("export %s succeeded on %s after %d attempt(s)", j.ID, j.Node, j.Attempts)
	if restarted {
		start(ew)
	}
	bundle := filepath.Join(t.TempDir(), "bundle.zip")
	raw, err := getWithin("http://"+other.httpAddr+"/v1/exports/"+j.ID+"/files/"+j.Bundle, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bundle, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if res, err := ctl("verify", bundle, "--verifier-file", keyFile+".pub"); err != nil || !strings.Contains(res, "OK:") {
		t.Fatalf("verify the bundle downloaded from %s: %v\n%s", other.name, err, res)
	}
	// The run's decision record is in the log once.
	final = writer()
	final.d.waitIndexedFor(t, cp.Size+1, time.Minute)
	h, _ = healthOf(other)
	cpEnd := mustCheckpoint(t, other.d, v, h.IndexPosition)
	if n := readWholeLog(t, seeds, tr.Addr, treeID, v, cpEnd)["acme-bank/"+j.RecordID]; n != 1 {
		t.Fatalf("the export run's record %s is in the log %d times, want once", j.RecordID, n)
	}

	smu.Lock()
	defer smu.Unlock()
	t.Logf("takeover after SIGKILL: writer role %s, ingest resumed %s; after a pause past the lease: writer role %s, ingest resumed %s (lease TTL %s)",
		role1.Round(10*time.Millisecond), ingest1.Round(10*time.Millisecond), role3.Round(10*time.Millisecond), ingest3.Round(10*time.Millisecond), ttl)
	t.Logf("ingest rate: before %.0f records/s, during the failovers %.0f, after %.0f (publishing at %d/s); catch-up after publishing stopped %s",
		rateBetween(samples, begin, duringFrom), rateBetween(samples, duringFrom, duringTo), rateBetween(samples, duringTo, pubEnd),
		rate, caughtUp.Sub(pubEnd).Round(10*time.Millisecond))
	t.Logf("HA failover: published %d, in log %d, duplicates %d, lost %d, quarantined 0; %d checkpoints seen, %d consistency proofs verified; %d node(s) restarted by the supervisor after losing the lease on their own",
		total, distinct, duplicates, lost, len(list), pairs, revived.Load())
}

// readWholeLog reads every entry of the tree up to cp from Trillian, checks that their Merkle
// root is cp's, and counts the records by tenant/id.
func readWholeLog(t *testing.T, seeds, addr string, treeID int64, v note.Verifier, cp ledger.Checkpoint) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	nc, err := nats.Connect(seeds)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	shared, err := ha.OpenCheckpointStore(ctx, js, 0, ha.TreeKey(treeID))
	if err != nil {
		t.Fatal(err)
	}
	o := trillian.DefaultOptions(addr, treeID, t.TempDir(), nil, v)
	o.Checkpoints = shared
	lg, err := trillian.OpenReadOnly(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer lg.Close(ctx)
	rf := compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	rng := rf.NewEmptyRange(0)
	counts := map[string]int{}
	for start := uint64(0); start < cp.Size; {
		n := min(cp.Size-start, 1000)
		es, err := lg.Entries(ctx, start, n, cp.Size)
		if err != nil {
			t.Fatal(err)
		}
		for i, e := range es {
			if err := rng.Append(rfc6962.DefaultHasher.HashLeaf(e), nil); err != nil {
				t.Fatal(err)
			}
			ent, err := query.DecodeEntry(start+uint64(i), e)
			if err != nil {
				t.Fatal(err)
			}
			counts[ent.Record.Tenant+"/"+ent.Record.ID]++
		}
		start += uint64(len(es))
	}
	root, err := rng.GetRootHash(nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(root) != string(cp.Hash) {
		t.Fatalf("the %d entries read back hash to %x, not checkpoint %x", cp.Size, root, cp.Hash)
	}
	return counts
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
