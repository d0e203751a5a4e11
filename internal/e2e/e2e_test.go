// Package e2e runs the real binaries: lineaged with its embedded NATS, Tessera log and SQLite
// index, and lineagectl as a user would, and checks every answer with the public key alone.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/ingest"
	"github.com/lineage-audit/lineage/internal/demo"
	"github.com/lineage-audit/lineage/ledger"
	"github.com/lineage-audit/lineage/query"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const (
	firstBatch  = 2000
	secondBatch = 600
	seed        = 7
)

func TestEndToEnd(t *testing.T) {
	dataDir := t.TempDir()
	natsAddr, httpAddr := freeAddr(t), freeAddr(t)
	d := startDaemon(t, dataDir, natsAddr, httpAddr)
	defer func() {
		if !t.Failed() {
			return
		}
		t.Logf("lineaged logs:\n%s", d.logs)
	}()
	natsURL := "nats://" + natsAddr
	vfile := filepath.Join(dataDir, "keys", "log.key.pub")
	v, err := ledger.ReadVerifierFile(vfile)
	if err != nil {
		t.Fatal(err)
	}
	// The API serves the same key the key file holds.
	if got := string(bytes.TrimSpace(d.getText(t, "/v1/verifier"))); got != string(bytes.TrimSpace(must(os.ReadFile(vfile)))) {
		t.Fatalf("/v1/verifier = %q, key file differs", got)
	}

	all := demo.Generate(demo.Options{Seed: seed, Tenants: 3}, firstBatch+secondBatch)

	// 1. Publish the first batch with the CLI, over NATS.
	if out, err := ctl("publish", "--nats-url", natsURL, "--demo", fmt.Sprint(firstBatch), "--seed", fmt.Sprint(seed)); err != nil {
		t.Fatalf("publish: %v\n%s", err, out)
	}
	d.waitIndexed(t, firstBatch)
	cp1 := mustCheckpoint(t, d, v, firstBatch)

	// 2. Redeliveries and retries must not add entries: republish 100 records without a
	// Nats-Msg-Id (so JetStream's dedupe window cannot help) and with the CLI again (which
	// sets it). Then send what must be quarantined.
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	for _, r := range all[:100] {
		if _, err := js.Publish(ctx, ingest.RecordsPrefix+r.Tenant, must(json.Marshal(r))); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := ctl("publish", "--nats-url", natsURL, "--demo", "50", "--seed", fmt.Sprint(seed)); err != nil {
		t.Fatalf("republish: %v\n%s", err, out)
	}
	conflicting := all[5]
	conflicting.Action.Target = "somewhere/else"
	wrongTenant := all[6]
	wrongTenant.ID = "fresh-id-on-wrong-subject"
	bad := map[string][]byte{
		"invalid_json":    []byte(`{"schema":"lineage.decision/v1",`),
		"unknown_field":   []byte(`{"schema":"lineage.decision/v1","surprise":1}`),
		"id_conflict":     must(json.Marshal(conflicting)),
		"tenant_mismatch": must(json.Marshal(wrongTenant)),
	}
	subjects := map[string]string{"tenant_mismatch": ingest.RecordsPrefix + otherTenant(all, wrongTenant.Tenant)}
	for reason, body := range bad {
		subj := subjects[reason]
		if subj == "" {
			subj = ingest.RecordsPrefix + conflicting.Tenant
		}
		if _, err := js.Publish(ctx, subj, body); err != nil {
			t.Fatal(err)
		}
	}
	reasons := readQuarantine(t, js, len(bad))
	for reason := range bad {
		if reasons[reason] != 1 {
			t.Errorf("quarantine reasons %v: want one %q", reasons, reason)
		}
	}

	// 3. The second batch.
	for _, r := range all[firstBatch:] {
		if _, err := js.Publish(ctx, ingest.RecordsPrefix+r.Tenant, must(json.Marshal(r)), jetstream.WithMsgID(r.Tenant+"/"+r.ID)); err != nil {
			t.Fatal(err)
		}
	}
	d.waitIndexed(t, firstBatch+secondBatch) // fails if any duplicate was appended
	cp2 := mustCheckpoint(t, d, v, firstBatch+secondBatch)

	// 4. Every record is in the log exactly once, with a proof that verifies with the key alone.
	seen := map[uint64]string{}
	for _, r := range all {
		var rp query.RecordProof
		path := "/v1/records/" + url.PathEscape(r.ID) + "?tenant=" + r.Tenant
		if code := d.getJSON(t, path, &rp); code != 200 {
			t.Fatalf("GET %s: %d", path, code)
		}
		if _, err := query.VerifyRecordProof(&rp, v); err != nil {
			t.Fatalf("record %s: %v", r.ID, err)
		}
		want, _ := r.Canonical()
		got, _ := rp.Record.Canonical()
		if !bytes.Equal(want, got) {
			t.Fatalf("record %s from the log differs from the one published:\n%s\n%s", r.ID, got, want)
		}
		if prev, dup := seen[rp.Index]; dup {
			t.Fatalf("records %s and %s share log index %d", prev, r.ID, rp.Index)
		}
		seen[rp.Index] = r.ID
	}

	// 5. Consistency between the two checkpoints, through the API, checked offline.
	var cons struct{ Proof [][]byte }
	d.getJSON(t, fmt.Sprintf("/v1/proofs/consistency?from=%d&to=%d", cp1.Size, cp2.Size), &cons)
	if err := ledger.VerifyConsistency(cp1, cp2, cons.Proof); err != nil {
		t.Fatalf("consistency %d→%d: %v", cp1.Size, cp2.Size, err)
	}
	var incl struct {
		Leaf  []byte
		Proof [][]byte
	}
	d.getJSON(t, fmt.Sprintf("/v1/proofs/inclusion?index=%d&size=%d", 17, cp1.Size), &incl)
	if err := ledger.VerifyInclusion(incl.Leaf, 17, incl.Proof, cp1); err != nil {
		t.Fatalf("inclusion 17@%d: %v", cp1.Size, err)
	}

	// 6. Lineage trees match what was published, and every shape of answer verifies offline
	// with the CLI.
	lineageBefore := checkLineage(t, d, all)
	for _, subj := range [][]string{{"--user", all[0].User.ID}, {"--agent", all[0].Agent.ID}, {"--action", all[40].ID}, {"--policy", all[0].Decision.Policy.ID}} {
		out, err := ctl(append([]string{"lineage", "--api", d.url(""), "--tenant", all[0].Tenant, "--verify", "--verifier-file", vfile}, subj...)...)
		if all[40].Tenant != all[0].Tenant && subj[0] == "--action" {
			continue
		}
		if err != nil || !strings.Contains(out, "VERIFIED") {
			t.Fatalf("lineage %v --verify: %v\n%s", subj, err, out)
		}
	}

	// 7. The CLI verifies a record offline, and fails when a stored leaf or the checkpoint
	// changes by one byte.
	target := all[123]
	if out, err := ctl("verify", "--api", d.url(""), "--id", target.ID, "--tenant", target.Tenant, "--verifier-file", vfile); err != nil {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	tamperLeaf(t, d, dataDir, target, vfile)
	tamperCheckpoint(t, d, dataDir, target, vfile)

	// 8. Stop, rebuild the index from the log alone, restart: same answers.
	d.stop()
	if out, err := ctl("rebuild-index", "--data-dir", dataDir); err != nil {
		t.Fatalf("rebuild-index: %v\n%s", err, out)
	}
	d = startDaemon(t, dataDir, natsAddr, httpAddr)
	defer d.stop()
	d.waitIndexed(t, firstBatch+secondBatch)
	lineageAfter := checkLineage(t, d, all)
	if !bytes.Equal(lineageBefore, lineageAfter) {
		t.Fatal("lineage answers differ after rebuild-index")
	}
	// Records published after the restart still dedupe against the rebuilt index.
	for _, r := range all[:20] {
		if _, err := js.Publish(ctx, ingest.RecordsPrefix+r.Tenant, must(json.Marshal(r))); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(500 * time.Millisecond)
	d.waitIndexed(t, firstBatch+secondBatch)
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func otherTenant(all []lineage.Record, not string) string {
	for _, r := range all {
		if r.Tenant != not {
			return r.Tenant
		}
	}
	panic("one tenant only")
}

func mustCheckpoint(t *testing.T, d *daemon, v interface {
	Name() string
	KeyHash() uint32
	Verify(msg, sig []byte) bool
}, size uint64) ledger.Checkpoint {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		cp, err := ledger.OpenCheckpoint(d.getText(t, "/v1/checkpoint"), v)
		if err != nil {
			t.Fatalf("checkpoint: %v", err)
		}
		if cp.Size >= size {
			return cp
		}
		if time.Now().After(deadline) {
			t.Fatalf("checkpoint size %d, want %d", cp.Size, size)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// readQuarantine reads n messages from the quarantine stream and counts their reasons.
func readQuarantine(t *testing.T, js jetstream.JetStream, n int) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := js.OrderedConsumer(ctx, ingest.QuarantineStream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]int{}
	for i := 0; i < n; i++ {
		m, err := c.Next(jetstream.FetchMaxWait(20 * time.Second))
		if err != nil {
			t.Fatalf("quarantine message %d of %d: %v (reasons so far %v)", i+1, n, err, reasons)
		}
		q := ingest.ParseQuarantined(m.Headers(), m.Data())
		if q.Reason.Detail == "" || len(q.Payload) == 0 {
			t.Fatalf("quarantine entry without detail or payload: %+v", q)
		}
		if m.Headers().Get(ingest.HeaderReason) != q.Reason.Code {
			t.Fatalf("reason header %q, body %q", m.Headers().Get(ingest.HeaderReason), q.Reason.Code)
		}
		reasons[q.Reason.Code]++
	}
	return reasons
}

// checkLineage compares the trees of a few users with the published records and returns the
// raw answers, so runs can be compared byte for byte.
func checkLineage(t *testing.T, d *daemon, all []lineage.Record) []byte {
	t.Helper()
	type key struct{ tenant, user string }
	want := map[key][]lineage.Record{}
	var order []key
	for _, r := range all {
		k := key{r.Tenant, r.User.ID}
		if want[k] == nil {
			order = append(order, k)
		}
		want[k] = append(want[k], r)
	}
	var raw bytes.Buffer
	for _, k := range order[:min(8, len(order))] {
		var ul query.UserLineage
		path := "/v1/lineage/users/" + url.PathEscape(k.user) + "?tenant=" + k.tenant
		if code := d.getJSON(t, path, &ul); code != 200 {
			t.Fatalf("GET %s: %d", path, code)
		}
		raw.Write(must(json.Marshal(ul)))
		if ul.Actions != len(want[k]) || ul.Truncated {
			t.Fatalf("%v: %d actions (truncated %v), want %d", k, ul.Actions, ul.Truncated, len(want[k]))
		}
		got := map[string][]string{} // record id → agent path in the tree
		var walk func(n *query.AgentNode, path []string)
		walk = func(n *query.AgentNode, path []string) {
			path = append(slices.Clone(path), n.ID)
			for _, a := range n.Actions {
				got[a.ID] = path
			}
			for _, c := range n.Agents {
				walk(c, path)
			}
		}
		for _, a := range ul.Agents {
			walk(a, nil)
		}
		for _, r := range want[k] {
			p, ok := got[r.ID]
			if !ok {
				t.Fatalf("%v: record %s missing from the tree", k, r.ID)
			}
			if p[len(p)-1] != r.Agent.ID {
				t.Fatalf("%v: record %s under agent %s, want %s", k, r.ID, p[len(p)-1], r.Agent.ID)
			}
			if r.Delegation != nil && len(r.Delegation.Actors) > 1 && len(p) < 2 {
				t.Fatalf("%v: delegated record %s (actors %v) is not nested under its delegator: %v", k, r.ID, r.Delegation.Actors, p)
			}
		}
		// A window that excludes everything returns no actions.
		var empty query.UserLineage
		d.getJSON(t, path+"&to=2000-01-01T00:00:00Z", &empty)
		if empty.Actions != 0 {
			t.Fatalf("window before all records returned %d actions", empty.Actions)
		}
	}
	return raw.Bytes()
}
