package verify

import (
	"strings"
	"testing"
	"time"
)

func TestManifestRoundTrip(t *testing.T) {
	m := &Manifest{ExportID: "exp-1", Kind: KindFannieMae, Tenant: "acme-bank", AISystem: "acme/with space\"quote",
		From: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC),
		Created: time.Date(2026, 2, 1, 2, 0, 0, 5, time.UTC), RequestedBy: "apikey:c\nx", LogOrigin: "lineage.test/exporters",
		CheckpointSize: 10, CheckpointRoot: make([]byte, 32), Records: 3,
		Files: []ManifestFile{{Path: "checkpoint", Size: 1}, {Path: "report/a.csv", Size: 2}}}
	text, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseManifest(string(text))
	if err != nil {
		t.Fatal(err)
	}
	if got.AISystem != m.AISystem || got.RequestedBy != m.RequestedBy || !got.Created.Equal(m.Created) || len(got.Files) != 2 {
		t.Fatalf("round trip: %+v", got)
	}
	for _, bad := range []string{
		"", ManifestHeader + "\n", strings.Replace(string(text), "kind fannie-mae", "kind sox", 1),
		strings.Replace(string(text), "file ", "file  ", 1),
		strings.Replace(string(text), "report/a.csv", "../a.csv", 1),
		strings.Replace(string(text), "report/a.csv", "checkpoint", 1),
		string(text) + "extra line\n",
	} {
		if _, err := ParseManifest(bad); err == nil {
			t.Errorf("parsed: %q", bad)
		}
	}
}

func TestCSVCellDefused(t *testing.T) {
	for _, s := range []string{"=HYPERLINK(\"http://x\")", "+1", "-2", "@SUM(A1)", "'quoted", "\tx", "plain", ""} {
		c := CSVCell(s)
		if c != "" && strings.ContainsRune("=+-@\t\r", rune(c[0])) {
			t.Errorf("CSVCell(%q) = %q starts with a formula character", s, c)
		}
		if CSVUncell(c) != s {
			t.Errorf("CSVUncell(CSVCell(%q)) = %q", s, CSVUncell(c))
		}
	}
}

// FuzzParseManifest checks that no manifest text makes the parser panic, and that what it
// accepts it writes back identically.
func FuzzParseManifest(f *testing.F) {
	m := &Manifest{ExportID: "exp-1", Kind: KindEUAIAct, Tenant: "t", From: time.Unix(0, 0), To: time.Unix(60, 0),
		Created: time.Unix(1, 0), RequestedBy: "x", LogOrigin: "o", CheckpointRoot: make([]byte, 32),
		Files: []ManifestFile{{Path: "checkpoint"}}}
	text, _ := m.Marshal()
	f.Add(string(text))
	f.Add(ManifestHeader + "\nexport a\n")
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseManifest(s)
		if err != nil {
			return
		}
		back, err := m.Marshal()
		if err != nil {
			t.Fatalf("accepted manifest does not marshal: %v", err)
		}
		if _, err := ParseManifest(string(back)); err != nil {
			t.Fatalf("re-marshalled manifest does not parse: %v", err)
		}
	})
}
