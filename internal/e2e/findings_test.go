package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lineage-audit/lineage/ingest"
	"github.com/lineage-audit/lineage/internal/testenv"
	"github.com/lineage-audit/lineage/query/findings"
	"github.com/lineage-audit/lineage/verify"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// demoFindingsConfig is the findings configuration the demo's failure modes are made for.
var demoFindingsConfig = filepath.Join("..", "..", "internal", "demo", "findings.json")

// TestFindingsFromDemoTraffic is the walkthrough of issue #15 on both index drivers: the demo
// traffic with its failure modes goes through lineaged, and every finding kind shows up in
// GET /v1/findings (verified offline by lineagectl findings --verify), on
// lineage.findings.<tenant>, and in /metrics; after a restart the findings are the same and
// nothing new is published.
func TestFindingsFromDemoTraffic(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { findingsWalkthrough(t) })
	t.Run("clickhouse", func(t *testing.T) {
		ch := testenv.StartClickHouse(t)
		t.Setenv("LINEAGE_CLICKHOUSE_DSN", "clickhouse://"+ch.Addr+"/"+ch.DatabaseName())
		findingsWalkthrough(t, "--index", "clickhouse")
	})
}

func findingsWalkthrough(t *testing.T, extra ...string) {
	const n = 10_000
	dataDir := t.TempDir()
	natsAddr, httpAddr := freeAddr(t), freeAddr(t)
	natsURL := "nats://" + natsAddr
	vfile := filepath.Join(dataDir, "keys", "log.key.pub")
	args := append([]string{"--findings-config", demoFindingsConfig}, extra...)
	d := startDaemon(t, dataDir, natsAddr, httpAddr, args...)
	defer func() {
		if t.Failed() {
			t.Logf("lineaged logs:\n%s", d.logs)
		}
	}()
	start := time.Now()
	if out, err := ctl("publish", "--nats-url", natsURL, "--demo", fmt.Sprint(n), "--seed", "1", "--failure-modes"); err != nil {
		t.Fatalf("publish: %v\n%s", err, out)
	}
	d.waitIndexed(t, n)
	waitFindings(t, d, n)
	t.Logf("%d demo records published, indexed and checked for findings in %v", n, time.Since(start).Round(time.Millisecond))

	tenants := []string{"acme-bank", "globex-lending", "initech-health"}
	kinds := map[findings.Kind]int{}
	total := 0
	for _, tenant := range tenants {
		out, err := ctl("findings", "--api", d.url(""), "--tenant", tenant, "--limit", "999", "--verify", "--verifier-file", vfile, "--json")
		if err != nil {
			t.Fatalf("lineagectl findings --verify %s: %v\n%s", tenant, err, out)
		}
		if !strings.Contains(out, "VERIFIED:") {
			t.Fatalf("lineagectl findings --verify printed no verification:\n%s", out)
		}
		var a verify.Findings
		if err := json.Unmarshal([]byte(out[:strings.LastIndex(out, "\nVERIFIED:")]), &a); err != nil {
			t.Fatalf("findings of %s: %v", tenant, err)
		}
		for _, f := range a.Findings {
			if f.Tenant != tenant {
				t.Fatalf("tenant %s lists a finding of %s", tenant, f.Tenant)
			}
			kinds[findings.Kind(f.Kind)]++
		}
		total += len(a.Findings)
		if a.NextCursor != "" {
			t.Fatalf("more than 999 findings for %s", tenant)
		}
	}
	for _, k := range findings.Kinds {
		if kinds[k.Kind] == 0 {
			t.Errorf("no %s finding in the demo traffic (found %v)", k.Kind, kinds)
		}
	}
	t.Logf("findings by kind: %v", kinds)
	// The printed form, as the walkthrough shows it.
	out, err := ctl("findings", "--api", d.url(""), "--tenant", tenants[0], "--severity", "high", "--limit", "3")
	if err != nil || !strings.Contains(out, "[HIGH]") {
		t.Fatalf("lineagectl findings: %v\n%s", err, out)
	}
	t.Logf("lineagectl findings --tenant %s --severity high --limit 3:\n%s", tenants[0], out)

	// Every finding is on the findings stream, on its tenant's subject.
	// Wait until every finding is out and the publisher is idle (the stream stops growing: an
	// update of a finding already published may still be on its way).
	var published []findings.Finding
	ids := map[string]bool{}
	for deadline, last := time.Now().Add(30*time.Second), -1; ; time.Sleep(500 * time.Millisecond) {
		published = readFindingsStream(t, natsURL)
		clear(ids)
		for _, m := range published {
			ids[m.ID] = true
		}
		if (len(ids) == total && len(published) == last) || time.Now().After(deadline) {
			break
		}
		last = len(published)
	}
	if len(ids) != total {
		t.Fatalf("%d distinct findings published, %d listed", len(ids), total)
	}
	// And counted in /metrics.
	metrics := string(d.getText(t, "/metrics"))
	for _, k := range findings.Kinds {
		if !strings.Contains(metrics, `lineage_findings_total{kind="`+string(k.Kind)+`"`) {
			t.Errorf("/metrics has no lineage_findings_total for %s", k.Kind)
		}
	}

	// (Every metric the alerting rules and the dashboard name is checked against a live
	// lineaged that exercises them all in compose/metrics_test.go.)

	// A restart changes nothing: the findings resume from their position, and nothing is
	// published again.
	before := d.getText(t, "/v1/findings?tenant="+tenants[1]+"&limit=999&proofs=false")
	d.stop()
	d = startDaemon(t, dataDir, natsAddr, httpAddr, args...)
	waitFindings(t, d, n)
	after := d.getText(t, "/v1/findings?tenant="+tenants[1]+"&limit=999&proofs=false")
	if stripCheckpoint(t, before) != stripCheckpoint(t, after) {
		t.Fatalf("findings changed across a restart:\nbefore %s\nafter  %s", before, after)
	}
	time.Sleep(time.Second) // the publisher's first look at the outbox
	if again := readFindingsStream(t, natsURL); len(again) != len(published) {
		t.Fatalf("%d findings messages after the restart, %d before", len(again), len(published))
	}
	d.stop()
}

// waitFindings waits until the findings reflect n log entries.
func waitFindings(t *testing.T, d *daemon, n uint64) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	var h struct {
		FindingsPosition *uint64 `json:"findings_position"`
	}
	for time.Now().Before(deadline) {
		if d.getJSON(t, "/healthz", &h) == http.StatusOK && h.FindingsPosition != nil && *h.FindingsPosition >= n {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("findings did not reach %d entries: %v", n, h.FindingsPosition)
}

// stripCheckpoint returns a findings answer without its checkpoint, which moves on.
func stripCheckpoint(t *testing.T, b []byte) string {
	t.Helper()
	var a verify.Findings
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(a.Findings)
	return string(out)
}

// readFindingsStream reads every message of the findings stream, checking each is a finding
// of the tenant its subject names.
func readFindingsStream(t *testing.T, natsURL string) []findings.Finding {
	t.Helper()
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, ingest.FindingsStream)
	if err != nil {
		t.Fatal(err)
	}
	total := s.CachedInfo().State.Msgs
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var out []findings.Finding
	for uint64(len(out)) < total {
		m, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("read the findings stream after %d of %d: %v", len(out), total, err)
		}
		var f findings.Finding
		if err := json.Unmarshal(m.Data(), &f); err != nil {
			t.Fatalf("message on %s: %v", m.Subject(), err)
		}
		if m.Subject() != findings.Subject(f.Tenant) {
			t.Fatalf("finding of %s on %s", f.Tenant, m.Subject())
		}
		out = append(out, f)
	}
	return out
}
