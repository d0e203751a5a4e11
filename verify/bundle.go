package verify

import (
	"archive/zip"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/ledger"
	"github.com/lineage-audit/lineage/ledger/seal"
	"golang.org/x/mod/sumdb/note"
)

// VerifyBundle checks an evidence bundle offline, trusting nothing but the log's public key v.
// A bundle comes from outside (an examiner's share, an e-mail attachment), so it is read as
// hostile input: member names must be plain relative paths (no "..", no absolute paths, no
// backslashes), duplicates, symlinks, directories and encrypted members are refused, and every
// size is bounded. The archive must also have the strict layout checkZipLayout
// (verify/zipcheck.go) describes (archive-layout): every byte before the central directory
// belongs to a listed member, each local header agrees with the central directory, no comment,
// nothing after the end record; otherwise streaming readers could show members the verifier
// never read.
//
// The checks, each reported with the file or record it concerns:
//   - MANIFEST is a note signed by v (manifest-signature), well formed (manifest);
//   - checkpoint is a checkpoint signed by v (checkpoint-signature) and is the one the
//     manifest names (checkpoint-mismatch); with a witness policy (VerifyBundleWith), it
//     carries valid cosignatures from the policy's quorum (checkpoint-witness);
//   - every file the manifest lists is present (file-missing), has its size and SHA-256
//     (file-changed), reads cleanly (file-unreadable), and no other file is present
//     (file-extra);
//   - every record line holds a canonical ledger entry for the record it names (record-invalid),
//     inside the export's tenant, period and AI system (record-scope), in increasing log order
//     (record-order), whose inclusion proof verifies against the checkpoint (record-inclusion);
//     their number is the manifest's (record-count);
//   - every opening a record line carries for a sealed (v2) entry matches its field's
//     commitment in the entry, names a sealed field, and is given once (record-opening); a v1
//     line carries none. The scope and citation checks read the record with its openings, and
//     the sealed fields counted over the lines (clear: with an opening; erased: without) are
//     the manifest's "sealed" line, when it has one (sealed-count);
//   - every record a report table cites by log_index is in the bundle, with the id and effect
//     the table says (record-missing, citation-mismatch).
//
// It returns the report and, if any check failed, an error (a *VerifyError, matching
// ErrBundleInvalid with errors.Is) summarising the problems; the report lists them all.
func VerifyBundle(path string, v note.Verifier) (*Report, error) {
	return VerifyBundleWith(path, v, BundleOptions{})
}

// BundleOptions are the optional checks of VerifyBundleWith.
type BundleOptions struct {
	// Witnesses, when set, requires the bundle's checkpoint to carry valid cosignatures from the
	// policy's quorum (checkpoint-witness); the report's Witnesses says who cosigned.
	Witnesses *WitnessPolicy
}

// VerifyBundleWith is VerifyBundle with the optional checks of o.
func VerifyBundleWith(path string, v note.Verifier, o BundleOptions) (*Report, error) {
	vr := &verifier{rep: &Report{Bundle: path}, v: v, witnesses: o.Witnesses}
	vr.run(path)
	return vr.rep, vr.rep.err()
}

// Bounds on what a bundle may make the verifier read.
const (
	maxManifestSize   = 16 << 20
	maxCheckpointSize = 64 << 10
	maxBundleFileSize = 16 << 30
	maxBundleTotal    = 64 << 30
	maxLineSize       = 1 << 20 // a records line or a CSV row
	maxListedProblems = 50      // per code; the rest are counted
	maxRatio          = 1100    // DEFLATE's largest expansion is about 1032:1
)

// Problem codes.
const (
	ProblemArchive            = "archive"
	ProblemArchiveLayout      = "archive-layout"
	ProblemUnsafeEntry        = "unsafe-entry"
	ProblemDuplicateEntry     = "duplicate-entry"
	ProblemManifest           = "manifest"
	ProblemManifestSignature  = "manifest-signature"
	ProblemCheckpoint         = "checkpoint-signature"
	ProblemCheckpointMismatch = "checkpoint-mismatch"
	ProblemCheckpointWitness  = "checkpoint-witness"
	ProblemFileMissing        = "file-missing"
	ProblemFileExtra          = "file-extra"
	ProblemFileChanged        = "file-changed"
	ProblemFileUnreadable     = "file-unreadable"
	ProblemRecordInvalid      = "record-invalid"
	ProblemRecordScope        = "record-scope"
	ProblemRecordOrder        = "record-order"
	ProblemRecordInclusion    = "record-inclusion"
	ProblemRecordCount        = "record-count"
	ProblemRecordOpening      = "record-opening"
	ProblemSealedCount        = "sealed-count"
	ProblemRecordMissing      = "record-missing"
	ProblemCitationMismatch   = "citation-mismatch"
)

// ErrBundleInvalid is matched (errors.Is) by the error VerifyBundle returns when a check fails.
var ErrBundleInvalid = errors.New("verify: the bundle does not verify")

// Problem is one failed check.
type Problem struct {
	Code   string `json:"code"`
	File   string `json:"file,omitempty"`
	Record string `json:"record,omitempty"`
	Detail string `json:"detail"`
}

func (p Problem) String() string {
	s := p.Code
	if p.File != "" {
		s += " " + p.File
	}
	if p.Record != "" {
		s += " [" + p.Record + "]"
	}
	return s + ": " + p.Detail
}

// Report is what VerifyBundle found.
type Report struct {
	Bundle string `json:"bundle"`
	// Manifest is the bundle's manifest as parsed (nil if it could not be); ManifestSigned
	// says whether its signature verified. An unsigned manifest is parsed only to say more
	// precisely what else is wrong; nothing in it is trusted.
	Manifest       *Manifest          `json:"manifest,omitempty"`
	ManifestSigned bool               `json:"manifest_signed"`
	Checkpoint     *ledger.Checkpoint `json:"checkpoint,omitempty"`
	// Witnesses is what the checkpoint's cosignatures say about the witness policy, when one
	// was given (BundleOptions.Witnesses) and the checkpoint verified.
	Witnesses *WitnessStatus `json:"witnesses,omitempty"`
	// OtherSignatures counts the checkpoint's signatures besides the log's (witness
	// cosignatures, not checked without a policy).
	OtherSignatures int `json:"other_signatures"`
	// Files is the number of files whose size and SHA-256 match the manifest.
	Files int `json:"files"`
	// Records is the number of records fully verified (entry, scope, inclusion proof).
	Records uint64 `json:"records"`
	// Citations is the number of table rows whose cited record was found and matches.
	Citations uint64 `json:"citations"`
	// Sealed counts the sealed fields of the records lines (docs/ERASURE.md): clear (an opening
	// checked against its commitment) and erased at export time; nil when no record has one.
	Sealed   *SealedCounts `json:"sealed,omitempty"`
	Problems []Problem     `json:"problems"`
	// Unlisted counts problems beyond maxListedProblems per code.
	Unlisted int `json:"unlisted"`

	perCode map[string]int
}

// OK tells whether every check passed.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

func (r *Report) add(p Problem) {
	if r.perCode == nil {
		r.perCode = map[string]int{}
	}
	r.perCode[p.Code]++
	if r.perCode[p.Code] > maxListedProblems {
		r.Unlisted++
		return
	}
	r.Problems = append(r.Problems, p)
}

func (r *Report) err() error {
	if r.OK() {
		return nil
	}
	return &VerifyError{Problems: r.Problems, Unlisted: r.Unlisted}
}

// VerifyError lists why a bundle does not verify.
type VerifyError struct {
	Problems []Problem
	Unlisted int
}

func (e *VerifyError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "verify: the bundle does not verify: %d problem(s)", len(e.Problems)+e.Unlisted)
	for i, p := range e.Problems {
		if i == 5 {
			fmt.Fprintf(&b, "; …")
			break
		}
		fmt.Fprintf(&b, "; %s", p)
	}
	return b.String()
}

// Unwrap makes errors.Is(err, ErrBundleInvalid) true.
func (e *VerifyError) Unwrap() error { return ErrBundleInvalid }

// recordRef is what the verifier keeps per verified record to check citations: 16 bytes, so a
// million records cost 16 MB.
type recordRef struct {
	index uint64
	fp    uint64 // fnv64a(id \x00 effect)
}

type verifier struct {
	rep       *Report
	v         note.Verifier
	witnesses *WitnessPolicy
	m         *Manifest
	cp        *ledger.Checkpoint
	entries   map[string]*zip.File
	refs      []recordRef
	lastIdx   int64
	lines     uint64
	total     int64
	// sealed counts the sealed fields of the records lines; clearKeys and erasedKeys are the
	// distinct key ids of each group.
	sealed                SealedCounts
	clearKeys, erasedKeys map[string]struct{}
}

func fingerprint(id, effect string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(id))
	h.Write([]byte{0})
	h.Write([]byte(effect))
	return h.Sum64()
}

func (vr *verifier) run(path string) {
	f, err := os.Open(path)
	if err != nil {
		vr.rep.add(Problem{Code: ProblemArchive, Detail: err.Error()})
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		vr.rep.add(Problem{Code: ProblemArchive, Detail: "not a regular file"})
		return
	}
	zr, err := zip.NewReader(f, st.Size())
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		vr.rep.add(Problem{Code: ProblemArchive, Detail: "not a readable ZIP archive: " + err.Error()})
		return
	}
	if !vr.index(zr) {
		return
	}
	if err := checkZipLayout(f, st.Size(), zr.File); err != nil {
		// Nothing else is checked: what the archive holds depends on the tool that reads it.
		p := Problem{Code: ProblemArchiveLayout, Detail: err.Error()}
		var le *LayoutError
		if errors.As(err, &le) {
			p.Detail = fmt.Sprintf("%s (at offset %d)", le.Detail, le.Offset)
			if le.Member != "" {
				p.File = le.Member
				if !ValidBundlePath(le.Member) {
					p.File = strconv.Quote(clip(le.Member))
				}
			}
		}
		vr.rep.add(p)
		return
	}
	if !vr.manifest() {
		return
	}
	vr.checkpoint()
	vr.files()
}

// index lists the archive's members, refusing unsafe ones.
func (vr *verifier) index(zr *zip.Reader) bool {
	vr.entries = map[string]*zip.File{}
	if len(zr.File) > maxManifestFiles+1 {
		vr.rep.add(Problem{Code: ProblemArchive, Detail: fmt.Sprintf("%d members; a bundle has at most %d", len(zr.File), maxManifestFiles+1)})
		return false
	}
	for _, zf := range zr.File {
		name := zf.Name
		switch {
		case !ValidBundlePath(name):
			vr.rep.add(Problem{Code: ProblemUnsafeEntry, File: strconv.Quote(clip(name)), Detail: "member name is not a plain relative path (absolute, \"..\", backslash or unusual characters)"})
			continue
		case zf.Mode()&fs.ModeType != 0:
			vr.rep.add(Problem{Code: ProblemUnsafeEntry, File: name, Detail: "member is not a regular file (" + zf.Mode().Type().String() + ")"})
			continue
		case zf.Flags&0x1 != 0:
			vr.rep.add(Problem{Code: ProblemUnsafeEntry, File: name, Detail: "member is encrypted"})
			continue
		case zf.UncompressedSize64 > maxBundleFileSize:
			vr.rep.add(Problem{Code: ProblemUnsafeEntry, File: name, Detail: fmt.Sprintf("member declares %d bytes; the limit is %d", zf.UncompressedSize64, int64(maxBundleFileSize))})
			continue
		case zf.UncompressedSize64 > maxRatio*zf.CompressedSize64+1<<20:
			// DEFLATE cannot expand more than ~1032:1; a member that claims more is a bomb,
			// and the archive's own header (Go's reader enforces it) is what bounds the
			// inflation of a member whose manifest cannot be trusted.
			vr.rep.add(Problem{Code: ProblemUnsafeEntry, File: name, Detail: fmt.Sprintf("member declares %d bytes from %d compressed: not a plausible compression ratio", zf.UncompressedSize64, zf.CompressedSize64)})
			continue
		}
		if _, dup := vr.entries[name]; dup {
			vr.rep.add(Problem{Code: ProblemDuplicateEntry, File: name, Detail: "the archive holds two members with this name: which one a tool extracts is ambiguous"})
			continue
		}
		vr.entries[name] = zf
	}
	return true
}

// manifest reads and opens MANIFEST. It returns false if there is nothing to check against.
func (vr *verifier) manifest() bool {
	zf := vr.entries[ManifestName]
	if zf == nil {
		vr.rep.add(Problem{Code: ProblemManifest, File: ManifestName, Detail: "the bundle has no MANIFEST"})
		return false
	}
	raw, err := readMember(zf, maxManifestSize)
	if err != nil {
		vr.rep.add(Problem{Code: ProblemFileUnreadable, File: ManifestName, Detail: err.Error()})
		return false
	}
	text := ""
	n, err := note.Open(raw, note.VerifierList(ledger.VerifiersOf(vr.v)...))
	var unverified *note.UnverifiedNoteError
	var invalid *note.InvalidSignatureError
	switch {
	case err == nil:
		vr.rep.ManifestSigned = true
		text = n.Text
	case errors.As(err, &unverified):
		vr.rep.add(Problem{Code: ProblemManifestSignature, File: ManifestName, Detail: fmt.Sprintf("not signed by the log's key %s: the manifest was replaced or signed by someone else", vr.v.Name())})
		text = unverified.Note.Text
	case errors.As(err, &invalid):
		vr.rep.add(Problem{Code: ProblemManifestSignature, File: ManifestName, Detail: fmt.Sprintf("the signature by %s does not match the manifest: it was altered after signing", invalid.Name)})
		text = noteText(raw)
	default:
		vr.rep.add(Problem{Code: ProblemManifestSignature, File: ManifestName, Detail: "not a signed note: " + err.Error()})
		text = noteText(raw)
	}
	m, err := ParseManifest(text)
	if err != nil {
		vr.rep.add(Problem{Code: ProblemManifest, File: ManifestName, Detail: err.Error()})
		return false
	}
	vr.m, vr.rep.Manifest = m, m
	if m.LogOrigin != vr.v.Name() {
		vr.rep.add(Problem{Code: ProblemManifest, File: ManifestName, Detail: fmt.Sprintf("the manifest names log %q, but the key given is for %q", m.LogOrigin, vr.v.Name())})
	}
	return true
}

// noteText returns the text part of a note whose signature could not be checked.
func noteText(raw []byte) string {
	if i := bytes.LastIndex(raw, []byte("\n\n")); i >= 0 {
		return string(raw[:i+1])
	}
	return string(raw)
}

// checkpoint verifies the bundle's checkpoint. Inclusion proofs are only checked against a
// checkpoint that verifies.
func (vr *verifier) checkpoint() {
	zf := vr.entries[CheckpointName]
	if zf == nil {
		return // reported as file-missing (or file-extra, if the manifest omits it)
	}
	listed := slices.ContainsFunc(vr.m.Files, func(f ManifestFile) bool { return f.Path == CheckpointName })
	if !listed {
		vr.rep.add(Problem{Code: ProblemManifest, File: ManifestName, Detail: "the manifest does not list the checkpoint"})
	}
	raw, err := readMember(zf, maxCheckpointSize)
	if err != nil {
		vr.rep.add(Problem{Code: ProblemFileUnreadable, File: CheckpointName, Detail: err.Error()})
		return
	}
	cp, err := ledger.OpenCheckpoint(raw, vr.v)
	if err != nil {
		vr.rep.add(Problem{Code: ProblemCheckpoint, File: CheckpointName, Detail: fmt.Sprintf("not a checkpoint signed by the log's key %s (forged or altered): %v", vr.v.Name(), err)})
		return
	}
	if cp.Size != vr.m.CheckpointSize || !bytes.Equal(cp.Hash, vr.m.CheckpointRoot) {
		vr.rep.add(Problem{Code: ProblemCheckpointMismatch, File: CheckpointName, Detail: fmt.Sprintf("checkpoint is size %d root %x; the manifest says size %d root %x", cp.Size, cp.Hash, vr.m.CheckpointSize, vr.m.CheckpointRoot)})
		return
	}
	if others, err := OtherSignatures(raw, vr.v); err == nil {
		vr.rep.OtherSignatures = len(others)
	}
	if vr.witnesses != nil {
		// The inclusion proofs are still checked against the checkpoint: the problem is who
		// vouches for it, not what it commits to.
		st, err := vr.witnesses.Status(raw)
		switch {
		case err != nil:
			vr.rep.add(Problem{Code: ProblemCheckpointWitness, File: CheckpointName, Detail: err.Error()})
		case !st.Satisfied:
			vr.rep.Witnesses = st
			vr.rep.add(Problem{Code: ProblemCheckpointWitness, File: CheckpointName, Detail: fmt.Sprintf("the checkpoint lacks the witness quorum (%s): %s", st.Quorum, st.Summary())})
		default:
			vr.rep.Witnesses = st
		}
	}
	vr.cp, vr.rep.Checkpoint = &cp, &cp
}

// files checks every listed file, records files first (their records are what the tables
// cite), then the rest.
func (vr *verifier) files() {
	listed := map[string]bool{ManifestName: true}
	for _, f := range vr.m.Files {
		listed[f.Path] = true
		if vr.entries[f.Path] == nil {
			vr.rep.add(Problem{Code: ProblemFileMissing, File: f.Path, Detail: "listed in the manifest but not in the bundle"})
		}
	}
	names := make([]string, 0, len(vr.entries))
	for name := range vr.entries {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if !listed[name] {
			vr.rep.add(Problem{Code: ProblemFileExtra, File: name, Detail: "in the bundle but not in the manifest"})
		}
	}
	vr.lastIdx = -1
	for _, f := range vr.m.Files {
		if isRecordsFile(f.Path) && vr.entries[f.Path] != nil {
			vr.check(f, vr.parseRecords)
		}
	}
	slices.SortFunc(vr.refs, func(a, b recordRef) int {
		switch {
		case a.index < b.index:
			return -1
		case a.index > b.index:
			return 1
		}
		return 0
	})
	if vr.lines != vr.m.Records {
		vr.rep.add(Problem{Code: ProblemRecordCount, File: "records/", Detail: fmt.Sprintf("the manifest says %d records; the bundle holds %d", vr.m.Records, vr.lines)})
	}
	vr.sealedCounts()
	for _, f := range vr.m.Files {
		if isRecordsFile(f.Path) || vr.entries[f.Path] == nil {
			continue
		}
		var parse func(string, io.Reader) error
		if strings.HasPrefix(f.Path, "report/") && strings.HasSuffix(f.Path, ".csv") {
			parse = vr.parseCitations
		}
		vr.check(f, parse)
	}
}

func isRecordsFile(p string) bool {
	return strings.HasPrefix(p, "records/") && strings.HasSuffix(p, ".ndjson")
}

// check streams one member through SHA-256 (and parse, if set) and compares it with the
// manifest.
func (vr *verifier) check(mf ManifestFile, parse func(string, io.Reader) error) {
	zf := vr.entries[mf.Path]
	if vr.total+mf.Size > maxBundleTotal {
		vr.rep.add(Problem{Code: ProblemFileUnreadable, File: mf.Path, Detail: fmt.Sprintf("the bundle's files exceed %d bytes in total; not read", int64(maxBundleTotal))})
		return
	}
	rc, err := openMember(zf)
	if err != nil {
		vr.rep.add(Problem{Code: ProblemFileUnreadable, File: mf.Path, Detail: err.Error()})
		return
	}
	defer rc.Close()
	h := sha256.New()
	limit := min(mf.Size+1, maxBundleFileSize)
	cr := &countReader{r: io.LimitReader(rc, limit)}
	r := io.TeeReader(cr, h)
	if parse != nil {
		if err := parse(mf.Path, r); err != nil {
			vr.rep.add(Problem{Code: ProblemFileUnreadable, File: mf.Path, Detail: err.Error()})
			return
		}
	}
	if _, err := io.Copy(io.Discard, r); err != nil {
		vr.rep.add(Problem{Code: ProblemFileUnreadable, File: mf.Path, Detail: err.Error()})
		return
	}
	vr.total += cr.n
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	switch {
	case cr.n != mf.Size:
		vr.rep.add(Problem{Code: ProblemFileChanged, File: mf.Path, Detail: fmt.Sprintf("%s bytes; the manifest says %d", sizeText(cr.n, mf.Size), mf.Size)})
	case sum != mf.SHA256:
		vr.rep.add(Problem{Code: ProblemFileChanged, File: mf.Path, Detail: fmt.Sprintf("SHA-256 is %s; the manifest says %s: the content was changed", hex.EncodeToString(sum[:]), hex.EncodeToString(mf.SHA256[:]))})
	default:
		vr.rep.Files++
	}
}

func sizeText(n, want int64) string {
	if n > want {
		return fmt.Sprintf("more than %d", want)
	}
	return strconv.FormatInt(n, 10)
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// parseRecords verifies each record line of a records file.
func (vr *verifier) parseRecords(path string, r io.Reader) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var buf []byte
	for lineNo := 1; ; lineNo++ {
		line, err := readBoundedLine(br, &buf)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("line %d: %w", lineNo, err)
		}
		vr.lines++
		vr.record(path, lineNo, line)
	}
}

// record verifies one records line.
func (vr *verifier) record(path string, lineNo int, line []byte) {
	bad := func(code, rec, format string, args ...any) {
		vr.rep.add(Problem{Code: code, File: fmt.Sprintf("%s:%d", path, lineNo), Record: rec, Detail: fmt.Sprintf(format, args...)})
	}
	var ev EvidenceLine
	d := json.NewDecoder(bytes.NewReader(line))
	d.DisallowUnknownFields()
	if err := d.Decode(&ev); err != nil || d.More() {
		bad(ProblemRecordInvalid, "", "not a record line: %v", err)
		return
	}
	ref := fmt.Sprintf("log index %d, id %s", ev.Index, clip(ev.ID))
	if int64(ev.Index) <= vr.lastIdx || ev.Index > 1<<62 {
		bad(ProblemRecordOrder, ref, "log index %d does not follow %d: records are listed once each, in log order", ev.Index, vr.lastIdx)
		return
	}
	vr.lastIdx = int64(ev.Index)
	entry := []byte(ev.Entry)
	env, err := DecodeEntry(entry)
	if err != nil {
		bad(ProblemRecordInvalid, ref, "the entry is not a canonical Lineage ledger entry: %v", err)
		return
	}
	rec := env.Record
	if env.V == seal.EnvelopeV2 || len(ev.Openings) > 0 {
		// The record as the export read it: each opening checked against its commitment.
		opened, _, fields, err := LeafRecord(entry, ev.Openings)
		if err != nil {
			bad(ProblemRecordOpening, ref, "the openings do not open this entry's sealed fields: %v", err)
			return
		}
		rec = opened
		vr.countSealed(fields)
	}
	if rec.ID != ev.ID {
		bad(ProblemRecordInvalid, ref, "the line names record %q but the entry holds %q", clip(ev.ID), clip(rec.ID))
		return
	}
	vr.refs = append(vr.refs, recordRef{index: ev.Index, fp: fingerprint(rec.ID, rec.Decision.Effect)})
	ok := true
	if why := vr.outOfScope(rec); why != "" {
		bad(ProblemRecordScope, ref, "%s", why)
		ok = false
	}
	if vr.cp == nil {
		ok = false // no valid checkpoint: the proof cannot be checked (reported once, above)
	} else if err := ledger.VerifyInclusion(entry, ev.Index, ev.Proof, *vr.cp); err != nil {
		bad(ProblemRecordInclusion, ref, "the inclusion proof does not place this entry at index %d of the checkpoint's tree: %v", ev.Index, err)
		ok = false
	}
	if ok {
		vr.rep.Records++
	}
}

// countSealed adds a record's sealed fields to the counts.
func (vr *verifier) countSealed(fields []SealedField) {
	if vr.clearKeys == nil {
		vr.clearKeys, vr.erasedKeys = map[string]struct{}{}, map[string]struct{}{}
	}
	for _, f := range fields {
		if f.Clear {
			vr.sealed.ClearFields++
			vr.clearKeys[f.KeyID] = struct{}{}
		} else {
			vr.sealed.ErasedFields++
			vr.erasedKeys[f.KeyID] = struct{}{}
		}
	}
}

// sealedCounts reports the sealed fields counted over the records lines and checks them
// against the manifest's "sealed" line. A manifest without one (a bundle made before bundles
// carried openings) is not an error; one with counts the lines do not add up to is.
func (vr *verifier) sealedCounts() {
	c := vr.sealed
	c.ClearKeys, c.ErasedKeys = uint64(len(vr.clearKeys)), uint64(len(vr.erasedKeys))
	if c != (SealedCounts{}) {
		vr.rep.Sealed = &c
	}
	if m := vr.m.Sealed; m != nil && *m != c {
		vr.rep.add(Problem{Code: ProblemSealedCount, File: ManifestName, Detail: fmt.Sprintf(
			"the manifest says %d clear and %d erased sealed fields (%d and %d keys); the records lines hold %d and %d (%d and %d keys)",
			m.ClearFields, m.ErasedFields, m.ClearKeys, m.ErasedKeys, c.ClearFields, c.ErasedFields, c.ClearKeys, c.ErasedKeys)})
	}
}

// outOfScope says why a record does not belong in the export, or "".
func (vr *verifier) outOfScope(rec *lineage.Record) string {
	m := vr.m
	if rec.Tenant != m.Tenant {
		return fmt.Sprintf("record of tenant %q in an export of tenant %q", rec.Tenant, m.Tenant)
	}
	t, err := rec.ParsedTime()
	if err != nil || t.Before(m.From) || !t.Before(m.To) {
		return fmt.Sprintf("record time %s is outside the period %s – %s", rec.Time, m.From.Format(time.RFC3339), m.To.Format(time.RFC3339))
	}
	switch {
	case m.AISystem != "" && (rec.AISystem == nil || rec.AISystem.ID != m.AISystem):
		return fmt.Sprintf("record is not of AI system %q", m.AISystem)
	case m.AISystem == "" && m.Kind == KindEUAIAct && rec.AISystem == nil:
		return "record names no AI system, in an EU AI Act export"
	}
	return ""
}

// parseCitations checks the records a report table cites by log_index.
func (vr *verifier) parseCitations(path string, r io.Reader) error {
	cr := csv.NewReader(&lineLimitReader{r: r})
	cr.ReuseRecord = true
	head, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("csv header: %w", err)
	}
	col := map[string]int{}
	for i, h := range head {
		col[h] = i
	}
	ix, hasIx := col["log_index"]
	id, hasID := col["record_id"]
	eff, hasEff := col["effect"]
	if !hasIx {
		return nil // the table cites no record
	}
	for row := 2; ; row++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("csv row %d: %w", row, err)
		}
		where := fmt.Sprintf("%s row %d", path, row)
		n, err := strconv.ParseUint(rec[ix], 10, 64)
		if err != nil {
			vr.rep.add(Problem{Code: ProblemCitationMismatch, File: where, Detail: fmt.Sprintf("log_index %q is not a number", clip(rec[ix]))})
			continue
		}
		recID := ""
		if hasID {
			recID = CSVUncell(rec[id])
		}
		ref := fmt.Sprintf("log index %d, id %s", n, clip(recID))
		i := sort.Search(len(vr.refs), func(i int) bool { return vr.refs[i].index >= n })
		if i == len(vr.refs) || vr.refs[i].index != n {
			vr.rep.add(Problem{Code: ProblemRecordMissing, File: where, Record: ref, Detail: "the table cites this record but the bundle does not hold it (removed from records/)"})
			continue
		}
		if hasID && hasEff && vr.refs[i].fp != fingerprint(recID, CSVUncell(rec[eff])) {
			vr.rep.add(Problem{Code: ProblemCitationMismatch, File: where, Record: ref, Detail: "the table's record id or effect differ from the ledger entry at this index"})
			continue
		}
		vr.rep.Citations++
	}
}

// readMember reads a whole small member, refusing more than limit bytes.
func readMember(zf *zip.File, limit int64) ([]byte, error) {
	if zf.UncompressedSize64 > uint64(limit) {
		return nil, fmt.Errorf("%d bytes; the limit is %d", zf.UncompressedSize64, limit)
	}
	rc, err := openMember(zf)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("more than %d bytes", limit)
	}
	return b, nil
}

// readBoundedLine reads one '\n'-terminated line of at most maxLineSize bytes into *buf.
func readBoundedLine(br *bufio.Reader, buf *[]byte) ([]byte, error) {
	*buf = (*buf)[:0]
	for {
		chunk, err := br.ReadSlice('\n')
		if len(*buf)+len(chunk) > maxLineSize {
			return nil, fmt.Errorf("line longer than %d bytes", maxLineSize)
		}
		*buf = append(*buf, chunk...)
		switch {
		case err == nil:
			return (*buf)[:len(*buf)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(*buf) > 0:
			return nil, errors.New("the last line has no newline")
		default:
			return nil, err
		}
	}
}

// lineLimitReader fails when a line exceeds maxLineSize, so that a CSV reader fed by it never
// buffers an unbounded field.
type lineLimitReader struct {
	r   io.Reader
	run int
}

func (l *lineLimitReader) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	for _, c := range p[:n] {
		if c == '\n' {
			l.run = 0
		} else if l.run++; l.run > maxLineSize {
			return 0, fmt.Errorf("line longer than %d bytes", maxLineSize)
		}
	}
	return n, err
}
