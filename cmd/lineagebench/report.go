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
	Note           string            `json:"note,omitempty"`
	Flags          map[string]string `json:"flags"` // the flags set on the command line, secrets redacted
}

// Figures are the run's measurements. CPUMicrosPerRecord and RSSMiB are 0 when not measured.
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
