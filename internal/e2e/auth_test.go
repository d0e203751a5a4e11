package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/ingest"
	"github.com/lineage-audit/lineage/internal/demo"
	"github.com/lineage-audit/lineage/ledger"
	"github.com/lineage-audit/lineage/query"
	"github.com/lineage-audit/lineage/query/auth"
)

// TestAuthAndTenantIsolation runs lineaged with API keys and tries every endpoint with the
// wrong credentials, the wrong role and the wrong tenant.
func TestAuthAndTenantIsolation(t *testing.T) {
	dataDir := t.TempDir()
	keys := map[string]string{}
	var file auth.KeyFile
	recs := demo.Generate(demo.Options{Seed: 31, Tenants: 2}, 60)
	a := recs[0].Tenant
	var b string
	for _, r := range recs {
		if r.Tenant != a {
			b = r.Tenant
			break
		}
	}
	for _, k := range []struct {
		id      string
		role    auth.Role
		tenants []string
	}{{"pub-a", auth.RolePublisher, []string{a}}, {"aud-a", auth.RoleAuditor, []string{a}}, {"admin", auth.RoleAdmin, []string{"*"}}} {
		key, e, err := auth.NewKey(k.id, []auth.Role{k.role}, k.tenants)
		if err != nil {
			t.Fatal(err)
		}
		keys[k.id] = key
		file.Keys = append(file.Keys, e)
	}
	keyFile := filepath.Join(t.TempDir(), "keys.json")
	if err := os.WriteFile(keyFile, must(json.Marshal(file)), 0o600); err != nil {
		t.Fatal(err)
	}

	// Without a key file, a non-loopback listener is refused.
	out, err := exec.Command(bins.lineaged, "serve", "--data-dir", t.TempDir(), "--http-addr", "0.0.0.0:0", "--nats-addr", freeAddr(t)).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "not a loopback address") {
		t.Fatalf("non-loopback without auth: err %v, output %s", err, out)
	}

	natsAddr, httpAddr := freeAddr(t), freeAddr(t)
	d := startDaemon(t, dataDir, natsAddr, httpAddr, "--api-keys", keyFile)
	defer d.stop()
	v, _ := ledger.ReadVerifierFile(filepath.Join(dataDir, "keys", "log.key.pub"))

	call := func(method, path, key string, body []byte) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, d.url(path), bytes.NewReader(body))
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		rb, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, rb
	}
	expect := func(method, path, who string, body []byte, want int) []byte {
		t.Helper()
		code, rb := call(method, path, keys[who], body)
		if code != want {
			t.Errorf("%s %s as %q = %d %s; want %d", method, path, who, code, rb, want)
		}
		return rb
	}

	// Publishing over HTTP: the publisher of tenant a, for a's records only.
	var ofA, ofB []lineage.Record
	for _, r := range recs {
		if r.Tenant == a {
			ofA = append(ofA, r)
		} else {
			ofB = append(ofB, r)
		}
	}
	arr := func(rs ...any) []byte { return must(json.Marshal(rs)) }
	expect("POST", "/v1/records", "", arr(ofA[0]), 401)
	expect("POST", "/v1/records", "aud-a", arr(ofA[0]), 403)
	expect("POST", "/v1/records", "pub-a", arr(ofA[0], ofB[0]), 403)
	rb := expect("POST", "/v1/records", "pub-a", arr(ofA[0], ofA[1], map[string]any{"schema": "lineage.decision/v1", "id": "x"}), 202)
	var resp ingest.Response
	if err := json.Unmarshal(rb, &resp); err != nil || resp.Accepted != 2 || resp.Quarantined != 1 || resp.Results[2].Reason == nil {
		t.Fatalf("ingest answer %s (%v)", rb, err)
	}
	var nd bytes.Buffer
	for _, r := range ofA[2:] {
		nd.Write(must(json.Marshal(r)))
		nd.WriteByte('\n')
	}
	expect("POST", "/v1/records", "pub-a", nd.Bytes(), 202)
	// Tenant b's records arrive over NATS (the embedded server is on loopback).
	if out, err := ctl("publish", "--nats-url", "nats://"+natsAddr, "--demo", "60", "--seed", "31", "--tenants", "2"); err != nil {
		t.Fatalf("publish: %v\n%s", err, out)
	}
	d.waitIndexed(t, uint64(len(recs)))

	// Reading: auditors see their tenant only; nothing says whether another tenant's data exists.
	expect("GET", "/v1/checkpoint", "", nil, 401)
	expect("GET", "/v1/checkpoint", "aud-a", nil, 200)
	var rp query.RecordProof
	if err := json.Unmarshal(expect("GET", "/v1/records/"+ofA[0].ID+"?tenant="+a, "aud-a", nil, 200), &rp); err != nil {
		t.Fatal(err)
	}
	if _, err := query.VerifyRecordProof(&rp, v); err != nil {
		t.Fatal(err)
	}
	expect("GET", "/v1/records/"+ofA[0].ID, "aud-a", nil, 200)
	expect("GET", "/v1/records/"+ofA[0].ID, "pub-a", nil, 403)
	expect("GET", "/v1/records/"+ofB[0].ID+"?tenant="+b, "aud-a", nil, 404)
	expect("GET", "/v1/records/"+ofB[0].ID, "aud-a", nil, 404)
	expect("GET", "/v1/records/"+ofB[0].ID, "admin", nil, 200)
	expect("GET", "/v1/lineage/users/"+ofB[0].User.ID+"?tenant="+b, "aud-a", nil, 403)
	expect("GET", "/v1/lineage/users/"+ofA[0].User.ID+"?tenant="+a, "aud-a", nil, 200)
	expect("GET", "/v1/lineage/agents/"+url.PathEscape(ofB[0].Agent.ID)+"?tenant="+b, "aud-a", nil, 403)
	expect("GET", "/v1/lineage/actions/"+ofB[0].ID+"?tenant="+b, "aud-a", nil, 404)
	expect("GET", "/v1/lineage/actions/"+ofB[0].ID+"?tenant="+a, "aud-a", nil, 404)
	expect("GET", "/v1/lineage/policies/"+ofB[0].Decision.Policy.ID+"?tenant="+b, "aud-a", nil, 403)
	expect("GET", "/v1/lineage/agents/"+url.PathEscape(ofA[0].Agent.ID)+"?tenant="+a, "aud-a", nil, 200)
	expect("GET", "/v1/lineage/actions/"+ofA[0].ID+"?tenant="+a, "aud-a", nil, 200)
	expect("GET", "/v1/lineage/policies/"+ofA[0].Decision.Policy.ID+"?tenant="+a, "aud-a", nil, 200)
	expect("GET", "/v1/lineage/agents/"+url.PathEscape(ofA[0].Agent.ID)+"?tenant="+a, "pub-a", nil, 403)
	// An agent answer for tenant a never holds tenant b's records, even for an agent id both use.
	var al query.AgentLineage
	if err := json.Unmarshal(expect("GET", "/v1/lineage/agents/"+url.PathEscape(ofA[0].Agent.ID)+"?tenant="+a, "aud-a", nil, 200), &al); err != nil {
		t.Fatal(err)
	}
	for _, x := range al.Actions {
		if x.Tenant != a {
			t.Fatalf("agent answer for %s holds a record of %s", a, x.Tenant)
		}
	}
	var bref query.RecordProof
	_ = json.Unmarshal(expect("GET", "/v1/records/"+ofB[0].ID, "admin", nil, 200), &bref)
	expect("GET", fmt.Sprintf("/v1/proofs/inclusion?index=%d&size=%d", bref.Index, len(recs)), "aud-a", nil, 404)
	expect("GET", fmt.Sprintf("/v1/proofs/inclusion?index=%d&size=%d", rp.Index, len(recs)), "aud-a", nil, 200)
	expect("GET", fmt.Sprintf("/v1/proofs/consistency?from=1&to=%d", len(recs)), "aud-a", nil, 200)
	expect("GET", "/log/checkpoint", "aud-a", nil, 403)
	expect("GET", "/log/checkpoint", "admin", nil, 200)
	expect("GET", "/metrics", "aud-a", nil, 403)
	expect("GET", "/metrics", "admin", nil, 200)
	expect("GET", "/v1/quarantine?tenant="+a, "aud-a", nil, 403)
	expect("GET", "/v1/quarantine", "admin", nil, 200)
	expect("GET", "/healthz", "", nil, 200)

	// The CLI takes the key from the environment.
	cmd := exec.Command(bins.lineagectl, "verify", "--api", d.url(""), "--id", ofA[3].ID, "--tenant", a, "--verifier-file", filepath.Join(dataDir, "keys", "log.key.pub"))
	cmd.Env = append(os.Environ(), "LINEAGE_API_KEY="+keys["aud-a"])
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("verify with LINEAGE_API_KEY: %v\n%s", err, out)
	}
	cmd = exec.Command(bins.lineagectl, "quarantine", "ls", "--api", d.url(""), "--tenant", a)
	cmd.Env = append(os.Environ(), "LINEAGE_API_KEY="+keys["admin"])
	out, err = cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "missing_field") {
		t.Fatalf("quarantine ls: %v\n%s", err, out)
	}
}
