package lineage

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestPrintable(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"u-48213", "u-48213"},
		{`CORP\alice`, `CORP\alice`},
		{"José 😀 Ñ", "José 😀 Ñ"},
		{hostileID, `eve\x1b[2J\x1b[31mFAKE OK\x1b[0m`},
		{"eve\nOK: record acme/r1 verified", `eve\nOK: record acme/r1 verified`},
		{"a\tb\rc\x00d\x7f", `a\tb\rc\x00d\x7f`},
		{"csi\u009b2J nel\u0085", `csi\u009b2J nel\u0085`},
		{"agent-\u202egpj.exe", `agent-\u202egpj.exe`},
		{"\u2066x\u2069 \u200e\u200f\u061c", `\u2066x\u2069 \u200e\u200f\u061c`},
		{"z\u200bw\u200dj\ufeff", `z\u200bw\u200dj\ufeff`},
		{"ls\u2028ps\u2029", `ls\u2028ps\u2029`},
		{"tag\U000e0041", `tag\U000e0041`},
		{"bad\xffutf8\xc0", `bad\xffutf8\xc0`},
		{"\ufffd is a real character", "\ufffd is a real character"},
	}
	for _, tt := range tests {
		if got := Printable(tt.in); got != tt.want {
			t.Errorf("Printable(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestPrintableIsSafe: whatever goes in, what comes out is valid UTF-8 without a control,
// format or separator character, and it reads the same when printed twice.
func TestPrintableIsSafe(t *testing.T) {
	var all strings.Builder
	for r := rune(0); r <= 0x2fff; r++ {
		all.WriteRune(r)
	}
	all.WriteString("\U000e0001\U000e007f\xff\xfe\xed\xa0\x80")
	out := Printable(all.String())
	if !utf8.ValidString(out) {
		t.Fatal("output is not valid UTF-8")
	}
	for i, r := range out {
		if r < 0x20 || r >= 0x7f && r <= 0x9f || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp) {
			t.Fatalf("output holds %U at byte %d", r, i)
		}
	}
	if Printable(out) != out {
		t.Error("Printable is not idempotent")
	}
}

// TestPrintableCoversTheIngestRules: every character ingest rejects is one Printable escapes,
// so the two rules cannot drift apart.
func TestPrintableCoversTheIngestRules(t *testing.T) {
	for r := rune(0); r <= 0xe01ef; r++ {
		if r >= 0xd800 && r <= 0xdfff {
			continue
		}
		if identForbidden(r) || textForbidden(r) {
			if s := string(r); Printable(s) == s {
				t.Errorf("ingest rejects %U but Printable shows it raw", r)
			}
		}
		if textForbidden(r) && !identForbidden(r) {
			t.Errorf("%U is forbidden in prose but allowed in identifiers", r)
		}
	}
}

// TestSlogKeepsHostileIDsOnOneLine: the daemons log with log/slog; both handlers must keep a
// hostile id inside one line and show its escape character escaped.
func TestSlogKeepsHostileIDsOnOneLine(t *testing.T) {
	hostile := hostileID + "\nlevel=INFO msg=\"forged line\"\u2028\u2029\r"
	for name, h := range map[string]func(*bytes.Buffer) slog.Handler{
		"text": func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
		"json": func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
	} {
		var buf bytes.Buffer
		slog.New(h(&buf)).Info("record quarantined", "user", hostile, slog.Group("record", "id", hostile))
		line := buf.String()
		if strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") {
			t.Errorf("%s handler: the entry spans several lines: %q", name, line)
		}
		if strings.ContainsAny(line, "\x1b\r\u2028\u2029") {
			t.Errorf("%s handler: the entry holds a raw control character: %q", name, line)
		}
	}
}
