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
	nw := testReport("after", 12500)
	var b bytes.Buffer
	if err := renderHTML(&b, []Report{old, nw}); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, want := range []string{
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
	if err := renderHTML(&b, []Report{r}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "ratio") {
		t.Error("one run: no ratio column")
	}
}
