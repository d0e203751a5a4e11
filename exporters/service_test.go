package exporters

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/exporters/report"
	"github.com/lineage-audit/lineage/query/auth"
	"github.com/lineage-audit/lineage/query/findings"
	"github.com/lineage-audit/lineage/verify"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// principals authenticates test callers by the X-Test-Principal header.
type principals map[string]*auth.Principal

func (p principals) Authenticate(r *http.Request) (*auth.Principal, error) {
	if pr := p[r.Header.Get("X-Test-Principal")]; pr != nil {
		return pr, nil
	}
	return nil, nil
}

var testPrincipals = principals{
	"acme-compliance":   {Subject: "apikey:acme-compliance", Roles: []auth.Role{auth.RoleCompliance}, Tenants: []string{"acme-bank"}},
	"acme-auditor":      {Subject: "apikey:acme-auditor", Roles: []auth.Role{auth.RoleAuditor}, Tenants: []string{"acme-bank"}},
	"globex-compliance": {Subject: "apikey:globex-compliance", Roles: []auth.Role{auth.RoleCompliance}, Tenants: []string{"globex-lending"}},
}

// published collects the records a Service publishes.
type published struct {
	mu   sync.Mutex
	recs []lineage.Record
	fail error
}

func (p *published) publish(_ context.Context, r lineage.Record) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail != nil {
		return p.fail
	}
	p.recs = append(p.recs, r)
	return nil
}

func (p *published) all() []lineage.Record {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]lineage.Record(nil), p.recs...)
}

type svcRig struct {
	svc    *Service
	srv    *httptest.Server
	pub    *published
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan struct{}
}

func startService(t *testing.T, r *rig, dir string, mod func(*Config)) *svcRig {
	t.Helper()
	pub := &published{}
	reg := prometheus.NewRegistry()
	c := Config{Log: r.Log, Signer: r.Signer, Verifier: r.Verifier, Dir: dir, Publish: pub.publish, Registerer: reg}
	if mod != nil {
		mod(&c)
	}
	svc, srv := serveService(t, c)
	ctx, cancel := context.WithCancel(context.Background())
	sr := &svcRig{svc: svc, srv: srv, pub: pub, reg: reg, cancel: cancel, done: make(chan struct{})}
	go func() { defer close(sr.done); svc.Run(ctx) }()
	t.Cleanup(sr.stop)
	return sr
}

// serveService makes the service of c and serves its HTTP API (Mount) with the test principals;
// the caller closes the server.
func serveService(t *testing.T, c Config) (*Service, *httptest.Server) {
	t.Helper()
	svc, err := NewService(c)
	if err != nil {
		t.Fatal(err)
	}
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.UseRawPath, e.UnescapePathValues = true, true
	svc.Mount(e.Group("", auth.Middleware(testPrincipals)).Group("/v1"))
	return svc, httptest.NewServer(e)
}

func (sr *svcRig) stop() {
	sr.cancel()
	<-sr.done
	sr.srv.Close()
}

func (sr *svcRig) do(t *testing.T, who, method, path, body string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, sr.srv.URL+path, strings.NewReader(body))
	req.Header.Set("X-Test-Principal", who)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (sr *svcRig) wait(t *testing.T, who, id string) Job {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		code, b := sr.do(t, who, "GET", "/v1/exports/"+id, "")
		if code != 200 {
			t.Fatalf("GET export %s: %d %s", id, code, b)
		}
		var j Job
		if err := json.Unmarshal(b, &j); err != nil {
			t.Fatal(err)
		}
		if j.Status == StatusSucceeded || j.Status == StatusFailed {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("export %s still %s: %+v", id, j.Status, j.Progress)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

const juneBody = `{"kind":"eu-ai-act","tenant":"acme-bank","ai_system":"acme-bank/credit-copilot","from":"2026-06-01","to":"2026-06-08T00:00:00Z"}`

func TestServiceAPI(t *testing.T) {
	r := getRig(t)
	dir := t.TempDir()
	sr := startService(t, r, dir, nil)

	code, b := sr.do(t, "acme-compliance", "POST", "/v1/exports", juneBody)
	if code != http.StatusAccepted {
		t.Fatalf("POST: %d %s", code, b)
	}
	var j Job
	json.Unmarshal(b, &j)
	if j.ID == "" || j.Status != StatusQueued && j.Status != StatusRunning || j.RequestedBy != "apikey:acme-compliance" {
		t.Fatalf("created job %+v", j)
	}
	j = sr.wait(t, "acme-compliance", j.ID)
	if j.Status != StatusSucceeded || j.Records == 0 || j.Progress.Scanned != j.Progress.Total || j.RecordID != "export-"+j.ID {
		t.Fatalf("job %+v", j)
	}
	if len(j.Files) < 10 || j.Files[len(j.Files)-1].Name != j.ID+".zip" {
		t.Fatalf("files %+v", j.Files)
	}

	// Download the bundle and verify it offline.
	code, zipBytes := sr.do(t, "acme-compliance", "GET", "/v1/exports/"+j.ID+"/files/"+j.ID+".zip", "")
	if code != 200 {
		t.Fatalf("download: %d", code)
	}
	path := filepath.Join(t.TempDir(), "b.zip")
	os.WriteFile(path, zipBytes, 0o644)
	rep, err := verify.VerifyBundle(path, r.Verifier)
	if err != nil || rep.Records != j.Records {
		t.Fatalf("downloaded bundle: %v (%d records, job says %d)", err, rep.Records, j.Records)
	}

	// The run is itself a decision record: who exported what, when.
	recs := sr.pub.all()
	if len(recs) != 1 {
		t.Fatalf("%d records published", len(recs))
	}
	rec := recs[0]
	if rec.ID != j.RecordID || rec.Tenant != "acme-bank" || rec.User.ID != "apikey:acme-compliance" || rec.Agent.ID != report.ExportSourceID ||
		rec.Source.Type != report.ExportSourceType || rec.Action.Type != "export.eu-ai-act" ||
		rec.Action.Target != "acme-bank/2026-06-01T00:00:00Z/2026-06-08T00:00:00Z" || rec.Decision.Effect != lineage.EffectAllow ||
		rec.Decision.Policy != ExportPolicy || !strings.Contains(string(rec.PolicyContext), j.BundleSHA256) {
		t.Fatalf("export record %+v", rec)
	}
	canon, _ := rec.Canonical()
	if _, err := lineage.DecodeRecord(canon); err != nil {
		t.Fatalf("the export record would be quarantined: %v", err)
	}

	// Tenant scoping and roles.
	for _, c := range []struct {
		who, method, path, body string
		code                    int
	}{
		{"globex-compliance", "GET", "/v1/exports/" + j.ID, "", 404},
		{"globex-compliance", "GET", "/v1/exports/" + j.ID + "/files/report.html", "", 404},
		{"globex-compliance", "POST", "/v1/exports", juneBody, 403},
		{"acme-auditor", "POST", "/v1/exports", juneBody, 403},
		{"acme-auditor", "GET", "/v1/exports/" + j.ID, "", 403},
		{"nobody", "GET", "/v1/exports/" + j.ID, "", 401},
		{"acme-compliance", "GET", "/v1/exports/exp-nope", "", 404},
		{"acme-compliance", "GET", "/v1/exports/" + j.ID + "/files/job.json", "", 404},
		{"acme-compliance", "GET", "/v1/exports/" + j.ID + "/files/..%2Fjob.json", "", 404},
		{"acme-compliance", "GET", "/v1/exports/..%2F..%2Fetc/files/passwd", "", 404},
		{"acme-compliance", "POST", "/v1/exports", `{"kind":"eu-ai-act","tenant":"acme-bank","from":"2026-06-01","to":"2026-06-01"}`, 400},
		{"acme-compliance", "POST", "/v1/exports", `{"kind":"sox","tenant":"acme-bank","from":"2026-06-01","to":"2026-07-01"}`, 400},
		{"acme-compliance", "POST", "/v1/exports", `{"kind":"eu-ai-act","tenant":"acme-bank","from":"June","to":"2026-07-01"}`, 400},
		{"acme-compliance", "POST", "/v1/exports", `{"kind":"eu-ai-act","tenant":"acme-bank","from":"2026-06-01","to":"2026-07-01","extra":1}`, 400},
		{"acme-compliance", "POST", "/v1/exports", `{"kind":"eu-ai-act","tenant":"acme-bank","from":"2026-06-01","to":"2026-07-01","formats":["pdf"]}`, 400},
		{"acme-compliance", "POST", "/v1/exports", `not json`, 400},
	} {
		if code, b := sr.do(t, c.who, c.method, c.path, c.body); code != c.code {
			t.Errorf("%s %s %s as %s: %d %s, want %d", c.method, c.path, c.body, c.who, code, b, c.code)
		}
	}
	code, b = sr.do(t, "globex-compliance", "GET", "/v1/exports", "")
	if code != 200 || strings.Contains(string(b), j.ID) {
		t.Fatalf("globex lists acme's export: %d %s", code, b)
	}
	code, b = sr.do(t, "acme-compliance", "GET", "/v1/exports", "")
	if code != 200 || !strings.Contains(string(b), j.ID) {
		t.Fatalf("acme's list lacks its export: %d %s", code, b)
	}
	if got := testutil.ToFloat64(sr.svc.m.jobs.WithLabelValues("eu-ai-act", "api", "succeeded")); got != 1 {
		t.Errorf("jobs metric %v", got)
	}
	if got := testutil.ToFloat64(sr.svc.m.total); got != float64(len(r.Recs)) {
		t.Errorf("progress metric total %v, want %d", got, len(r.Recs))
	}

	// A restart keeps finished jobs and their files.
	sr.stop()
	sr2 := startService(t, r, dir, nil)
	if got := sr2.wait(t, "acme-compliance", j.ID); got.Status != StatusSucceeded || len(got.Files) != len(j.Files) {
		t.Fatalf("after restart: %+v", got)
	}
	if code, _ := sr2.do(t, "acme-compliance", "GET", "/v1/exports/"+j.ID+"/files/report.html", ""); code != 200 {
		t.Fatalf("report after restart: %d", code)
	}
}

func TestServiceUnrecordedExportFails(t *testing.T) {
	r := getRig(t)
	sr := startService(t, r, t.TempDir(), nil)
	sr.pub.fail = errors.New("nats: no responders")
	_, b := sr.do(t, "acme-compliance", "POST", "/v1/exports", juneBody)
	var j Job
	json.Unmarshal(b, &j)
	j = sr.wait(t, "acme-compliance", j.ID)
	if j.Status != StatusFailed || !strings.Contains(j.Error, "could not be recorded") || len(j.Files) != 0 {
		t.Fatalf("job %+v", j)
	}
	if code, _ := sr.do(t, "acme-compliance", "GET", "/v1/exports/"+j.ID+"/files/report.html", ""); code != http.StatusConflict {
		t.Fatalf("files of a failed export served: %d", code)
	}
	if testutil.ToFloat64(sr.svc.m.publishErrors) != 1 {
		t.Error("publish error not counted")
	}
}

// fakeClock is the scheduler's clock in tests: each wait advances time by the wait, until
// stopAt; after that, waits never end (the test cancels).
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	stopAt time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.now.Before(c.stopAt) {
		return nil
	}
	c.now = c.now.Add(d)
	ch := make(chan time.Time, 1)
	ch <- c.now
	return ch
}

func writeSchedule(t *testing.T, body string) string {
	p := filepath.Join(t.TempDir(), "schedule.json")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const monthlySchedule = `{"exports":[
 {"name":"fannie-mae-monthly","cron":"0 2 1 * *","kind":"fannie-mae","tenant":"acme-bank","period":"previous-month","formats":["json","html"]},
 {"name":"eu-weekly","cron":"0 3 * * MON","kind":"eu-ai-act","tenant":"acme-bank","ai_system":"acme-bank/credit-copilot","period":"previous-week"}
]}`

func scheduledJobs(sr *svcRig) []Job {
	return sr.svc.visibleJobs(func(string) bool { return true }, "", 100)
}

func waitScheduled(t *testing.T, sr *svcRig, n int) []Job {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		jobs := scheduledJobs(sr)
		done := 0
		for _, j := range jobs {
			if j.Status == StatusSucceeded || j.Status == StatusFailed {
				done++
			}
		}
		if done >= n {
			return jobs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d scheduled exports finished: %+v", done, n, jobs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestScheduler(t *testing.T) {
	r := getRig(t)
	dir := t.TempDir()
	sched := writeSchedule(t, monthlySchedule)
	clock := &fakeClock{now: time.Date(2026, 7, 1, 1, 58, 30, 0, time.UTC), stopAt: time.Date(2026, 7, 1, 2, 0, 0, 0, time.UTC)}
	sr := startService(t, r, dir, func(c *Config) { c.ScheduleFile, c.now, c.after = sched, clock.Now, clock.After })
	jobs := waitScheduled(t, sr, 1)
	j := jobs[0]
	if len(jobs) != 1 || j.Status != StatusSucceeded || j.Trigger != "schedule:fannie-mae-monthly" || j.RequestedBy != "scheduler" ||
		j.From != "2026-06-01T00:00:00Z" || j.To != "2026-07-01T00:00:00Z" || j.ScheduledFor != "2026-07-01T02:00:00Z" {
		t.Fatalf("scheduled jobs %+v", jobs)
	}
	if _, err := os.Stat(filepath.Join(dir, j.ID, j.ID+".zip")); err != nil {
		t.Fatalf("scheduled export not written to the export dir: %v", err)
	}
	if recs := sr.pub.all(); len(recs) != 1 || recs[0].User.ID != "scheduler" || recs[0].Action.Type != "export.fannie-mae" {
		t.Fatalf("scheduled export record %+v", recs)
	}
	if testutil.ToFloat64(sr.svc.m.scheduleRuns.WithLabelValues("fannie-mae-monthly", "succeeded")) != 1 ||
		testutil.ToFloat64(sr.svc.m.scheduleLast.WithLabelValues("fannie-mae-monthly")) == 0 {
		t.Error("schedule metrics not updated")
	}
	sr.stop()

	// Down from 2 July to 15 August: at start-up the missed 1 August run (July's disclosure)
	// and the missed Monday 10 August weekly run are made up, once each.
	clock2 := &fakeClock{now: time.Date(2026, 8, 15, 12, 0, 0, 0, time.UTC)}
	clock2.stopAt = clock2.now
	sr2 := startService(t, r, dir, func(c *Config) { c.ScheduleFile, c.now, c.after = sched, clock2.Now, clock2.After })
	jobs = waitScheduled(t, sr2, 3)
	var got []string
	for _, x := range jobs {
		if x.ID != j.ID { // the July run of the first process
			got = append(got, x.Trigger+" "+x.From+" "+x.To+" "+x.Status)
		}
	}
	want := []string{
		"schedule:eu-weekly 2026-08-03T00:00:00Z 2026-08-10T00:00:00Z succeeded",
		"schedule:fannie-mae-monthly 2026-07-01T00:00:00Z 2026-08-01T00:00:00Z succeeded",
	}
	slices.Sort(got)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("made-up runs:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestScheduleFileErrors(t *testing.T) {
	for name, body := range map[string]string{
		"unknown field": `{"exports":[{"name":"a","cron":"0 2 1 * *","kind":"fannie-mae","tenant":"acme-bank","period":"previous-month","x":1}]}`,
		"bad cron":      `{"exports":[{"name":"a","cron":"0 2 1 *","kind":"fannie-mae","tenant":"acme-bank","period":"previous-month"}]}`,
		"never fires":   `{"exports":[{"name":"a","cron":"0 0 30 2 *","kind":"fannie-mae","tenant":"acme-bank","period":"previous-month"}]}`,
		"bad period":    `{"exports":[{"name":"a","cron":"0 2 1 * *","kind":"fannie-mae","tenant":"acme-bank","period":"monthly"}]}`,
		"bad lookback":  `{"exports":[{"name":"a","cron":"0 2 1 * *","kind":"fannie-mae","tenant":"acme-bank","period":"last-5s"}]}`,
		"bad kind":      `{"exports":[{"name":"a","cron":"0 2 1 * *","kind":"sox","tenant":"acme-bank","period":"previous-month"}]}`,
		"bad tenant":    `{"exports":[{"name":"a","cron":"0 2 1 * *","kind":"fannie-mae","tenant":"Acme","period":"previous-month"}]}`,
		"bad name":      `{"exports":[{"name":"A B","cron":"0 2 1 * *","kind":"fannie-mae","tenant":"acme-bank","period":"previous-month"}]}`,
		"duplicate":     `{"exports":[{"name":"a","cron":"0 2 1 * *","kind":"fannie-mae","tenant":"acme-bank","period":"previous-month"},{"name":"a","cron":"0 2 1 * *","kind":"fannie-mae","tenant":"acme-bank","period":"previous-month"}]}`,
		"trailing":      `{"exports":[]} {}`,
	} {
		if _, err := ParseSchedule([]byte(body)); err == nil {
			t.Errorf("%s: schedule accepted", name)
		}
	}
	ok := `{"exports":[{"name":"q","cron":"@monthly","kind":"eu-ai-act","tenant":"acme-bank","period":"last-720h"}]}`
	if _, err := ParseSchedule([]byte(ok)); err != nil {
		t.Fatal(err)
	}
}

func TestSchedulePeriods(t *testing.T) {
	at := time.Date(2026, 5, 13, 2, 0, 0, 0, time.UTC) // a Wednesday
	for period, want := range map[string][2]string{
		"previous-day":     {"2026-05-12", "2026-05-13"},
		"previous-week":    {"2026-05-04", "2026-05-11"},
		"previous-month":   {"2026-04-01", "2026-05-01"},
		"previous-quarter": {"2026-01-01", "2026-04-01"},
		"last-48h":         {"2026-05-11T02:00:00Z", "2026-05-13T02:00:00Z"},
	} {
		e := ScheduleEntry{Period: period}
		from, to, err := e.period(at)
		if err != nil {
			t.Fatal(err)
		}
		f, _ := report.ParseTime(want[0])
		tt, _ := report.ParseTime(want[1])
		if !from.Equal(f) || !to.Equal(tt) {
			t.Errorf("%s at %s: %s – %s, want %s – %s", period, at, from, to, f, tt)
		}
	}
}

// TestServiceFindingsConfig checks that the service's findings configuration (lineaged's
// --findings-config) is the one its reports' agent-identity findings follow.
func TestServiceFindingsConfig(t *testing.T) {
	r := getRig(t)
	var kinds []string
	for _, k := range findings.Kinds {
		kinds = append(kinds, `"`+string(k.Kind)+`"`)
	}
	off, err := findings.ParseConfig([]byte(`{"tenants":{"acme-bank":{"disabled":[` + strings.Join(kinds, ",") + `]}}}`))
	if err != nil {
		t.Fatal(err)
	}
	identity := func(cfg *findings.Configs) []report.IdentityFinding {
		sr := startService(t, r, t.TempDir(), func(c *Config) { c.Findings = cfg })
		code, b := sr.do(t, "acme-compliance", "POST", "/v1/exports", juneBody)
		if code != http.StatusAccepted {
			t.Fatalf("POST: %d %s", code, b)
		}
		var j Job
		json.Unmarshal(b, &j)
		if j = sr.wait(t, "acme-compliance", j.ID); j.Status != StatusSucceeded {
			t.Fatalf("job %+v", j)
		}
		code, b = sr.do(t, "acme-compliance", "GET", "/v1/exports/"+j.ID+"/files/report.json", "")
		var doc report.Document
		if err := json.Unmarshal(b, &doc); code != 200 || err != nil {
			t.Fatalf("report.json: %d %v", code, err)
		}
		return doc.IdentityFindings
	}
	if fs := identity(nil); len(fs) == 0 {
		t.Fatal("the default configuration finds nothing in the realistic traffic: the test cannot tell the configurations apart")
	}
	if fs := identity(off); len(fs) != 0 {
		t.Fatalf("every kind is disabled for the tenant, yet the report lists %d findings, the first %s %s", len(fs), fs[0].Kind, fs[0].ID)
	}
}
