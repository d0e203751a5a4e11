package cron

import (
	"testing"
	"time"
)

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestNext(t *testing.T) {
	cases := []struct {
		spec, from, want string
	}{
		{"* * * * *", "2026-03-01T10:00:30Z", "2026-03-01T10:01:00Z"},
		{"0 2 1 * *", "2026-03-01T02:00:00Z", "2026-04-01T02:00:00Z"},
		{"0 2 1 * *", "2026-03-01T01:59:59Z", "2026-03-01T02:00:00Z"},
		{"@monthly", "2026-12-15T00:00:00Z", "2027-01-01T00:00:00Z"},
		{"0 3 * * 1", "2026-11-04T12:00:00Z", "2026-11-09T03:00:00Z"}, // weekly on Monday
		{"0 3 * * MON", "2026-11-09T03:00:00Z", "2026-11-16T03:00:00Z"},
		{"*/15 * * * *", "2026-01-01T00:16:00Z", "2026-01-01T00:30:00Z"},
		{"5/20 * * * *", "2026-01-01T00:26:00Z", "2026-01-01T00:45:00Z"},
		{"0 9-17/4 * * *", "2026-01-01T10:00:00Z", "2026-01-01T13:00:00Z"},
		{"0 0 29 2 *", "2026-03-01T00:00:00Z", "2028-02-29T00:00:00Z"},
		{"0 0 1 * 5", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"},   // Friday 2 Jan (either day field)
		{"0 0 */2 * 5", "2026-01-01T00:00:00Z", "2026-01-09T00:00:00Z"}, // star: both fields must match
		{"0 0 * * 7", "2026-01-01T00:00:00Z", "2026-01-04T00:00:00Z"},   // 7 is Sunday
		{"30 23 31 DEC *", "2026-06-01T00:00:00Z", "2026-12-31T23:30:00Z"},
		{"0 12 * jan-mar sat,sun", "2026-03-31T00:00:00Z", "2027-01-02T12:00:00Z"},
	}
	for _, c := range cases {
		s, err := Parse(c.spec)
		if err != nil {
			t.Errorf("Parse(%q): %v", c.spec, err)
			continue
		}
		if got := s.Next(mustTime(t, c.from)); !got.Equal(mustTime(t, c.want)) {
			t.Errorf("%q.Next(%s) = %s, want %s", c.spec, c.from, got.Format(time.RFC3339), c.want)
		}
	}
}

func TestPrev(t *testing.T) {
	cases := []struct{ spec, at, want string }{
		{"0 2 1 * *", "2026-03-15T00:00:00Z", "2026-03-01T02:00:00Z"},
		{"0 2 1 * *", "2026-03-01T02:00:00Z", "2026-03-01T02:00:00Z"},
		{"0 3 * * 1", "2026-11-08T00:00:00Z", "2026-11-02T03:00:00Z"},
		{"*/15 * * * *", "2026-01-01T00:14:59Z", "2026-01-01T00:00:00Z"},
		{"0 0 29 2 *", "2027-01-01T00:00:00Z", "2024-02-29T00:00:00Z"},
	}
	for _, c := range cases {
		s, err := Parse(c.spec)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.Prev(mustTime(t, c.at)); !got.Equal(mustTime(t, c.want)) {
			t.Errorf("%q.Prev(%s) = %s, want %s", c.spec, c.at, got.Format(time.RFC3339), c.want)
		}
	}
}

func TestNeverFires(t *testing.T) {
	s, err := Parse("0 0 30 2 *")
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Next(time.Now()); !got.IsZero() {
		t.Fatalf("30 February fired at %s", got)
	}
	if got := s.Prev(time.Now()); !got.IsZero() {
		t.Fatalf("30 February fired at %s", got)
	}
}

func TestParseErrors(t *testing.T) {
	for _, bad := range []string{
		"", "* * * *", "* * * * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * 32 * *",
		"* * * 13 *", "* * * * 8", "*/0 * * * *", "5-1 * * * *", "a * * * *", "1,,2 * * * *",
		"@reboot", "@every 5m", "L * * * *", "* * ? * *", "* * * * MON#2", "-1 * * * *",
		"1-2-3 * * * *", "*/61 * * * *", "001 * * * *",
	} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) succeeded", bad)
		}
	}
}

// FuzzParse checks that no input makes Parse or Next panic, and that Next moves forward.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"0 2 1 * *", "*/5 1-3 * JAN-MAR mon,fri", "@weekly", "0 0 30 2 *", "5/7 */3 1,15 * 7"} {
		f.Add(s)
	}
	from := time.Date(2026, 5, 17, 13, 7, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, spec string) {
		s, err := Parse(spec)
		if err != nil {
			return
		}
		if n := s.Next(from); !n.IsZero() && !n.After(from) {
			t.Fatalf("%q.Next(%s) = %s is not after", spec, from, n)
		}
		if p := s.Prev(from); !p.IsZero() && p.After(from) {
			t.Fatalf("%q.Prev(%s) = %s is after", spec, from, p)
		}
	})
}
