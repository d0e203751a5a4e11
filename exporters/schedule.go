package exporters

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/lineage-audit/lineage/exporters/cron"
	"github.com/lineage-audit/lineage/exporters/report"
	"github.com/lineage-audit/lineage/internal/atomicfile"
)

// The schedule file is JSON (unknown fields refused):
//
//	{"exports": [
//	  {"name": "fannie-mae-monthly", "cron": "0 2 1 * *", "kind": "fannie-mae",
//	   "tenant": "acme-bank", "ai_system": "acme-bank/credit-copilot", "period": "previous-month"},
//	  {"name": "eu-ai-act-weekly", "cron": "0 3 * * MON", "kind": "eu-ai-act",
//	   "tenant": "acme-bank", "period": "previous-week", "formats": ["json", "html"]}
//	]}
//
// cron is a standard five-field expression, evaluated in UTC (package cron). period says which
// time span a run covers, relative to the cron time it runs for: "previous-day",
// "previous-week" (Monday to Monday), "previous-month", "previous-quarter", or "last-<Go
// duration>" such as "last-720h" (the span ending at the cron time).
//
// A run missed while lineaged was down is made up once at start-up: each entry's last
// successful cron time is kept in <export dir>/schedule-state.json, and if the latest cron time
// before now is later, that run happens at once. An entry seen for the first time starts from
// now (no surprise back-fill). In cluster mode (cluster.go) the state is in the KV bucket
// ScheduleBucket instead, the schedule runs inside Run on the writer-lease holder only, and a
// run's export id is derived from its entry and cron time.

// ScheduleFile is the schedule file's format.
type ScheduleFile struct {
	Exports []ScheduleEntry `json:"exports"`
}

// ScheduleEntry is one recurring export.
type ScheduleEntry struct {
	Name     string      `json:"name"`
	Cron     string      `json:"cron"`
	Kind     report.Kind `json:"kind"`
	Tenant   string      `json:"tenant"`
	AISystem string      `json:"ai_system,omitempty"`
	Period   string      `json:"period"`
	Formats  []string    `json:"formats,omitempty"`
}

type scheduleEntry struct {
	ScheduleEntry
	cron *cron.Schedule
	next time.Time
}

var scheduleNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// maxScheduleFile bounds the schedule file.
const maxScheduleFile = 1 << 20

// LoadSchedule reads and checks a schedule file.
func LoadSchedule(path string) ([]ScheduleEntry, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("exporters: schedule: %w", err)
	}
	if st.Size() > maxScheduleFile {
		return nil, fmt.Errorf("exporters: schedule %s: larger than %d bytes", path, maxScheduleFile)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("exporters: schedule: %w", err)
	}
	entries, err := ParseSchedule(b)
	if err != nil {
		return nil, fmt.Errorf("exporters: schedule %s: %w", path, err)
	}
	return entries, nil
}

// ParseSchedule parses and checks a schedule file's content: names unique, cron expressions
// valid and satisfiable, periods and requests valid.
func ParseSchedule(b []byte) ([]ScheduleEntry, error) {
	var f ScheduleFile
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&f); err != nil {
		return nil, err
	}
	if d.More() {
		return nil, errors.New("data after the schedule object")
	}
	seen := map[string]bool{}
	var out []ScheduleEntry
	probe := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, e := range f.Exports {
		where := fmt.Sprintf("exports[%d] (%q)", i, e.Name)
		if !scheduleNameRE.MatchString(e.Name) {
			return nil, fmt.Errorf("%s: name must match %s", where, scheduleNameRE)
		}
		if seen[e.Name] {
			return nil, fmt.Errorf("%s: name used twice", where)
		}
		seen[e.Name] = true
		c, err := cron.Parse(e.Cron)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		if c.Next(probe).IsZero() {
			return nil, fmt.Errorf("%s: cron %q never fires", where, e.Cron)
		}
		if _, _, err := e.period(probe); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		req, err := e.request(probe)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		if err := req.Validate(); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		out = append(out, e)
	}
	return out, nil
}

// period returns the span a run for cron time at covers.
func (e *ScheduleEntry) period(at time.Time) (from, to time.Time, err error) {
	at = at.UTC()
	day := time.Date(at.Year(), at.Month(), at.Day(), 0, 0, 0, 0, time.UTC)
	switch e.Period {
	case "previous-day":
		return day.AddDate(0, 0, -1), day, nil
	case "previous-week":
		monday := day.AddDate(0, 0, -((int(day.Weekday()) + 6) % 7))
		return monday.AddDate(0, 0, -7), monday, nil
	case "previous-month":
		first := time.Date(at.Year(), at.Month(), 1, 0, 0, 0, 0, time.UTC)
		return first.AddDate(0, -1, 0), first, nil
	case "previous-quarter":
		q := time.Date(at.Year(), at.Month()-(at.Month()-1)%3, 1, 0, 0, 0, 0, time.UTC)
		return q.AddDate(0, -3, 0), q, nil
	}
	if d, ok := strings.CutPrefix(e.Period, "last-"); ok {
		dur, err := time.ParseDuration(d)
		if err != nil || dur < time.Minute || dur > 10*366*24*time.Hour {
			return from, to, fmt.Errorf("period %q: want last-<duration> between 1m and 10 years, e.g. last-168h", e.Period)
		}
		return at.Add(-dur), at, nil
	}
	return from, to, fmt.Errorf("period %q: want previous-day, previous-week, previous-month, previous-quarter or last-<duration>", e.Period)
}

func (e *ScheduleEntry) request(at time.Time) (report.Request, error) {
	from, to, err := e.period(at)
	if err != nil {
		return report.Request{}, err
	}
	return report.Request{Kind: e.Kind, Tenant: e.Tenant, AISystem: e.AISystem, From: from, To: to, Formats: e.Formats}, nil
}

// scheduleState is each entry's last successful cron time, persisted so that a run missed
// while lineaged was down is made up at start-up.
type scheduleState map[string]time.Time

func (s *Service) stateFile() string { return filepath.Join(s.c.Dir, "schedule-state.json") }

func (s *Service) loadState() error {
	s.state = scheduleState{}
	b, err := os.ReadFile(s.stateFile())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("exporters: schedule state: %w", err)
	}
	if err := json.Unmarshal(b, &s.state); err != nil {
		// The state only serves catch-up; a damaged file must not stop lineaged.
		s.log.Warn("export schedule state unreadable; starting afresh", "file", s.stateFile(), "err", err)
		s.state = scheduleState{}
	}
	return nil
}

// markScheduled records a successful run for cron time t.
func (s *Service) markScheduled(name string, t time.Time) {
	s.mu.Lock()
	if t.After(s.state[name]) {
		s.state[name] = t
	}
	s.mu.Unlock()
	s.saveState()
}

func (s *Service) saveState() {
	if s.cl != nil {
		s.saveStateKV()
		return
	}
	// stateMu serializes writers of the file (they share its temporary name).
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	s.mu.Lock()
	b, err := json.MarshalIndent(s.state, "", " ")
	s.mu.Unlock()
	if err == nil {
		err = atomicfile.WriteFile(s.stateFile(), b, 0o640)
	}
	if err != nil {
		s.log.Error("export schedule state not saved", "err", err)
	}
}

// maxSchedulerSleep bounds one wait of the scheduler, so that it re-reads the clock at least
// every minute (a wall-clock change then costs at most a minute, not a missed month).
const maxSchedulerSleep = time.Minute

// runSchedule fires the schedule's exports until ctx ends.
func (s *Service) runSchedule(ctx context.Context) {
	now := s.c.now()
	var missed []*scheduleEntry
	fresh := false
	s.mu.Lock()
	for _, e := range s.schedule {
		last, known := s.state[e.Name]
		if !known {
			s.state[e.Name], fresh = now, true
		} else if prev := e.cron.Prev(now); !prev.IsZero() && prev.After(last) {
			missed = append(missed, e)
		}
		e.next = e.cron.Next(now)
	}
	s.mu.Unlock()
	if fresh {
		s.saveState()
	}
	for _, e := range missed {
		prev := e.cron.Prev(now)
		s.log.Warn("scheduled export missed while lineaged was down; running it now", "schedule", e.Name, "cron_time", prev)
		s.fire(e, prev)
	}
	for {
		var next time.Time
		for _, e := range s.schedule {
			if !e.next.IsZero() && (next.IsZero() || e.next.Before(next)) {
				next = e.next
			}
		}
		wait := maxSchedulerSleep
		if !next.IsZero() {
			wait = min(max(next.Sub(s.c.now()), 0), maxSchedulerSleep)
		}
		select {
		case <-ctx.Done():
			return
		case <-s.c.after(wait):
		}
		now := s.c.now()
		for _, e := range s.schedule {
			if !e.next.IsZero() && !e.next.After(now) {
				s.fire(e, e.next)
				e.next = e.cron.Next(now)
			}
		}
	}
}

// fire queues the export of one schedule entry for cron time at.
func (s *Service) fire(e *scheduleEntry, at time.Time) {
	req, err := e.request(at)
	if err == nil {
		_, err = s.submit(req, "scheduler", "schedule:"+e.Name, at)
	}
	if errors.Is(err, errJobExists) {
		// Cluster mode: this cron time's job was queued already (before a takeover).
		s.log.Info("scheduled export already queued", "schedule", e.Name, "cron_time", at)
		return
	}
	if err != nil {
		s.m.scheduleRuns.WithLabelValues(e.Name, "skipped").Inc()
		s.log.Error("scheduled export not started", "schedule", e.Name, "cron_time", at, "err", err)
	}
}
