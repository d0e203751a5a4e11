package e2e

// The real OPA engine as a Lineage client. The OPA Go SDK runs in the test process with a
// policy and data served as two signed-off bundles (like production, where OPA pulls bundles
// from a bundle server), and its decision_logs plugin pointed at Lineage. Two tests:
//
//   - TestOPADecisionLogFormat points OPA at a capturing HTTP server in this process: it checks
//     what OPA really sends (method, URL, gzip, bearer token, the JSON event array) and that every
//     kind of decision maps as documented. With -update-opa-fixtures it writes the captured
//     events to ingest/testdata/opa/, the fixtures of the adapter's unit tests, so those stay
//     faithful to the engine version in go.mod.
//   - TestOPADecisionLogsToLineage points OPA at a real lineaged and checks that the decisions
//     OPA makes end up in the log, each with an inclusion proof that verifies with the log's
//     public key alone, and that the one it cannot map is quarantined, not lost.

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/ingest"
	"github.com/lineage-audit/lineage/ledger"
	"github.com/lineage-audit/lineage/query"
	"github.com/lineage-audit/lineage/query/auth"
	"github.com/open-policy-agent/opa/v1/logging"
	"github.com/open-policy-agent/opa/v1/plugins/logs"
	"github.com/open-policy-agent/opa/v1/sdk"
)

var updateOPAFixtures = flag.Bool("update-opa-fixtures", false, "write the decision events OPA sends to ingest/testdata/opa/")

const (
	opaTenant         = "lending"
	lendingRevision   = "lending-policy-2026.07.3"
	toolsRevision     = "tools-41"
	wantPolicyVersion = "lending@" + lendingRevision + ",tools@" + toolsRevision
)

// lendingPolicy is a lending agent's tool allow-list. "allow" is the plain boolean decision;
// "decision" the rich one, with an effect (escalating tools that need a loan officer) and a
// reason. "conflict" fails at evaluation time, to show what OPA logs for a failed decision.
const lendingPolicy = `package lending

default allow := false

allow if input.lineage.action.type in data.tools.allowed

decision := {"effect": "allow", "reason": sprintf("tool %s is on the lending allow-list", [input.lineage.action.type])} if {
	allow
} else := {"effect": "escalate", "reason": sprintf("tool %s needs a loan officer's review", [input.lineage.action.type])} if {
	input.lineage.action.type in data.tools.needs_review
} else := {"effect": "deny", "reason": sprintf("tool %s is not on the lending allow-list", [input.lineage.action.type])}

conflict := input.lineage.role if input.lineage.role
conflict := "someone else" if input.lineage.role
`

// maskPolicy is OPA's decision-log mask (data.system.log.mask): it keeps raw identity headers
// out of every log, and erases the whole input of customer exports.
const maskPolicy = `package system.log

mask contains "/input/lineage/identity_object" if input.input.lineage.identity_object

mask contains "/input" if input.input.lineage.action.type == "customer.export"
`

var toolsData = map[string]any{
	"allowed":      []string{"credit.score", "document.summarize", "income.verify"},
	"needs_review": []string{"loan.approve"},
}

// tarGz builds a bundle: a gzipped tarball of files.
func tarGz(t testing.TB, files map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, name := range slices.Sorted(maps.Keys(files)) {
		b := files[name]
		if err := tw.WriteHeader(&tar.Header{Name: "/" + name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// bundleServer serves the lending policy bundle and the tools data bundle, each with its own
// revision: the decision log names both, and the record's policy version must too.
func bundleServer(t testing.TB) *httptest.Server {
	t.Helper()
	lendingBundle := tarGz(t, map[string][]byte{
		".manifest":            must(json.Marshal(map[string]any{"revision": lendingRevision, "roots": []string{"lending", "system/log"}})),
		"lending/policy.rego":  []byte(lendingPolicy),
		"system/log/mask.rego": []byte(maskPolicy),
	})
	toolsBundle := tarGz(t, map[string][]byte{
		".manifest":       must(json.Marshal(map[string]any{"revision": toolsRevision, "roots": []string{"tools"}})),
		"tools/data.json": must(json.Marshal(toolsData)),
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/bundles/lending.tar.gz":
			w.Write(lendingBundle)
		case "/bundles/tools.tar.gz":
			w.Write(toolsBundle)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// opaConfig is the OPA configuration: bundles from bundleURL, decision logs to logsURL (the
// service URL; OPA appends /logs) with a bearer token, uploads every second.
func opaConfig(bundleURL, logsURL, token string) []byte {
	lineageSvc := map[string]any{"url": logsURL}
	if token != "" {
		lineageSvc["credentials"] = map[string]any{"bearer": map[string]any{"token": token}}
	}
	return must(json.Marshal(map[string]any{
		"services": map[string]any{
			"lineage": lineageSvc,
			"bundles": map[string]any{"url": bundleURL},
		},
		"bundles": map[string]any{
			"lending": map[string]any{"service": "bundles", "resource": "/bundles/lending.tar.gz"},
			"tools":   map[string]any{"service": "bundles", "resource": "/bundles/tools.tar.gz"},
		},
		"decision_logs": map[string]any{
			"service":   "lineage",
			"reporting": map[string]any{"min_delay_seconds": 1, "max_delay_seconds": 1},
		},
		"labels": map[string]any{"environment": "e2e", "team": "lending-platform"},
	}))
}

// startOPA starts an SDK instance and waits until both bundles are active.
func startOPA(t testing.TB, config []byte) *sdk.OPA {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	logger := logging.New()
	logger.SetLevel(logging.Warn)
	logger.SetOutput(os.Stderr)
	o, err := sdk.New(ctx, sdk.Options{ID: "opa-lending-1", Config: bytes.NewReader(config), Logger: logger})
	if err != nil {
		t.Fatalf("start OPA: %v", err)
	}
	return o
}

// flushOPA makes OPA upload what it has buffered now, instead of at its next tick.
func flushOPA(t testing.TB, o *sdk.OPA) {
	t.Helper()
	p, ok := o.Plugin(logs.Name).(*logs.Plugin)
	if !ok {
		t.Fatal("OPA has no decision_logs plugin")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Trigger(ctx); err != nil {
		t.Logf("decision log trigger: %v (the periodic upload will retry)", err)
	}
}

// identity is the identity object an enforcement point puts into OPA's input at "lineage".
func identity(user, tool string) map[string]any {
	return map[string]any{
		"user":   map[string]any{"id": user, "issuer": "https://login.bank.example"},
		"agent":  map[string]any{"id": "spiffe://bank.example/agents/loan-assistant", "model": map[string]any{"provider": "anthropic", "name": "claude"}},
		"action": map[string]any{"type": tool, "target": "applications/" + user},
		"role":   "loan-officer",
		"delegation": map[string]any{"token_id": "tok-" + user, "issuer": "https://login.bank.example", "mechanism": "rfc8693",
			"scope": []string{"lending:read"}, "actors": []string{"spiffe://bank.example/agents/loan-assistant"}},
		"ai_system":  map[string]any{"id": "loan-assistant", "risk_class": "high", "use_case": "creditworthiness (Annex III 5(b))"},
		"safeguards": []string{"human-review-over-50k"},
	}
}

// capture is a stand-in for Lineage's OPA endpoint that records what OPA sends.
type capture struct {
	mu      sync.Mutex
	uploads [][]byte // decompressed bodies
	events  map[string]json.RawMessage
	reqs    []string // "METHOD path encoding content-type auth"
}

func (c *capture) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err == nil && r.Header.Get("Content-Encoding") == "gzip" {
		var zr *gzip.Reader
		if zr, err = gzip.NewReader(bytes.NewReader(body)); err == nil {
			body, err = io.ReadAll(zr)
		}
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	evs, err := ingest.ParseOPAEvents(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reqs = append(c.reqs, strings.Join([]string{r.Method, r.URL.Path, r.Header.Get("Content-Encoding"),
		r.Header.Get("Content-Type"), r.Header.Get("Authorization")}, " "))
	c.uploads = append(c.uploads, body)
	for _, ev := range evs {
		var id struct {
			DecisionID string `json:"decision_id"`
		}
		_ = json.Unmarshal(ev, &id)
		c.events[id.DecisionID] = ev
	}
	w.WriteHeader(http.StatusOK)
}

func (c *capture) wait(t testing.TB, ids []string) map[string]json.RawMessage {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c.mu.Lock()
		missing := 0
		for _, id := range ids {
			if c.events[id] == nil {
				missing++
			}
		}
		if missing == 0 {
			defer c.mu.Unlock()
			return c.events
		}
		c.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("OPA uploaded %d of %d decisions within 30s", len(ids)-missing, len(ids))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// fixtureCase is one kind of decision: what the enforcement point asks, and how Lineage must
// map OPA's log of it.
type fixtureCase struct {
	name   string
	path   string
	input  map[string]any
	effect string // want a record with this effect, or
	code   string // want a rejection with this code
	field  string // … and field
}

func fixtureCases() []fixtureCase {
	withHeader := identity("u-ada", "credit.score")
	withHeader["identity_object"] = map[string]any{"alg": "ES256", "kid": "bank-2026", "typ": "JWT"}
	return []fixtureCase{
		{name: "allow-boolean", path: "lending/allow", input: map[string]any{"lineage": identity("u-ada", "credit.score")}, effect: "allow"},
		{name: "deny-boolean", path: "lending/allow", input: map[string]any{"lineage": identity("u-ada", "wire.transfer")}, effect: "deny"},
		{name: "allow-object-masked", path: "lending/decision", input: map[string]any{"lineage": withHeader, "application": map[string]any{"amount": 25000}}, effect: "allow"},
		{name: "escalate-object", path: "lending/decision", input: map[string]any{"lineage": identity("u-bob", "loan.approve")}, effect: "escalate"},
		{name: "deny-object", path: "lending/decision", input: map[string]any{"lineage": identity("u-bob", "wire.transfer")}, effect: "deny"},
		{name: "erased-input", path: "lending/allow", input: map[string]any{"lineage": identity("u-cy", "customer.export")}, code: ingest.ReasonOPAUnmappable, field: "input"},
		{name: "no-identity", path: "lending/allow", input: map[string]any{"tool": "credit.score"}, code: ingest.ReasonOPAUnmappable, field: "input.lineage"},
		{name: "undefined", path: "lending/no_such_rule", input: map[string]any{"lineage": identity("u-ada", "credit.score")}, code: ingest.ReasonOPAUnmappable},
		{name: "eval-error", path: "lending/conflict", input: map[string]any{"lineage": identity("u-ada", "credit.score")}, code: ingest.ReasonOPAUnmappable, field: "error"},
	}
}

func TestOPADecisionLogFormat(t *testing.T) {
	bundles := bundleServer(t)
	c := &capture{events: map[string]json.RawMessage{}}
	sink := httptest.NewServer(c)
	defer sink.Close()
	o := startOPA(t, opaConfig(bundles.URL, sink.URL+"/v1/opa/"+opaTenant, "lin_test-token"))
	defer o.Stop(context.Background())

	ctx := context.Background()
	cases := fixtureCases()
	ids := make([]string, len(cases))
	for i, tc := range cases {
		res, err := o.Decision(ctx, sdk.DecisionOptions{Path: tc.path, Input: tc.input})
		if res == nil {
			t.Fatalf("%s: no decision result: %v", tc.name, err)
		}
		ids[i] = res.ID
		t.Logf("%s: decision %s result %v err %v", tc.name, res.ID, res.Result, err)
	}
	flushOPA(t, o)
	events := c.wait(t, ids)

	c.mu.Lock()
	reqs, uploads := slices.Clone(c.reqs), slices.Clone(c.uploads)
	c.mu.Unlock()
	for _, r := range reqs {
		if want := "POST /v1/opa/" + opaTenant + "/logs gzip application/json Bearer lin_test-token"; r != want {
			t.Errorf("OPA sent %q, want %q", r, want)
		}
	}

	for i, tc := range cases {
		ev := events[ids[i]]
		rec, rej := ingest.MapOPAEvent(ev, opaTenant, ingest.OPAConfig{})
		switch {
		case tc.effect != "" && rej != nil:
			t.Errorf("%s: rejected %+v\n%s", tc.name, rej, ev)
		case tc.effect != "":
			if rec.Decision.Effect != tc.effect || rec.Decision.Policy.ID != tc.path || rec.Decision.Policy.Version != wantPolicyVersion {
				t.Errorf("%s: decision %+v, want effect %s policy %s@%s", tc.name, rec.Decision, tc.effect, tc.path, wantPolicyVersion)
			}
			if rec.ID != ids[i] || rec.Source != (lineage.Source{ID: "opa-lending-1", Type: "opa"}) || rec.Tenant != opaTenant {
				t.Errorf("%s: id %s source %+v tenant %s", tc.name, rec.ID, rec.Source, rec.Tenant)
			}
		case rej == nil:
			t.Errorf("%s: mapped to %+v, want rejection %s", tc.name, rec, tc.code)
		case rej.Code != tc.code || (tc.field != "" && rej.Field != tc.field):
			t.Errorf("%s: rejection %+v, want %s at %q", tc.name, rej, tc.code, tc.field)
		default:
			t.Logf("%s: rejected as expected: %s", tc.name, rej.Detail)
		}
	}

	if *updateOPAFixtures {
		dir := filepath.Join("..", "..", "ingest", "testdata", "opa")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, tc := range cases {
			var pretty bytes.Buffer
			if err := json.Indent(&pretty, events[ids[i]], "", "  "); err != nil {
				t.Fatal(err)
			}
			pretty.WriteByte('\n')
			if err := os.WriteFile(filepath.Join(dir, tc.name+".json"), pretty.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		// One upload exactly as OPA sent it (decompressed), for ParseOPAEvents.
		if err := os.WriteFile(filepath.Join(dir, "upload.json"), uploads[0], 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %d events and one upload of %d bytes to %s", len(cases), len(uploads[0]), dir)
	}
}

// TestOPADecisionLogsToLineage runs OPA against a real lineaged with authentication on: OPA
// presents a publisher API key, the test reads back with an auditor key.
func TestOPADecisionLogsToLineage(t *testing.T) {
	dataDir := t.TempDir()
	keys := auth.KeyFile{}
	newKey := func(id string, role auth.Role) string {
		key, e, err := auth.NewKey(id, []auth.Role{role}, []string{opaTenant})
		if err != nil {
			t.Fatal(err)
		}
		keys.Keys = append(keys.Keys, e)
		return key
	}
	publisher, auditor, admin := newKey("opa-lending", auth.RolePublisher), newKey("auditor", auth.RoleAuditor), newKey("admin", auth.RoleAdmin)
	keyFile := filepath.Join(t.TempDir(), "api-keys.json")
	if err := os.WriteFile(keyFile, must(json.Marshal(keys)), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, dataDir, freeAddr(t), freeAddr(t), "--api-keys", keyFile)
	defer d.stop()
	defer func() {
		if t.Failed() {
			t.Logf("lineaged logs:\n%s", d.logs)
		}
	}()
	v, err := ledger.ReadVerifierFile(filepath.Join(dataDir, "keys", "log.key.pub"))
	if err != nil {
		t.Fatal(err)
	}

	bundles := bundleServer(t)
	o := startOPA(t, opaConfig(bundles.URL, d.url("/v1/opa/"+opaTenant), publisher))

	// 20 decisions: users × tools, half asked as the boolean "allow", half as the rich
	// "decision"; the effect Lineage must log is computed from the allow-list, independently
	// of OPA, and checked against what OPA answered.
	type asked struct {
		user, tool, path, effect string
	}
	tools := []string{"credit.score", "wire.transfer", "loan.approve", "income.verify", "account.close"}
	var decisions []asked
	byID := map[string]asked{}
	ctx := context.Background()
	for i := range 20 {
		a := asked{user: fmt.Sprintf("u-%02d", i%4), tool: tools[i%len(tools)], path: "lending/allow"}
		allowed := slices.Contains(toolsData["allowed"].([]string), a.tool)
		a.effect = map[bool]string{true: "allow", false: "deny"}[allowed]
		if i%2 == 1 {
			a.path = "lending/decision"
			if !allowed && slices.Contains(toolsData["needs_review"].([]string), a.tool) {
				a.effect = "escalate"
			}
		}
		res, err := o.Decision(ctx, sdk.DecisionOptions{Path: a.path, Input: map[string]any{"lineage": identity(a.user, a.tool)}})
		if err != nil {
			t.Fatalf("decision %d: %v", i, err)
		}
		if got := opaEffect(res.Result); got != a.effect {
			t.Fatalf("decision %d (%s on %s): OPA answered %v, the allow-list says %s", i, a.tool, a.path, res.Result, a.effect)
		}
		decisions = append(decisions, a)
		byID[res.ID] = a
	}
	// One decision OPA logs with its input erased: Lineage cannot map it and must quarantine it.
	erased, err := o.Decision(ctx, sdk.DecisionOptions{Path: "lending/allow", Input: map[string]any{"lineage": identity("u-00", "customer.export")}})
	if err != nil {
		t.Fatal(err)
	}
	flushOPA(t, o)
	// Stopping OPA with a deadline flushes whatever is still buffered.
	stopCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	o.Stop(stopCtx)
	cancel()

	client := &authClient{d: d, token: auditor}
	deadline := time.Now().Add(time.Minute)
	for id, a := range byID {
		var rp query.RecordProof
		path := "/v1/records/" + url.PathEscape(id) + "?tenant=" + opaTenant
		for {
			code, body := client.get(t, path, &rp)
			if code == http.StatusOK {
				break
			}
			if code != http.StatusNotFound || time.Now().After(deadline) {
				t.Fatalf("GET %s: %d %s", path, code, body)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if _, err := query.VerifyRecordProof(&rp, v); err != nil {
			t.Fatalf("decision %s: proof: %v", id, err)
		}
		r := rp.Record
		if r.Decision.Effect != a.effect || r.Decision.Policy.ID != a.path || r.Decision.Policy.Version != wantPolicyVersion {
			t.Errorf("decision %s (%s on %s): logged %+v, want effect %s", id, a.tool, a.path, r.Decision, a.effect)
		}
		if r.User.ID != a.user || r.Action.Type != a.tool || r.Source.Type != "opa" || r.Source.ID != "opa-lending-1" {
			t.Errorf("decision %s: logged user %s action %s source %+v", id, r.User.ID, r.Action.Type, r.Source)
		}
		if a.path == "lending/decision" && r.Decision.Reason == "" {
			t.Errorf("decision %s: the policy's reason was not logged", id)
		}
	}
	t.Logf("%d OPA decisions in the log, each with a verified inclusion proof", len(byID))

	// The unmappable decision is in the quarantine, with OPA's event as the payload.
	admins := &authClient{d: d, token: admin}
	for {
		var q struct{ Entries []ingest.QuarantineEntry }
		code, body := admins.get(t, "/v1/quarantine?tenant="+opaTenant, &q)
		if code != http.StatusOK {
			t.Fatalf("GET /v1/quarantine: %d %s", code, body)
		}
		found := slices.IndexFunc(q.Entries, func(e ingest.QuarantineEntry) bool {
			return bytes.Contains(e.Payload, []byte(erased.ID))
		})
		if found >= 0 {
			e := q.Entries[found]
			if e.Reason.Code != ingest.ReasonOPAUnmappable || e.Reason.Field != "input" {
				t.Errorf("erased decision quarantined as %+v", e.Reason)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("decision %s with erased input is neither logged nor quarantined: %s", erased.ID, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// No decision of OPA's was logged twice or lost: the log holds exactly the 20.
	d.waitIndexed(t, uint64(len(decisions)))
}

// opaEffect reads an SDK result the way the adapter reads a logged one.
func opaEffect(result any) string {
	switch r := result.(type) {
	case bool:
		return map[bool]string{true: "allow", false: "deny"}[r]
	case map[string]any:
		if e, ok := r["effect"].(string); ok {
			return e
		}
	}
	return fmt.Sprintf("unexpected %T", result)
}

// authClient calls the daemon's API with a bearer token.
type authClient struct {
	d     *daemon
	token string
}

func (c *authClient) get(t testing.TB, path string, v any) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, c.d.url(path), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode == http.StatusOK && v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("GET %s: %v\n%s", path, err, b)
		}
	}
	return resp.StatusCode, b
}
