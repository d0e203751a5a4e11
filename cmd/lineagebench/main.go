// Command lineagebench is the end-to-end load tool behind `make bench`: it publishes generated
// decision records to a running lineaged over NATS and measures ingest throughput and
// publish→queryable latency (see internal/loadgen for how). With --json FILE it also writes the
// run's figures as JSON, and `lineagebench report --out FILE.html RUN.json …` compares such runs
// on one HTML page.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lineage-audit/lineage/ingest"
	"github.com/lineage-audit/lineage/internal/cliflag"
	"github.com/lineage-audit/lineage/internal/loadgen"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "lineagebench:", err)
		os.Exit(1)
	}
}

func run() error {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "report":
			return reportMain(os.Args[2:])
		case "summary":
			return summaryMain(os.Args[2:], os.Stdout)
		case "source-keys":
			return sourceKeysMain(os.Args[2:])
		case "field":
			return fieldMain(os.Args[2:], os.Stdout)
		}
	}
	fs := flag.NewFlagSet("lineagebench", flag.ContinueOnError)
	var o loadgen.Options
	fs.StringVar(&o.NATSURL, "nats-url", "nats://127.0.0.1:4222", "NATS server of the lineaged under test")
	// The NATS credentials lineagectl publish takes. A publisher NKey (--nats-nkey-seed) must be
	// registered for every tenant ("*"): the generated records belong to three demo tenants.
	o.NATS.Register(fs)
	fs.StringVar(&o.API, "api", "http://127.0.0.1:8080", "query API of the lineaged under test")
	fs.StringVar(&o.APIKey, "api-key", "", "API key (role auditor or admin) for the query API, if lineaged requires one (prefer the environment variable)")
	fs.IntVar(&o.N, "n", 100_000, "records to publish")
	fs.IntVar(&o.SampleEvery, "sample-every", 10, "measure latency for every k-th record")
	fs.Int64Var(&o.Seed, "seed", 42, "generator seed")
	fs.IntVar(&o.Rate, "rate", 0, "publish at this many records/s (0: as fast as JetStream acks); latency is only meaningful below the service's capacity")
	fs.DurationVar(&o.SampleInterval, "sample-interval", 2*time.Millisecond, "how often the index position is sampled (each sample costs lineaged CPU; use 100ms with --pid)")
	fs.IntVar(&o.PID, "pid", 0, "measure this lineaged process's CPU time (user+system from /proc/<pid>/stat) per record")
	fs.StringVar(&o.IDPrefix, "id-prefix", "", "prefix for record ids (default: a unique per-run prefix)")
	fs.BoolVar(&o.Allocs, "allocs", true, "read lineaged's allocation counters from /metrics at the first publish and at the end (needs role admin when lineaged has API keys)")
	fs.StringVar(&o.DataDir, "data-dir", "", "lineaged's data dir: report its disk bytes per record by component after the run (log, index, NATS, other)")
	fs.IntVar(&o.Answers, "answers", 0, "after the run, time this many lineage answers of each kind: the busiest user's tree without and with proofs, single records with their inclusion proof (0: skip)")
	fs.IntVar(&o.AnswersLimit, "answers-limit", loadgen.DefaultAnswersLimit, "page size (limit=) of the user tree answers")
	signKey := fs.String("sign-key", "", "sign every record with this source key seed file (lineagectl sourcekey create), as lineagectl publish --sign-key does")
	fs.StringVar(&o.SignKeyID, "sign-key-id", "", "key id of --sign-key; {source} and {tenant} stand for each record's source id and tenant (a source key vouches for one source of one tenant)")
	jsonOut := fs.String("json", "", "also write the run's figures, parameters, throughput series and latency histogram as JSON to this file")
	name := fs.String("name", "", "the run's name in the JSON report (default: the JSON file's name without .json)")
	note := fs.String("note", "", "free text kept in the JSON report (e.g. the lineaged flags or build under test)")
	fs.Usage = cliflag.Usage(fs, "LINEAGEBENCH_", "usage: lineagebench [flags]\n       lineagebench report --out FILE.html RUN.json [RUN2.json …]\n       lineagebench summary RUN.json [RUN2.json …]\n       lineagebench field RUN.json PATH")
	if err := cliflag.Parse(fs, "LINEAGEBENCH_", os.Args[1:]); err != nil {
		return err
	}
	if *signKey != "" {
		if o.SignKeyID == "" {
			return fmt.Errorf("--sign-key needs --sign-key-id")
		}
		var err error
		if o.SignKey, err = ingest.LoadSourceKeySeed(*signKey); err != nil {
			return fmt.Errorf("--sign-key: %w", err)
		}
	}
	loadStart := loadAvg()
	r, err := loadgen.Run(context.Background(), o)
	if err != nil {
		return err
	}
	loadEnd := loadAvg()
	mode := "as fast as possible"
	if o.Rate > 0 {
		mode = fmt.Sprintf("at %d records/s", o.Rate)
	}
	fmt.Printf("records:            %d published %s (latency sampled for %d)\n", r.N, mode, r.Sampled)
	fmt.Printf("publish:            %s (%.0f records/s accepted by JetStream)\n", r.Publish.Round(time.Millisecond), r.PublishRate())
	fmt.Printf("end-to-end:         %s (%.0f records/s published, logged, signed, indexed)\n", r.Total.Round(time.Millisecond), r.Throughput())
	fmt.Printf("publish→queryable:  p50 %s  p90 %s  p99 %s  max %s\n", r.P50.Round(time.Millisecond), r.P90.Round(time.Millisecond), r.P99.Round(time.Millisecond), r.Max.Round(time.Millisecond))
	if o.PID > 0 {
		fmt.Printf("lineaged CPU:       %s user+system = %.1f µs/record\n", r.CPU.Round(10*time.Millisecond), float64(r.CPUPerRecord())/float64(time.Microsecond))
	}
	if r.RSS > 0 {
		fmt.Printf("lineaged RSS:       %.0f MiB\n", r.RSS/(1<<20))
	}
	if o.Allocs {
		fmt.Printf("lineaged allocs:    %.1f allocations, %.0f bytes allocated per record\n", r.AllocsPerRecord(), r.AllocBytesPerRecord())
	}
	if o.SignKey != nil {
		fmt.Printf("signed:             every record; %d of %d sampled records logged source_verified\n", r.SourceVerified, r.Sampled)
	}
	if a := r.Answers; a != nil {
		fmt.Printf("answers:            %d requests each; user %s of %s: %d actions in the tree%s\n", a.Tree.Requests, a.User, a.Tenant, a.Actions, map[bool]string{true: " (truncated at --answers-limit)"}[a.Truncated])
		for _, l := range []struct {
			name string
			l    loadgen.Latencies
		}{{"tree, no proofs", a.Tree}, {"tree, every proof", a.TreeProofs}, {"record + proof", a.Record}} {
			fmt.Printf("  %-18s p50 %s  p99 %s  max %s  (%d bytes)\n", l.name+":", l.l.P50.Round(10*time.Microsecond), l.l.P99.Round(10*time.Microsecond), l.l.Max.Round(10*time.Microsecond), l.l.Bytes)
		}
	}
	if d := r.Disk; d != nil {
		fmt.Printf("disk:               bytes per record of the %d in the log (file sizes; allocated blocks in parentheses), after the run\n", r.DiskRecords)
		for _, c := range []struct {
			name string
			u    loadgen.Usage
		}{{"log + index", d.LogIndex()}, {"log", d.Log}, {"  partial tiles", d.LogPartial}, {"index", d.Index}, {"  -wal, -shm", d.IndexWAL}, {"NATS", d.NATS}, {"other", d.Other}} {
			fmt.Printf("  %-16s %7.0f (%7.0f)  %6.1f MiB in %d files\n", c.name+":", r.DiskPerRecord(c.u), r.AllocatedPerRecord(c.u), float64(c.u.Bytes)/(1<<20), c.u.Files)
		}
	}
	if *jsonOut != "" {
		n := *name
		if n == "" {
			n = strings.TrimSuffix(filepath.Base(*jsonOut), ".json")
		}
		if err := writeReport(*jsonOut, newReport(n, o, r, setFlags(fs), *note, loadStart, loadEnd)); err != nil {
			return fmt.Errorf("--json: %w", err)
		}
	}
	return nil
}
