package report

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/lineage-audit/lineage/internal/atomicfile"
	"github.com/lineage-audit/lineage/ledger"
	"github.com/lineage-audit/lineage/ledger/seal"
	"github.com/lineage-audit/lineage/query/findings"
	"github.com/lineage-audit/lineage/verify"
	"golang.org/x/mod/sumdb/note"
)

// Exporter produces exports from the log. It reads the log, never the index: the log is the
// truth, and reading it the same way on every ledger driver makes an export independent of
// which index Lineage runs on.
type Exporter struct {
	Log ledger.Log
	// Signer signs bundle manifests: the ledger's key, whose verifier also checks checkpoints.
	Signer note.Signer
	// Verifier is the log's public key; the pinned checkpoint is checked with it before use.
	Verifier note.Verifier
	// ChunkSize is the number of entries read per Entries call (default 1024: four full
	// tlog-tiles entry bundles, so Tessera reads each bundle file once).
	ChunkSize int
	// GapDays is the shortest run of days without records reported as a retention gap
	// (default 7: a quiet weekend is not a gap, a missing week is).
	GapDays int
	// Findings configures the agent-identity findings per tenant, as lineaged's
	// --findings-config does for the live findings (nil: findings.Default for every tenant).
	Findings *findings.Configs
	// Keys is the erasure key store (docs/ERASURE.md): sealed (v2) entries of the tenant are
	// opened with it (sealed.go). Nil: an export that meets a sealed entry fails with
	// ErrNoKeyStore. Set, the decision tables also have the erased_fields column.
	Keys seal.KeyStore
	// Generator names the software in reports (default "lineage").
	Generator string
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Run identifies one export run.
type Run struct {
	// ID names the export; it becomes the bundle's file name. It must match ^[a-z0-9][a-z0-9_.-]*$.
	ID string
	// RequestedBy is the principal (or "scheduler") the report names as requester.
	RequestedBy string
	// Progress, if set, is called as the export advances (after every chunk of the scan).
	Progress func(Progress)
}

// Progress is how far an export is.
type Progress struct {
	// Phase is "scan" (reading the log), "proofs", "uses", "report" or "bundle".
	Phase string `json:"phase"`
	// Scanned of Total log entries have been read; Matched records were in scope.
	Scanned uint64 `json:"scanned"`
	Total   uint64 `json:"total"`
	Matched uint64 `json:"matched"`
}

// FileInfo is a file an export produced.
type FileInfo struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Result is what an export produced.
type Result struct {
	ID  string
	Dir string
	// Bundle is the evidence archive's file name in Dir.
	Bundle       string
	BundleSHA256 string
	BundleSize   int64
	// Files are the downloadable files in Dir: the report files of the requested formats and
	// the bundle.
	Files      []FileInfo
	Checkpoint ledger.Checkpoint
	Records    uint64
	Scanned    uint64
	Summary    Summary
	Findings   []Finding
	// IdentityFindings counts the agent-identity findings of the report.
	IdentityFindings int
	// ClearKeyIDs are the subject keys (docs/ERASURE.md) whose fields the export's files hold
	// in clear, sorted: when one of them is erased, the files must go (exporters.Service.PurgeKeys).
	// Key ids are pseudonyms, not personal data.
	ClearKeyIDs []string
}

// Export runs one export into dir (created; it must not hold an earlier export). It pins the
// latest signed checkpoint, reads every entry below it, and writes the report files and the
// evidence bundle. Memory stays bounded whatever the log's size: rows go to files as they are
// produced, and only per-person, per-agent, per-model, per-policy and per-day aggregates, and
// the findings engine's bounded state and findings (identity.go), are kept.
func (e *Exporter) Export(ctx context.Context, req Request, dir string, run Run) (res *Result, err error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	if !verify.ValidExportID(run.ID) {
		return nil, fmt.Errorf("exporters: export id %q: want ^[a-z0-9][a-z0-9_.-]*$", run.ID)
	}
	if e.Log == nil || e.Signer == nil || e.Verifier == nil {
		return nil, errors.New("exporters: Exporter needs Log, Signer and Verifier")
	}
	now := time.Now
	if e.Now != nil {
		now = e.Now
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("exporters: %w", err)
	}
	work := filepath.Join(dir, ".staging")
	if _, err := os.Stat(work); err == nil {
		// A crash left a half-written export: start over.
		if err := os.RemoveAll(work); err != nil {
			return nil, fmt.Errorf("exporters: %w", err)
		}
	}
	defer os.RemoveAll(work)
	x := &exportRun{
		e: e, req: req, run: run, dir: dir,
		st:        &staging{root: filepath.Join(work, "bundle")},
		tmp:       filepath.Join(work, "tmp"),
		agg:       newAggregator(req.Kind),
		ident:     newIdentityAgg(e.Findings, req),
		needle:    []byte(`"tenant":"` + req.Tenant + `"`),
		clearKeys: map[string]struct{}{},
	}
	if err := os.MkdirAll(x.tmp, 0o755); err != nil {
		return nil, fmt.Errorf("exporters: %w", err)
	}
	x.created = now().UTC()
	defer x.closeAll()
	if err := x.pin(ctx); err != nil {
		return nil, err
	}
	if err := x.open(); err != nil {
		return nil, err
	}
	if err := x.scan(ctx); err != nil {
		return nil, err
	}
	return x.finish(ctx)
}

// pin takes the latest checkpoint and checks its signature: every proof in the bundle is
// against this one checkpoint, and every entry read lies below its size.
func (x *exportRun) pin(ctx context.Context) error {
	cp, err := x.e.Log.Checkpoint(ctx)
	if errors.Is(err, ledger.ErrNotFound) {
		return errors.New("exporters: the log has no signed checkpoint yet")
	}
	if err != nil {
		return fmt.Errorf("exporters: checkpoint: %w", err)
	}
	if x.cp, err = ledger.OpenCheckpoint(cp.Note, x.e.Verifier); err != nil {
		return fmt.Errorf("exporters: the log's checkpoint does not verify: %w", err)
	}
	return nil
}

// open creates the streamed tables and the records writer.
func (x *exportRun) open() error {
	var err error
	header := decisionHeader
	if x.e.Keys != nil {
		header = append(slices.Clip(header), "erased_fields")
	}
	if x.decisions, err = newStreamTable(x.st, x.tmp, "decisions", header, htmlSampleRows); err != nil {
		return err
	}
	if x.oversight, err = newStreamTable(x.st, x.tmp, "oversight_events", header, htmlSampleRows); err != nil {
		return err
	}
	if x.denies, err = newStreamTable(x.st, x.tmp, "denies", header, htmlSampleRows); err != nil {
		return err
	}
	x.records = &recordsWriter{st: x.st}
	x.uses = newUseGrouper(x.tmp)
	return nil
}

func (x *exportRun) closeAll() {
	for _, t := range []*streamTable{x.decisions, x.oversight, x.denies, x.usesTable} {
		if t != nil {
			t.close()
		}
	}
	if x.records != nil {
		x.records.abort()
	}
	if x.uses != nil {
		x.uses.close()
	}
	if x.prover != nil {
		x.prover.close()
	}
	if x.evidence != nil {
		x.evidence.close()
	}
}

func (x *exportRun) progress(phase string) {
	if x.run.Progress != nil {
		x.run.Progress(Progress{Phase: phase, Scanned: x.scanned, Total: x.cp.Size, Matched: x.agg.summary.Records})
	}
}

// finish writes everything that follows the scan: the uses, the small tables, report.json,
// report.html, the manifest and the bundle; then moves the requested report files into dir.
func (x *exportRun) finish(ctx context.Context) (*Result, error) {
	x.progress("uses")
	var err error
	if x.usesTable, err = newStreamTable(x.st, x.tmp, "uses", useHeader, 0); err != nil {
		return nil, err
	}
	var cells []string
	err = x.uses.finish(x.tmp, func(u *useAgg) error {
		x.agg.use(u)
		row := u.row()
		x.sampleUse(&row)
		cells = useCells(&row, cells)
		return x.usesTable.add(&row, cells)
	})
	if err != nil {
		return nil, fmt.Errorf("exporters: uses: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	x.progress("report")
	for _, t := range []*streamTable{x.decisions, x.oversight, x.denies, x.usesTable} {
		if err := t.finish(); err != nil {
			return nil, err
		}
	}
	if err := x.records.finish(); err != nil {
		return nil, err
	}
	h := x.header()
	x.ident.truncated(x.agg.truncated)
	h.IdentityFindings = x.ident.rows()
	x.agg.fill(h, x.gapDays())
	h.Summary.Erasure = x.erasure.summary()
	small, err := writeSmallTables(x.st, h)
	if err != nil {
		return nil, err
	}
	for _, t := range []*streamTable{x.usesTable, x.oversight, x.denies, x.decisions} {
		h.Tables = append(h.Tables, TableInfo{File: t.name + ".csv", Rows: t.rows})
	}
	h.Tables = append(h.Tables, small...)
	if err := x.writeJSON(h); err != nil {
		return nil, err
	}
	if err := x.writeHTML(h); err != nil {
		return nil, err
	}
	if err := x.st.write(verify.CheckpointName, x.cp.Note); err != nil {
		return nil, err
	}

	x.progress("bundle")
	m := &verify.Manifest{
		ExportID: x.run.ID, Kind: x.req.Kind, Tenant: x.req.Tenant, AISystem: x.req.AISystem,
		From: x.req.From, To: x.req.To, Created: x.created, RequestedBy: x.run.RequestedBy,
		LogOrigin: x.cp.Origin, CheckpointSize: x.cp.Size, CheckpointRoot: x.cp.Hash,
		Records: x.records.n, Sealed: x.erasure.manifest(), Files: x.st.manifestFiles(),
	}
	signed, err := m.Sign(x.e.Signer)
	if err != nil {
		return nil, err
	}
	bundle := x.run.ID + ".zip"
	sum, size, err := writeBundle(filepath.Join(x.dir, bundle), signed, x.st.root, m.Files, x.created)
	if err != nil {
		return nil, err
	}
	res := &Result{
		ID: x.run.ID, Dir: x.dir, Bundle: bundle, BundleSHA256: hex.EncodeToString(sum[:]), BundleSize: size,
		Checkpoint: x.cp, Records: x.records.n, Scanned: x.scanned, Summary: h.Summary, Findings: h.Findings,
		IdentityFindings: len(h.IdentityFindings), ClearKeyIDs: x.clearKeyIDs(),
	}
	// The loose report files are the staged ones, moved (same file system) rather than copied.
	for _, f := range m.Files {
		name, ok := looseName(f.Path, x.req.Formats)
		if !ok {
			continue
		}
		dst := filepath.Join(x.dir, name)
		if err := os.Rename(filepath.Join(x.st.root, filepath.FromSlash(f.Path)), dst); err != nil {
			return nil, fmt.Errorf("exporters: %w", err)
		}
		if err := syncFile(dst); err != nil {
			return nil, fmt.Errorf("exporters: %w", err)
		}
		res.Files = append(res.Files, FileInfo{Name: name, Size: f.Size, SHA256: hex.EncodeToString(f.SHA256[:])})
	}
	res.Files = append(res.Files, FileInfo{Name: bundle, Size: size, SHA256: res.BundleSHA256})
	if err := atomicfile.SyncDir(x.dir); err != nil {
		return nil, fmt.Errorf("exporters: %w", err)
	}
	return res, nil
}

// looseName says whether a bundle file is offered as a download for formats, and under which
// name (report files are flattened into the export directory).
func looseName(path string, formats []string) (string, bool) {
	name, ok := strings.CutPrefix(path, "report/")
	if !ok {
		return "", false
	}
	ext := strings.TrimPrefix(filepath.Ext(name), ".")
	for _, f := range formats {
		if f == ext {
			return name, true
		}
	}
	return "", false
}

func (x *exportRun) gapDays() int {
	if x.e.GapDays > 0 {
		return x.e.GapDays
	}
	return 7
}

// header builds the report header's fixed part.
func (x *exportRun) header() *Header {
	gen := x.e.Generator
	if gen == "" {
		gen = "lineage"
	}
	title := "EU AI Act record-keeping report (Art. 12, 14, 19, 26(6))"
	if x.req.Kind == KindFannieMae {
		title = "Fannie Mae LL-2026-04 AI disclosure"
	}
	return &Header{
		Schema: DocumentSchema, ExportID: x.run.ID, Kind: x.req.Kind, Title: title,
		Tenant: x.req.Tenant, AISystem: x.req.AISystem,
		Period:      Period{From: FormatTime(x.req.From), To: FormatTime(x.req.To)},
		GeneratedAt: FormatTime(x.created), RequestedBy: x.run.RequestedBy, Generator: gen,
		Integrity: Integrity{
			LogOrigin: x.cp.Origin, CheckpointSize: x.cp.Size, CheckpointRoot: hex.EncodeToString(x.cp.Hash),
			CheckpointNote: string(x.cp.Note), EntriesScanned: x.scanned, RootRecomputed: x.rootOK,
			RecordsCited: x.records.n, Bundle: x.run.ID + ".zip",
			VerifyCommand: "lineagectl verify " + x.run.ID + ".zip --verifier-file <log public key file>",
		},
	}
}

// writeJSON assembles report.json: the header, then the streamed arrays spliced in.
func (x *exportRun) writeJSON(h *Header) error {
	head, err := json.MarshalIndent(h, "", " ")
	if err != nil {
		return fmt.Errorf("exporters: report.json: %w", err)
	}
	o, err := x.st.create("report/report.json")
	if err != nil {
		return err
	}
	err = func() error {
		if _, err := o.Write(head[:len(head)-1]); err != nil { // drop the closing brace
			return err
		}
		for _, t := range []*streamTable{x.usesTable, x.oversight, x.denies, x.decisions} {
			if err := t.splice(o); err != nil {
				return err
			}
		}
		_, err := io.WriteString(o, "\n}\n")
		return err
	}()
	if err != nil {
		o.abort()
		return fmt.Errorf("exporters: report.json: %w", err)
	}
	return o.close()
}
