package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/ingest"
	"github.com/lineage-audit/lineage/internal/demo"
	"github.com/lineage-audit/lineage/internal/testenv"
	"github.com/lineage-audit/lineage/ledger"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestNATSClusterFailover runs lineaged against a 3-node NATS cluster (nats-server as a library,
// on loopback) with its streams on 3 replicas, while a publisher streams records the way a
// gateway does (retrying until JetStream acks). During the stream the test stops a node that
// does not lead the records stream and restarts it, then stops the records stream's leader and
// restarts it. At the end every acked record is in the log exactly once with a valid proof, the
// index agrees with the log, nothing was quarantined, the records work queue is empty, and
// lineaged never stopped. It logs how long ingest stalled around each stop and the ingest rate
// before, during and after the failovers.
//
// LINEAGE_NATSCLUSTER_RATE sets the publishing rate (records/s, default 750).
func TestNATSClusterFailover(t *testing.T) {
	rate := envInt("LINEAGE_NATSCLUSTER_RATE", 750)
	cl := testenv.StartNATSCluster(t, testenv.NATSClusterOptions{MaxPayload: 2 * (64<<10 + ingest.HeaderAllowance)})
	seeds := cl.SeedURLs()
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	d := startDaemon(t, dataDir, freeAddr(t), freeAddr(t),
		"--nats-url", seeds, "--stream-replicas", "3", "--ack-wait", "5s", "--log-level", "info")
	defer d.stop()
	v, err := ledger.ReadVerifierFile(filepath.Join(dataDir, "keys", "log.key.pub"))
	if err != nil {
		t.Fatal(err)
	}

	// lineaged made every stream R3, and its consumer inherits that.
	nc, err := nats.Connect(seeds, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, name := range []string{ingest.RecordsStream, ingest.QuarantineStream, ingest.FindingsStream} {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		if info := s.CachedInfo(); info.Config.Replicas != 3 || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
			t.Fatalf("stream %s: %d replicas (cluster %+v), want 3", name, info.Config.Replicas, info.Cluster)
		}
	}
	waitUntil(t, 30*time.Second, "the ingester's consumer on 3 replicas", func() bool {
		c, err := js.Consumer(ctx, ingest.RecordsStream, ingest.ConsumerName)
		return err == nil && c.CachedInfo().Cluster != nil && len(c.CachedInfo().Cluster.Replicas) == 2
	})

	// Sample the index position and the publisher's acks every 50 ms for the stall and rate
	// figures.
	var (
		smu     sync.Mutex
		samples []posSample
		acked   atomic.Int64
	)
	sampleDone := make(chan struct{})
	go func() {
		defer close(sampleDone)
		for ctx.Err() == nil {
			var h struct {
				IndexPosition uint64 `json:"index_position"`
			}
			if b, err := getQuiet(d.url("/healthz")); err == nil && json.Unmarshal(b, &h) == nil {
				smu.Lock()
				samples = append(samples, posSample{time.Now(), h.IndexPosition, uint64(acked.Load())})
				smu.Unlock()
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()

	// Publish until told to stop; every record before the returned count was acked.
	recs := demo.Generate(demo.Options{Seed: 16, Tenants: 3}, rate*60)
	begin := time.Now()
	pub := startPublisher(ctx, seeds, recs, rate, &acked)

	type event struct {
		what string
		at   time.Time
	}
	var events []event
	mark := func(what string) {
		events = append(events, event{what, time.Now()})
		t.Logf("%6.2fs %s (acked %d)", time.Since(begin).Seconds(), what, acked.Load())
	}
	leaders := func() string {
		return fmt.Sprintf("records stream leader %s, ingester consumer leader %s, lineaged connected to %s",
			nodeName(cl, cl.StreamLeader(ingest.RecordsStream)), nodeName(cl, cl.ConsumerLeader(ingest.RecordsStream, ingest.ConsumerName)),
			nodeName(cl, cl.ClientNode("lineaged")))
	}

	// cycle stops node i for 3 s, restarts it, waits until it follows the cluster again and
	// lets ingest run 3 s more.
	var duringFrom time.Time
	stopped := map[string]bool{} // the roles the stopped nodes had: "stream", "consumer", "lineaged"
	cycle := func(i int, why string) {
		roles := leaders()
		if cl.ClientNode("lineaged") == i {
			stopped["lineaged"] = true
		}
		if cl.ConsumerLeader(ingest.RecordsStream, ingest.ConsumerName) == i {
			stopped["consumer"] = true
		}
		if cl.StreamLeader(ingest.RecordsStream) == i {
			stopped["stream"] = true
		}
		mark(fmt.Sprintf("stop %s, %s (%s)", cl.Name(i), why, roles))
		if duringFrom.IsZero() {
			duringFrom = events[0].at
		}
		cl.Stop(i)
		time.Sleep(3 * time.Second)
		mark(fmt.Sprintf("restart %s (%s)", cl.Name(i), leaders()))
		cl.Start(i)
		mark(cl.Name(i) + " back in the cluster")
		time.Sleep(3 * time.Second)
	}

	time.Sleep(4 * time.Second)
	// First a node that does not lead the records stream: the ingester consumer's leader if
	// that is another node, else lineaged's own server if that is another node.
	leader := cl.WaitStreamLeader(ingest.RecordsStream, 10*time.Second)
	follower := (leader + 1) % cl.Len()
	for _, i := range []int{cl.ConsumerLeader(ingest.RecordsStream, ingest.ConsumerName), cl.ClientNode("lineaged")} {
		if i >= 0 && i != leader {
			follower = i
			break
		}
	}
	cycle(follower, "not the records stream's leader")
	// Then the records stream's leader.
	cycle(cl.WaitStreamLeader(ingest.RecordsStream, 10*time.Second), "the records stream's leader")
	// And lineaged's own server, if neither stop took it away.
	if !stopped["lineaged"] {
		if i := cl.ClientNode("lineaged"); i >= 0 {
			cycle(i, "lineaged's server")
		}
	}
	if !stopped["lineaged"] || !stopped["stream"] {
		t.Fatalf("the stops did not cover lineaged's server and the stream leader: %v", stopped)
	}
	t.Logf("roles of the stopped nodes: %v", stopped)
	duringTo := time.Now()
	time.Sleep(4 * time.Second)
	total := pub.finish(t)
	pubEnd := time.Now()
	t.Logf("%6.2fs publisher stopped: %d records acked", time.Since(begin).Seconds(), total)
	if total < 5*rate {
		t.Fatalf("only %d records published in %s", total, pubEnd.Sub(begin))
	}

	d.waitIndexedFor(t, uint64(total), 2*time.Minute)
	caughtUp := time.Now()
	cancel()
	<-sampleDone
	select {
	case <-d.done:
		t.Fatalf("lineaged exited during the failovers: %v\n%s", d.err, d.logs)
	default:
	}

	// lineaged logs its failovers (failoverOptions in internal/service/service.go).
	if !strings.Contains(d.logs.String(), "NATS reconnected") {
		t.Errorf("lineaged's NATS server was stopped but it logged no reconnect\n%s", d.logs)
	}

	// Every acked record exactly once, with a valid proof; the index agrees with the log.
	verifyStart := time.Now()
	idx := verifyAll(t, d, v, recs[:total])
	t.Logf("%d records and their inclusion proofs verified in %s", len(idx), time.Since(verifyStart).Round(10*time.Millisecond))
	var h struct {
		IndexPosition  uint64 `json:"index_position"`
		CheckpointSize uint64 `json:"checkpoint_size"`
	}
	waitUntil(t, 10*time.Second, "a checkpoint covering every record", func() bool {
		return d.getJSON(t, "/healthz", &h) == http.StatusOK && h.CheckpointSize >= uint64(total)
	})
	duplicates, lost := int(h.CheckpointSize)-len(idx), total-len(idx)
	if duplicates != 0 || lost != 0 || h.IndexPosition != h.CheckpointSize {
		t.Fatalf("log %d entries, index %d, distinct records %d of %d: duplicates %d, lost %d", h.CheckpointSize, h.IndexPosition, len(idx), total, duplicates, lost)
	}
	cctx, ccancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer ccancel()
	checkNoQuarantine(t, cctx, js)
	// Every record was acked by the ingester: the work queue drains.
	waitUntil(t, 15*time.Second, "the records work queue empty (every message acked by the ingester)", func() bool {
		s, err := js.Stream(cctx, ingest.RecordsStream)
		return err == nil && s.CachedInfo().State.Msgs == 0
	})

	// The figures.
	smu.Lock()
	defer smu.Unlock()
	for _, e := range events {
		if strings.HasPrefix(e.what, "stop ") {
			from, to := e.at.Add(-200*time.Millisecond), e.at.Add(6*time.Second)
			in, inAt := longestStall(samples, func(s posSample) uint64 { return s.pos }, from, to)
			pub, pubAt := longestStall(samples, func(s posSample) uint64 { return s.acked }, from, to)
			t.Logf("longest pause within 6 s of %q: ingest %s (from %+.2fs), publisher acks %s (from %+.2fs)", e.what,
				in.Round(10*time.Millisecond), inAt.Sub(e.at).Seconds(), pub.Round(10*time.Millisecond), pubAt.Sub(e.at).Seconds())
		}
	}
	t.Logf("ingest rate: before %.0f records/s, during the failovers %.0f, after %.0f (publishing at %d/s); catch-up after publishing stopped %s",
		rateBetween(samples, begin, duringFrom), rateBetween(samples, duringFrom, duringTo), rateBetween(samples, duringTo, pubEnd),
		rate, caughtUp.Sub(pubEnd).Round(10*time.Millisecond))
	t.Logf("NATS cluster failover: published %d, in log %d, duplicates %d, lost %d, quarantined 0; lineaged ran throughout", total, len(idx), duplicates, lost)
	if strings.Contains(d.logs.String(), "level=ERROR") {
		t.Logf("lineaged logged errors:\n%s", grepLines(d.logs.String(), "level=ERROR"))
	}
}

// TestNATSClusterReplicasRefused: --stream-replicas above 1 (here from LINEAGE_STREAM_REPLICAS)
// is refused with the embedded server, and with an external server that is not a cluster.
func TestNATSClusterReplicasRefused(t *testing.T) {
	run := func(t *testing.T, extra ...string) string {
		t.Helper()
		dir := t.TempDir()
		args := append([]string{"serve", "--data-dir", dir, "--nats-addr", freeAddr(t), "--http-addr", freeAddr(t)}, extra...)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bins.lineaged, args...)
		cmd.Env = append(os.Environ(), "LINEAGE_STREAM_REPLICAS=3")
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Fatalf("lineaged %s started with 3 stream replicas\n%s", strings.Join(extra, " "), out)
		}
		return string(out)
	}
	if out := run(t); !strings.Contains(out, "--stream-replicas 3 needs a NATS cluster") || !strings.Contains(out, "single node") {
		t.Fatalf("embedded server with 3 replicas: %s", out)
	}
	single := startNATS(t, freeAddr(t), filepath.Join(t.TempDir(), "nats"))
	if out := run(t, "--nats-url", "nats://"+single.opts.Host+":"+fmt.Sprint(single.opts.Port)); !strings.Contains(out, "need a NATS cluster with at least 3 JetStream servers") {
		t.Fatalf("single external server with 3 replicas: %s", out)
	}
	if out := run(t, "--nats-url", "nats://127.0.0.1:1,", "--stream-replicas", "1"); !strings.Contains(out, "URL 2 of 2 is empty") {
		t.Fatalf("bad seed list: %s", out)
	}
}

// publishUntil publishes recs in order at rate records/s until stop is closed, retrying every
// record JetStream did not ack (as a gateway does: the Nats-Msg-Id makes a retry of a stored
// message a duplicate JetStream drops, and the ingester drops any that slip through). It
// returns how many records, from the first, were acked.
func publishUntil(ctx context.Context, seeds string, recs []lineage.Record, rate int, stop <-chan struct{}, acked *atomic.Int64) (int, error) {
	nc, err := nats.Connect(seeds, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(2000), jetstream.WithPublishAsyncTimeout(2*time.Second))
	if err != nil {
		return 0, err
	}
	const window = 50
	begin := time.Now()
	for start := 0; start < len(recs); start += window {
		select {
		case <-stop:
			return start, nil
		default:
		}
		time.Sleep(time.Until(begin.Add(time.Duration(float64(start) / float64(rate) * float64(time.Second)))))
		if err := publishChunk(ctx, js, recs[start:min(start+window, len(recs))], 300, func() { acked.Add(1) }); err != nil {
			return start, fmt.Errorf("records %d…: %w", start, err)
		}
	}
	return len(recs), nil
}

// publisher is publishUntil running in the background.
type publisher struct {
	stop chan struct{}
	done chan publisherResult
}

type publisherResult struct {
	n   int
	err error
}

// startPublisher runs publishUntil(ctx, seeds, recs, rate, …, acked) until finish.
func startPublisher(ctx context.Context, seeds string, recs []lineage.Record, rate int, acked *atomic.Int64) *publisher {
	p := &publisher{stop: make(chan struct{}), done: make(chan publisherResult, 1)}
	go func() {
		n, err := publishUntil(ctx, seeds, recs, rate, p.stop, acked)
		p.done <- publisherResult{n, err}
	}()
	return p
}

// finish stops the publisher and returns how many records it published: every one of them was
// acked.
func (p *publisher) finish(t *testing.T) int {
	t.Helper()
	close(p.stop)
	res := <-p.done
	if res.err != nil {
		t.Fatalf("publish: %v", res.err)
	}
	return res.n
}

// checkNoQuarantine fails the test unless the quarantine stream is empty: no test record was
// invalid.
func checkNoQuarantine(t *testing.T, ctx context.Context, js jetstream.JetStream) {
	t.Helper()
	q, err := js.Stream(ctx, ingest.QuarantineStream)
	if err != nil {
		t.Fatal(err)
	}
	if n := q.CachedInfo().State.Msgs; n != 0 {
		t.Fatalf("%d records quarantined; none was invalid", n)
	}
}

type posSample struct {
	at    time.Time
	pos   uint64 // index position
	acked uint64 // records acked to the publisher
}

// longestStall is the longest time the value did not move, among the stalls that began in
// [from, to], and when that stall began.
func longestStall(samples []posSample, value func(posSample) uint64, from, to time.Time) (time.Duration, time.Time) {
	var longest time.Duration
	var at time.Time
	for i := 0; i < len(samples); {
		j := i
		for j+1 < len(samples) && value(samples[j+1]) == value(samples[i]) {
			j++
		}
		if !samples[i].at.Before(from) && !samples[i].at.After(to) && j+1 < len(samples) {
			if d := samples[j+1].at.Sub(samples[i].at); d > longest {
				longest, at = d, samples[i].at
			}
		}
		i = j + 1
	}
	return longest, at
}

// rateBetween is the index growth per second between two moments.
func rateBetween(samples []posSample, from, to time.Time) float64 {
	var a, b *posSample
	for i := range samples {
		if a == nil && !samples[i].at.Before(from) {
			a = &samples[i]
		}
		if !samples[i].at.After(to) {
			b = &samples[i]
		}
	}
	if a == nil || b == nil || !b.at.After(a.at) {
		return 0
	}
	return float64(b.pos-a.pos) / b.at.Sub(a.at).Seconds()
}

func nodeName(cl *testenv.NATSCluster, i int) string {
	if i < 0 {
		return "(none)"
	}
	return cl.Name(i)
}

func waitUntil(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("not reached after %s: %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
