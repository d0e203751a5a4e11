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

func TestManifestSealedLine(t *testing.T) {
	m := &Manifest{ExportID: "exp-1", Kind: KindEUAIAct, Tenant: "acme-bank",
		From: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC),
		Created: time.Date(2026, 2, 1, 2, 0, 0, 0, time.UTC), RequestedBy: "test", LogOrigin: "lineage.test/exporters",
		CheckpointSize: 10, CheckpointRoot: make([]byte, 32), Records: 3,
		Sealed: &SealedCounts{ClearFields: 5, ErasedFields: 2, ClearKeys: 3, ErasedKeys: 1},
		Files:  []ManifestFile{{Path: "checkpoint", Size: 1}}}
	text, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(text), "\nrecords 3\nsealed 5 2 3 1\nfile ") {
		t.Fatalf("manifest text:\n%s", text)
	}
	got, err := ParseManifest(string(text))
	if err != nil || got.Sealed == nil || *got.Sealed != *m.Sealed {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	m.Sealed = nil
	plain, err := m.Marshal()
	if err != nil || strings.Contains(string(plain), "sealed") {
		t.Fatalf("a manifest without sealed fields has a sealed line: %s %v", plain, err)
	}
	for _, bad := range []string{"sealed 5 2 3", "sealed 5 2 3 1 0", "sealed 05 2 3 1", "sealed 5 2 6 1", "sealed 5 -2 3 1", "sealed  5 2 3 1", "sealed 5 2 3 x"} {
		if _, err := ParseManifest(strings.Replace(string(text), "sealed 5 2 3 1", bad, 1)); err == nil {
			t.Errorf("parsed %q", bad)
		}
	}
	// After the file lines it is not a sealed line at all.
	moved := strings.Replace(string(text), "sealed 5 2 3 1\n", "", 1) + "sealed 5 2 3 1\n"
	if _, err := ParseManifest(moved); err == nil {
		t.Error("parsed a sealed line after the files")
	}
}
