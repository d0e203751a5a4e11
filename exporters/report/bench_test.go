package report

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/internal/demo"
	"github.com/lineage-audit/lineage/ledger"
	"github.com/lineage-audit/lineage/ledger/tessera"
	"github.com/lineage-audit/lineage/verify"
)

// BenchmarkExport measures exports over a large log: LINEAGE_EXPORT_BENCH_N records (default
// 1,000,000) of demo traffic from three tenants over four months, appended to a real Tessera
// log. Each export runs in a child process (this test binary, re-executed) so that its peak
// RSS is measured alone, from the kernel's rusage, not mixed with the log builder's.
//
// The log is built once per run in a temporary directory, or kept in LINEAGE_EXPORT_BENCH_DIR
// and reused by later runs. Run it with:
//
//	go test -run '^$' -bench Export -benchtime 1x -timeout 60m ./exporters/
func BenchmarkExport(b *testing.B) {
	n := 1_000_000
	if s := os.Getenv("LINEAGE_EXPORT_BENCH_N"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			b.Fatalf("LINEAGE_EXPORT_BENCH_N=%q", s)
		}
		n = v
	}
	dir := os.Getenv("LINEAGE_EXPORT_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	buildStart := time.Now()
	built, err := benchLog(dir, n)
	if err != nil {
		b.Fatal(err)
	}
	if built {
		b.Logf("built a log of %d records in %s", n, time.Since(buildStart).Round(time.Second))
	}
	for _, c := range []benchCase{
		// The whole life of the first tenant: ~43% of the log cited, with proofs.
		{Kind: KindFannieMae, Tenant: "acme-bank"},
		// One AI system of the smallest tenant, for one month.
		{Kind: KindEUAIAct, Tenant: "initech-health", AISystem: "initech-health/patient-intake", Month: true},
	} {
		c.Dir, c.N = dir, n
		b.Run(fmt.Sprintf("%s/log=%d", c.Kind, n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				c.Out = b.TempDir()
				res := runBenchChild(b, c)
				b.ReportMetric(res.Seconds, "s/export")
				b.ReportMetric(float64(res.Scanned)/res.Seconds, "entries/s")
				b.ReportMetric(float64(res.Records), "records-cited")
				b.ReportMetric(float64(res.MaxRSS)/(1<<20), "peak-RSS-MiB")
				b.ReportMetric(float64(res.Bundle)/(1<<20), "bundle-MiB")
				b.Logf("%s: scanned %d entries, cited %d records in %.1f s (%.0f entries/s, %.0f cited records/s); peak RSS %.0f MiB; bundle %.0f MiB; user %.1f s, sys %.1f s",
					c.Kind, res.Scanned, res.Records, res.Seconds, float64(res.Scanned)/res.Seconds, float64(res.Records)/res.Seconds,
					float64(res.MaxRSS)/(1<<20), float64(res.Bundle)/(1<<20), res.User, res.Sys)
				// Offline verification of the bundle, as `lineagectl verify` does it.
				c.Verify = true
				vr := runBenchChild(b, c)
				c.Verify = false
				b.ReportMetric(vr.Seconds, "s/verify")
				b.ReportMetric(float64(vr.MaxRSS)/(1<<20), "verify-peak-RSS-MiB")
				b.Logf("%s: verified the bundle (%d records, proofs and citations) in %.1f s; peak RSS %.0f MiB",
					c.Kind, vr.Records, vr.Seconds, float64(vr.MaxRSS)/(1<<20))
			}
		})
	}
}

// benchCase is what the child exports.
type benchCase struct {
	Kind     Kind
	Tenant   string
	AISystem string
	Month    bool
	Dir, Out string
	N        int
	// Verify makes the child verify the bundle in Out instead of exporting.
	Verify bool
}

// benchResult is what the child reports.
type benchResult struct {
	Seconds   float64
	Scanned   uint64
	Records   uint64
	Bundle    int64
	MaxRSS    int64 // bytes
	User, Sys float64
}

func runBenchChild(b *testing.B, c benchCase) benchResult {
	cfg, _ := json.Marshal(c)
	cmd := exec.Command(os.Args[0], "-test.run=^TestExportBenchChild$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "LINEAGE_EXPORT_BENCH_CHILD="+string(cfg))
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("export child: %v\n%s", err, out)
	}
	var res benchResult
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	found := false
	for sc.Scan() {
		if line, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "BENCH-RESULT "); ok {
			found = json.Unmarshal([]byte(line), &res) == nil
		}
	}
	if !found {
		b.Fatalf("export child printed no result:\n%s", out)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	res.MaxRSS = ru.Maxrss * 1024 // Linux reports KiB
	res.User = time.Duration(ru.Utime.Nano()).Seconds()
	res.Sys = time.Duration(ru.Stime.Nano()).Seconds()
	return res
}

// TestExportBenchChild is the child half of BenchmarkExport; it does nothing in a normal test
// run.
func TestExportBenchChild(t *testing.T) {
	cfg := os.Getenv("LINEAGE_EXPORT_BENCH_CHILD")
	if cfg == "" {
		t.Skip("runs only as BenchmarkExport's child process")
	}
	var c benchCase
	if err := json.Unmarshal([]byte(cfg), &c); err != nil {
		t.Fatal(err)
	}
	signer, vkey, err := ledger.LoadOrCreateSigner(filepath.Join(c.Dir, "log.key"), rigOrigin)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := ledger.NewVerifier(vkey)
	lg, err := tessera.OpenReadOnly(filepath.Join(c.Dir, "log"), v)
	if err != nil {
		t.Fatal(err)
	}
	req := Request{Kind: c.Kind, Tenant: c.Tenant, AISystem: c.AISystem, From: demo.DefaultStart, To: demo.DefaultStart.AddDate(1, 0, 0)}
	if c.Month {
		req.To = demo.DefaultStart.AddDate(0, 1, 0)
	}
	if c.Verify {
		start := time.Now()
		rep, err := verify.VerifyBundle(filepath.Join(c.Out, "x", "bench.zip"), v)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := json.Marshal(benchResult{Seconds: time.Since(start).Seconds(), Records: rep.Records})
		fmt.Printf("BENCH-RESULT %s\n", out)
		return
	}
	e := &Exporter{Log: lg, Signer: signer, Verifier: v}
	start := time.Now()
	res, err := e.Export(context.Background(), req, filepath.Join(c.Out, "x"), Run{ID: "bench", RequestedBy: "bench"})
	if err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(benchResult{Seconds: time.Since(start).Seconds(), Scanned: res.Scanned, Records: res.Records, Bundle: res.BundleSize})
	fmt.Printf("BENCH-RESULT %s\n", out)
}

// benchLog makes sure dir holds a log of n demo records, building it if needed. It reports
// whether it built one.
func benchLog(dir string, n int) (bool, error) {
	signer, vkey, err := ledger.LoadOrCreateSigner(filepath.Join(dir, "log.key"), rigOrigin)
	if err != nil {
		return false, err
	}
	v, _ := ledger.NewVerifier(vkey)
	if ro, err := tessera.OpenReadOnly(filepath.Join(dir, "log"), v); err == nil {
		if cp, err := ro.Checkpoint(context.Background()); err == nil && cp.Size == uint64(n) {
			return false, nil
		}
	}
	if err := os.RemoveAll(filepath.Join(dir, "log")); err != nil {
		return false, err
	}
	o := tessera.DefaultOptions(filepath.Join(dir, "log"), signer, v)
	o.BatchMaxSize = 4096
	lg, err := tessera.Open(context.Background(), o)
	if err != nil {
		return false, err
	}
	// One session a minute: a million records span about four months.
	g := demo.New(demo.Options{Seed: 1, Tenants: 3, Step: time.Minute})
	const batch = 8192
	futures := make([]ledger.IndexFuture, 0, batch)
	for i := 0; i < n; i++ {
		r := g.Next()
		c, err := r.Canonical()
		if err != nil {
			return false, err
		}
		at, _ := r.ParsedTime()
		futures = append(futures, lg.Add(context.Background(), lineage.NewEnvelope(c, at.Add(350*time.Millisecond), false)))
		if len(futures) == batch || i == n-1 {
			for _, f := range futures {
				if _, err := f(); err != nil {
					return false, err
				}
			}
			futures = futures[:0]
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := lg.Close(ctx); err != nil {
		return false, err
	}
	runtime.GC()
	return true, nil
}
