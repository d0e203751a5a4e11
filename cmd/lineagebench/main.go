// Command lineagebench is the end-to-end load tool behind `make bench`: it publishes generated
// decision records to a running lineaged over NATS and measures ingest throughput and
// publish→queryable latency.
//
// Latency is measured without loading the service: one goroutine samples the index position
// (GET /healthz) every few milliseconds while records flow; afterwards the log index of every
// sampled record is looked up, and its queryable time is the first sample at which the index
// position had passed it.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/lineage-audit/lineage/ingest"
	"github.com/lineage-audit/lineage/internal/cliflag"
	"github.com/lineage-audit/lineage/internal/demo"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

type sample struct {
	tenant, id string
	published  time.Time
	index      uint64
}

type observation struct {
	at       time.Time
	position uint64
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "lineagebench:", err)
		os.Exit(1)
	}
}

func run() error {
	fs := flag.NewFlagSet("lineagebench", flag.ContinueOnError)
	natsURL := fs.String("nats-url", "nats://127.0.0.1:4222", "NATS server of the lineaged under test")
	api := fs.String("api", "http://127.0.0.1:8080", "query API of the lineaged under test")
	n := fs.Int("n", 100_000, "records to publish")
	every := fs.Int("sample-every", 10, "measure latency for every k-th record")
	seed := fs.Int64("seed", 42, "generator seed")
	rate := fs.Int("rate", 0, "publish at this many records/s (0: as fast as JetStream acks); latency is only meaningful below the service's capacity")
	prefix := fs.String("id-prefix", "", "prefix for record ids (default: a unique per-run prefix)")
	fs.Usage = cliflag.Usage(fs, "LINEAGEBENCH_", "usage: lineagebench [flags]")
	if err := cliflag.Parse(fs, "LINEAGEBENCH_", os.Args[1:]); err != nil {
		return err
	}
	if *prefix == "" {
		*prefix = "b" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36) + "-"
	}
	start0, err := position(*api)
	if err != nil {
		return fmt.Errorf("is lineaged running at %s? %w", *api, err)
	}
	nc, err := nats.Connect(*natsURL)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(8192))
	if err != nil {
		return err
	}

	// Observe the index position until it has taken every record.
	var obs []observation
	var obsMu sync.Mutex
	target := start0 + uint64(*n)
	watchDone := make(chan error, 1)
	go func() {
		for {
			p, err := position(*api)
			if err != nil {
				watchDone <- err
				return
			}
			obsMu.Lock()
			obs = append(obs, observation{time.Now(), p})
			obsMu.Unlock()
			if p >= target {
				watchDone <- nil
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()

	g := demo.New(demo.Options{Seed: *seed, Tenants: 3})
	samples := make([]sample, 0, *n / *every + 1)
	start := time.Now()
	for i := 0; i < *n; i++ {
		if *rate > 0 {
			if due := start.Add(time.Duration(float64(i) / float64(*rate) * float64(time.Second))); time.Until(due) > 0 {
				time.Sleep(time.Until(due))
			}
		}
		r := g.Next()
		r.ID = *prefix + r.ID
		if r.ParentID != "" {
			r.ParentID = *prefix + r.ParentID
		}
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		if err := ingest.PublishAsync(context.Background(), js, ingest.RecordMsg(r.Tenant, r.ID, b)); err != nil {
			return err
		}
		if i%*every == 0 {
			samples = append(samples, sample{tenant: r.Tenant, id: r.ID, published: time.Now()})
		}
	}
	<-js.PublishAsyncComplete()
	pubDur := time.Since(start)
	if err := <-watchDone; err != nil {
		return err
	}
	total := time.Since(start)

	// Which log index did each sampled record get?
	for i := range samples {
		idx, err := logIndex(*api, samples[i].tenant, samples[i].id)
		if err != nil {
			return err
		}
		samples[i].index = idx
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
			return fmt.Errorf("record %s (index %d) never observed as indexed", s.id, s.index)
		}
		lat = append(lat, obs[j].at.Sub(s.published))
	}
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	rss := metric(*api, "process_resident_memory_bytes")
	mode := "as fast as possible"
	if *rate > 0 {
		mode = fmt.Sprintf("at %d records/s", *rate)
	}
	fmt.Printf("records:            %d published %s (latency sampled for %d)\n", *n, mode, len(lat))
	fmt.Printf("publish:            %s (%.0f records/s accepted by JetStream)\n", pubDur.Round(time.Millisecond), float64(*n)/pubDur.Seconds())
	fmt.Printf("end-to-end:         %s (%.0f records/s published, logged, signed, indexed)\n", total.Round(time.Millisecond), float64(*n)/total.Seconds())
	fmt.Printf("publish→queryable:  p50 %s  p90 %s  p99 %s  max %s\n", pct(0.50).Round(time.Millisecond), pct(0.90).Round(time.Millisecond), pct(0.99).Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))
	if rss > 0 {
		fmt.Printf("lineaged RSS:       %.0f MiB\n", rss/(1<<20))
	}
	return nil
}

var client = &http.Client{Timeout: 10 * time.Second}

func position(api string) (uint64, error) {
	resp, err := client.Get(api + "/healthz")
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

func logIndex(api, tenant, id string) (uint64, error) {
	resp, err := client.Get(api + "/v1/records/" + url.PathEscape(id) + "?tenant=" + url.QueryEscape(tenant))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("record %s/%s: %s", tenant, id, resp.Status)
	}
	var rp struct {
		Index uint64 `json:"index"`
	}
	return rp.Index, json.NewDecoder(resp.Body).Decode(&rp)
}

func metric(api, name string) float64 {
	resp, err := client.Get(api + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + name + ` ([0-9.e+]+)$`).FindSubmatch(b)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}
