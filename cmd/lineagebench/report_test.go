package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/lineage-audit/lineage/internal/loadgen"
)

func testReport(name string, perSec float64) Report {
	o := loadgen.Options{N: 5000, Rate: 0, Seed: 42, SampleEvery: 10, SampleInterval: 100 * time.Millisecond, PID: 1234}
	total := time.Duration(float64(5000) / perSec * float64(time.Second))
	r := loadgen.Result{
		N: 5000, Sampled: 500, Publish: 200 * time.Millisecond, Total: total,
		P50: 300 * time.Millisecond, P90: 450 * time.Millisecond, P99: 600 * time.Millisecond, Max: 700 * time.Millisecond,
		RSS: 80 << 20, CPU: 250 * time.Millisecond,
		Started:   time.Date(2026, 12, 1, 1, 2, 3, 0, time.FixedZone("X", 3600)),
		Indexed:   []int{1000, 2500, 1500},
		Latencies: []time.Duration{2 * time.Millisecond, 40 * time.Millisecond, 300 * time.Millisecond, 310 * time.Millisecond, 700 * time.Millisecond},
	}
	return newReport(name, o, r, map[string]string{"n": "5000", "api-key": "(redacted)"}, "default flags", []float64{1.5, 1.2, 1}, []float64{2, 1.4, 1.1})
}

// testReportFull is testReport with every optional figure measured: allocations, disk,
// answers, a signed run.
func testReportFull(name string, perSec float64) Report {
	rep := testReport(name, perSec)
	o := loadgen.Options{N: 5000, Seed: 42, SampleEvery: 10, SampleInterval: 100 * time.Millisecond, PID: 1234,
		Allocs: true, DataDir: "/x", Answers: 20, SignKey: make([]byte, 64), SignKeyID: "k"}
	r := loadgen.Result{
		N: 5000, Sampled: 500, Publish: 200 * time.Millisecond, Total: time.Duration(float64(5000) / perSec * float64(time.Second)),
		P50: 300 * time.Millisecond, P90: 450 * time.Millisecond, P99: 600 * time.Millisecond, Max: 700 * time.Millisecond,
		RSS: 80 << 20, CPU: 250 * time.Millisecond, Started: rep.Timestamp,
		Indexed: []int{1000, 2500, 1500}, Latencies: []time.Duration{2 * time.Millisecond, 700 * time.Millisecond},
		Allocs:         loadgen.Allocs{Mallocs: 650_000, Bytes: 140e6},
		SourceVerified: 500,
		Disk: &loadgen.Disk{
			Log: loadgen.Usage{Files: 40, Bytes: 9_250_000, Allocated: 9_500_000}, LogPartial: loadgen.Usage{Files: 4, Bytes: 250_000, Allocated: 262_144},
			Index: loadgen.Usage{Files: 3, Bytes: 11_750_000, Allocated: 12_000_000}, IndexWAL: loadgen.Usage{Files: 2, Bytes: 4_000_000, Allocated: 4_000_000},
			NATS: loadgen.Usage{Files: 5, Bytes: 4_000_000, Allocated: 4_100_000}, Other: loadgen.Usage{Files: 4, Bytes: 5_000, Allocated: 16_384},
		},
		DiskRecords: 5000,
		Answers: &loadgen.Answers{Tenant: "acme-bank", User: "chidi.novak@acme-bank.example", Actions: 321,
			Tree:       loadgen.Latencies{Requests: 20, P50: 12500 * time.Microsecond, P99: 19 * time.Millisecond, Bytes: 400_000},
			TreeProofs: loadgen.Latencies{Requests: 20, P50: 41 * time.Millisecond, P99: 77 * time.Millisecond, Bytes: 1_400_000},
			Record:     loadgen.Latencies{Requests: 20, P50: 530 * time.Microsecond, P99: 2830 * time.Microsecond, Bytes: 3_000},
		},
	}
	full := newReport(name, o, r, rep.Params.Flags, rep.Params.Note, rep.LoadAvgStart, rep.LoadAvgEnd)
	return full
}

func TestReportNewFigures(t *testing.T) {
	rep := testReportFull("full", 10000)
	path := filepath.Join(t.TempDir(), "run.json")
	if err := writeReport(path, rep); err != nil {
		t.Fatal(err)
	}
	got, err := readReport(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, rep) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got.Figures, rep.Figures)
	}
	f := got.Figures
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"allocs/record", f.AllocsPerRecord, 130},
		{"alloc bytes/record", f.AllocBytesPerRecord, 28_000},
		{"disk log", f.DiskLog, 1850},
		{"disk log partial", f.DiskLogPartial, 50},
		{"disk index", f.DiskIndex, 2350},
		{"disk index wal", f.DiskIndexWAL, 800},
		{"disk nats", f.DiskNATS, 800},
		{"disk other", f.DiskOther, 1},
		{"disk log+index", f.DiskLogIndex, 4200},
		{"disk log+index allocated", f.DiskLogIndexAllocated, 4300},
		{"tree p50", f.AnswerTreeP50Ms, 12.5},
		{"tree p99", f.AnswerTreeP99Ms, 19},
		{"proofs p50", f.AnswerTreeProofsP50Ms, 41},
		{"proofs p99", f.AnswerTreeProofsP99Ms, 77},
		{"record p50", f.AnswerRecordP50Ms, 0.53},
		{"record p99", f.AnswerRecordP99Ms, 2.83},
	} {
		if diff := c.got - c.want; diff > 1e-9 || diff < -1e-9 {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if f.DiskRecords != 5000 || f.AnswerActions != 321 || f.AnswerRequests != 20 || f.AnswerUser != "chidi.novak@acme-bank.example" ||
		f.AnswerTenant != "acme-bank" || f.SourceVerified != 500 || !got.Params.Signed || f.Disk == nil || f.Disk.IndexWAL.Files != 2 {
		t.Errorf("figures %+v, params %+v", f, got.Params)
	}
	b, _ := os.ReadFile(path)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	figs := m["figures"].(map[string]any)
	for _, k := range []string{"allocs_per_record", "alloc_bytes_per_record", "disk_log_bytes_per_record", "disk_index_bytes_per_record",
		"disk_log_index_bytes_per_record", "disk_nats_bytes_per_record", "disk_other_bytes_per_record", "disk_records", "disk",
		"answer_tree_p50_ms", "answer_tree_p99_ms", "answer_tree_proofs_p50_ms", "answer_tree_proofs_p99_ms",
		"answer_record_p50_ms", "answer_record_p99_ms", "answer_tree_actions", "source_verified"} {
		if _, ok := figs[k]; !ok {
			t.Errorf("no figures.%s in %s", k, b)
		}
	}
	if strings.Contains(string(b), `"sign`) && !strings.Contains(string(b), `"signed": true`) {
		t.Errorf("sign key material in the report? %s", b)
	}

	// A run that measured none of them writes none of them.
	b, _ = json.Marshal(testReport("plain", 10000))
	for _, k := range []string{"allocs_per_record", "disk", "answer_", "source_verified", "signed"} {
		if strings.Contains(string(b), `"`+k) {
			t.Errorf("unmeasured %q written: %s", k, b)
		}
	}
}

// A report written before the new figures existed (this is one, verbatim but shortened)
// still reads, and renders with "–" for what it lacks.
const oldReport = `{
  "name": "20261130T220000Z-e2e",
  "timestamp": "2026-11-30T22:00:00Z",
  "go_version": "go1.26.8",
  "params": {"n": 20000, "rate": 0, "seed": 42, "sample_every": 10, "sample_interval": "2ms", "flags": {"n": "20000"}},
  "loadavg_start": [1, 1, 1],
  "loadavg_end": [2, 1, 1],
  "figures": {"records": 20000, "sampled": 2000, "records_per_sec": 5000, "accepted_per_sec": 14000,
    "publish_ms": 1400, "total_ms": 4000, "latency_p50_ms": 900, "latency_p90_ms": 1500,
    "latency_p99_ms": 1900, "latency_max_ms": 2000, "cpu_us_per_record": 0, "rss_mib": 120},
  "throughput": {"bucket_seconds": 1, "indexed": [5000, 5000, 5000, 5000]},
  "latency_histogram": [{"upper_ms": 1000, "count": 1000}, {"upper_ms": 2000, "count": 1000}]
}`

func TestOldReportStillReads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.json")
	if err := os.WriteFile(path, []byte(oldReport), 0o644); err != nil {
		t.Fatal(err)
	}
	old, err := readReport(path)
	if err != nil {
		t.Fatal(err)
	}
	if old.Figures.RecordsPerSec != 5000 || old.Figures.AllocsPerRecord != 0 || old.Figures.Disk != nil || old.Params.Signed {
		t.Fatalf("old report read as %+v", old.Figures)
	}
	var b bytes.Buffer
	if err := renderHTML(&b, []Report{old, testReportFull("new", 10000)}, true); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	// The allocations row: "–" for the old run, a value for the new one, no ratio.
	i := strings.Index(page, "lineaged allocations/record")
	if i < 0 {
		t.Fatal("no allocations row")
	}
	rowEnd := strings.Index(page[i:], "</tr>")
	if r := page[i : i+rowEnd]; !strings.Contains(r, "<td>–</td><td>130</td>") || !strings.Contains(r, `"">–</td>`) {
		t.Errorf("allocations row %q", r)
	}
	var s bytes.Buffer
	if err := writeSummary(&s, []Report{old}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(s.String(), "disk: log + index, bytes/record") {
		t.Errorf("summary of an old report:\n%s", s.String())
	}
}

func TestSummaryAndField(t *testing.T) {
	dir := t.TempDir()
	a, c := filepath.Join(dir, "e2e.json"), filepath.Join(dir, "steady.json")
	if err := writeReport(a, testReportFull("e2e", 10000)); err != nil {
		t.Fatal(err)
	}
	steady := testReport("steady", 2000)
	steady.Params.Rate = 8000
	if err := writeReport(c, steady); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := summaryMain([]string{a, c}, &out); err != nil {
		t.Fatal(err)
	}
	lines := map[string]string{}
	for _, l := range strings.Split(out.String(), "\n") {
		f := strings.Fields(l)
		if len(f) > 2 {
			lines[strings.Join(f[:len(f)-2], " ")] = strings.Join(f[len(f)-2:], " ")
		}
	}
	for label, want := range map[string]string{
		"figure":                                   "e2e steady",
		"rate":                                     "max 8000/s",
		"end to end, records/s":                    "10000 2000",
		"lineaged allocations/record":              "130 –",
		"disk: log + index, bytes/record":          "4200 –",
		"answer: tree with every proof p99, ms":    "77.0 –",
		"answer: record + inclusion proof p99, ms": "2.83 –",
		"signed records":                           "yes no",
	} {
		if got := lines[label]; got != want {
			t.Errorf("summary %q = %q, want %q\n%s", label, got, want, out.String())
		}
	}
	if err := summaryMain(nil, &out); err == nil {
		t.Error("summary of nothing: want an error")
	}

	for path, want := range map[string]string{
		"figures.records_per_sec": "10000",
		"figures.answer_user":     "chidi.novak@acme-bank.example",
		"params.n":                "5000",
		"figures.disk.log.files":  "40",
		"loadavg_start":           "[1.5,1.2,1]",
	} {
		out.Reset()
		if err := fieldMain([]string{a, path}, &out); err != nil {
			t.Errorf("field %s: %v", path, err)
		} else if got := strings.TrimSpace(out.String()); got != want {
			t.Errorf("field %s = %q, want %q", path, got, want)
		}
	}
	for _, bad := range []string{"figures.nope", "figures.records_per_sec.x", "nope"} {
		if err := fieldMain([]string{c, bad}, &out); err == nil {
			t.Errorf("field %s: want an error", bad)
		}
	}
}

func TestReportJSONRoundTrip(t *testing.T) {
	rep := testReport("before", 10000)
	path := filepath.Join(t.TempDir(), "sub", "run.json")
	if err := writeReport(path, rep); err != nil {
		t.Fatal(err)
	}
	got, err := readReport(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, rep) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, rep)
	}
	if got.Timestamp.Location() != time.UTC || got.Timestamp.Hour() != 0 {
		t.Errorf("timestamp %v, want UTC 00:02:03", got.Timestamp)
	}
	if got.Figures.CPUMicrosPerRecord != 50 || got.Figures.RecordsPerSec < 9999 || got.Figures.AcceptedPerSec != 25000 || got.Figures.RSSMiB != 80 {
		t.Errorf("figures %+v", got.Figures)
	}

	// The fields a comparison needs are present by name.
	b, _ := os.ReadFile(path)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"name", "timestamp", "go_version", "params", "loadavg_start", "loadavg_end", "figures", "throughput", "latency_histogram"} {
		if _, ok := m[k]; !ok {
			t.Errorf("no %q in %s", k, b)
		}
	}
	figs := m["figures"].(map[string]any)
	for _, k := range []string{"records_per_sec", "accepted_per_sec", "latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "latency_max_ms", "cpu_us_per_record", "rss_mib"} {
		if _, ok := figs[k]; !ok {
			t.Errorf("no figures.%s in %s", k, b)
		}
	}
	params := m["params"].(map[string]any)
	for _, k := range []string{"n", "rate", "seed", "flags"} {
		if _, ok := params[k]; !ok {
			t.Errorf("no params.%s in %s", k, b)
		}
	}
	if strings.Contains(string(b), "secret-key") {
		t.Error("a secret in the report")
	}
	if _, err := os.Stat(path + ".tmp"); !os.IsNotExist(err) {
		t.Error("temporary file left behind")
	}
}

func TestReadReportRejectsOtherJSON(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.json")
	os.WriteFile(path, []byte(`{"foo": 1}`), 0o644)
	if _, err := readReport(path); err == nil {
		t.Fatal("want an error for JSON that is not a report")
	}
}

func TestHistogram(t *testing.T) {
	h := histogram([]time.Duration{time.Millisecond, 1500 * time.Microsecond, 1580 * time.Microsecond, 3 * time.Millisecond, 10 * time.Millisecond})
	want := []HistBin{{1, 1}, {1.259, 0}, {1.585, 2}, {1.995, 0}, {2.512, 0}, {3.162, 1}, {3.981, 0}, {5.012, 0}, {6.31, 0}, {7.943, 0}, {10, 1}}
	if !reflect.DeepEqual(h, want) {
		t.Fatalf("got %v, want %v", h, want)
	}
	if len(histogram(nil)) != 0 {
		t.Fatal("empty")
	}
}

func TestSetFlagsRedacts(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.String("api-key", "", "")
	fs.String("nats-password", "", "")
	fs.String("nats-nkey-seed", "", "")
	fs.Int("seed", 0, "")
	fs.Int("n", 0, "")
	if err := fs.Parse([]string{"--api-key", "secret-key", "--nats-password", "pw", "--nats-nkey-seed", "/s", "--seed", "7"}); err != nil {
		t.Fatal(err)
	}
	got := setFlags(fs)
	want := map[string]string{"api-key": "(redacted)", "nats-password": "(redacted)", "nats-nkey-seed": "(redacted)", "seed": "7"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestRenderHTML(t *testing.T) {
	old := testReport("<script>alert(1)</script>", 10000)
	old.Params.Note = `"><img src=x onerror=alert(2)>`
	nw := testReportFull("after", 12500)
	var b bytes.Buffer
	if err := renderHTML(&b, []Report{old, nw}, true); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, want := range []string{
		// The new figures of the second run: allocations, disk, answers, signed.
		"<td>lineaged allocations/record</td><td>–</td><td>130</td>",
		"<td>disk: log &#43; index, bytes/record</td><td>–</td><td>4200</td>",
		"<td>disk: log, bytes/record</td><td>–</td><td>1850</td>",
		"<td>disk: index, bytes/record</td><td>–</td><td>2350</td>",
		"<td>answer: tree with every proof p99, ms</td><td>–</td><td>77.0</td>",
		"<td>answer: record &#43; inclusion proof p50, ms</td><td>–</td><td>0.53</td>",
		"<td>answer: user tree, actions</td><td>–</td><td>321</td>",
		"<td>signed records</td><td>no</td><td>yes</td>",
		"chidi.novak@acme-bank.example",
		"&lt;script&gt;alert(1)&lt;/script&gt;", "after", // both runs' names, the hostile one escaped
		"10000", "12500", // records/s of each
		"1.25×", // the ratio new/old of records/s
		"50.0",  // CPU µs per record
		"<svg", "<polyline", "<rect",
		"&lt;img src=x",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	for _, bad := range []string{"<script", "<img", "http://", "https://"} {
		if strings.Contains(page, bad) {
			t.Errorf("page holds %q", bad)
		}
	}

	// The subcommand end to end: files in, a page out.
	dir := t.TempDir()
	a, c, out := filepath.Join(dir, "a.json"), filepath.Join(dir, "b.json"), filepath.Join(dir, "compare.html")
	if err := writeReport(a, old); err != nil {
		t.Fatal(err)
	}
	if err := writeReport(c, nw); err != nil {
		t.Fatal(err)
	}
	if err := reportMain([]string{"--out", out, a, c}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil || !bytes.Equal(got, b.Bytes()) {
		t.Fatalf("report wrote something else (%v)", err)
	}
	if err := reportMain([]string{"--out", out}); err == nil {
		t.Error("no runs: want an error")
	}
}

func TestRenderHTMLOneRun(t *testing.T) {
	var b bytes.Buffer
	r := testReport("solo", 10000)
	r.Throughput.Indexed = []int{}
	r.Latency = []HistBin{}
	if err := renderHTML(&b, []Report{r}, true); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "ratio") {
		t.Error("one run: no ratio column")
	}
}
