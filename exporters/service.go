package exporters

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/exporters/cron"
	"github.com/lineage-audit/lineage/exporters/report"
	"github.com/lineage-audit/lineage/internal/atomicfile"
	"github.com/lineage-audit/lineage/ledger"
	"github.com/lineage-audit/lineage/ledger/seal"
	"github.com/lineage-audit/lineage/query/findings"
	"github.com/lineage-audit/lineage/verify"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/mod/sumdb/note"
)

// Config configures a Service.
type Config struct {
	Log      ledger.Log
	Signer   note.Signer
	Verifier note.Verifier
	// Dir holds one directory per export, <Dir>/<export id>/, with the report files, the
	// bundle and job.json (the job's status, so finished exports survive a restart).
	Dir string
	// ScheduleFile is the schedule of recurring exports (see schedule.go); empty for none.
	ScheduleFile string
	// Publish records each export run as a decision record in the log. It is required: an
	// export that cannot be recorded is failed, not served (the audit trail of the audit trail
	// must be complete).
	Publish func(ctx context.Context, rec lineage.Record) error
	// Registerer receives the exporter's metrics (nil: not registered).
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	// QueueSize bounds the exports waiting to run (default 16); more are refused with 503.
	QueueSize int
	// Exporter tuning (ChunkSize, GapDays, Generator); its Log, Signer and Verifier are set
	// from the fields above.
	Exporter report.Exporter
	// Findings is the per-tenant findings configuration (lineaged --findings-config), so the
	// reports' agent-identity findings are those GET /v1/findings serves (nil: the defaults).
	Findings *findings.Configs
	// Keys is the erasure key store (lineaged --erasure on; nil otherwise): exports open the
	// sealed (v2) entries with it (report.Exporter.Keys), and PurgeKeys deletes the stored files
	// of exports that hold clear values of an erased subject (erasure.go).
	Keys seal.KeyStore

	// Cluster, if set, keeps the jobs, their files and the schedule state in NATS JetStream
	// instead of Dir, so that several lineaged nodes serve them and a job whose node died is
	// restarted by the next one (cluster.go). Dir is then only scratch space.
	Cluster *Cluster

	// now and after are the clock, replaced in tests.
	now   func() time.Time
	after func(time.Duration) <-chan time.Time
	// beforeExport, if set, runs before each export of cluster mode with the export's context
	// (tests block it there); an error fails the run unless the context ended.
	beforeExport func(ctx context.Context, j Job) error
	// crash, if set, is asked at each crash point of cluster mode (crashAfterRun, …): true
	// stops the handling of the job there, as if the process died (tests).
	crash func(point, id string) bool
}

// Service runs exports: on demand through the HTTP API (Mount) and on a schedule (Run). Exports
// run one at a time on one worker goroutine: an export reads the whole log and on a shared
// 2-core machine two at once would only slow both and the ingest path beside them.
type Service struct {
	c        Config
	exp      *report.Exporter
	log      *slog.Logger
	m        *metrics
	schedule []*scheduleEntry

	// mu protects jobs, every Job they point to, and state.
	mu    sync.Mutex
	jobs  map[string]*Job
	state scheduleState
	queue chan *Job
	// stateMu serializes writes of the schedule state file.
	stateMu sync.Mutex
	// cl is the shared state of cluster mode (nil: local mode).
	cl *cluster
}

// Job statuses.
const (
	StatusQueued    = "queued"
	StatusRunning   = "running"
	StatusSucceeded = "succeeded"
	StatusFailed    = "failed"
)

// Job is an export job as the API shows it and job.json stores it.
type Job struct {
	ID          string      `json:"id"`
	Kind        report.Kind `json:"kind"`
	Tenant      string      `json:"tenant"`
	AISystem    string      `json:"ai_system,omitempty"`
	From        string      `json:"from"`
	To          string      `json:"to"`
	Formats     []string    `json:"formats"`
	RequestedBy string      `json:"requested_by"`
	// Trigger is "api" or "schedule:<name>"; ScheduledFor is the cron time a scheduled run
	// stands for.
	Trigger      string            `json:"trigger"`
	ScheduledFor string            `json:"scheduled_for,omitempty"`
	Status       string            `json:"status"`
	Progress     report.Progress   `json:"progress"`
	Error        string            `json:"error,omitempty"`
	Created      string            `json:"created"`
	Started      string            `json:"started,omitempty"`
	Finished     string            `json:"finished,omitempty"`
	Files        []report.FileInfo `json:"files"`
	Bundle       string            `json:"bundle,omitempty"`
	BundleSHA256 string            `json:"bundle_sha256,omitempty"`
	Records      uint64            `json:"records"`
	// CheckpointSize is the log size the export's proofs are against.
	CheckpointSize uint64           `json:"checkpoint_size,omitempty"`
	Summary        *report.Summary  `json:"summary,omitempty"`
	Findings       []report.Finding `json:"findings,omitempty"`
	// RecordID is the id of the decision record that logs this export run.
	RecordID string `json:"record_id,omitempty"`
	// Node is the lineaged node that runs or ran the job, Attempts how often it was started
	// (cluster mode: a job whose node died is started again elsewhere).
	Node     string `json:"node,omitempty"`
	Attempts int    `json:"attempts,omitempty"`
	// ClearKeyIDs are the subject keys (docs/ERASURE.md) whose sealed fields the export's files
	// hold in clear (pseudonymous key ids, no personal data). FilesErased is when PurgeKeys
	// deleted the files because one of those keys was erased: the job stays listed, its files
	// answer 410 Gone.
	ClearKeyIDs []string `json:"clear_key_ids,omitempty"`
	FilesErased string   `json:"files_erased,omitempty"`
}

// NewService checks the configuration, loads the schedule and the jobs of earlier runs (cluster
// mode: creates or updates the buckets and the queue stream in NATS instead), and registers
// the metrics. Start the worker and scheduler with Run.
func NewService(c Config) (*Service, error) {
	if c.Log == nil || c.Signer == nil || c.Verifier == nil {
		return nil, errors.New("exporters: service needs the log, its signer and its verifier")
	}
	if c.Dir == "" {
		return nil, errors.New("exporters: service needs an export directory")
	}
	if c.Publish == nil {
		return nil, errors.New("exporters: service needs a Publish callback to record export runs")
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.QueueSize <= 0 {
		c.QueueSize = 16
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.after == nil {
		c.after = time.After
	}
	if err := os.MkdirAll(c.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("exporters: export dir: %w", err)
	}
	exp := c.Exporter
	exp.Log, exp.Signer, exp.Verifier, exp.Now = c.Log, c.Signer, c.Verifier, c.now
	if c.Keys != nil {
		exp.Keys = c.Keys
	}
	if c.Findings != nil {
		exp.Findings = c.Findings
	}
	s := &Service{c: c, exp: &exp, log: c.Logger, jobs: map[string]*Job{}, queue: make(chan *Job, c.QueueSize)}
	if c.Cluster != nil {
		cl, err := openCluster(*c.Cluster, c.QueueSize)
		if err != nil {
			return nil, err
		}
		s.cl = cl
	}
	if c.ScheduleFile != "" {
		entries, err := LoadSchedule(c.ScheduleFile)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			c, err := cron.Parse(e.Cron) // checked by LoadSchedule
			if err != nil {
				return nil, err
			}
			s.schedule = append(s.schedule, &scheduleEntry{ScheduleEntry: e, cron: c})
		}
	}
	if s.cl == nil {
		// In cluster mode the jobs and the schedule state are in KV: nothing to load.
		if err := s.loadJobs(); err != nil {
			return nil, err
		}
		if err := s.loadState(); err != nil {
			return nil, err
		}
	}
	s.m = newMetrics(c.Registerer)
	return s, nil
}

// Run runs queued exports and the schedule until ctx ends. A running export is cancelled then
// and marked failed; Run returns once it has stopped.
//
// In cluster mode, call Run on one node at a time (the writer-lease holder): it consumes the
// cluster's queue and runs the schedule. A running export is cancelled when ctx ends but not
// failed: the next node's Run restarts it.
func (s *Service) Run(ctx context.Context) error {
	if s.cl != nil {
		return s.runCluster(ctx)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); s.worker(ctx) }()
	if len(s.schedule) > 0 {
		s.log.Info("export schedule loaded", "entries", len(s.schedule), "file", s.c.ScheduleFile)
		s.runSchedule(ctx)
	} else {
		<-ctx.Done()
	}
	wg.Wait()
	return nil
}

// newJobID makes an export id: time-ordered, unique, and safe as a file name.
func (s *Service) newJobID() string {
	b := make([]byte, 4)
	rand.Read(b)
	return "exp-" + s.c.now().UTC().Format("20060102t150405z") + "-" + hex.EncodeToString(b)
}

// submit queues an export. It returns the job, or an error if the queue is full.
func (s *Service) submit(req report.Request, requestedBy, trigger string, scheduledFor time.Time) (*Job, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	if requestedBy == "" {
		requestedBy = "unknown"
	}
	j := &Job{
		ID: s.newJobID(), Kind: req.Kind, Tenant: req.Tenant, AISystem: req.AISystem,
		From: report.FormatTime(req.From), To: report.FormatTime(req.To), Formats: req.Formats,
		RequestedBy: requestedBy, Trigger: trigger, Status: StatusQueued, Created: report.FormatTime(s.c.now()), Files: []report.FileInfo{},
	}
	if !scheduledFor.IsZero() {
		j.ScheduledFor = report.FormatTime(scheduledFor)
	}
	if s.cl != nil {
		var err error
		if name, ok := strings.CutPrefix(trigger, "schedule:"); ok && !scheduledFor.IsZero() {
			err = s.submitScheduled(j, name, scheduledFor)
		} else {
			err = s.submitCluster(j)
		}
		if err != nil {
			return nil, err
		}
		s.log.Info("export queued", "export", j.ID, "kind", j.Kind, "tenant", j.Tenant, "ai_system", j.AISystem,
			"from", j.From, "to", j.To, "requested_by", requestedBy, "trigger", trigger)
		return j, nil
	}
	s.mu.Lock()
	s.jobs[j.ID] = j
	s.mu.Unlock()
	select {
	case s.queue <- j:
		s.m.queued.Inc()
		s.log.Info("export queued", "export", j.ID, "kind", j.Kind, "tenant", j.Tenant, "ai_system", j.AISystem,
			"from", j.From, "to", j.To, "requested_by", requestedBy, "trigger", trigger)
		return j, nil
	default:
		s.mu.Lock()
		delete(s.jobs, j.ID)
		s.mu.Unlock()
		return nil, errQueueFull
	}
}

var errQueueFull = errors.New("exporters: too many exports waiting; try again later")

func (s *Service) worker(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			// Jobs still queued will not run in this process: say so in their status.
			for {
				select {
				case j := <-s.queue:
					s.m.queued.Dec()
					s.finishJob(j, nil, errors.New("lineaged stopped before the export ran"))
				default:
					return
				}
			}
		case j := <-s.queue:
			s.m.queued.Dec()
			s.runJob(ctx, j)
		}
	}
}

// runJob runs one export, records it in the log and stores its outcome.
func (s *Service) runJob(ctx context.Context, j *Job) {
	start := s.c.now()
	s.mu.Lock()
	j.Status, j.Started = StatusRunning, report.FormatTime(start)
	req := report.Request{Kind: j.Kind, Tenant: j.Tenant, AISystem: j.AISystem, Formats: j.Formats}
	req.From, _ = time.Parse(time.RFC3339Nano, j.From)
	req.To, _ = time.Parse(time.RFC3339Nano, j.To)
	s.mu.Unlock()
	s.m.running.Set(1)
	defer s.m.running.Set(0)
	s.log.Info("export started", "export", j.ID, "kind", j.Kind, "tenant", j.Tenant)
	lastLog := time.Now()
	res, err := s.exp.Export(ctx, req, filepath.Join(s.c.Dir, j.ID), report.Run{
		ID: j.ID, RequestedBy: j.RequestedBy,
		Progress: func(p report.Progress) {
			s.mu.Lock()
			j.Progress = p
			s.mu.Unlock()
			s.m.scanned.Set(float64(p.Scanned))
			s.m.total.Set(float64(p.Total))
			if time.Since(lastLog) >= 10*time.Second {
				lastLog = time.Now()
				s.log.Info("export progress", "export", j.ID, "phase", p.Phase, "scanned", p.Scanned, "total", p.Total, "matched", p.Matched)
			}
		},
	})
	s.m.duration.WithLabelValues(string(j.Kind)).Observe(s.c.now().Sub(start).Seconds())
	s.finishJob(j, res, err)
}

// finishJob records the run in the log, then stores its outcome. A run that cannot be recorded
// fails: its files stay on disk for an operator but are not served.
func (s *Service) finishJob(j *Job, res *report.Result, runErr error) {
	s.mu.Lock()
	if res != nil {
		j.Files, j.Bundle, j.BundleSHA256 = res.Files, res.Bundle, res.BundleSHA256
		j.Records, j.CheckpointSize = res.Records, res.Checkpoint.Size
		sum := res.Summary
		j.Summary, j.Findings = &sum, res.Findings
		j.ClearKeyIDs = res.ClearKeyIDs
	}
	s.mu.Unlock()
	if res != nil && len(res.ClearKeyIDs) > 0 {
		// A subject erased while the export ran: its PurgeKeys may have looked before the job
		// named the key; the key store says it now.
		kctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		gone, err := s.erasedSince(kctx, j.Tenant, res.ClearKeyIDs)
		cancel()
		if err != nil && runErr == nil {
			runErr = err
		}
		if len(gone) > 0 || err != nil {
			if _, err := s.purgeLocal(j); err != nil {
				s.log.Error("export: files of an erased subject not deleted", "export", j.ID, "err", err)
			}
		}
	}
	s.mu.Lock()
	status, detail := StatusSucceeded, ""
	if runErr != nil {
		status, detail = StatusFailed, runErr.Error()
	}
	rec, err := exportRecord(j, status, detail, s.c.now())
	s.mu.Unlock()
	if err == nil {
		// The run's own context may be cancelled (shutdown); the record still gets a chance.
		pctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = s.c.Publish(pctx, rec)
		cancel()
	}
	s.mu.Lock()
	if err != nil {
		s.m.publishErrors.Inc()
		s.log.Error("export: recording the run in the log failed", "export", j.ID, "err", err)
		if runErr == nil {
			runErr = fmt.Errorf("the export could not be recorded in the log: %w", err)
		}
	} else {
		j.RecordID = rec.ID
	}
	status = StatusSucceeded
	if runErr != nil {
		status = StatusFailed
	}
	kind, records, scheduledFor := j.Kind, j.Records, j.ScheduledFor
	s.mu.Unlock()

	// Metrics and the schedule state first, the status last: whoever sees the job finished
	// (a poller of GET /v1/exports/{id}, a test) also sees its metrics.
	trigger, schedule := "api", ""
	if name, ok := strings.CutPrefix(j.Trigger, "schedule:"); ok {
		trigger, schedule = "schedule", name
	}
	s.m.jobs.WithLabelValues(string(kind), trigger, status).Inc()
	if status == StatusSucceeded {
		s.m.records.WithLabelValues(string(kind)).Add(float64(records))
	}
	if schedule != "" {
		s.m.scheduleRuns.WithLabelValues(schedule, status).Inc()
		if status == StatusSucceeded {
			s.m.scheduleLast.WithLabelValues(schedule).Set(float64(s.c.now().Unix()))
			if t, err := time.Parse(time.RFC3339Nano, scheduledFor); err == nil {
				s.markScheduled(schedule, t)
			}
		}
	}

	s.mu.Lock()
	j.Finished = report.FormatTime(s.c.now())
	if runErr != nil {
		j.Status, j.Error, j.Files = StatusFailed, runErr.Error(), []report.FileInfo{}
	} else {
		j.Status = StatusSucceeded
	}
	snapshot := *j
	s.mu.Unlock()
	if snapshot.Status == StatusSucceeded {
		s.log.Info("export succeeded", "export", j.ID, "records", snapshot.Records, "bundle", snapshot.Bundle,
			"sha256", snapshot.BundleSHA256, "checkpoint_size", snapshot.CheckpointSize, "findings", len(snapshot.Findings))
	} else {
		s.log.Error("export failed", "export", j.ID, "kind", j.Kind, "tenant", j.Tenant, "err", snapshot.Error)
	}
	if err := s.saveJob(&snapshot); err != nil {
		s.log.Error("export: saving job status", "export", j.ID, "err", err)
	}
}

// jobFile is where a job's status is kept.
func (s *Service) jobFile(id string) string { return filepath.Join(s.c.Dir, id, "job.json") }

// saveJob writes job.json atomically (temporary file, fsync, rename, fsync of the directory),
// so a crash leaves the old status or the new one, never half of one.
func (s *Service) saveJob(j *Job) error {
	b, err := json.MarshalIndent(j, "", " ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(s.c.Dir, j.ID), 0o750); err != nil {
		return err
	}
	return atomicfile.WriteFile(s.jobFile(j.ID), b, 0o640)
}

// maxJobFile bounds a job.json read at start-up.
const maxJobFile = 1 << 20

// loadJobs reads the job.json of earlier exports. A job that was queued or running when the
// process stopped did not finish: it is marked failed.
func (s *Service) loadJobs() error {
	ents, err := os.ReadDir(s.c.Dir)
	if err != nil {
		return fmt.Errorf("exporters: export dir: %w", err)
	}
	for _, e := range ents {
		if !e.IsDir() || !verify.ValidExportID(e.Name()) {
			continue
		}
		st, err := os.Stat(s.jobFile(e.Name()))
		if err != nil || st.Size() > maxJobFile {
			continue
		}
		b, err := os.ReadFile(s.jobFile(e.Name()))
		if err != nil {
			continue
		}
		var j Job
		if err := json.Unmarshal(b, &j); err != nil || j.ID != e.Name() {
			s.log.Warn("export: unreadable job.json ignored", "dir", e.Name(), "err", err)
			continue
		}
		if j.Status == StatusQueued || j.Status == StatusRunning {
			j.Status, j.Error, j.Files = StatusFailed, "interrupted: lineaged stopped while the export ran", []report.FileInfo{}
		}
		s.jobs[j.ID] = &j
	}
	return nil
}

// visibleJobs returns copies of the jobs a principal may see, newest first.
func (s *Service) visibleJobs(canSee func(string) bool, tenant string, limit int) []Job {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Job, 0)
	for _, j := range s.jobs {
		if canSee(j.Tenant) && (tenant == "" || j.Tenant == tenant) {
			out = append(out, *j)
		}
	}
	sortJobs(out)
	if len(out) > limit {
		out = out[:limit]
	}
	return out
}

// sortJobs sorts jobs newest first.
func sortJobs(out []Job) {
	created := func(j Job) time.Time { t, _ := time.Parse(time.RFC3339Nano, j.Created); return t }
	slices.SortFunc(out, func(a, b Job) int {
		return cmp.Or(created(b).Compare(created(a)), strings.Compare(b.ID, a.ID))
	})
}

// job returns a copy of a job, if it exists.
func (s *Service) job(id string) (Job, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.jobs[id]
	if !ok {
		return Job{}, false
	}
	return *j, true
}
