package exporters

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
	"testing"
	"time"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/internal/testenv"
	"github.com/lineage-audit/lineage/verify"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// clusterNode is one lineaged node's export service in cluster mode: its own NATS connection,
// export dir and HTTP API, and a Run started and stopped by the test (the writer lease).
type clusterNode struct {
	svcRig
	nc *nats.Conn

	runMu   sync.Mutex
	stopRun func()
}

func startClusterNode(t *testing.T, r *rig, srv *server.Server, name string, pub *published, mod func(*Config)) *clusterNode {
	t.Helper()
	nc, js := testenv.ConnectJetStream(t, srv, nats.Name(name))
	reg := prometheus.NewRegistry()
	c := Config{
		Log: r.Log, Signer: r.Signer, Verifier: r.Verifier, Dir: t.TempDir(), Publish: pub.publish, Registerer: reg,
		Cluster: &Cluster{JS: js, Node: name, AckWait: 2 * time.Second},
	}
	if mod != nil {
		mod(&c)
	}
	svc, hs := serveService(t, c)
	t.Cleanup(hs.Close)
	n := &clusterNode{svcRig: svcRig{svc: svc, srv: hs, pub: pub, reg: reg}, nc: nc}
	t.Cleanup(n.stop)
	return n
}

// run starts Run, as on the node that just took the writer lease.
func (n *clusterNode) run(t *testing.T) {
	n.runMu.Lock()
	defer n.runMu.Unlock()
	if n.stopRun != nil {
		t.Fatal("Run started twice")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.svc.Run(ctx) }()
	n.stopRun = func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
}

// stop ends Run (the lease is lost) and waits until it has returned.
func (n *clusterNode) stop() {
	n.runMu.Lock()
	defer n.runMu.Unlock()
	if n.stopRun != nil {
		n.stopRun()
		n.stopRun = nil
	}
}

// kvJob reads a job straight from the jobs bucket.
func kvJob(t *testing.T, n *clusterNode, id string) storedJob {
	t.Helper()
	sj, _, ok, err := n.svc.getStored(context.Background(), id)
	if err != nil || !ok {
		t.Fatalf("job %s in KV: %v (found %v)", id, err, ok)
	}
	return sj
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	// Generous: exports under -race on a loaded 2-core machine take seconds each.
	deadline := time.Now().Add(90 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// recordsOf returns the published export records of a job.
func recordsOf(pub *published, id string) []lineage.Record {
	var out []lineage.Record
	for _, r := range pub.all() {
		if r.ID == "export-"+id {
			out = append(out, r)
		}
	}
	return out
}

func submit(t *testing.T, n *clusterNode) Job {
	t.Helper()
	code, b := n.do(t, "acme-compliance", "POST", "/v1/exports", juneBody)
	if code != http.StatusAccepted {
		t.Fatalf("POST: %d %s", code, b)
	}
	var j Job
	if err := json.Unmarshal(b, &j); err != nil || j.Status != StatusQueued {
		t.Fatalf("created job %s: %v", b, err)
	}
	return j
}

// checkDownloads downloads the bundle through each node, checks that they are the same bytes
// and that the bundle verifies offline.
func checkDownloads(t *testing.T, r *rig, j Job, nodes ...*clusterNode) {
	t.Helper()
	var first []byte
	for i, n := range nodes {
		code, b := n.do(t, "acme-compliance", "GET", "/v1/exports/"+j.ID+"/files/"+j.ID+".zip", "")
		if code != 200 {
			t.Fatalf("download through node %d: %d %s", i, code, b)
		}
		if i == 0 {
			first = b
		} else if string(b) != string(first) {
			t.Fatalf("node %d serves other bytes (%d vs %d)", i, len(b), len(first))
		}
		if code, b := n.do(t, "acme-compliance", "GET", "/v1/exports/"+j.ID+"/files/report.html", ""); code != 200 || !strings.Contains(string(b), "<html") {
			t.Fatalf("report.html through node %d: %d", i, code)
		}
	}
	path := filepath.Join(t.TempDir(), "b.zip")
	if err := os.WriteFile(path, first, 0o644); err != nil {
		t.Fatal(err)
	}
	rep, err := verify.VerifyBundle(path, r.Verifier)
	if err != nil || rep.Records != j.Records || j.Records == 0 {
		t.Fatalf("downloaded bundle: %v (%d records, job says %d)", err, rep.Records, j.Records)
	}
}

// TestClusterJobSurvivesLeaseLoss submits an export on node A, runs it on node B, ends B's
// Run in the middle of the export (B lost the writer lease), and starts Run on A: the job is
// not failed by the interruption, A restarts it, it succeeds once, and both nodes serve it.
func TestClusterJobSurvivesLeaseLoss(t *testing.T) {
	r := getRig(t)
	srv := testenv.StartJetStream(t)
	pub := &published{}
	var aRuns, bRuns atomic.Int32
	bStarted := make(chan struct{}, 1)
	a := startClusterNode(t, r, srv, "node-a", pub, func(c *Config) {
		c.beforeExport = func(context.Context, Job) error { aRuns.Add(1); return nil }
	})
	b := startClusterNode(t, r, srv, "node-b", pub, func(c *Config) {
		// B's export blocks until its Run ends: the node is busy when it loses the lease.
		c.beforeExport = func(ctx context.Context, j Job) error {
			bRuns.Add(1)
			bStarted <- struct{}{}
			<-ctx.Done()
			return ctx.Err()
		}
	})

	j := submit(t, a)
	// Any node answers for the job at once: it is in KV.
	if code, body := b.do(t, "acme-compliance", "GET", "/v1/exports/"+j.ID, ""); code != 200 || !strings.Contains(string(body), `"queued"`) {
		t.Fatalf("queued job through B: %d %s", code, body)
	}
	b.run(t)
	select {
	case <-bStarted:
	case <-time.After(30 * time.Second):
		t.Fatal("B never started the export")
	}
	if sj := kvJob(t, b, j.ID); sj.Status != StatusRunning || sj.Node != "node-b" || sj.Attempts != 1 {
		t.Fatalf("claimed job %+v", sj.Job)
	}
	b.stop() // B loses the lease mid-export.
	sj := kvJob(t, a, j.ID)
	if sj.Status == StatusFailed || sj.Status == StatusSucceeded || sj.Pending != nil || len(pub.all()) != 0 {
		t.Fatalf("after B's Run ended mid-export: job %+v pending %+v, %d records published", sj.Job, sj.Pending, len(pub.all()))
	}

	a.run(t) // A takes the lease.
	got := b.wait(t, "acme-compliance", j.ID)
	if got.Status != StatusSucceeded || got.Attempts != 2 || got.Node != "node-a" || got.RecordID != "export-"+j.ID || got.Error != "" {
		t.Fatalf("job after the takeover %+v", got)
	}
	if aRuns.Load() != 1 || bRuns.Load() != 1 {
		t.Fatalf("runs: A %d, B %d; want 1 and 1", aRuns.Load(), bRuns.Load())
	}
	recs := recordsOf(pub, j.ID)
	if len(recs) != 1 || !strings.Contains(string(recs[0].PolicyContext), `"status":"succeeded"`) ||
		!strings.Contains(string(recs[0].PolicyContext), got.BundleSHA256) {
		t.Fatalf("export records %+v", recs)
	}
	checkDownloads(t, r, got, a, b)
	if testutil.ToFloat64(a.svc.m.restarts) != 1 || testutil.ToFloat64(a.svc.m.jobs.WithLabelValues("eu-ai-act", "api", "succeeded")) != 1 {
		t.Error("restart or job metric not counted on A")
	}
	// Both nodes list it; another tenant's caller does not see it.
	for _, n := range []*clusterNode{a, b} {
		if code, body := n.do(t, "acme-compliance", "GET", "/v1/exports", ""); code != 200 || !strings.Contains(string(body), j.ID) {
			t.Fatalf("list: %d %s", code, body)
		}
		if code, body := n.do(t, "globex-compliance", "GET", "/v1/exports", ""); code != 200 || strings.Contains(string(body), j.ID) {
			t.Fatalf("globex lists acme's export: %d %s", code, body)
		}
		if code, _ := n.do(t, "globex-compliance", "GET", "/v1/exports/"+j.ID+"/files/"+j.ID+".zip", ""); code != 404 {
			t.Fatalf("globex downloads acme's bundle: %d", code)
		}
	}

	for _, c := range []struct {
		who, path string
		code      int
	}{
		{"globex-compliance", "/v1/exports/" + j.ID, 404},
		{"acme-auditor", "/v1/exports/" + j.ID, 403},
		{"acme-compliance", "/v1/exports/exp-nope", 404},
		{"acme-compliance", "/v1/exports/exp-nope.", 404},
		{"acme-compliance", "/v1/exports/" + j.ID + "/files/job.json", 404},
		{"acme-compliance", "/v1/exports/" + j.ID + "/files/..%2Freport.html", 404},
		{"acme-compliance", "/v1/exports/..%2F..%2Fetc/files/passwd", 404},
	} {
		if code, body := b.do(t, c.who, "GET", c.path, ""); code != c.code {
			t.Errorf("GET %s as %s: %d %s, want %d", c.path, c.who, code, body, c.code)
		}
	}

	// The queue is empty: the message was acked once the job finished.
	st, err := a.svc.cl.JS.Stream(context.Background(), QueueStream)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the queue to drain", func() bool {
		info, err := st.Info(context.Background())
		return err == nil && info.State.Msgs == 0
	})

	// A delivery of a job that already succeeded (a redelivery after a lost ack) is acked
	// without running it again.
	m := nats.NewMsg(QueueSubject)
	m.Data = []byte(j.ID)
	m.Header.Set(jetstream.MsgIDHeader, j.ID+"-again")
	if _, err := a.svc.cl.JS.PublishMsg(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the redelivered message to be acked", func() bool {
		info, err := st.Info(context.Background())
		return err == nil && info.State.Msgs == 0
	})
	if aRuns.Load() != 1 || len(recordsOf(pub, j.ID)) != 1 {
		t.Fatalf("the finished job ran again: %d runs on A, %d records", aRuns.Load(), len(recordsOf(pub, j.ID)))
	}
	if got2 := kvJob(t, a, j.ID); got2.Status != StatusSucceeded || got2.Attempts != 2 {
		t.Fatalf("job after a stray delivery %+v", got2.Job)
	}
}

// TestClusterCrashAfterRecord kills node B (no ack, no nak, no further writes) after it
// published the run's record but before it stored the final status: A gets the job after
// the ack wait, does not run it again, publishes byte for byte the same record (which the
// ingester keeps once) and finishes the job.
func TestClusterCrashAfterRecord(t *testing.T) {
	r := getRig(t)
	srv := testenv.StartJetStream(t)
	pub := &published{}
	var aRuns atomic.Int32
	crashed := make(chan struct{})
	a := startClusterNode(t, r, srv, "node-a", pub, func(c *Config) {
		c.beforeExport = func(context.Context, Job) error { aRuns.Add(1); return nil }
	})
	b := startClusterNode(t, r, srv, "node-b", pub, func(c *Config) {
		c.crash = func(point, id string) bool {
			if point == crashAfterPublished {
				close(crashed)
				return true
			}
			return false
		}
	})
	j := submit(t, b)
	b.run(t)
	select {
	case <-crashed:
	case <-time.After(time.Minute):
		t.Fatal("B never reached the crash point")
	}
	b.nc.Close() // the node is gone: its connection with it
	b.stop()
	sj := kvJob(t, a, j.ID)
	if sj.Status != StatusRunning || sj.Pending == nil || sj.Pending.Status != StatusSucceeded || len(recordsOf(pub, j.ID)) != 1 {
		t.Fatalf("at the crash: %+v pending %+v, %d records", sj.Job, sj.Pending, len(recordsOf(pub, j.ID)))
	}

	start := time.Now()
	a.run(t)
	got := a.wait(t, "acme-compliance", j.ID)
	t.Logf("A finished the crashed node's job %v after its Run started (ack wait 2s)", time.Since(start).Round(time.Millisecond))
	if got.Status != StatusSucceeded || got.Attempts != 1 || got.RecordID != "export-"+j.ID || aRuns.Load() != 0 {
		t.Fatalf("job %+v, %d runs on A", got, aRuns.Load())
	}
	recs := recordsOf(pub, j.ID)
	if len(recs) != 2 {
		t.Fatalf("%d records published, want the one B published and A's identical retry", len(recs))
	}
	c0, _ := recs[0].Canonical()
	c1, _ := recs[1].Canonical()
	if string(c0) != string(c1) {
		t.Fatalf("the retried record differs (the ingester would quarantine it as id_conflict):\n%s\n%s", c0, c1)
	}
	checkDownloads(t, r, got, a)
}

// TestClusterAttemptsBounded: a job started MaxAttempts times without finishing is failed
// with a clear error (and its failure recorded), not started again.
func TestClusterAttemptsBounded(t *testing.T) {
	r := getRig(t)
	srv := testenv.StartJetStream(t)
	pub := &published{}
	var runs atomic.Int32
	a := startClusterNode(t, r, srv, "node-a", pub, func(c *Config) {
		c.beforeExport = func(context.Context, Job) error { runs.Add(1); return nil }
	})
	j := submit(t, a)
	// As if three nodes had each started it and died.
	sj, rev, _, err := a.svc.getStored(context.Background(), j.ID)
	if err != nil {
		t.Fatal(err)
	}
	sj.Status, sj.Node, sj.Attempts = StatusRunning, "node-c", DefaultMaxAttempts
	v, _ := json.Marshal(sj)
	if _, err := a.svc.cl.jobs.Update(context.Background(), j.ID, v, rev); err != nil {
		t.Fatal(err)
	}
	a.run(t)
	got := a.wait(t, "acme-compliance", j.ID)
	if got.Status != StatusFailed || !strings.Contains(got.Error, fmt.Sprintf("interrupted %d times (last on node node-c)", DefaultMaxAttempts)) || runs.Load() != 0 {
		t.Fatalf("job %+v, %d runs", got, runs.Load())
	}
	if recs := recordsOf(pub, j.ID); len(recs) != 1 || !strings.Contains(string(recs[0].PolicyContext), `"status":"failed"`) {
		t.Fatalf("records %+v", recs)
	}
	if code, _ := a.do(t, "acme-compliance", "GET", "/v1/exports/"+j.ID+"/files/report.html", ""); code != http.StatusConflict {
		t.Fatalf("files of a failed export: %d", code)
	}
}

// TestClusterQueueFull: the queue's bound holds cluster-wide (503 with Retry-After), and a
// refused export leaves no job behind.
func TestClusterQueueFull(t *testing.T) {
	r := getRig(t)
	srv := testenv.StartJetStream(t)
	pub := &published{}
	a := startClusterNode(t, r, srv, "node-a", pub, func(c *Config) { c.QueueSize = 1 })
	b := startClusterNode(t, r, srv, "node-b", pub, func(c *Config) { c.QueueSize = 1 })
	submit(t, a)
	submit(t, b) // queued + "running" (nobody runs: no lease holder)
	code, body := a.do(t, "acme-compliance", "POST", "/v1/exports", juneBody)
	if code != http.StatusServiceUnavailable || !strings.Contains(string(body), "too many exports") {
		t.Fatalf("third export: %d %s", code, body)
	}
	jobs, err := b.svc.clusterVisibleJobs(context.Background(), func(string) bool { return true }, "", 100)
	if err != nil || len(jobs) != 2 {
		t.Fatalf("jobs after a refused submit: %v %+v", err, jobs)
	}
}

// TestClusterNeedsJetStream: cluster mode without JetStream or a node name refuses to start.
func TestClusterNeedsJetStream(t *testing.T) {
	r := getRig(t)
	_, js := testenv.ConnectJetStream(t, testenv.StartJetStream(t))
	for _, cl := range []*Cluster{{Node: "a"}, {JS: js}} {
		_, err := NewService(Config{Log: r.Log, Signer: r.Signer, Verifier: r.Verifier, Dir: t.TempDir(),
			Publish: func(context.Context, lineage.Record) error { return nil }, Cluster: cl})
		if err == nil || !strings.Contains(err.Error(), "cluster mode needs") {
			t.Fatalf("cluster %+v: %v", cl, err)
		}
	}
}

func waitClusterJobs(t *testing.T, n *clusterNode, done int) []Job {
	t.Helper()
	var jobs []Job
	waitFor(t, fmt.Sprintf("%d finished jobs", done), func() bool {
		var err error
		jobs, err = n.svc.clusterVisibleJobs(context.Background(), func(string) bool { return true }, "", 100)
		if err != nil {
			t.Fatal(err)
		}
		k := 0
		for _, j := range jobs {
			if j.Status == StatusSucceeded || j.Status == StatusFailed {
				k++
			}
		}
		return k >= done
	})
	return jobs
}

// TestClusterSchedule: the schedule runs inside Run, keeps its state in KV (a node with an
// empty export dir makes up the runs missed since another node's last run), and one cron time
// is one job whichever node fires it.
func TestClusterSchedule(t *testing.T) {
	r := getRig(t)
	srv := testenv.StartJetStream(t)
	pub := &published{}
	sched := writeSchedule(t, monthlySchedule)
	clock := &fakeClock{now: time.Date(2026, 7, 1, 1, 58, 30, 0, time.UTC), stopAt: time.Date(2026, 7, 1, 2, 0, 0, 0, time.UTC)}
	a := startClusterNode(t, r, srv, "node-a", pub, func(c *Config) { c.ScheduleFile, c.now, c.after = sched, clock.Now, clock.After })
	a.run(t)
	jobs := waitClusterJobs(t, a, 1)
	if len(jobs) != 1 || jobs[0].ID != "exp-20260701t020000z-fannie-mae-monthly" || jobs[0].Status != StatusSucceeded ||
		jobs[0].From != "2026-06-01T00:00:00Z" || jobs[0].Node != "node-a" {
		t.Fatalf("scheduled jobs %+v", jobs)
	}
	a.stop()
	st, _, err := a.svc.stateKV(context.Background(), "fannie-mae-monthly")
	if err != nil || !st.Equal(time.Date(2026, 7, 1, 2, 0, 0, 0, time.UTC)) {
		t.Fatalf("schedule state in KV: %v %v", st, err)
	}

	// Node B, with its own empty export dir, takes over on 15 August: it makes up the
	// 1 August monthly run and the 10 August weekly run from the state in KV.
	clock2 := &fakeClock{now: time.Date(2026, 8, 15, 12, 0, 0, 0, time.UTC)}
	clock2.stopAt = clock2.now
	b := startClusterNode(t, r, srv, "node-b", pub, func(c *Config) { c.ScheduleFile, c.now, c.after = sched, clock2.Now, clock2.After })
	b.run(t)
	jobs = waitClusterJobs(t, b, 3)
	var got []string
	for _, j := range jobs {
		got = append(got, j.ID+" "+j.Status)
	}
	want := "exp-20260810t030000z-eu-weekly succeeded,exp-20260801t020000z-fannie-mae-monthly succeeded,exp-20260701t020000z-fannie-mae-monthly succeeded"
	if strings.Join(got, ",") != want {
		t.Fatalf("jobs %s\nwant %s", strings.Join(got, ","), want)
	}
	// Firing a cron time again (a node that fired it just before it lost the lease, and its
	// successor) queues nothing more.
	b.svc.fire(b.svc.schedule[0], time.Date(2026, 8, 1, 2, 0, 0, 0, time.UTC))
	if jobs := waitClusterJobs(t, b, 3); len(jobs) != 3 {
		t.Fatalf("a second fire of the same cron time queued a job: %+v", jobs)
	}
	if n := len(pub.all()); n != 3 {
		t.Fatalf("%d export records, want 3", n)
	}
	// A failed run is retried by a later fire, under the next id of its cron time.
	weekly := "exp-20260810t030000z-eu-weekly"
	sj, rev, _, err := b.svc.getStored(context.Background(), weekly)
	if err != nil {
		t.Fatal(err)
	}
	sj.Status, sj.Error = StatusFailed, "as if the log had been unreachable"
	v, _ := json.Marshal(sj)
	if _, err := b.svc.cl.jobs.Update(context.Background(), weekly, v, rev); err != nil {
		t.Fatal(err)
	}
	b.stop() // the retry is queued, not run: no lease holder
	b.svc.fire(b.svc.schedule[1], time.Date(2026, 8, 10, 3, 0, 0, 0, time.UTC))
	if retry := kvJob(t, b, weekly+"-2"); retry.Status != StatusQueued || retry.ScheduledFor != "2026-08-10T03:00:00Z" {
		t.Fatalf("retry of a failed scheduled run: %+v", retry.Job)
	}
	b.svc.fire(b.svc.schedule[1], time.Date(2026, 8, 10, 3, 0, 0, 0, time.UTC))
	if _, _, ok, err := b.svc.getStored(context.Background(), weekly+"-3"); ok || err != nil {
		t.Fatalf("a queued retry was queued again: %v %v", ok, err)
	}
}

// TestClusterNodeDiesMidExport: node B loses its NATS connection in the middle of an export
// (as when the process is SIGKILLed: no nak, no status written). The job is redelivered to A
// after the ack wait and restarted there.
func TestClusterNodeDiesMidExport(t *testing.T) {
	r := getRig(t)
	srv := testenv.StartJetStream(t)
	pub := &published{}
	a := startClusterNode(t, r, srv, "node-a", pub, nil)
	var b *clusterNode
	bStarted := make(chan struct{})
	b = startClusterNode(t, r, srv, "node-b", pub, func(c *Config) {
		c.beforeExport = func(ctx context.Context, j Job) error {
			b.nc.Close() // the node is gone
			close(bStarted)
			<-ctx.Done()
			return ctx.Err()
		}
	})
	j := submit(t, a)
	b.run(t)
	select {
	case <-bStarted:
	case <-time.After(30 * time.Second):
		t.Fatal("B never started the export")
	}
	start := time.Now()
	a.run(t)
	got := a.wait(t, "acme-compliance", j.ID)
	t.Logf("the job of the dead node finished on A %v after A's Run started (ack wait 2s)", time.Since(start).Round(time.Millisecond))
	b.stop()
	if got.Status != StatusSucceeded || got.Attempts != 2 || got.Node != "node-a" {
		t.Fatalf("job %+v", got)
	}
	if recs := recordsOf(pub, j.ID); len(recs) != 1 {
		t.Fatalf("%d records", len(recs))
	}
	checkDownloads(t, r, got, a)
}

// TestClusterConsumerRecreated: Run recreates the queue's consumer when it disappears (an
// operator deleted it, the stream was restored) instead of waiting on it forever.
func TestClusterConsumerRecreated(t *testing.T) {
	r := getRig(t)
	srv := testenv.StartJetStream(t)
	pub := &published{}
	a := startClusterNode(t, r, srv, "node-a", pub, nil)
	a.run(t)
	waitFor(t, "the consumer", func() bool {
		_, err := a.svc.cl.JS.Consumer(context.Background(), QueueStream, QueueConsumer)
		return err == nil
	})
	if err := a.svc.cl.JS.DeleteConsumer(context.Background(), QueueStream, QueueConsumer); err != nil {
		t.Fatal(err)
	}
	j := submit(t, a)
	if got := a.wait(t, "acme-compliance", j.ID); got.Status != StatusSucceeded {
		t.Fatalf("job %+v", got)
	}
}
