package lineage

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func canonicalOf(t testing.TB, data []byte) []byte {
	t.Helper()
	r, err := DecodeRecord(data)
	if err != nil {
		t.Fatal(err)
	}
	c, err := r.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNewEnvelopeIsCanonical(t *testing.T) {
	rec := canonicalOf(t, []byte(minimal))
	times := []time.Time{
		time.Date(2026, 3, 2, 9, 14, 7, 0, time.UTC),
		time.Date(2026, 3, 2, 9, 14, 7, 123456789, time.UTC),
		time.Date(2026, 3, 2, 10, 14, 7, 120000000, time.FixedZone("CET", 3600)),
		time.Unix(0, 0),
	}
	for _, at := range times {
		for _, verified := range []bool{false, true} {
			entry := NewEnvelope(rec, at, verified)
			canon, err := Canonicalize(entry)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(entry, canon) {
				t.Errorf("NewEnvelope is not canonical:\n%s\n%s", entry, canon)
			}
			e, err := DecodeEnvelope(entry)
			if err != nil {
				t.Fatalf("DecodeEnvelope(%s): %v", entry, err)
			}
			if e.V != EnvelopeV1 || !e.ReceivedAt.Equal(at) || e.ReceivedAt.Location() != time.UTC ||
				e.SourceVerified != verified || !bytes.Equal(e.Canonical, rec) || e.Record.ID != "r1" {
				t.Errorf("DecodeEnvelope(%s) = %+v", entry, e)
			}
		}
	}
}

func TestNewEnvelopeLayout(t *testing.T) {
	rec := canonicalOf(t, []byte(minimal))
	at := time.Date(2026, 3, 2, 10, 14, 7, 500000000, time.FixedZone("CET", 3600))
	want := `{"received_at":"2026-03-02T09:14:07.5Z","record":` + string(rec) + `,"source_verified":true,"v":1}`
	if got := NewEnvelope(rec, at, true); string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestDecodeEnvelopeCanonicalSlice(t *testing.T) {
	for name, data := range loadRecords(t) {
		rec := canonicalOf(t, data)
		entry := NewEnvelope(rec, time.Now(), false)
		e, err := DecodeEnvelope(entry)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		// Canonical is a window into the entry, not a copy.
		if &e.Canonical[0] != &entry[bytes.Index(entry, rec)] {
			t.Errorf("%s: Canonical is not sliced from the entry", name)
		}
	}
}

func TestDecodeEnvelopeRejects(t *testing.T) {
	rec := string(canonicalOf(t, []byte(minimal)))
	good := `{"received_at":"2026-03-02T09:14:07Z","record":` + rec + `,"source_verified":false,"v":1}`
	if _, err := DecodeEnvelope([]byte(good)); err != nil {
		t.Fatal(err)
	}
	// A record that is valid but not in canonical form: same members, another order.
	reordered := strings.Replace(minimal, `"schema":"lineage.decision/v1",`, ``, 1)
	reordered = reordered[:len(reordered)-1] + `,"schema":"lineage.decision/v1"}`
	replace := func(old, new string) string {
		if !strings.Contains(good, old) {
			t.Fatalf("%q not in entry", old)
		}
		return strings.Replace(good, old, new, 1)
	}
	tests := []struct {
		name         string
		entry        string
		notCanonical bool
		decodeErr    bool
	}{
		{"empty", ``, false, false},
		{"not an object", `[]`, false, false},
		{"whitespace", replace(`"v":1`, `"v": 1`), true, false},
		{"trailing newline", good + "\n", true, false},
		{"trailing NUL", good + "\x00", false, false},
		{"member order", `{"record":` + rec + `,"received_at":"2026-03-02T09:14:07Z","source_verified":false,"v":1}`, true, false},
		{"non-canonical record", replace(rec, reordered), true, false},
		{"escaped name", replace(`"v":1`, `"\u0076":1`), true, false},
		{"time offset", replace(`09:14:07Z`, `10:14:07+01:00`), true, false},
		{"time trailing zeros", replace(`09:14:07Z`, `09:14:07.500Z`), true, false},
		{"bad time", replace(`2026-03-02T09:14:07Z`, `yesterday`), false, false},
		{"unknown member", replace(`"v":1`, `"v":1,"w":2`), false, false},
		{"duplicate member", replace(`"v":1`, `"v":1,"v":1`), false, false},
		{"missing member", replace(`"source_verified":false,`, ``), false, false},
		{"version 2", replace(`"v":1`, `"v":2`), false, false},
		{"version 1.0", replace(`"v":1`, `"v":1.0`), false, false},
		{"version string", replace(`"v":1`, `"v":"1"`), false, false},
		{"verified null", replace(`false`, `null`), false, false},
		{"record string", replace(rec, `"x"`), false, false},
		{"invalid record", replace(`"tenant":"acme"`, `"tenant":"ACME"`), false, true},
		{"record with unknown field", replace(`"tenant":"acme"`, `"tenant":"acme","x":1`), false, true},
		{"truncated", good[:len(good)-1], false, false},
		{"too large", good + strings.Repeat(" ", maxEnvelopeSize), false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := DecodeEnvelope([]byte(tt.entry))
			if err == nil {
				t.Fatalf("DecodeEnvelope accepted %s: %+v", tt.entry, e)
			}
			if !strings.HasPrefix(err.Error(), "lineage: envelope: ") {
				t.Errorf("error %q lacks context", err)
			}
			if got := errors.Is(err, ErrNotCanonical); got != tt.notCanonical {
				t.Errorf("errors.Is(%v, ErrNotCanonical) = %v, want %v", err, got, tt.notCanonical)
			}
			var de *DecodeError
			if got := errors.As(err, &de) && de.Code != CodeInvalidJSON; got != tt.decodeErr {
				t.Errorf("error %v: record DecodeError = %v, want %v", err, got, tt.decodeErr)
			}
		})
	}
}
