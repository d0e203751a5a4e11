// Package loadgen publishes generated decision records to a running lineaged over NATS and
// measures ingest throughput and publish→queryable latency. It backs cmd/lineagebench and the
// driver benchmarks in internal/e2e.
//
// Latency is measured without loading the service: one goroutine samples the index position
// (GET /healthz) every few milliseconds while records flow; afterwards the log index of every
// sampled record is looked up, and its queryable time is the first sample at which the index
// position had passed it.
package loadgen

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lineage-audit/lineage/ingest"
	"github.com/lineage-audit/lineage/internal/demo"
	"github.com/lineage-audit/lineage/internal/natsclient"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Options configures one load run.
type Options struct {
	NATSURL string
	// NATS holds the credentials and TLS to publish with; with an NKey seed the connection uses
	// the publisher's private inbox prefix, as lineagectl publish does.
	NATS natsclient.Settings
	API  string
	// APIKey, when set, is sent as a bearer token with every request to API (the sampled
	// records' lookups need role auditor when lineaged has --api-keys).
	APIKey string
	// N records are published; every SampleEvery-th one has its latency measured.
	N           int
	SampleEvery int
	Seed        int64
	// Rate is records/s (0: as fast as JetStream acks).
	Rate int
	// IDPrefix makes ids unique per run ("" picks one).
	IDPrefix string
	// SampleInterval is how often the index position is sampled (default 2 ms). Every sample
	// is a request the server answers, so a CPU measurement wants a coarse one (100 ms).
	SampleInterval time.Duration
	// PID, when set, is the lineaged process whose CPU time (user+system, /proc/<pid>/stat) is
	// measured from the first publish until the index has applied every record.
	PID int
	// Allocs reads lineaged's allocation counters (/metrics, role admin when lineaged has API
	// keys) at the first publish and when the index has applied every record (Result.Allocs).
	Allocs bool
	// DataDir, when set, is lineaged's data dir: its disk usage by component is measured after
	// the run (Result.Disk).
	DataDir string
	// Answers, when > 0, times that many lineage answers of each kind after the run
	// (Result.Answers); AnswersLimit is the user tree's page size (DefaultAnswersLimit if 0).
	Answers, AnswersLimit int
	// SignKey, when set, signs every record (ingest.Sign, header ingest.HeaderSignature) as
	// lineagectl publish --sign-key does, with key id SignKeyID, in which "{source}" and
	// "{tenant}" stand for the record's source id and tenant (the demo records come from two
	// sources per tenant, and a source key vouches for one source of one tenant). The run then
	// fails unless every sampled record is logged source_verified.
	SignKey   ed25519.PrivateKey
	SignKeyID string
}

// Result is what a run measured.
type Result struct {
	N, Sampled     int
	Publish, Total time.Duration
	P50, P90, P99  time.Duration
	Max            time.Duration
	RSS            float64 // lineaged resident memory at the end, bytes (0 if unknown)
	// CPU is lineaged's user+system CPU time over the run (0 without Options.PID).
	CPU time.Duration
	// Started is when the first record was published.
	Started time.Time
	// Indexed is how many records the index applied in each 1 s bucket from Started (from the
	// sampled index positions; the charts of a benchmark report).
	Indexed []int
	// Latencies are the sampled publish→queryable latencies, sorted ascending.
	Latencies []time.Duration
	// Allocs is lineaged's heap allocations over the run (from the first publish until the
	// index has applied every record); zero when not measured.
	Allocs Allocs
	// SourceVerified is how many sampled records were logged source_verified.
	SourceVerified int
	// Disk is the data dir's usage after the run (Options.DataDir; nil without), and
	// DiskRecords the number of records in the log then (the data dir may hold earlier runs).
	// It is taken at the very end (after the sampled records' lookups and the answers), a few
	// seconds after the last record was indexed, while lineaged runs: Tessera's partial bundles
	// and tiles are then usually still there (Disk.LogPartial; its garbage collector runs every
	// minute), and the SQLite WAL holds up to ~40 MB of pages not yet checkpointed into the
	// database file (Disk.IndexWAL; query/index/sqlite/sqlite.go, walAutocheckpointPages), a
	// fixed amount that weighs less per record the larger the run.
	Disk        *Disk
	DiskRecords uint64
	// Answers are the lineage-answer latencies (nil without Options.Answers).
	Answers *Answers
}

// AllocsPerRecord and AllocBytesPerRecord are lineaged's heap allocations (count and bytes)
// per record over the run (0 when not measured).
func (r Result) AllocsPerRecord() float64 {
	if r.N == 0 {
		return 0
	}
	return r.Allocs.Mallocs / float64(r.N)
}

func (r Result) AllocBytesPerRecord() float64 {
	if r.N == 0 {
		return 0
	}
	return r.Allocs.Bytes / float64(r.N)
}

// DiskPerRecord is u in bytes (file sizes) per record in the log after the run.
func (r Result) DiskPerRecord(u Usage) float64 {
	if r.DiskRecords == 0 {
		return 0
	}
	return float64(u.Bytes) / float64(r.DiskRecords)
}

// AllocatedPerRecord is u in allocated blocks per record in the log after the run.
func (r Result) AllocatedPerRecord(u Usage) float64 {
	if r.DiskRecords == 0 {
		return 0
	}
	return float64(u.Allocated) / float64(r.DiskRecords)
}

// CPUPerRecord is lineaged's CPU time per record over the run (0 without Options.PID).
func (r Result) CPUPerRecord() time.Duration {
	if r.N == 0 {
		return 0
	}
	return r.CPU / time.Duration(r.N)
}

// PublishRate is records/s accepted by JetStream.
func (r Result) PublishRate() float64 { return float64(r.N) / r.Publish.Seconds() }

// Throughput is records/s published, logged, signed and indexed.
func (r Result) Throughput() float64 { return float64(r.N) / r.Total.Seconds() }

// String prints the figures the way `make bench` reports them.
func (r Result) String() string {
	return fmt.Sprintf("records %d (latency sampled %d): JetStream accepted %.0f/s; end-to-end %s = %.0f records/s; publish→queryable p50 %s p90 %s p99 %s max %s; lineaged RSS %.0f MiB",
		r.N, r.Sampled, r.PublishRate(), r.Total.Round(time.Millisecond), r.Throughput(),
		r.P50.Round(time.Millisecond), r.P90.Round(time.Millisecond), r.P99.Round(time.Millisecond), r.Max.Round(time.Millisecond), r.RSS/(1<<20))
}

type sample struct {
	tenant, id string
	published  time.Time
	index      uint64
	verified   bool
}

// userKey is a user of one tenant.
type userKey struct{ tenant, user string }

// busiest is the user with the most records (ties: the smallest tenant, then user id, so the
// choice does not depend on map order).
func busiest(counts map[userKey]int) (userKey, int) {
	var best userKey
	n := 0
	for k, c := range counts {
		if c > n || c == n && (k.tenant < best.tenant || k.tenant == best.tenant && k.user < best.user) {
			best, n = k, c
		}
	}
	return best, n
}

// SignKeyID expands "{source}" and "{tenant}" in a key id template.
func SignKeyID(tmpl, tenant, source string) string {
	return strings.NewReplacer("{source}", source, "{tenant}", tenant).Replace(tmpl)
}

type observation struct {
	at       time.Time
	position uint64
}

// DemoTenants is the number of demo tenants (internal/demo) the generated records belong to.
const DemoTenants = 3

// Source is an enforcement point of one tenant.
type Source struct{ Tenant, SourceID string }

// Sources lists the (tenant, source id) pairs of the first n records a run with this seed
// publishes, sorted: each needs a registered source key for signed records to verify.
func Sources(seed int64, n int) []Source {
	g := demo.New(demo.Options{Seed: seed, Tenants: DemoTenants})
	seen := map[Source]bool{}
	for i := 0; i < n; i++ {
		r := g.Next()
		seen[Source{r.Tenant, r.Source.ID}] = true
	}
	out := make([]Source, 0, len(seen))
	for s := range seen {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b Source) int { return strings.Compare(a.Tenant+"\x00"+a.SourceID, b.Tenant+"\x00"+b.SourceID) })
	return out
}

// Run publishes o.N records and waits until all are indexed.
func Run(ctx context.Context, o Options) (Result, error) {
	if o.SampleEvery <= 0 {
		o.SampleEvery = 10
	}
	if o.SampleInterval <= 0 {
		o.SampleInterval = 2 * time.Millisecond
	}
	if o.IDPrefix == "" {
		o.IDPrefix = "b" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36) + "-"
	}
	api := apiClient{base: o.API, key: o.APIKey}
	start0, err := api.position()
	if err != nil {
		return Result{}, fmt.Errorf("loadgen: is lineaged running at %s? %w", o.API, err)
	}
	creds, err := o.NATS.Options()
	if err != nil {
		return Result{}, fmt.Errorf("loadgen: %w", err)
	}
	nc, err := nats.Connect(o.NATSURL, append([]nats.Option{nats.Name("lineage-loadgen")}, creds...)...)
	if err != nil {
		return Result{}, fmt.Errorf("loadgen: connect nats (%s): %w", o.NATS.Describe(), err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(8192))
	if err != nil {
		return Result{}, err
	}

	// Observe the index position until it has taken every record.
	var obs []observation
	var obsMu sync.Mutex
	target := start0 + uint64(o.N)
	watchDone := make(chan error, 1)
	var cpuStart, cpuEnd time.Duration
	var allocStart, allocEnd Allocs
	allocs := o.Allocs
	if allocs {
		// Two reads of /metrics per run, at the first publish and at the end, not sampling.
		if allocStart, err = api.allocs(); err != nil {
			return Result{}, fmt.Errorf("loadgen: allocations: %w", err)
		}
	}
	if o.PID > 0 {
		if cpuStart, err = ProcessCPU(o.PID); err != nil {
			return Result{}, fmt.Errorf("loadgen: %w", err)
		}
	}
	go func() {
		for {
			p, err := api.position()
			if err != nil {
				watchDone <- err
				return
			}
			obsMu.Lock()
			obs = append(obs, observation{time.Now(), p})
			obsMu.Unlock()
			if p >= target {
				var err error
				if o.PID > 0 {
					cpuEnd, err = ProcessCPU(o.PID)
				}
				if err == nil && allocs {
					allocEnd, err = api.allocs()
				}
				watchDone <- err
				return
			}
			if ctx.Err() != nil {
				watchDone <- ctx.Err()
				return
			}
			time.Sleep(o.SampleInterval)
		}
	}()

	g := demo.New(demo.Options{Seed: o.Seed, Tenants: DemoTenants})
	samples := make([]sample, 0, o.N/o.SampleEvery+1)
	users := map[userKey]int{}
	start := time.Now()
	for i := 0; i < o.N; i++ {
		if o.Rate > 0 {
			if due := start.Add(time.Duration(float64(i) / float64(o.Rate) * float64(time.Second))); time.Until(due) > 0 {
				time.Sleep(time.Until(due))
			}
		}
		r := g.Next()
		r.ID = o.IDPrefix + r.ID
		if r.ParentID != "" {
			r.ParentID = o.IDPrefix + r.ParentID
		}
		b, err := json.Marshal(r)
		if err != nil {
			return Result{}, err
		}
		m := ingest.RecordMsg(r.Tenant, r.ID, b)
		if o.SignKey != nil {
			m.Header.Set(ingest.HeaderSignature, ingest.Sign(o.SignKey, SignKeyID(o.SignKeyID, r.Tenant, r.Source.ID), b))
		}
		if err := ingest.PublishAsync(ctx, js, m); err != nil {
			return Result{}, err
		}
		users[userKey{r.Tenant, r.User.ID}]++
		if i%o.SampleEvery == 0 {
			samples = append(samples, sample{tenant: r.Tenant, id: r.ID, published: time.Now()})
		}
	}
	<-js.PublishAsyncComplete()
	res := Result{N: o.N, Publish: time.Since(start), Started: start}
	if err := <-watchDone; err != nil {
		return res, err
	}
	res.Total = time.Since(start)
	res.CPU = cpuEnd - cpuStart
	if allocs {
		res.Allocs = Allocs{Mallocs: allocEnd.Mallocs - allocStart.Mallocs, Bytes: allocEnd.Bytes - allocStart.Bytes}
	}
	obsMu.Lock()
	res.Indexed = indexedPerSecond(obs, start, start0)
	obsMu.Unlock()

	// Which log index did each sampled record get?
	for i := range samples {
		idx, verified, err := api.logIndex(samples[i].tenant, samples[i].id)
		if err != nil {
			return res, err
		}
		samples[i].index, samples[i].verified = idx, verified
		if verified {
			res.SourceVerified++
		}
	}
	if o.SignKey != nil && res.SourceVerified != len(samples) {
		return res, fmt.Errorf("loadgen: records were signed, but only %d of %d sampled records are logged source_verified (is lineaged started with --source-keys holding the key for every tenant and source?)", res.SourceVerified, len(samples))
	}
	lat := make([]time.Duration, 0, len(samples))
	for _, s := range samples {
		j, _ := slices.BinarySearchFunc(obs, s.index+1, func(o observation, want uint64) int {
			if o.position < want {
				return -1
			}
			return 1
		})
		if j == len(obs) {
			return res, fmt.Errorf("loadgen: record %s (index %d) never observed as indexed", s.id, s.index)
		}
		lat = append(lat, obs[j].at.Sub(s.published))
	}
	slices.Sort(lat)
	res.Sampled = len(lat)
	res.Latencies = lat
	res.P50, res.P90, res.P99, res.Max = percentile(lat, 0.50), percentile(lat, 0.90), percentile(lat, 0.99), lat[len(lat)-1]
	if m, err := api.metrics(metricRSS); err == nil {
		res.RSS = m[metricRSS]
	}

	if o.Answers > 0 {
		u, _ := busiest(users)
		limit := o.AnswersLimit
		if limit <= 0 {
			limit = DefaultAnswersLimit
		}
		ans, err := measureAnswers(api, o.Answers, limit, u.tenant, u.user, samples, o.Seed)
		if err != nil {
			return res, err
		}
		res.Answers = &ans
	}
	if o.DataDir != "" {
		d, err := DiskUsage(o.DataDir)
		if err != nil {
			return res, err
		}
		res.Disk = &d
		// Every record of the log is indexed by now (the index position reached target).
		res.DiskRecords = target
	}
	return res, nil
}

// indexedPerSecond turns index-position observations into records applied per 1 s bucket from
// start: each bucket is the highest position seen by its end minus the one before (base for the
// first). Observations before start count in the first bucket.
func indexedPerSecond(obs []observation, start time.Time, base uint64) []int {
	if len(obs) == 0 {
		return nil
	}
	bucket := func(at time.Time) int { return max(0, int(at.Sub(start)/time.Second)) }
	ends := make([]uint64, bucket(obs[len(obs)-1].at)+1)
	for _, o := range obs {
		b := bucket(o.at)
		if b < len(ends) {
			ends[b] = max(ends[b], o.position)
		}
	}
	out := make([]int, len(ends))
	prev := base
	for i, e := range ends {
		e = max(e, prev) // no sample in this bucket, or a lower one: nothing applied
		out[i] = int(e - prev)
		prev = e
	}
	return out
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat: 100 on every Linux
// architecture Go supports (sysconf(_SC_CLK_TCK) would need cgo).
const clockTicks = 100

// ProcessCPU is the user+system CPU time process pid has used so far (Linux /proc/<pid>/stat).
func ProcessCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("cpu time of pid %d: %w", pid, err)
	}
	return parseStatCPU(b)
}

// parseStatCPU reads utime and stime (fields 14 and 15) from a /proc/<pid>/stat line. The
// command name (field 2) is in parentheses and may hold spaces, so fields count from the last ')'.
func parseStatCPU(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("proc stat: no command name")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("proc stat: %d fields after the command name", len(f))
	}
	var ticks uint64
	for _, s := range f[11:13] { // utime, stime
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("proc stat: %w", err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

var client = &http.Client{Timeout: 10 * time.Second}

// apiClient queries the lineaged under test, with its API key if it has one, through client
// (the package's client if nil).
type apiClient struct {
	base, key string
	client    *http.Client
}

func (a apiClient) get(path string) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodGet, a.base+path, nil)
	if err != nil {
		return nil, err
	}
	if a.key != "" {
		req.Header.Set("Authorization", "Bearer "+a.key)
	}
	c := a.client
	if c == nil {
		c = client
	}
	return c.Do(req)
}

func (a apiClient) position() (uint64, error) {
	resp, err := a.get("/healthz")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var h struct {
		IndexPosition uint64 `json:"index_position"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		return 0, err
	}
	return h.IndexPosition, nil
}

// logIndex looks up a published record: its log index and whether it was logged
// source_verified (from the leaf, the exact ledger entry: lineage.Envelope).
func (a apiClient) logIndex(tenant, id string) (uint64, bool, error) {
	resp, err := a.get("/v1/records/" + url.PathEscape(id) + "?tenant=" + url.QueryEscape(tenant))
	if err != nil {
		return 0, false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, false, fmt.Errorf("record %s/%s: %s", tenant, id, resp.Status)
	}
	var rp struct {
		Index uint64 `json:"index"`
		Leaf  []byte `json:"leaf"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&rp); err != nil {
		return 0, false, fmt.Errorf("record %s/%s: %w", tenant, id, err)
	}
	var env struct {
		SourceVerified bool `json:"source_verified"`
	}
	if err := json.Unmarshal(rp.Leaf, &env); err != nil {
		return 0, false, fmt.Errorf("record %s/%s: leaf: %w", tenant, id, err)
	}
	return rp.Index, env.SourceVerified, nil
}
