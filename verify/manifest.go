package verify

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	lineage "github.com/lineage-audit/lineage"
	"golang.org/x/mod/sumdb/note"
)

// The evidence bundle of a compliance export is a ZIP archive:
//
//	MANIFEST                      signed note: every other file with its SHA-256 and size
//	checkpoint                    the signed checkpoint every proof is against, as published
//	report/report.json            the report (schema lineage.export/v1)
//	report/report.html            the printable report
//	report/<table>.csv            one file per table
//	records/records-NNNNN.ndjson  every cited record: log index, ledger entry, inclusion proof
//
// This file defines the format once, for the writer (exporters/report/export.go, exporters/report/bundle.go)
// and for VerifyBundle (bundle.go): the member names, the manifest, a records line
// (EvidenceLine) and the escaping of CSV cells (CSVCell).

// Names of the fixed bundle members.
const (
	ManifestName   = "MANIFEST"
	CheckpointName = "checkpoint"
)

// Kind is the regulation an export reports for.
type Kind string

// The export kinds.
const (
	// KindEUAIAct is the EU AI Act record-keeping report: Art. 12 logs per use, Art. 14 human
	// oversight, Art. 19 / 26(6) retention coverage, for one AI system or all.
	KindEUAIAct Kind = "eu-ai-act"
	// KindFannieMae is the Fannie Mae LL-2026-04 disclosure: AI tools, safeguards, and the
	// natural person and delegation behind each AI-assisted decision of a lending process.
	KindFannieMae Kind = "fannie-mae"
)

// Valid tells whether k is a known kind.
func (k Kind) Valid() bool { return k == KindEUAIAct || k == KindFannieMae }

// EvidenceLine is one line of a records file (records/records-NNNNN.ndjson): the record's log
// index and id, its ledger entry (the exact bytes, as a JSON string, so a person can read it;
// canonical entries are valid UTF-8, so the string round-trips byte for byte) and its
// inclusion proof against the bundle's checkpoint.
//
// The line of a v2 entry (sealed fields, docs/ERASURE.md) also carries the openings of the
// fields that were clear when the bundle was made: the verifier checks each against its
// commitment in the entry and reads the record with them. A field without an opening was erased
// at export time. A v1 line has no openings member, so its form is what it always was.
type EvidenceLine struct {
	Index    uint64    `json:"index"`
	ID       string    `json:"id"`
	Entry    string    `json:"entry"`
	Proof    [][]byte  `json:"proof"`
	Openings []Opening `json:"openings,omitempty"`
}

// CSV cells are defused for spreadsheets: a cell that starts with '=', '+', '-', '@', a tab, a
// carriage return or a single quote gets one single quote in front (OWASP "CSV injection"), so
// a record crafted by a compromised enforcement point cannot run a formula on an auditor's
// machine. The rule is reversible (CSVUncell strips one leading quote); the exact values are in
// the records' ledger entries, which are the evidence.

// CSVCell defuses one CSV cell.
func CSVCell(s string) string {
	if s == "" {
		return s
	}
	switch s[0] {
	case '=', '+', '-', '@', '\t', '\r', '\'':
		return "'" + s
	}
	return s
}

// CSVUncell reverses CSVCell.
func CSVUncell(s string) string {
	if len(s) >= 2 && s[0] == '\'' {
		switch s[1] {
		case '=', '+', '-', '@', '\t', '\r', '\'':
			return s[1:]
		}
	}
	return s
}

// The manifest is the bundle's table of contents and the one thing the service signs. It is a
// C2SP signed note (golang.org/x/mod/sumdb/note) signed with the ledger's key, so the public key
// that verifies checkpoints verifies bundles too and an auditor needs one key, not two.
//
// Reusing the checkpoint key is safe because the two kinds of note cannot be mistaken for each
// other: a checkpoint's first line is the log origin and its second a decimal tree size, while a
// manifest's first line is ManifestHeader and its second starts with "export ". No manifest
// parses as a checkpoint and no checkpoint as a manifest.
//
// Text (one item per line, in this order):
//
//	lineage.export.manifest/v1
//	export <export id>
//	kind <eu-ai-act|fannie-mae>
//	tenant <tenant>
//	ai-system <JSON string; "" for every AI system>
//	period <from RFC 3339> <to RFC 3339>
//	created <RFC 3339>
//	requested-by <JSON string>
//	log-origin <origin>
//	checkpoint <tree size> <root hash, base64>
//	records <number of records in records/>
//	sealed <clear fields> <erased fields> <clear keys> <erased keys>   (only when a record has sealed fields)
//	file <sha256 hex> <size> <path>      (one per file, sorted by path, MANIFEST itself excluded)

// ManifestHeader is the first line of a manifest.
const ManifestHeader = "lineage.export.manifest/v1"

// ManifestFile is one file of the bundle.
type ManifestFile struct {
	Path   string
	Size   int64
	SHA256 [32]byte
}

// Manifest is the parsed, signed table of contents of a bundle.
type Manifest struct {
	ExportID       string
	Kind           Kind
	Tenant         string
	AISystem       string
	From, To       time.Time
	Created        time.Time
	RequestedBy    string
	LogOrigin      string
	CheckpointSize uint64
	CheckpointRoot []byte
	Records        uint64
	// Sealed counts the sealed fields of the records in records/ as they were at export time;
	// nil when no record has one (every bundle of a log without erasure), and the manifest then
	// has no "sealed" line.
	Sealed *SealedCounts
	Files  []ManifestFile
}

// SealedCounts says which sealed fields (docs/ERASURE.md) of a bundle's records were clear at
// export time (the records line carries their openings) and which were erased, and how many
// distinct subject keys each group names. A key can be in both groups only if the subject was
// erased while the export ran. It is the manifest's "sealed" line, and what VerifyBundle counts
// from the records lines (sealed-count when they differ).
type SealedCounts struct {
	ClearFields  uint64 `json:"clear_fields"`
	ErasedFields uint64 `json:"erased_fields"`
	ClearKeys    uint64 `json:"clear_keys"`
	ErasedKeys   uint64 `json:"erased_keys"`
}

// bundlePathRE is what a file name inside a bundle may look like: slash-separated components
// of letters, digits, '.', '_' and '-'. Checked again for "." and ".." components.
var bundlePathRE = regexp.MustCompile(`^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$`)

// maxBundlePath bounds a path in a bundle.
const maxBundlePath = 200

// ValidBundlePath tells whether p may name a file inside a bundle.
func ValidBundlePath(p string) bool {
	if len(p) > maxBundlePath || !bundlePathRE.MatchString(p) {
		return false
	}
	for _, c := range strings.Split(p, "/") {
		if c == "." || c == ".." {
			return false
		}
	}
	return true
}

// exportIDRE is the shape of export ids (they name directories and files).
var exportIDRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,127}$`)

// ValidExportID tells whether id has the shape of an export id.
func ValidExportID(id string) bool { return exportIDRE.MatchString(id) }

// Marshal renders the manifest text.
func (m *Manifest) Marshal() ([]byte, error) {
	var b bytes.Buffer
	q := func(s string) string { v, _ := json.Marshal(s); return string(v) }
	fmt.Fprintf(&b, "%s\n", ManifestHeader)
	fmt.Fprintf(&b, "export %s\n", m.ExportID)
	fmt.Fprintf(&b, "kind %s\n", m.Kind)
	fmt.Fprintf(&b, "tenant %s\n", m.Tenant)
	fmt.Fprintf(&b, "ai-system %s\n", q(m.AISystem))
	fmt.Fprintf(&b, "period %s %s\n", m.From.UTC().Format(time.RFC3339Nano), m.To.UTC().Format(time.RFC3339Nano))
	fmt.Fprintf(&b, "created %s\n", m.Created.UTC().Format(time.RFC3339Nano))
	fmt.Fprintf(&b, "requested-by %s\n", q(m.RequestedBy))
	fmt.Fprintf(&b, "log-origin %s\n", m.LogOrigin)
	fmt.Fprintf(&b, "checkpoint %d %s\n", m.CheckpointSize, base64.StdEncoding.EncodeToString(m.CheckpointRoot))
	fmt.Fprintf(&b, "records %d\n", m.Records)
	if c := m.Sealed; c != nil {
		fmt.Fprintf(&b, "sealed %d %d %d %d\n", c.ClearFields, c.ErasedFields, c.ClearKeys, c.ErasedKeys)
	}
	prev := ""
	for _, f := range m.Files {
		if !ValidBundlePath(f.Path) || f.Path == ManifestName || f.Path <= prev {
			return nil, fmt.Errorf("verify: manifest: bad or unsorted path %q", f.Path)
		}
		prev = f.Path
		fmt.Fprintf(&b, "file %s %d %s\n", hex.EncodeToString(f.SHA256[:]), f.Size, f.Path)
	}
	// Validate what we wrote with the parser the verifier uses, so the service never signs a
	// manifest its own verifier would refuse.
	if _, err := ParseManifest(b.String()); err != nil {
		return nil, fmt.Errorf("verify: internal: %w", err)
	}
	return b.Bytes(), nil
}

// Sign signs the manifest text as a note (the writer's side: the service signs with the
// ledger's key).
func (m *Manifest) Sign(s note.Signer) ([]byte, error) {
	text, err := m.Marshal()
	if err != nil {
		return nil, err
	}
	msg, err := note.Sign(&note.Note{Text: string(text)}, s)
	if err != nil {
		return nil, fmt.Errorf("verify: sign manifest: %w", err)
	}
	return msg, nil
}

// maxManifestFiles bounds the files a manifest may list (and so a bundle may hold).
const maxManifestFiles = 100_000

// ParseManifest parses a manifest's text strictly: every line, in order, nothing else.
func ParseManifest(text string) (*Manifest, error) {
	if !strings.HasSuffix(text, "\n") {
		return nil, errors.New("manifest: text does not end with a newline")
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	m := &Manifest{}
	i := 0
	next := func(key string) (string, error) {
		if i >= len(lines) {
			return "", fmt.Errorf("manifest: missing %q line", key)
		}
		k, v, ok := strings.Cut(lines[i], " ")
		if !ok || k != key || v == "" {
			return "", fmt.Errorf("manifest: line %d: want %q, got %q", i+1, key, clip(lines[i]))
		}
		i++
		return v, nil
	}
	unq := func(key, v string) (string, error) {
		var s string
		if err := json.Unmarshal([]byte(v), &s); err != nil || !strings.HasPrefix(v, `"`) {
			return "", fmt.Errorf("manifest: %s: not a JSON string", key)
		}
		return s, nil
	}
	if len(lines) == 0 || lines[0] != ManifestHeader {
		return nil, fmt.Errorf("manifest: first line is not %q", ManifestHeader)
	}
	i = 1
	var v string
	var err error
	if v, err = next("export"); err != nil {
		return nil, err
	}
	if !exportIDRE.MatchString(v) {
		return nil, fmt.Errorf("manifest: export id %q", clip(v))
	}
	m.ExportID = v
	if v, err = next("kind"); err != nil {
		return nil, err
	}
	if m.Kind = Kind(v); !m.Kind.Valid() {
		return nil, fmt.Errorf("manifest: kind %q", clip(v))
	}
	if v, err = next("tenant"); err != nil {
		return nil, err
	}
	if !lineage.ValidTenant(v) {
		return nil, fmt.Errorf("manifest: tenant %q", clip(v))
	}
	m.Tenant = v
	if v, err = next("ai-system"); err != nil {
		return nil, err
	}
	if m.AISystem, err = unq("ai-system", v); err != nil {
		return nil, err
	}
	if v, err = next("period"); err != nil {
		return nil, err
	}
	a, b, ok := strings.Cut(v, " ")
	if m.From, err = time.Parse(time.RFC3339Nano, a); !ok || err != nil {
		return nil, fmt.Errorf("manifest: period %q", clip(v))
	}
	if m.To, err = time.Parse(time.RFC3339Nano, b); err != nil || !m.From.Before(m.To) {
		return nil, fmt.Errorf("manifest: period %q", clip(v))
	}
	if v, err = next("created"); err != nil {
		return nil, err
	}
	if m.Created, err = time.Parse(time.RFC3339Nano, v); err != nil {
		return nil, fmt.Errorf("manifest: created %q", clip(v))
	}
	if v, err = next("requested-by"); err != nil {
		return nil, err
	}
	if m.RequestedBy, err = unq("requested-by", v); err != nil {
		return nil, err
	}
	if m.LogOrigin, err = next("log-origin"); err != nil {
		return nil, err
	}
	if v, err = next("checkpoint"); err != nil {
		return nil, err
	}
	a, b, ok = strings.Cut(v, " ")
	if m.CheckpointSize, err = strconv.ParseUint(a, 10, 64); !ok || err != nil {
		return nil, fmt.Errorf("manifest: checkpoint %q", clip(v))
	}
	if m.CheckpointRoot, err = base64.StdEncoding.DecodeString(b); err != nil || len(m.CheckpointRoot) != 32 {
		return nil, fmt.Errorf("manifest: checkpoint root %q", clip(b))
	}
	if v, err = next("records"); err != nil {
		return nil, err
	}
	if m.Records, err = strconv.ParseUint(v, 10, 64); err != nil {
		return nil, fmt.Errorf("manifest: records %q", clip(v))
	}
	if i < len(lines) && strings.HasPrefix(lines[i], "sealed ") {
		if v, err = next("sealed"); err != nil {
			return nil, err
		}
		if m.Sealed, err = parseSealedLine(v); err != nil {
			return nil, err
		}
	}
	prev := ""
	for ; i < len(lines); i++ {
		f, err := parseFileLine(lines[i])
		if err != nil {
			return nil, fmt.Errorf("manifest: line %d: %w", i+1, err)
		}
		if f.Path <= prev {
			return nil, fmt.Errorf("manifest: line %d: %q is listed twice or out of order", i+1, f.Path)
		}
		prev = f.Path
		if len(m.Files) >= maxManifestFiles {
			return nil, fmt.Errorf("manifest: more than %d files", maxManifestFiles)
		}
		m.Files = append(m.Files, f)
	}
	if len(m.Files) == 0 {
		return nil, errors.New("manifest: lists no files")
	}
	return m, nil
}

// parseSealedLine parses the value of a "sealed" line: four decimal counts, canonical (no sign,
// no leading zero), the keys at most the fields.
func parseSealedLine(v string) (*SealedCounts, error) {
	parts := strings.Split(v, " ")
	if len(parts) != 4 {
		return nil, fmt.Errorf("manifest: sealed %q: want four counts", clip(v))
	}
	var n [4]uint64
	for i, p := range parts {
		var err error
		if n[i], err = strconv.ParseUint(p, 10, 64); err != nil || strconv.FormatUint(n[i], 10) != p {
			return nil, fmt.Errorf("manifest: sealed %q: not a count", clip(v))
		}
	}
	c := &SealedCounts{ClearFields: n[0], ErasedFields: n[1], ClearKeys: n[2], ErasedKeys: n[3]}
	if c.ClearKeys > c.ClearFields || c.ErasedKeys > c.ErasedFields {
		return nil, fmt.Errorf("manifest: sealed %q: more keys than fields", clip(v))
	}
	return c, nil
}

func parseFileLine(line string) (ManifestFile, error) {
	var f ManifestFile
	parts := strings.Split(line, " ")
	if len(parts) != 4 || parts[0] != "file" {
		return f, fmt.Errorf("want \"file <sha256> <size> <path>\", got %q", clip(line))
	}
	sum, err := hex.DecodeString(parts[1])
	if err != nil || len(sum) != 32 || parts[1] != strings.ToLower(parts[1]) {
		return f, fmt.Errorf("bad sha256 %q", clip(parts[1]))
	}
	copy(f.SHA256[:], sum)
	if f.Size, err = strconv.ParseInt(parts[2], 10, 64); err != nil || f.Size < 0 {
		return f, fmt.Errorf("bad size %q", clip(parts[2]))
	}
	if !ValidBundlePath(parts[3]) || parts[3] == ManifestName {
		return f, fmt.Errorf("bad path %q", clip(parts[3]))
	}
	f.Path = parts[3]
	return f, nil
}

// clip shortens untrusted text quoted in an error.
func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
