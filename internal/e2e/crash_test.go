package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/ingest"
	"github.com/lineage-audit/lineage/internal/demo"
	"github.com/lineage-audit/lineage/ledger"
	"github.com/lineage-audit/lineage/query"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/mod/sumdb/note"
)

// envInt reads a positive integer from the environment (used by `make soak`).
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// natsProc is a NATS JetStream server the test owns, so it can restart it under lineaged.
type natsProc struct {
	t    *testing.T
	opts *server.Options
	srv  *server.Server
	mu   sync.Mutex
}

func startNATS(t *testing.T, addr, storeDir string) *natsProc {
	host, port, _ := strings.Cut(addr, ":")
	p, _ := strconv.Atoi(port)
	n := &natsProc{t: t, opts: &server.Options{Host: host, Port: p, JetStream: true, StoreDir: storeDir, NoSigs: true, MaxPayload: 2 * (64<<10 + ingest.HeaderAllowance)}}
	n.start()
	t.Cleanup(func() { n.mu.Lock(); n.srv.Shutdown(); n.mu.Unlock() })
	return n
}

func (n *natsProc) start() {
	s, err := server.NewServer(n.opts)
	if err != nil {
		n.t.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(20 * time.Second) {
		n.t.Fatal("nats not ready")
	}
	n.srv = s
}

func (n *natsProc) restart() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.srv.Shutdown()
	n.srv.WaitForShutdown()
	n.start()
}

// TestCrashSafety kills lineaged with SIGKILL at random moments while records stream in, and
// restarts the NATS server under it, then proves that every record is in the log exactly once,
// that the index agrees with the log, that every record has a valid inclusion proof, and that
// every checkpoint seen during the run is consistent with every later one.
//
// LINEAGE_CRASH_RECORDS and LINEAGE_CRASH_KILLS scale it (`make soak`: 1,000,000 records).
func TestCrashSafety(t *testing.T) {
	total := envInt("LINEAGE_CRASH_RECORDS", 30000)
	kills := envInt("LINEAGE_CRASH_KILLS", 12)
	natsRestarts := envInt("LINEAGE_CRASH_NATS_RESTARTS", 3)
	// Records are paced so they keep flowing through every crash (0: as fast as possible), and
	// the daemon is killed every killMin..killMin+killSpread ms, at least kills times and for as
	// long as records are still being published.
	rate := envInt("LINEAGE_CRASH_RATE", 3000)
	killMin := envInt("LINEAGE_CRASH_KILL_MIN_MS", 300)
	killSpread := envInt("LINEAGE_CRASH_KILL_SPREAD_MS", 1200)
	dir := t.TempDir()
	natsAddr, httpAddr := freeAddr(t), freeAddr(t)
	ns := startNATS(t, natsAddr, filepath.Join(dir, "nats"))
	dataDir := filepath.Join(dir, "data")
	flags := []string{"--nats-url", "nats://" + natsAddr, "--ack-wait", "3s", "--log-level", "warn"}
	d := startDaemon(t, dataDir, natsAddr, httpAddr, flags...)
	v, err := ledger.ReadVerifierFile(filepath.Join(dataDir, "keys", "log.key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	recs := demo.Generate(demo.Options{Seed: 11, Tenants: 3}, total)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		mu          sync.Mutex
		checkpoints = map[uint64]ledger.Checkpoint{}
		maxRSS      atomic.Int64
	)
	// Watch checkpoints (and the daemon's memory) whenever the daemon answers.
	go func() {
		for ctx.Err() == nil {
			mu.Lock()
			dd := d
			mu.Unlock()
			if raw, err := getQuiet(dd.url("/v1/checkpoint")); err == nil {
				if cp, err := ledger.OpenCheckpoint(raw, v); err == nil {
					mu.Lock()
					checkpoints[cp.Size] = cp
					mu.Unlock()
				} else {
					t.Errorf("a served checkpoint does not verify: %v", err)
				}
			}
			if rss := rssOf(dd.cmd.Process.Pid); rss > maxRSS.Load() {
				maxRSS.Store(rss)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()

	// Publish everything, retrying whatever a NATS restart fails (the Nats-Msg-Id dedupe window
	// drops retries that had in fact been stored).
	pubDone := make(chan error, 1)
	var publishing atomic.Bool
	publishing.Store(true)
	go func() {
		pubDone <- publishWithRetries(ctx, "nats://"+natsAddr, recs, rate)
		publishing.Store(false)
	}()

	// Crash the daemon and restart NATS at random moments while records flow.
	rng := rand.New(rand.NewPCG(1, 2))
	restarts := 0
	for k := 0; k < kills || publishing.Load(); k++ {
		time.Sleep(time.Duration(killMin+rng.IntN(killSpread)) * time.Millisecond)
		if k < natsRestarts {
			ns.restart()
		}
		mu.Lock()
		d.kill()
		d = startDaemon(t, dataDir, natsAddr, httpAddr, flags...)
		mu.Unlock()
		restarts++
	}
	if err := <-pubDone; err != nil {
		t.Fatalf("publish: %v", err)
	}
	d.waitIndexedFor(t, uint64(total), 10*time.Minute)
	cancel()

	// Every record exactly once, each with a valid inclusion proof, index agreeing with the log.
	idx := verifyAll(t, d, v, recs)
	var h struct {
		IndexPosition  uint64 `json:"index_position"`
		CheckpointSize uint64 `json:"checkpoint_size"`
	}
	d.getJSON(t, "/healthz", &h)
	duplicates := int(h.CheckpointSize) - len(idx)
	lost := total - len(idx)
	if duplicates != 0 || lost != 0 || h.IndexPosition != h.CheckpointSize {
		t.Fatalf("log %d entries, index %d, distinct records %d of %d: duplicates %d, lost %d", h.CheckpointSize, h.IndexPosition, len(idx), total, duplicates, lost)
	}
	quarantined := countQuarantine(t, "nats://"+natsAddr)
	if quarantined != 0 {
		t.Fatalf("%d records quarantined; none was invalid", quarantined)
	}

	// Every pair of checkpoints seen during the run is consistent.
	mu.Lock()
	cps := make([]ledger.Checkpoint, 0, len(checkpoints))
	for _, cp := range checkpoints {
		cps = append(cps, cp)
	}
	mu.Unlock()
	pairs := verifyConsistencyPairs(t, d, cps)

	// The index rebuilt from the log alone gives the same id → index map.
	d.stop()
	if out, err := ctl("rebuild-index", "--data-dir", dataDir); err != nil {
		t.Fatalf("rebuild-index: %v\n%s", err, out)
	}
	d = startDaemon(t, dataDir, natsAddr, httpAddr, flags...)
	defer d.stop()
	d.waitIndexedFor(t, uint64(total), time.Minute)
	if again := verifyAll(t, d, v, recs); !mapsEqual(idx, again) {
		t.Fatal("the rebuilt index maps records to other log indexes")
	}
	t.Logf("crash test: records published %d, in log %d, duplicates %d, lost %d, quarantined %d, daemon SIGKILLs survived %d, NATS restarts %d, checkpoints seen %d (%d consistency proofs checked), max lineaged RSS %d MiB",
		total, len(idx), duplicates, lost, quarantined, restarts, min(natsRestarts, restarts), len(cps), pairs, maxRSS.Load()>>20)
}

// publishWithRetries publishes every record until JetStream has acked it.
func publishWithRetries(ctx context.Context, natsURL string, recs []lineage.Record, rate int) error {
	nc, err := nats.Connect(natsURL, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(2000), jetstream.WithPublishAsyncTimeout(5*time.Second))
	if err != nil {
		return err
	}
	const window = 100
	begin := time.Now()
	for start := 0; start < len(recs); start += window {
		if rate > 0 {
			time.Sleep(time.Until(begin.Add(time.Duration(float64(start) / float64(rate) * float64(time.Second)))))
		}
		if err := publishChunk(ctx, js, recs[start:min(start+window, len(recs))], 200, nil); err != nil {
			return fmt.Errorf("records %d…: %w", start, err)
		}
	}
	return nil
}

// publishChunk publishes chunk asynchronously and publishes again every record JetStream did not
// ack, up to attempts times, as a gateway does: the Nats-Msg-Id makes a retry of a stored message
// a duplicate JetStream drops, and the ingester drops any that slip through. onAck, when set, is
// called once per acked record.
func publishChunk(ctx context.Context, js jetstream.JetStream, chunk []lineage.Record, attempts int, onAck func()) error {
	for attempt := 0; len(chunk) > 0; attempt++ {
		if attempt > attempts {
			return fmt.Errorf("not acked after %d attempts", attempt)
		}
		futures := make([]jetstream.PubAckFuture, len(chunk))
		var failed []lineage.Record
		for i, r := range chunk {
			b, _ := json.Marshal(r)
			f, err := js.PublishMsgAsync(ingest.RecordMsg(r.Tenant, r.ID, b))
			if err != nil {
				failed = append(failed, r)
				continue
			}
			futures[i] = f
		}
		for i, f := range futures {
			if f == nil {
				continue
			}
			select {
			case <-f.Ok():
				if onAck != nil {
					onAck()
				}
			case <-f.Err():
				failed = append(failed, chunk[i])
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if len(failed) > 0 {
			time.Sleep(100 * time.Millisecond)
		}
		chunk = failed
	}
	return nil
}

// verifyAll fetches every record with its proof, verifies it offline and returns id → index.
func verifyAll(t *testing.T, d *daemon, v note.Verifier, recs []lineage.Record) map[string]uint64 {
	t.Helper()
	type res struct {
		key string
		idx uint64
		err error
	}
	jobs := make(chan lineage.Record)
	out := make(chan res)
	for w := 0; w < 4; w++ {
		go func() {
			for r := range jobs {
				raw, err := getQuiet(d.url("/v1/records/" + url.PathEscape(r.ID) + "?tenant=" + r.Tenant))
				if err != nil {
					out <- res{err: fmt.Errorf("record %s/%s: %w", r.Tenant, r.ID, err)}
					continue
				}
				rp, err := query.DecodeRecordProof(raw)
				if err == nil {
					_, err = query.VerifyRecordProof(rp, v)
				}
				if err == nil && (rp.Record.ID != r.ID || rp.Record.Tenant != r.Tenant) {
					err = fmt.Errorf("answer holds %s/%s", rp.Record.Tenant, rp.Record.ID)
				}
				if err != nil {
					out <- res{err: fmt.Errorf("record %s/%s: %w", r.Tenant, r.ID, err)}
					continue
				}
				out <- res{key: r.Tenant + "/" + r.ID, idx: rp.Index}
			}
		}()
	}
	go func() {
		for _, r := range recs {
			jobs <- r
		}
		close(jobs)
	}()
	m := make(map[string]uint64, len(recs))
	seen := make(map[uint64]string, len(recs))
	var firstErr error
	for range recs {
		r := <-out
		if r.err != nil {
			if firstErr == nil {
				firstErr = r.err
			}
			continue
		}
		if other, dup := seen[r.idx]; dup {
			t.Errorf("log index %d holds both %s and %s", r.idx, other, r.key)
		}
		seen[r.idx] = r.key
		m[r.key] = r.idx
	}
	if firstErr != nil {
		t.Fatal(firstErr)
	}
	return m
}

func verifyConsistencyPairs(t *testing.T, d *daemon, cps []ledger.Checkpoint) int {
	t.Helper()
	if len(cps) < 2 {
		t.Fatalf("only %d checkpoints seen during the run", len(cps))
	}
	// With many checkpoints, check every pair among a spread of 60 plus each one against the
	// next: that still chains every checkpoint to every other by transitivity.
	sortCheckpoints(cps)
	pick := cps
	if len(cps) > 60 {
		pick = nil
		for i := 0; i < 60; i++ {
			pick = append(pick, cps[i*(len(cps)-1)/59])
		}
	}
	n := 0
	check := func(a, b ledger.Checkpoint) {
		raw, err := getQuiet(d.url(fmt.Sprintf("/v1/proofs/consistency?from=%d&to=%d", a.Size, b.Size)))
		if err != nil {
			t.Fatal(err)
		}
		var p struct{ Proof [][]byte }
		if err := json.Unmarshal(raw, &p); err != nil {
			t.Fatal(err)
		}
		if err := ledger.VerifyConsistency(a, b, p.Proof); err != nil {
			t.Fatalf("checkpoints %d and %d: %v", a.Size, b.Size, err)
		}
		n++
	}
	for i := range pick {
		for j := i + 1; j < len(pick); j++ {
			check(pick[i], pick[j])
		}
	}
	for i := 0; i+1 < len(cps); i++ {
		check(cps[i], cps[i+1])
	}
	return n
}

func sortCheckpoints(cps []ledger.Checkpoint) {
	for i := 1; i < len(cps); i++ {
		for j := i; j > 0 && cps[j].Size < cps[j-1].Size; j-- {
			cps[j], cps[j-1] = cps[j-1], cps[j]
		}
	}
}

func countQuarantine(t *testing.T, natsURL string) int {
	t.Helper()
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	s, err := js.Stream(context.Background(), ingest.QuarantineStream)
	if err != nil {
		t.Fatal(err)
	}
	return int(s.CachedInfo().State.Msgs)
}

func mapsEqual(a, b map[string]uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// rssOf reads a process's resident set size in bytes from /proc.
func rssOf(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
