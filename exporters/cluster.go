package exporters

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/exporters/report"
	"github.com/lineage-audit/lineage/verify"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Cluster mode: several lineaged nodes share one export service through NATS JetStream.
//
//   - Jobs live in the KV bucket JobsBucket (key: the job id, value: the job's JSON, a storedJob).
//   - Submitting (POST /v1/exports on any node) creates the job there as queued, then publishes
//     its id on the work-queue stream QueueStream (Nats-Msg-Id: the job id).
//   - Run, called only on the writer-lease holder, consumes that stream through one durable pull
//     consumer, one job at a time: it claims the job with a compare-and-set on its KV revision
//     (running, Node, Attempts+1), runs it in a scratch directory while heartbeating the message
//     (InProgress) and the job's progress (compare-and-set again: a node whose claim was taken
//     over stops), uploads the files to the object store FilesBucket as <id>/<name>, stores the
//     outcome and its decision record in KV (storedJob.Pending), publishes the record, stores
//     the final status, and only then acks.
//   - A run that does not finish (Run's context ends, the node dies) is neither failed nor acked:
//     the message is redelivered to the next lease holder (at once after a Nak, within AckWait of
//     the last heartbeat after a crash), which restarts the job; Attempts counts the starts and
//     MaxAttempts bounds them. A job found succeeded or failed when delivered is acked without
//     running; one found with a pending outcome has its (byte-identical) record published again
//     and is finalized without running.
//   - The schedule state (each entry's last successful cron time) is in the KV bucket
//     ScheduleBucket; a scheduled run's job id is derived from its entry and cron time, so a
//     run fired twice across a takeover is one job.
//   - GET list/get/download read KV and the object store, so every node serves every job.

// Names of the NATS resources of cluster mode.
const (
	JobsBucket     = "LINEAGE_EXPORT_JOBS"
	ScheduleBucket = "LINEAGE_EXPORT_SCHEDULE"
	FilesBucket    = "LINEAGE_EXPORTS"
	QueueStream    = "LINEAGE_EXPORT_QUEUE"
	QueueSubject   = "lineage.exports.queue"
	// QueueConsumer is the durable consumer of QueueStream that Run pulls from.
	QueueConsumer = "lineage-exporter"
)

// Defaults of Cluster.
const (
	DefaultAckWait     = 30 * time.Second
	DefaultMaxAttempts = 3
)

// Cluster switches a Service to cluster mode (see above). JS is required, Node names this node
// in the jobs it runs.
type Cluster struct {
	JS jetstream.JetStream
	// Replicas of the buckets and the queue stream (default 1; 3 on a 3-node NATS cluster).
	Replicas int
	Node     string
	// AckWait is how long a running job's node may miss heartbeats before the job is delivered
	// to the next lease holder (default DefaultAckWait).
	AckWait time.Duration
	// MaxAttempts bounds how often one job is started (default DefaultMaxAttempts); a job
	// interrupted that often is failed.
	MaxAttempts int
}

// storedJob is a job as the jobs bucket stores it: the Job the API shows and, between the
// decision on a run's outcome and its final status, that outcome with its decision record.
type storedJob struct {
	Job
	Pending *pendingOutcome `json:"pending,omitempty"`
}

// pendingOutcome is a run's decided outcome, kept so that whoever finishes the job (this node
// or, after a crash, the next lease holder) publishes byte for byte the same record.
type pendingOutcome struct {
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
	// Record is the canonical decision record of the run (empty if it could not be built).
	Record json.RawMessage `json:"record,omitempty"`
	// RecordError is why there is no record.
	RecordError string `json:"record_error,omitempty"`
}

type cluster struct {
	Cluster
	jobs  jetstream.KeyValue
	sched jetstream.KeyValue
	files jetstream.ObjectStore
}

// errUnavailable marks failures of the cluster's shared state (NATS): the API answers 503.
var errUnavailable = errors.New("exporters: export state unavailable")

// clusterTimeout bounds one operation on the shared state made for an API request.
const clusterTimeout = 10 * time.Second

// openCluster creates (or updates) the buckets and the queue stream. Every node does it at
// start; the configurations are the same, so the calls are idempotent.
func openCluster(c Cluster, queueSize int) (*cluster, error) {
	if c.JS == nil {
		return nil, errors.New("exporters: cluster mode needs a JetStream context")
	}
	if c.Node == "" {
		return nil, errors.New("exporters: cluster mode needs the node's name")
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.AckWait <= 0 {
		c.AckWait = DefaultAckWait
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := &cluster{Cluster: c}
	var err error
	if cl.jobs, err = c.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: JobsBucket, Description: "Lineage export jobs (key: export id).", History: 1,
		Storage: jetstream.FileStorage, Replicas: c.Replicas,
	}); err != nil {
		return nil, fmt.Errorf("exporters: KV bucket %s: %w", JobsBucket, err)
	}
	if cl.sched, err = c.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: ScheduleBucket, Description: "Lineage export schedule: each entry's last successful cron time.", History: 1,
		Storage: jetstream.FileStorage, Replicas: c.Replicas,
	}); err != nil {
		return nil, fmt.Errorf("exporters: KV bucket %s: %w", ScheduleBucket, err)
	}
	if cl.files, err = c.JS.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket: FilesBucket, Description: "Lineage export files: <export id>/<file name>.",
		Storage: jetstream.FileStorage, Replicas: c.Replicas,
	}); err != nil {
		return nil, fmt.Errorf("exporters: object store %s: %w", FilesBucket, err)
	}
	if _, err = c.JS.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: QueueStream, Description: "Lineage export jobs waiting to run (work queue; data: the export id).",
		Subjects: []string{QueueSubject}, Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage,
		Replicas: c.Replicas, Duplicates: 2 * time.Minute,
		// Queued plus the one running: a full queue refuses new exports (503), cluster-wide.
		MaxMsgs: int64(queueSize) + 1, Discard: jetstream.DiscardNew, MaxMsgSize: 1 << 10,
	}); err != nil {
		return nil, fmt.Errorf("exporters: stream %s: %w", QueueStream, err)
	}
	return cl, nil
}

// scheduledJobID is the id of the run of schedule entry name for cron time at: the same on
// every node, so one cron time is one job whoever fires it.
func scheduledJobID(name string, at time.Time) string {
	return "exp-" + at.UTC().Format("20060102t150405z") + "-" + name
}

// submitCluster stores a new job as queued and queues it.
func (s *Service) submitCluster(j *Job) error {
	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	b, err := json.Marshal(storedJob{Job: *j})
	if err != nil {
		return err
	}
	if _, err := s.cl.jobs.Create(ctx, j.ID, b); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return fmt.Errorf("exporters: export %s exists already: %w", j.ID, errJobExists)
		}
		return fmt.Errorf("%w: storing export %s: %w", errUnavailable, j.ID, err)
	}
	m := nats.NewMsg(QueueSubject)
	m.Data = []byte(j.ID)
	m.Header.Set(jetstream.MsgIDHeader, j.ID)
	_, err = s.cl.JS.PublishMsg(ctx, m)
	if err != nil && !isQueueFull(err) && ctx.Err() == nil {
		// One retry: the message id makes a retry of a publish that did land a no-op.
		_, err = s.cl.JS.PublishMsg(ctx, m)
	}
	if err == nil {
		return nil
	}
	// Not queued: the job will not run. Remove it (a message that did land after all finds no
	// job and is dropped by Run).
	dctx, dcancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer dcancel()
	if derr := s.cl.jobs.Delete(dctx, j.ID); derr != nil {
		s.log.Error("export: removing an export that could not be queued", "export", j.ID, "err", derr)
	}
	if isQueueFull(err) {
		return errQueueFull
	}
	return fmt.Errorf("%w: queueing export %s: %w", errUnavailable, j.ID, err)
}

var errJobExists = errors.New("export exists")

// maxScheduledRuns bounds the jobs of one schedule entry's cron time (the first run and the
// retries after failures).
const maxScheduledRuns = 5

// submitScheduled submits the run of schedule entry name for cron time at under an id derived
// from both (scheduledJobID), so that one cron time fired by two nodes (one that lost the
// lease, its successor making the run up) is one job. After a failed run, a later fire (the
// next lease holder's make-up) retries under <id>-2, <id>-3, … as local mode retries a failed
// run at the next start. errJobExists: this cron time's run is queued, running or done.
func (s *Service) submitScheduled(j *Job, name string, at time.Time) error {
	base := scheduledJobID(name, at)
	for n := 1; n <= maxScheduledRuns; n++ {
		j.ID = base
		if n > 1 {
			j.ID = fmt.Sprintf("%s-%d", base, n)
		}
		err := s.submitCluster(j)
		if !errors.Is(err, errJobExists) {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
		prev, _, ok, gerr := s.getStored(ctx, j.ID)
		cancel()
		if gerr != nil {
			return gerr
		}
		if ok && prev.Status != StatusFailed {
			return err
		}
	}
	return fmt.Errorf("exporters: schedule %s: %d runs for cron time %s failed; not retried again", name, maxScheduledRuns, report.FormatTime(at))
}

// isQueueFull tells whether a publish failed because the queue stream is at its MaxMsgs.
func isQueueFull(err error) bool {
	var apiErr *jetstream.APIError
	return err != nil && (strings.Contains(err.Error(), "maximum messages exceeded") ||
		errors.As(err, &apiErr) && strings.Contains(apiErr.Description, "maximum messages"))
}

// getStored reads a job from the jobs bucket (ok false: no such job).
func (s *Service) getStored(ctx context.Context, id string) (storedJob, uint64, bool, error) {
	e, err := s.cl.jobs.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
		// An invalid key (a valid export id may end in a dot; no job id does) names no job.
		return storedJob{}, 0, false, nil
	}
	if err != nil {
		return storedJob{}, 0, false, fmt.Errorf("%w: reading export %s: %w", errUnavailable, id, err)
	}
	var sj storedJob
	if err := json.Unmarshal(e.Value(), &sj); err != nil || sj.ID != id {
		return storedJob{}, 0, false, fmt.Errorf("exporters: export %s: unreadable job in %s: %v", id, JobsBucket, err)
	}
	return sj, e.Revision(), true, nil
}

// clusterJob is job for the API in cluster mode.
func (s *Service) clusterJob(ctx context.Context, id string) (Job, bool, error) {
	if !verify.ValidExportID(id) {
		return Job{}, false, nil
	}
	sj, _, ok, err := s.getStored(ctx, id)
	return sj.Job, ok, err
}

// clusterVisibleJobs is visibleJobs in cluster mode: it reads every job's latest value from
// the jobs bucket (one ordered consumer, not one request per job).
func (s *Service) clusterVisibleJobs(ctx context.Context, canSee func(string) bool, tenant string, limit int) ([]Job, error) {
	w, err := s.cl.jobs.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("%w: listing exports: %w", errUnavailable, err)
	}
	defer w.Stop()
	out := make([]Job, 0)
	for {
		var e jetstream.KeyValueEntry
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: listing exports: %w", errUnavailable, ctx.Err())
		case e = <-w.Updates():
		}
		if e == nil {
			break // the initial values are all delivered
		}
		var sj storedJob
		if err := json.Unmarshal(e.Value(), &sj); err != nil || sj.ID != e.Key() {
			s.log.Warn("export: unreadable job in the jobs bucket ignored", "key", e.Key(), "err", err)
			continue
		}
		if canSee(sj.Tenant) && (tenant == "" || sj.Tenant == tenant) {
			out = append(out, sj.Job)
		}
	}
	sortJobs(out)
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// openFile opens a file of an export in the object store.
func (s *Service) openFile(ctx context.Context, id, name string) (jetstream.ObjectResult, error) {
	r, err := s.cl.files.Get(ctx, id+"/"+name)
	if err != nil {
		return nil, fmt.Errorf("exporters: export %s: file %s: %w", id, name, err)
	}
	return r, nil
}

// scratchDir is where cluster mode writes exports before uploading them; Run empties it.
func (s *Service) scratchDir() string { return filepath.Join(s.c.Dir, "cluster-scratch") }

// runCluster is Run in cluster mode.
func (s *Service) runCluster(ctx context.Context) error {
	if err := os.RemoveAll(s.scratchDir()); err != nil {
		return fmt.Errorf("exporters: scratch dir: %w", err)
	}
	if err := os.MkdirAll(s.scratchDir(), 0o750); err != nil {
		return fmt.Errorf("exporters: scratch dir: %w", err)
	}
	cons := s.queueConsumer(ctx)
	if cons == nil {
		return nil // ctx ended
	}
	s.log.Info("export worker running (cluster mode)", "node", s.cl.Node, "stream", QueueStream)
	var wg sync.WaitGroup
	if len(s.schedule) > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.loadStateKV(ctx); err != nil {
				// Without the state a missed run cannot be told from a new entry; the schedule
				// does not start rather than guess (fail closed). Exports on demand still run.
				s.log.Error("export schedule not started: its state is unreadable", "err", err)
				return
			}
			s.log.Info("export schedule loaded", "entries", len(s.schedule), "file", s.c.ScheduleFile)
			s.runSchedule(ctx)
		}()
	}
	defer wg.Wait()
	for ctx.Err() == nil {
		fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		msg, err := cons.Next(jetstream.FetchContext(fctx))
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				continue
			}
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, jetstream.ErrConsumerDeleted) {
				s.log.Warn("export queue: fetch failed", "err", err)
				select {
				case <-ctx.Done():
					continue
				case <-time.After(time.Second):
				}
			}
			// A pull from a consumer that no longer exists may just time out or fail: check it.
			if !errors.Is(err, jetstream.ErrConsumerDeleted) {
				ictx, cancel := context.WithTimeout(ctx, clusterTimeout)
				_, err = cons.Info(ictx)
				cancel()
			}
			if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrConsumerDeleted) {
				s.log.Warn("export queue consumer gone; creating it again", "err", err)
				if cons = s.queueConsumer(ctx); cons == nil {
					return nil
				}
			} else if err != nil && ctx.Err() == nil {
				s.log.Warn("export queue consumer unreadable", "err", err)
			}
			continue
		}
		s.handle(ctx, msg)
	}
	return nil
}

// queueConsumer creates (or updates) the durable consumer of the queue, retrying until it
// succeeds or ctx ends (nil).
func (s *Service) queueConsumer(ctx context.Context) jetstream.Consumer {
	for backoff := time.Second; ; backoff = min(2*backoff, 30*time.Second) {
		cctx, cancel := context.WithTimeout(ctx, clusterTimeout)
		cons, err := s.cl.JS.CreateOrUpdateConsumer(cctx, QueueStream, jetstream.ConsumerConfig{
			Durable: QueueConsumer, Description: "lineaged's export worker (the writer-lease holder pulls).",
			AckPolicy: jetstream.AckExplicitPolicy, AckWait: s.cl.AckWait, MaxAckPending: 1, MaxDeliver: -1,
			DeliverPolicy: jetstream.DeliverAllPolicy,
		})
		cancel()
		if err == nil {
			return cons
		}
		if ctx.Err() != nil {
			return nil
		}
		s.log.Error("export queue consumer not available; retrying", "stream", QueueStream, "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
	}
}

// nak hands a message back for redelivery (after delay), best effort.
func (s *Service) nak(msg jetstream.Msg, id string, delay time.Duration) {
	var err error
	if delay > 0 {
		err = msg.NakWithDelay(delay)
	} else {
		err = msg.Nak()
	}
	if err != nil {
		s.log.Warn("export queue: nak failed; the job is redelivered after the ack wait", "export", id, "err", err)
	}
}

// claim is a job this node works on, with the KV revision it last wrote: every write is a
// compare-and-set on it, so a node whose job was taken over writes nothing more.
type claim struct {
	s   *Service
	mu  sync.Mutex
	rev uint64
	sj  storedJob
	// progress is the latest progress, not yet written.
	progress *report.Progress
}

var errTakenOver = errors.New("exporters: the job was changed by another node")

// update applies fn to the job and writes it (compare-and-set).
func (c *claim) update(ctx context.Context, fn func(*storedJob)) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	next := c.sj
	fn(&next)
	b, err := json.Marshal(next)
	if err != nil {
		return err
	}
	rev, err := c.s.cl.jobs.Update(ctx, next.ID, b, c.rev)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("%w (export %s)", errTakenOver, next.ID)
	}
	if err != nil {
		return fmt.Errorf("exporters: storing export %s: %w", next.ID, err)
	}
	c.rev, c.sj = rev, next
	return nil
}

func (c *claim) snapshot() storedJob {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sj
}

func (c *claim) setProgress(p report.Progress) {
	c.mu.Lock()
	c.progress = &p
	c.mu.Unlock()
}

// flushProgress writes the latest progress, if any.
func (c *claim) flushProgress(ctx context.Context) error {
	c.mu.Lock()
	p := c.progress
	c.progress = nil
	c.mu.Unlock()
	if p == nil {
		return nil
	}
	return c.update(ctx, func(sj *storedJob) { sj.Progress = *p })
}

// handle processes one message of the queue: it runs, resumes, refuses or skips its job, and
// acks the message unless the job must be delivered again.
func (s *Service) handle(ctx context.Context, msg jetstream.Msg) {
	id := string(msg.Data())
	if md, err := msg.Metadata(); err == nil {
		s.m.queued.Set(float64(md.NumPending))
	}
	if !verify.ValidExportID(id) {
		s.log.Error("export queue: message without a valid export id dropped", "data", report.Clip(id))
		if err := msg.Term(); err != nil {
			s.log.Warn("export queue: term failed", "err", err)
		}
		return
	}
	gctx, cancel := context.WithTimeout(ctx, clusterTimeout)
	sj, rev, ok, err := s.getStored(gctx, id)
	cancel()
	switch {
	case err != nil && errors.Is(err, errUnavailable):
		if ctx.Err() == nil {
			s.log.Error("export: job state unreadable; retrying later", "export", id, "err", err)
			s.nak(msg, id, 5*time.Second)
		}
		return
	case err != nil:
		// A value that does not decode cannot be run; redelivering it would not help.
		s.log.Error("export: job dropped", "export", id, "err", err)
		s.ack(msg, id)
		return
	case !ok:
		s.log.Warn("export queue: no such export (never stored or removed); message dropped", "export", id)
		s.ack(msg, id)
		return
	case sj.Status == StatusSucceeded || sj.Status == StatusFailed:
		s.log.Info("export delivered again after it finished; not run again", "export", id, "status", sj.Status)
		s.ack(msg, id)
		return
	}
	c := &claim{s: s, rev: rev, sj: sj}
	if sj.Pending != nil {
		// The previous node decided the outcome and may or may not have published the record:
		// publish the same record (the log keeps one) and finish the job.
		s.log.Warn("export outcome decided on another run but not finished; finishing it", "export", id, "node", sj.Node, "status", sj.Pending.Status)
		s.finishCluster(ctx, msg, c)
		return
	}
	if sj.Attempts >= s.cl.MaxAttempts {
		err := fmt.Errorf("export interrupted %d times (last on node %s); not restarted again", sj.Attempts, sj.Node)
		if err := s.decide(ctx, c, nil, err); err != nil {
			s.abandon(ctx, msg, id, err)
			return
		}
		s.finishCluster(ctx, msg, c)
		return
	}
	start := s.c.now()
	if err := c.update(ctx, func(sj *storedJob) {
		sj.Status, sj.Node, sj.Attempts, sj.Started = StatusRunning, s.cl.Node, sj.Attempts+1, report.FormatTime(start)
		sj.Error, sj.Progress, sj.Files = "", report.Progress{}, []report.FileInfo{}
	}); err != nil {
		s.abandon(ctx, msg, id, err)
		return
	}
	if c.sj.Attempts > 1 {
		s.m.restarts.Inc()
		s.log.Warn("export restarted after an interrupted run", "export", id, "attempt", c.sj.Attempts, "previous_node", sj.Node)
	}
	res, runErr, interrupted := s.runClaimed(ctx, msg, c)
	if interrupted != nil {
		s.abandon(ctx, msg, id, interrupted)
		return
	}
	if runErr == nil && s.c.crash != nil && s.c.crash(crashAfterRun, id) {
		return
	}
	if err := s.decide(ctx, c, res, runErr); err != nil {
		s.abandon(ctx, msg, id, err)
		return
	}
	s.finishCluster(ctx, msg, c)
}

// abandon leaves a job unfinished: it is not failed, and its message goes back to the queue
// for the next delivery (at once if the message can still be nak'd, else after AckWait).
func (s *Service) abandon(ctx context.Context, msg jetstream.Msg, id string, why error) {
	os.RemoveAll(filepath.Join(s.scratchDir(), id))
	if errors.Is(why, errTakenOver) {
		// Another node owns the job now; its delivery is not ours to touch.
		s.log.Warn("export abandoned: another node took it over", "export", id, "err", why)
		return
	}
	s.log.Warn("export interrupted; it will be delivered again", "export", id, "err", why)
	delay := time.Duration(0)
	if ctx.Err() == nil {
		delay = 5 * time.Second // a failure of the shared state, not a shutdown: pause first
	}
	s.nak(msg, id, delay)
}

func (s *Service) ack(msg jetstream.Msg, id string) {
	if err := msg.Ack(); err != nil {
		s.log.Warn("export queue: ack failed; the message is delivered again and skipped then", "export", id, "err", err)
	}
}

// Crash points of the test hook Config.crash: the handler stops there as if the process died.
const (
	crashAfterRun       = "after-run"
	crashAfterPublished = "after-published"
)

// runClaimed runs a claimed job in the scratch directory and uploads its files. interrupted is
// set when the run did not end on its own (Run's context ended, the job was taken over, the
// shared state failed): the job is then neither failed nor finished.
func (s *Service) runClaimed(ctx context.Context, msg jetstream.Msg, c *claim) (res *report.Result, runErr, interrupted error) {
	j := c.snapshot().Job
	dir := filepath.Join(s.scratchDir(), j.ID)
	if err := os.RemoveAll(dir); err != nil {
		return nil, nil, fmt.Errorf("exporters: scratch dir: %w", err)
	}
	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	var takenOver error
	var hbMu sync.Mutex
	hbDone := make(chan struct{})
	go func() {
		defer close(hbDone)
		t := time.NewTicker(min(s.cl.AckWait/3, 2*time.Second))
		defer t.Stop()
		for {
			select {
			case <-runCtx.Done():
				return
			case <-t.C:
			}
			if err := msg.InProgress(); err != nil {
				s.log.Warn("export queue: heartbeat failed", "export", j.ID, "err", err)
			}
			pctx, cancel := context.WithTimeout(runCtx, clusterTimeout)
			err := c.flushProgress(pctx)
			cancel()
			if errors.Is(err, errTakenOver) {
				hbMu.Lock()
				takenOver = err
				hbMu.Unlock()
				cancelRun()
				return
			}
			if err != nil && runCtx.Err() == nil {
				s.log.Warn("export progress not stored", "export", j.ID, "err", err)
			}
		}
	}()
	stopHeartbeat := func() error {
		cancelRun()
		<-hbDone
		hbMu.Lock()
		defer hbMu.Unlock()
		return takenOver
	}

	req := report.Request{Kind: j.Kind, Tenant: j.Tenant, AISystem: j.AISystem, Formats: j.Formats}
	req.From, _ = time.Parse(time.RFC3339Nano, j.From)
	req.To, _ = time.Parse(time.RFC3339Nano, j.To)
	start := s.c.now()
	s.m.running.Set(1)
	defer s.m.running.Set(0)
	s.log.Info("export started", "export", j.ID, "kind", j.Kind, "tenant", j.Tenant, "node", s.cl.Node, "attempt", c.sj.Attempts)
	if s.c.beforeExport != nil {
		runErr = s.c.beforeExport(runCtx, j)
	}
	if runErr == nil {
		lastLog := time.Now()
		res, runErr = s.exp.Export(runCtx, req, dir, report.Run{
			ID: j.ID, RequestedBy: j.RequestedBy,
			Progress: func(p report.Progress) {
				c.setProgress(p)
				s.m.scanned.Set(float64(p.Scanned))
				s.m.total.Set(float64(p.Total))
				if time.Since(lastLog) >= 10*time.Second {
					lastLog = time.Now()
					s.log.Info("export progress", "export", j.ID, "phase", p.Phase, "scanned", p.Scanned, "total", p.Total, "matched", p.Matched)
				}
			},
		})
	}
	if runErr == nil {
		// The last progress (the whole scan) goes with the outcome, not in a write of its own.
		c.mu.Lock()
		if c.progress != nil {
			c.sj.Progress, c.progress = *c.progress, nil
		}
		c.mu.Unlock()
		runErr = s.upload(runCtx, j.ID, dir, res)
		if runErr != nil && runCtx.Err() == nil {
			// The run worked; the shared store did not. That is not the export's fault: try again.
			stopHeartbeat()
			return nil, nil, runErr
		}
	}
	if err := stopHeartbeat(); err != nil {
		return nil, nil, err
	}
	if ctx.Err() != nil {
		return nil, nil, fmt.Errorf("exporters: export %s interrupted on node %s: %w", j.ID, s.cl.Node, ctx.Err())
	}
	s.m.duration.WithLabelValues(string(j.Kind)).Observe(s.c.now().Sub(start).Seconds())
	os.RemoveAll(dir)
	return res, runErr, nil
}

// upload stores the export's files in the object store, as <id>/<name>.
func (s *Service) upload(ctx context.Context, id, dir string, res *report.Result) error {
	for _, f := range res.Files {
		if err := s.uploadFile(ctx, id, filepath.Join(dir, f.Name), f.Name); err != nil {
			return err
		}
	}
	return nil
}

func (s *Service) uploadFile(ctx context.Context, id, path, name string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("exporters: export %s: %w", id, err)
	}
	defer f.Close()
	if _, err := s.cl.files.Put(ctx, jetstream.ObjectMeta{Name: id + "/" + name}, f); err != nil {
		return fmt.Errorf("exporters: export %s: uploading %s to %s: %w", id, name, FilesBucket, err)
	}
	return nil
}

// decide stores the run's outcome and its decision record in the job (Pending), before the
// record is published: from then on every finisher publishes exactly this record.
func (s *Service) decide(ctx context.Context, c *claim, res *report.Result, runErr error) error {
	j := c.snapshot().Job
	if res != nil {
		j.Files, j.Bundle, j.BundleSHA256 = res.Files, res.Bundle, res.BundleSHA256
		j.Records, j.CheckpointSize = res.Records, res.Checkpoint.Size
		sum := res.Summary
		j.Summary, j.Findings = &sum, res.Findings
		j.ClearKeyIDs = res.ClearKeyIDs
	}
	p := &pendingOutcome{Status: StatusSucceeded}
	if runErr != nil {
		p.Status, p.Error = StatusFailed, runErr.Error()
	}
	rec, err := exportRecord(&j, p.Status, p.Error, s.c.now())
	if err == nil {
		p.Record, err = rec.Canonical()
	}
	if err != nil {
		p.RecordError = err.Error()
	}
	// The outcome is stored even if the run's context ended just now: it is decided.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), clusterTimeout)
	defer cancel()
	return c.update(wctx, func(sj *storedJob) { sj.Job, sj.Pending = j, p })
}

// finishCluster publishes the pending record, stores the final status and acks the message.
func (s *Service) finishCluster(ctx context.Context, msg jetstream.Msg, c *claim) {
	sj := c.snapshot()
	p := sj.Pending
	status, runErr := p.Status, error(nil)
	if p.Error != "" {
		runErr = errors.New(p.Error)
	}
	var recordID string
	err := errors.New(p.RecordError)
	if len(p.Record) > 0 {
		var rec *lineage.Record
		if rec, err = lineage.DecodeRecord(p.Record); err == nil {
			// The run's own context may be cancelled (shutdown); the record still gets a chance.
			pctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err = s.c.Publish(pctx, *rec)
			cancel()
			recordID = rec.ID
		}
	}
	if err != nil {
		s.m.publishErrors.Inc()
		s.log.Error("export: recording the run in the log failed", "export", sj.ID, "err", err)
		if runErr == nil {
			runErr = fmt.Errorf("the export could not be recorded in the log: %w", err)
		}
		recordID = ""
	}
	if s.c.crash != nil && s.c.crash(crashAfterPublished, sj.ID) {
		return
	}
	status = StatusSucceeded
	if runErr != nil {
		status = StatusFailed
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), clusterTimeout)
	defer cancel()
	err = c.update(wctx, func(sj *storedJob) {
		sj.Pending, sj.Finished, sj.RecordID = nil, report.FormatTime(s.c.now()), recordID
		sj.Status = status
		if runErr != nil {
			sj.Error, sj.Files = runErr.Error(), []report.FileInfo{}
		}
	})
	if err != nil {
		// The outcome stays pending: the next delivery publishes the same record and finishes.
		s.abandon(ctx, msg, sj.ID, err)
		return
	}
	if status != StatusSucceeded {
		s.deleteFiles(wctx, sj.ID, sj.Files)
	} else if len(sj.ClearKeyIDs) > 0 {
		// A subject erased while the export ran (see PurgeKeys): the key store says it now. A
		// key store that cannot answer is not taken for "not erased": the files go.
		gone, err := s.erasedSince(wctx, sj.Tenant, sj.ClearKeyIDs)
		if err != nil {
			s.log.Error("export: subject keys not checked; deleting the files", "export", sj.ID, "err", err)
		}
		if len(gone) > 0 || err != nil {
			if _, err := s.purgeClusterJob(wctx, sj.ID); err != nil {
				s.log.Error("export: files of an erased subject not deleted", "export", sj.ID, "err", err)
			}
		}
	}
	s.countFinished(sj.Job, status)
	final := c.snapshot()
	if status == StatusSucceeded {
		s.log.Info("export succeeded", "export", sj.ID, "records", final.Records, "bundle", final.Bundle,
			"sha256", final.BundleSHA256, "checkpoint_size", final.CheckpointSize, "findings", len(final.Findings),
			"node", s.cl.Node, "attempts", final.Attempts)
	} else {
		s.log.Error("export failed", "export", sj.ID, "kind", sj.Kind, "tenant", sj.Tenant, "err", final.Error, "attempts", final.Attempts)
	}
	s.ack(msg, sj.ID)
}

// deleteFiles removes the uploaded files of an export that is not served (best effort).
func (s *Service) deleteFiles(ctx context.Context, id string, files []report.FileInfo) {
	for _, f := range files {
		if err := s.cl.files.Delete(ctx, id+"/"+f.Name); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
			s.log.Warn("export: file of a failed export not removed", "export", id, "file", f.Name, "err", err)
		}
	}
}

// countFinished updates the metrics and the schedule state for a finished job.
func (s *Service) countFinished(j Job, status string) {
	trigger, schedule := "api", ""
	if name, ok := strings.CutPrefix(j.Trigger, "schedule:"); ok {
		trigger, schedule = "schedule", name
	}
	s.m.jobs.WithLabelValues(string(j.Kind), trigger, status).Inc()
	if status == StatusSucceeded {
		s.m.records.WithLabelValues(string(j.Kind)).Add(float64(j.Records))
	}
	if schedule != "" {
		s.m.scheduleRuns.WithLabelValues(schedule, status).Inc()
		if status == StatusSucceeded {
			s.m.scheduleLast.WithLabelValues(schedule).Set(float64(s.c.now().Unix()))
			if t, err := time.Parse(time.RFC3339Nano, j.ScheduledFor); err == nil {
				s.markScheduled(schedule, t)
			}
		}
	}
}

// loadStateKV reads the schedule state from the schedule bucket.
func (s *Service) loadStateKV(ctx context.Context) error {
	state := scheduleState{}
	for _, e := range s.schedule {
		t, _, err := s.stateKV(ctx, e.Name)
		if err != nil {
			return err
		}
		if !t.IsZero() {
			state[e.Name] = t
		}
	}
	s.mu.Lock()
	s.state = state
	s.mu.Unlock()
	return nil
}

// stateKV reads one entry's last successful cron time (zero: none) and its revision.
func (s *Service) stateKV(ctx context.Context, name string) (time.Time, uint64, error) {
	gctx, cancel := context.WithTimeout(ctx, clusterTimeout)
	defer cancel()
	e, err := s.cl.sched.Get(gctx, name)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return time.Time{}, 0, nil
	}
	if err != nil {
		return time.Time{}, 0, fmt.Errorf("exporters: schedule state %s: %w", name, err)
	}
	t, err := time.Parse(time.RFC3339Nano, string(e.Value()))
	if err != nil {
		return time.Time{}, 0, fmt.Errorf("exporters: schedule state %s: %w", name, err)
	}
	return t, e.Revision(), nil
}

// saveStateKV writes the schedule state to the schedule bucket. Each entry only moves forward
// (compare-and-set): a slower node cannot take it back.
func (s *Service) saveStateKV() {
	s.mu.Lock()
	state := make(scheduleState, len(s.state))
	for k, v := range s.state {
		state[k] = v
	}
	s.mu.Unlock()
	names := make([]string, 0, len(state))
	for k := range state {
		names = append(names, k)
	}
	slices.Sort(names)
	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	for _, name := range names {
		if err := s.advanceStateKV(ctx, name, state[name]); err != nil {
			s.log.Error("export schedule state not saved", "schedule", name, "err", err)
		}
	}
}

func (s *Service) advanceStateKV(ctx context.Context, name string, t time.Time) error {
	for range 5 {
		cur, rev, err := s.stateKV(ctx, name)
		if err != nil {
			return err
		}
		if !t.After(cur) {
			return nil
		}
		v := []byte(t.UTC().Format(time.RFC3339Nano))
		if rev == 0 {
			_, err = s.cl.sched.Create(ctx, name, v)
		} else {
			_, err = s.cl.sched.Update(ctx, name, v, rev)
		}
		if err == nil {
			return nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return err
		}
	}
	return errors.New("concurrent updates; gave up")
}
