package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/lineage-audit/lineage/internal/loadgen"
)

// Report is one run's figures as `lineagebench --json` writes them: what `lineagebench report`
// compares. Durations are in milliseconds, rates in records/s.
type Report struct {
	Name      string    `json:"name"`
	Timestamp time.Time `json:"timestamp"` // UTC, the first publish
	GoVersion string    `json:"go_version"`
	Params    Params    `json:"params"`
	// LoadAvg is the host's 1, 5 and 15 minute load average (/proc/loadavg) at the start and the
	// end of the run (nil where unreadable): a shared machine's other work skews the figures.
	LoadAvgStart []float64 `json:"loadavg_start"`
	LoadAvgEnd   []float64 `json:"loadavg_end"`
	Figures      Figures   `json:"figures"`
	Throughput   Series    `json:"throughput"`
	Latency      []HistBin `json:"latency_histogram"`
}

// Params are the run's parameters.
type Params struct {
	N              int               `json:"n"`
	Rate           int               `json:"rate"` // 0: as fast as JetStream acks
	Seed           int64             `json:"seed"`
	SampleEvery    int               `json:"sample_every"`
	SampleInterval string            `json:"sample_interval"`
	PID            int               `json:"pid,omitempty"`
	Signed         bool              `json:"signed,omitempty"` // every record carried a source signature (--sign-key)
	Note           string            `json:"note,omitempty"`
	Flags          map[string]string `json:"flags"` // the flags set on the command line, secrets redacted
}

// Figures are the run's measurements. Every figure but the first ten is 0 (or absent) when not
// measured, and reports written before it existed read as 0.
type Figures struct {
	Records            int     `json:"records"`
	Sampled            int     `json:"sampled"`
	RecordsPerSec      float64 `json:"records_per_sec"`  // published, logged, signed and indexed
	AcceptedPerSec     float64 `json:"accepted_per_sec"` // accepted by JetStream
	PublishMs          float64 `json:"publish_ms"`
	TotalMs            float64 `json:"total_ms"`
	P50Ms              float64 `json:"latency_p50_ms"`
	P90Ms              float64 `json:"latency_p90_ms"`
	P99Ms              float64 `json:"latency_p99_ms"`
	MaxMs              float64 `json:"latency_max_ms"`
	CPUMicrosPerRecord float64 `json:"cpu_us_per_record"`
	RSSMiB             float64 `json:"rss_mib"`

	// lineaged's heap allocations per record over the run (go_memstats_mallocs_total and
	// go_memstats_alloc_bytes_total of its /metrics, read at the first publish and when the
	// index has applied every record).
	AllocsPerRecord     float64 `json:"allocs_per_record,omitempty"`
	AllocBytesPerRecord float64 `json:"alloc_bytes_per_record,omitempty"`

	// SourceVerified is how many of the sampled records were logged source_verified.
	SourceVerified int `json:"source_verified,omitempty"`

	// Disk bytes (file sizes) per record in the log after the run, by component of the data dir
	// (--data-dir; loadgen.Disk says what each holds and when it is measured). DiskRecords is
	// the divisor: every record in the log, earlier runs on the same data dir included.
	// DiskLogPartial is the part of DiskLog in partial tiles and bundles not yet collected,
	// DiskIndexWAL the part of DiskIndex in the -wal and -shm files. DiskLogIndex is log +
	// index (issue #14's goal: ≤ 1.5 KB), DiskLogIndexAllocated the same in allocated blocks.
	DiskRecords           uint64     `json:"disk_records,omitempty"`
	DiskLog               float64    `json:"disk_log_bytes_per_record,omitempty"`
	DiskLogPartial        float64    `json:"disk_log_partial_bytes_per_record,omitempty"`
	DiskIndex             float64    `json:"disk_index_bytes_per_record,omitempty"`
	DiskIndexWAL          float64    `json:"disk_index_wal_bytes_per_record,omitempty"`
	DiskNATS              float64    `json:"disk_nats_bytes_per_record,omitempty"`
	DiskOther             float64    `json:"disk_other_bytes_per_record,omitempty"`
	DiskLogIndex          float64    `json:"disk_log_index_bytes_per_record,omitempty"`
	DiskLogIndexAllocated float64    `json:"disk_log_index_allocated_per_record,omitempty"`
	Disk                  *DiskUsage `json:"disk,omitempty"`

	// Lineage answers after the run (--answers): AnswerRequests requests of each kind for the
	// user with the most records in the run (AnswerTenant, AnswerUser; AnswerActions actions in
	// the tree): the user tree without proofs, with every proof, and single records with their
	// inclusion proof. Milliseconds.
	AnswerRequests        int     `json:"answer_requests,omitempty"`
	AnswerTenant          string  `json:"answer_tenant,omitempty"`
	AnswerUser            string  `json:"answer_user,omitempty"`
	AnswerActions         int     `json:"answer_tree_actions,omitempty"`
	AnswerTruncated       bool    `json:"answer_tree_truncated,omitempty"`
	AnswerTreeP50Ms       float64 `json:"answer_tree_p50_ms,omitempty"`
	AnswerTreeP99Ms       float64 `json:"answer_tree_p99_ms,omitempty"`
	AnswerTreeProofsP50Ms float64 `json:"answer_tree_proofs_p50_ms,omitempty"`
	AnswerTreeProofsP99Ms float64 `json:"answer_tree_proofs_p99_ms,omitempty"`
	AnswerTreeBytes       int64   `json:"answer_tree_bytes,omitempty"`
	AnswerTreeProofsBytes int64   `json:"answer_tree_proofs_bytes,omitempty"`
	AnswerRecordP50Ms     float64 `json:"answer_record_p50_ms,omitempty"`
	AnswerRecordP99Ms     float64 `json:"answer_record_p99_ms,omitempty"`
}

// DiskUsage is the data dir's usage by component after the run (loadgen.Disk).
type DiskUsage struct {
	Log        loadgen.Usage `json:"log"`
	LogPartial loadgen.Usage `json:"log_partial"`
	Index      loadgen.Usage `json:"index"`
	IndexWAL   loadgen.Usage `json:"index_wal"`
	NATS       loadgen.Usage `json:"nats"`
	Other      loadgen.Usage `json:"other"`
}

// Series is records indexed per bucket from the first publish.
type Series struct {
	BucketSeconds float64 `json:"bucket_seconds"`
	Indexed       []int   `json:"indexed"`
}

// HistBin counts sampled latencies in (previous bin's UpperMs, UpperMs].
type HistBin struct {
	UpperMs float64 `json:"upper_ms"`
	Count   int     `json:"count"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// newReport builds the report of a run.
func newReport(name string, o loadgen.Options, r loadgen.Result, flags map[string]string, note string, loadStart, loadEnd []float64) Report {
	rep := Report{
		Name:         name,
		Timestamp:    r.Started.UTC(),
		GoVersion:    runtime.Version(),
		LoadAvgStart: loadStart,
		LoadAvgEnd:   loadEnd,
		Params: Params{N: o.N, Rate: o.Rate, Seed: o.Seed, SampleEvery: o.SampleEvery,
			SampleInterval: o.SampleInterval.String(), PID: o.PID, Note: note, Flags: flags},
		Figures: Figures{
			Records: r.N, Sampled: r.Sampled,
			RecordsPerSec: r.Throughput(), AcceptedPerSec: r.PublishRate(),
			PublishMs: ms(r.Publish), TotalMs: ms(r.Total),
			P50Ms: ms(r.P50), P90Ms: ms(r.P90), P99Ms: ms(r.P99), MaxMs: ms(r.Max),
			CPUMicrosPerRecord: float64(r.CPUPerRecord()) / float64(time.Microsecond),
			RSSMiB:             r.RSS / (1 << 20),
		},
		Throughput: Series{BucketSeconds: 1, Indexed: r.Indexed},
		Latency:    histogram(r.Latencies),
	}
	rep.Params.Signed = o.SignKey != nil
	f := &rep.Figures
	f.AllocsPerRecord, f.AllocBytesPerRecord = r.AllocsPerRecord(), r.AllocBytesPerRecord()
	f.SourceVerified = r.SourceVerified
	if d := r.Disk; d != nil {
		f.DiskRecords = r.DiskRecords
		f.DiskLog, f.DiskLogPartial = r.DiskPerRecord(d.Log), r.DiskPerRecord(d.LogPartial)
		f.DiskIndex, f.DiskIndexWAL = r.DiskPerRecord(d.Index), r.DiskPerRecord(d.IndexWAL)
		f.DiskNATS, f.DiskOther = r.DiskPerRecord(d.NATS), r.DiskPerRecord(d.Other)
		f.DiskLogIndex, f.DiskLogIndexAllocated = r.DiskPerRecord(d.LogIndex()), r.AllocatedPerRecord(d.LogIndex())
		f.Disk = &DiskUsage{Log: d.Log, LogPartial: d.LogPartial, Index: d.Index, IndexWAL: d.IndexWAL, NATS: d.NATS, Other: d.Other}
	}
	if a := r.Answers; a != nil {
		f.AnswerRequests, f.AnswerTenant, f.AnswerUser = a.Tree.Requests, a.Tenant, a.User
		f.AnswerActions, f.AnswerTruncated = a.Actions, a.Truncated
		f.AnswerTreeP50Ms, f.AnswerTreeP99Ms, f.AnswerTreeBytes = ms(a.Tree.P50), ms(a.Tree.P99), a.Tree.Bytes
		f.AnswerTreeProofsP50Ms, f.AnswerTreeProofsP99Ms, f.AnswerTreeProofsBytes = ms(a.TreeProofs.P50), ms(a.TreeProofs.P99), a.TreeProofs.Bytes
		f.AnswerRecordP50Ms, f.AnswerRecordP99Ms = ms(a.Record.P50), ms(a.Record.P99)
	}
	if rep.Throughput.Indexed == nil {
		rep.Throughput.Indexed = []int{}
	}
	return rep
}

// binsPerDecade is the latency histogram's resolution: upper bounds 1, 1.26, 1.58, 2.0 … 10 ms.
const binsPerDecade = 10

// histogram counts latencies in log-spaced bins, binsPerDecade per decade, from the bin of the
// smallest to the bin of the largest.
func histogram(lat []time.Duration) []HistBin {
	if len(lat) == 0 {
		return []HistBin{}
	}
	bin := func(d time.Duration) int {
		m := ms(d)
		if m <= 0.01 {
			return -2 * binsPerDecade
		}
		return int(math.Ceil(math.Log10(m)*binsPerDecade - 1e-9))
	}
	lo, hi := bin(lat[0]), bin(lat[0])
	for _, d := range lat {
		lo, hi = min(lo, bin(d)), max(hi, bin(d))
	}
	out := make([]HistBin, hi-lo+1)
	for i := range out {
		out[i].UpperMs = math.Round(math.Pow(10, float64(lo+i)/binsPerDecade)*1000) / 1000
	}
	for _, d := range lat {
		out[bin(d)-lo].Count++
	}
	return out
}

// loadAvg reads the 1, 5 and 15 minute load averages (nil if /proc/loadavg is unreadable).
func loadAvg() []float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return nil
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return nil
	}
	out := make([]float64, 3)
	for i := range out {
		if out[i], err = strconv.ParseFloat(f[i], 64); err != nil {
			return nil
		}
	}
	return out
}

// setFlags lists the flags given (command line or environment), with values of secrets redacted.
func setFlags(fs *flag.FlagSet) map[string]string {
	m := map[string]string{}
	fs.Visit(func(f *flag.Flag) {
		v := f.Value.String()
		for _, s := range []string{"key", "pass", "token", "cred", "secret", "nkey"} {
			if strings.Contains(f.Name, s) && !strings.HasSuffix(f.Name, "-ca") {
				v = "(redacted)"
			}
		}
		m[f.Name] = v
	})
	return m
}

// writeReport writes rep as indented JSON to path (through a temporary file, so a reader never
// sees half a report), creating path's directory.
func writeReport(path string, rep Report) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// readReport reads a report written by writeReport.
func readReport(path string) (Report, error) {
	var rep Report
	b, err := os.ReadFile(path)
	if err != nil {
		return rep, err
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		return rep, fmt.Errorf("%s: %w", path, err)
	}
	if rep.Figures.Records == 0 {
		return rep, fmt.Errorf("%s: not a lineagebench report (no records)", path)
	}
	if rep.Name == "" {
		rep.Name = strings.TrimSuffix(filepath.Base(path), ".json")
	}
	return rep, nil
}

var errUsage = errors.New("usage: lineagebench report --out FILE.html RUN.json [RUN2.json …]")
