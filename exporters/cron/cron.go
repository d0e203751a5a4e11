// Package cron parses standard five-field cron expressions ("minute hour day-of-month month
// day-of-week") and computes their next activation. The export scheduler (exporters.Service)
// uses it to run the schedule file's exports, e.g. "0 2 1 * *" for a monthly disclosure.
//
// It is small on purpose: the syntax is Vixie cron's, which every operator knows, and a parser
// of a few hundred lines is easier to audit than a dependency. Supported: '*', numbers, ranges
// "a-b", lists "a,b", steps "*/n", "a-b/n" and "a/n" (from a to the field's maximum), month
// names JAN–DEC, weekday names SUN–SAT, 7 as Sunday, and the macros @yearly, @annually,
// @monthly, @weekly, @daily, @midnight and @hourly. Not supported (refused, never guessed):
// seconds fields, "L", "W", "#", "?" and @reboot.
//
// Times are evaluated in UTC: an audit schedule must not run twice or not at all when a
// daylight-saving change moves local time.
package cron

import (
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"time"
)

// Schedule is a parsed cron expression.
type Schedule struct {
	minute, hour, dom, month, dow uint64 // bit i set: value i matches
	// domStar and dowStar record whether the day fields start with '*'. Vixie cron matches a
	// day when both match if either is a star, and when either matches if both are restricted
	// ("0 0 1 * MON" runs on the 1st and on every Monday).
	domStar, dowStar bool
	spec             string
}

// field describes one of the five positions.
type field struct {
	name     string
	min, max int
	names    []string // names[i] is the name of value min+i
}

var (
	fMinute = field{name: "minute", min: 0, max: 59}
	fHour   = field{name: "hour", min: 0, max: 23}
	fDOM    = field{name: "day of month", min: 1, max: 31}
	fMonth  = field{name: "month", min: 1, max: 12,
		names: []string{"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"}}
	// Day of week accepts 0–7; 7 is folded into 0 (Sunday) after parsing.
	fDOW = field{name: "day of week", min: 0, max: 7,
		names: []string{"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"}}
)

var macros = map[string]string{
	"@yearly":   "0 0 1 1 *",
	"@annually": "0 0 1 1 *",
	"@monthly":  "0 0 1 * *",
	"@weekly":   "0 0 * * 0",
	"@daily":    "0 0 * * *",
	"@midnight": "0 0 * * *",
	"@hourly":   "0 * * * *",
}

// maxSpecLen bounds the expression; a cron line is a few dozen bytes.
const maxSpecLen = 256

// Parse parses a five-field cron expression or a macro.
func Parse(spec string) (*Schedule, error) {
	orig := spec
	if len(spec) > maxSpecLen {
		return nil, fmt.Errorf("cron: expression is %d bytes, the limit is %d", len(spec), maxSpecLen)
	}
	spec = strings.TrimSpace(spec)
	if strings.HasPrefix(spec, "@") {
		m, ok := macros[strings.ToLower(spec)]
		if !ok {
			return nil, fmt.Errorf("cron: unknown macro %q", spec)
		}
		spec = m
	}
	parts := strings.Fields(spec)
	if len(parts) != 5 {
		return nil, fmt.Errorf("cron: %q has %d fields, want 5 (minute hour day-of-month month day-of-week)", orig, len(parts))
	}
	s := &Schedule{spec: strings.TrimSpace(orig)}
	var err error
	if s.minute, err = parseField(parts[0], fMinute); err != nil {
		return nil, err
	}
	if s.hour, err = parseField(parts[1], fHour); err != nil {
		return nil, err
	}
	if s.dom, err = parseField(parts[2], fDOM); err != nil {
		return nil, err
	}
	if s.month, err = parseField(parts[3], fMonth); err != nil {
		return nil, err
	}
	if s.dow, err = parseField(parts[4], fDOW); err != nil {
		return nil, err
	}
	if s.dow&(1<<7) != 0 {
		s.dow = s.dow&^(1<<7) | 1
	}
	s.domStar = strings.HasPrefix(parts[2], "*")
	s.dowStar = strings.HasPrefix(parts[4], "*")
	return s, nil
}

// String returns the expression as it was given.
func (s *Schedule) String() string { return s.spec }

func parseField(text string, f field) (uint64, error) {
	var set uint64
	for _, item := range strings.Split(text, ",") {
		b, err := parseItem(item, f)
		if err != nil {
			return 0, fmt.Errorf("cron: %s field %q: %w", f.name, text, err)
		}
		set |= b
	}
	return set, nil
}

// parseItem parses one list item: '*', a value or a range, optionally with a step.
func parseItem(item string, f field) (uint64, error) {
	if item == "" {
		return 0, errors.New("empty list item")
	}
	rng, stepText, hasStep := strings.Cut(item, "/")
	step := 1
	if hasStep {
		n, err := strconv.Atoi(stepText)
		if err != nil || n < 1 || n > f.max-f.min+1 {
			return 0, fmt.Errorf("step %q must be a number from 1 to %d", stepText, f.max-f.min+1)
		}
		step = n
	}
	var lo, hi int
	switch {
	case rng == "*":
		lo, hi = f.min, f.max
		if f.max == 7 { // '*' in day of week means 0–6; 7 would only repeat Sunday
			hi = 6
		}
	case strings.Contains(rng, "-"):
		a, b, _ := strings.Cut(rng, "-")
		var err error
		if lo, err = value(a, f); err != nil {
			return 0, err
		}
		if hi, err = value(b, f); err != nil {
			return 0, err
		}
		if lo > hi {
			return 0, fmt.Errorf("range %q runs backwards", rng)
		}
	default:
		v, err := value(rng, f)
		if err != nil {
			return 0, err
		}
		lo, hi = v, v
		if hasStep { // "a/n" means from a to the maximum, every n
			hi = f.max
		}
	}
	var set uint64
	for v := lo; v <= hi; v += step {
		set |= 1 << uint(v)
	}
	return set, nil
}

// value parses a number or a name within the field's bounds.
func value(s string, f field) (int, error) {
	for i, n := range f.names {
		if strings.EqualFold(s, n) {
			return f.min + i, nil
		}
	}
	if s == "" || len(s) > 2 {
		return 0, fmt.Errorf("%q is not a value from %d to %d", s, f.min, f.max)
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < f.min || v > f.max {
		return 0, fmt.Errorf("%q is not a value from %d to %d", s, f.min, f.max)
	}
	return v, nil
}

// searchLimit bounds Next's search. Every satisfiable expression fires within four years (29
// February with a weekday restriction is the slowest); an expression such as "0 0 30 2 *"
// never does, and Next reports that with the zero time instead of looping.
const searchLimit = 5 * 366 * 24 * time.Hour

// Next returns the first activation strictly after t, in UTC, or the zero time if the
// expression never fires (such as 30 February).
func (s *Schedule) Next(t time.Time) time.Time {
	t = t.UTC().Truncate(time.Minute).Add(time.Minute)
	limit := t.Add(searchLimit)
	for t.Before(limit) {
		switch {
		case s.month&(1<<uint(t.Month())) == 0:
			t = time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, time.UTC)
		case !s.dayMatches(t):
			t = time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, time.UTC)
		case s.hour&(1<<uint(t.Hour())) == 0:
			t = t.Truncate(time.Hour).Add(time.Hour)
		case s.minute&(1<<uint(t.Minute())) == 0:
			// Jump straight to the next matching minute of this hour, or the next hour.
			next := s.minute >> uint(t.Minute())
			if next == 0 {
				t = t.Truncate(time.Hour).Add(time.Hour)
			} else {
				t = t.Add(time.Duration(bits.TrailingZeros64(next)) * time.Minute)
			}
		default:
			return t
		}
	}
	return time.Time{}
}

// Prev returns the last activation at or before t, in UTC, or the zero time if there is none
// within the search limit. The scheduler uses it to find a run missed while lineaged was down.
func (s *Schedule) Prev(t time.Time) time.Time {
	t = t.UTC().Truncate(time.Minute)
	limit := t.Add(-searchLimit)
	for t.After(limit) {
		switch {
		case s.month&(1<<uint(t.Month())) == 0:
			// Last minute of the previous month.
			t = time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC).Add(-time.Minute)
		case !s.dayMatches(t):
			t = time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC).Add(-time.Minute)
		case s.hour&(1<<uint(t.Hour())) == 0:
			t = t.Truncate(time.Hour).Add(-time.Minute)
		case s.minute&(1<<uint(t.Minute())) == 0:
			t = t.Add(-time.Minute)
		default:
			return t
		}
	}
	return time.Time{}
}

func (s *Schedule) dayMatches(t time.Time) bool {
	dom := s.dom&(1<<uint(t.Day())) != 0
	dow := s.dow&(1<<uint(t.Weekday())) != 0
	if s.domStar || s.dowStar {
		return dom && dow
	}
	return dom || dow
}
