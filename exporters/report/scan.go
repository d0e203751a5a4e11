package report

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/ledger"
	"github.com/lineage-audit/lineage/ledger/seal"
	"github.com/lineage-audit/lineage/verify"
)

// Records Lineage writes about its own exports (see exportRecord). They are not decisions of
// an AI system, so reports leave them out.
const (
	ExportSourceID   = "lineage-exporter"
	ExportSourceType = "lineage"
)

// htmlSampleRows is how many rows of a long table the HTML report shows; the CSV has them all.
const htmlSampleRows = 100

// delegationLeeway is the clock skew tolerated between a decision and its token's lifetime,
// as JWT validators commonly allow.
const delegationLeeway = 60 * time.Second

// exportRun is the state of one export.
type exportRun struct {
	e       *Exporter
	req     Request
	run     Run
	dir     string
	st      *staging
	tmp     string
	created time.Time

	cp      ledger.Checkpoint
	scanned uint64
	rootOK  bool
	needle  []byte

	prover                        *prover
	evidence                      *evidenceTemp
	agg                           *aggregator
	ident                         *identityAgg
	uses                          *useGrouper
	records                       *recordsWriter
	decisions, oversight, denies  *streamTable
	usesTable                     *streamTable
	useSample, useExceptionSample []UseRow
	cells                         []string

	// erasure counts the sealed fields of the records in scope; clearKeys are the subject keys
	// of every clear value the export read (sealed.go).
	erasure   erasureCounts
	clearKeys map[string]struct{}
}

// scan reads every entry of the pinned tree in chunks and hashes each into the prover's tree;
// at the end the tree's root must equal the checkpoint's, which proves the scan saw exactly the
// entries the signed checkpoint commits to. That is what makes the report complete: a record
// dropped or altered on disk, or an Entries call that skipped one, would change the root.
//
// Only entries that mention the tenant are decoded. Canonical JSON writes the record's tenant
// member as exactly "tenant":"<tenant>" (tenant names need no escaping), so an entry without
// that byte string cannot be the tenant's record; one that has it is decoded and checked, so a
// look-alike elsewhere in the entry does no harm.
func (x *exportRun) scan(ctx context.Context) error {
	chunk := uint64(x.e.ChunkSize)
	if chunk == 0 {
		chunk = 1024
	}
	total := x.cp.Size
	var err error
	if x.prover, err = newProver(total, x.tmp); err != nil {
		return err
	}
	if x.evidence, err = newEvidenceTemp(x.tmp); err != nil {
		return err
	}
	x.progress("scan")
	for start := uint64(0); start < total; start += chunk {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := min(chunk, total-start)
		entries, err := x.e.Log.Entries(ctx, start, n, total)
		if err != nil {
			return fmt.Errorf("exporters: read entries [%d, %d): %w", start, start+n, err)
		}
		if uint64(len(entries)) != n {
			return fmt.Errorf("exporters: read entries [%d, %d): got %d", start, start+n, len(entries))
		}
		for i, entry := range entries {
			idx := start + uint64(i)
			leaf := x.prover.leafHash(entry)
			if bytes.Contains(entry, x.needle) {
				if err := x.entry(ctx, idx, entry); err != nil {
					return err
				}
			}
			if err := x.prover.push(leaf); err != nil {
				return err
			}
		}
		if err := x.ident.endBatch(); err != nil {
			return err
		}
		x.scanned = start + n
		x.progress("scan")
	}
	root, err := x.prover.finish()
	if err != nil {
		return err
	}
	if !bytes.Equal(root, x.cp.Hash) {
		return fmt.Errorf("exporters: the %d entries read from the log hash to root %x, but the signed checkpoint commits to %x: the log's storage does not match its checkpoint (refusing to report on it)", total, root, x.cp.Hash)
	}
	x.rootOK = true
	return x.writeRecords(ctx)
}

// entry decodes an entry that mentions the tenant. A sealed (v2) entry of the tenant is opened
// with the key store (sealed.go): the report sees the clear record, erased fields marked.
func (x *exportRun) entry(ctx context.Context, idx uint64, entry []byte) error {
	env, err := verify.DecodeEntry(entry)
	if err != nil {
		x.agg.undecodableN++
		if len(x.agg.undecodable) < 20 {
			x.agg.undecodable = append(x.agg.undecodable, idx)
		}
		return nil
	}
	if env.Record.Tenant != x.req.Tenant {
		return nil
	}
	var op *opened
	if env.V == seal.EnvelopeV2 {
		if env, op, err = x.openSealed(ctx, idx, entry, env); err != nil {
			return err
		}
	}
	if err := x.visit(idx, entry, env, op); err != nil {
		return err
	}
	// Every record of the tenant goes to the findings engine, Lineage's own export records
	// too, as in the live run (query/findings_worker.go): they advance the tenant's record
	// time, which closes review windows. An entry whose time does not parse is skipped, as the
	// live run skips it (DecodeEntry in query/indexer.go).
	if t, err := env.Record.ParsedTime(); err == nil {
		return x.ident.observe(idx, env.Record, t)
	}
	return nil
}

// writeRecords writes the records files: each cited entry with its inclusion proof, checked
// against the signed checkpoint before it is written (a bundle the service signs must verify).
func (x *exportRun) writeRecords(ctx context.Context) error {
	x.progress("proofs")
	proofs := x.prover.proofs()
	return x.evidence.each(func(idx uint64, id string, entry []byte, openings []verify.Opening) error {
		p, err := proofs.next(idx)
		if err != nil {
			return err
		}
		if err := ledger.VerifyInclusion(entry, idx, p, x.cp); err != nil {
			return fmt.Errorf("exporters: entry %d (record %s): %w", idx, id, err)
		}
		if idx%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		return x.records.add(idx, id, entry, p, openings)
	})
}

// visit handles one record of the tenant; op is set for a sealed entry.
func (x *exportRun) visit(idx uint64, entry []byte, env *lineage.Envelope, op *opened) error {
	rec := env.Record
	if rec.Source.ID == ExportSourceID && rec.Source.Type == ExportSourceType {
		return nil
	}
	t, err := rec.ParsedTime()
	if err != nil { // DecodeEnvelope validated the time; this is defensive
		return fmt.Errorf("exporters: entry %d: %w", idx, err)
	}
	sysMatch := x.systemMatches(rec)
	inPeriod := !t.Before(x.req.From) && t.Before(x.req.To)
	if inPeriod && rec.AISystem == nil {
		x.agg.summary.RecordsWithoutAISystem++
	}
	if !sysMatch {
		return nil
	}
	// The retention view and escalation matching look at the whole log, not just the period.
	x.agg.hold(t)
	if ho := rec.HumanOversight; ho != nil && rec.ParentID != "" {
		x.agg.review(rec.ParentID)
	}
	if !inPeriod {
		return nil
	}

	row := decisionRow(idx, env, t)
	var openings []verify.Opening
	if op != nil {
		x.erasure.add(op)
		row.ErasedFields = op.erased()
		openings = op.openings
	}
	x.agg.add(rec, t, &row)
	if err := x.uses.add(idx, rec, t); err != nil {
		return fmt.Errorf("exporters: uses: %w", err)
	}
	x.cells = x.decisionCells(&row)
	if err := x.decisions.add(&row, x.cells); err != nil {
		return err
	}
	if rec.HumanOversight != nil {
		x.cells = x.decisionCells(&row)
		if err := x.oversight.add(&row, x.cells); err != nil {
			return err
		}
	}
	if rec.Decision.Effect == lineage.EffectDeny {
		x.cells = x.decisionCells(&row)
		if err := x.denies.add(&row, x.cells); err != nil {
			return err
		}
	}

	// The entry goes into the bundle with its inclusion proof, built once the whole tree has
	// been read (prover.go).
	x.prover.cite(idx)
	x.ident.cite(idx)
	return x.evidence.add(idx, rec.ID, entry, openings)
}

// decisionCells renders a decision row's CSV cells; an export with a key store has the
// erased_fields column (decisionColumns).
func (x *exportRun) decisionCells(r *DecisionRow) []string {
	c := decisionCells(r, x.cells)
	if x.e.Keys != nil {
		c = append(c, erasedCell(r.ErasedFields))
	}
	return c
}

// systemMatches applies the AI-system scope. An EU AI Act report is about AI systems, so
// without a filter it takes every record that names one; a Fannie Mae disclosure without a
// filter takes every AI action of the tenant.
func (x *exportRun) systemMatches(rec *lineage.Record) bool {
	if x.req.AISystem != "" {
		return rec.AISystem != nil && rec.AISystem.ID == x.req.AISystem
	}
	return x.req.Kind != KindEUAIAct || rec.AISystem != nil
}

// decisionRow flattens a record for the decision tables.
func decisionRow(idx uint64, env *lineage.Envelope, t time.Time) DecisionRow {
	rec := env.Record
	_, use := useKeyOf(rec)
	r := DecisionRow{
		LogIndex: idx, RecordID: rec.ID, Time: rec.Time, ReceivedAt: FormatTime(env.ReceivedAt), UseID: use,
		UserID: rec.User.ID, UserIssuer: rec.User.Issuer, Role: rec.Role, AgentID: rec.Agent.ID,
		ActionType: rec.Action.Type, Target: rec.Action.Target, Effect: rec.Decision.Effect,
		PolicyID: rec.Decision.Policy.ID, PolicyVersion: rec.Decision.Policy.Version, Reason: rec.Decision.Reason,
		Safeguards: rec.Safeguards, ParentID: rec.ParentID, SourceID: rec.Source.ID, SourceVerified: env.SourceVerified,
	}
	if rec.AISystem != nil {
		r.AISystem = rec.AISystem.ID
	}
	if m := rec.Agent.Model; m != nil {
		r.ModelProvider, r.ModelName, r.ModelVersion = m.Provider, m.Name, m.Version
	}
	if d := rec.Delegation; d != nil {
		r.DelegationToken, r.DelegationIssuer, r.DelegationMechanism = d.TokenID, d.Issuer, d.Mechanism
		r.DelegationScope, r.Actors = d.Scope, d.Actors
		if ia, err := time.Parse(time.RFC3339Nano, d.IssuedAt); err == nil && t.Before(ia.Add(-delegationLeeway)) {
			r.DelegationValid = "not-yet-valid"
		}
		if ea, err := time.Parse(time.RFC3339Nano, d.ExpiresAt); err == nil && t.After(ea.Add(delegationLeeway)) {
			r.DelegationValid = "expired"
		}
	}
	if ho := rec.HumanOversight; ho != nil {
		r.ReviewerID, r.ReviewerIssuer, r.ReviewOutcome, r.ReviewTime = ho.Reviewer.ID, ho.Reviewer.Issuer, ho.Outcome, ho.Time
	}
	return r
}

// sampleUse keeps the first uses, and the first uses with an exception (a deny, an
// escalation or a human review), for the HTML report.
func (x *exportRun) sampleUse(u *UseRow) {
	if len(x.useSample) < 25 {
		x.useSample = append(x.useSample, *u)
	}
	if (u.Effects.Deny > 0 || u.Effects.Escalate > 0 || len(u.Reviewers) > 0) && len(x.useExceptionSample) < htmlSampleRows {
		x.useExceptionSample = append(x.useExceptionSample, *u)
	}
}

// recordsWriter writes the cited records into records/records-NNNNN.ndjson files: one JSON
// object per line with the log index, the record id, the ledger entry exactly as logged (as a
// JSON string, so a person can read it; canonical entries are valid UTF-8, so the string
// round-trips byte for byte), the inclusion proof against the bundle's checkpoint, and for a
// sealed entry the openings of its clear fields.
type recordsWriter struct {
	st   *staging
	cur  *outFile
	enc  *json.Encoder
	n    uint64
	file int
}

func (w *recordsWriter) add(idx uint64, id string, entry []byte, proof [][]byte, openings []verify.Opening) error {
	if w.cur == nil || w.n%recordsPerFile == 0 {
		if w.cur != nil {
			if err := w.cur.close(); err != nil {
				return err
			}
		}
		o, err := w.st.create("records/records-" + pad5(w.file) + ".ndjson")
		if err != nil {
			return err
		}
		w.file++
		w.cur = o
		w.enc = json.NewEncoder(o)
		w.enc.SetEscapeHTML(false)
	}
	if err := w.enc.Encode(verify.EvidenceLine{Index: idx, ID: id, Entry: string(entry), Proof: proof, Openings: openings}); err != nil {
		return fmt.Errorf("exporters: records: %w", err)
	}
	w.n++
	return nil
}

func (w *recordsWriter) finish() error {
	if w.cur == nil {
		return nil
	}
	err := w.cur.close()
	w.cur = nil
	return err
}

func (w *recordsWriter) abort() {
	if w.cur != nil {
		w.cur.abort()
		w.cur = nil
	}
}

// evidenceTemp holds the cited entries between the scan and the proofs, in log order, as
// length-prefixed binary (index, id, entry, openings as JSON): written once, read once, never
// held in memory. It is in the export's staging directory, removed when the export ends (it
// holds clear values of sealed fields, as the bundle does).
type evidenceTemp struct {
	f *os.File
	w *bufio.Writer
}

func newEvidenceTemp(dir string) (*evidenceTemp, error) {
	f, err := os.CreateTemp(dir, "evidence-*")
	if err != nil {
		return nil, fmt.Errorf("exporters: %w", err)
	}
	return &evidenceTemp{f: f, w: bufio.NewWriterSize(f, 256<<10)}, nil
}

func (e *evidenceTemp) add(idx uint64, id string, entry []byte, openings []verify.Opening) error {
	var ops []byte
	if len(openings) > 0 {
		var err error
		if ops, err = json.Marshal(openings); err != nil {
			return fmt.Errorf("exporters: evidence: %w", err)
		}
	}
	var hdr [20]byte
	binary.BigEndian.PutUint64(hdr[:8], idx)
	binary.BigEndian.PutUint32(hdr[8:12], uint32(len(id)))
	binary.BigEndian.PutUint32(hdr[12:16], uint32(len(entry)))
	binary.BigEndian.PutUint32(hdr[16:20], uint32(len(ops)))
	e.w.Write(hdr[:])
	e.w.WriteString(id)
	e.w.Write(entry)
	_, err := e.w.Write(ops)
	return err
}

// each calls fn with every entry, in the order added.
func (e *evidenceTemp) each(fn func(idx uint64, id string, entry []byte, openings []verify.Opening) error) error {
	if err := e.w.Flush(); err != nil {
		return fmt.Errorf("exporters: evidence: %w", err)
	}
	if _, err := e.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	r := bufio.NewReaderSize(e.f, 256<<10)
	var hdr [20]byte
	var buf []byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return fmt.Errorf("exporters: evidence: %w", err)
		}
		idLen, entryLen := int(binary.BigEndian.Uint32(hdr[8:12])), int(binary.BigEndian.Uint32(hdr[12:16]))
		n := idLen + entryLen + int(binary.BigEndian.Uint32(hdr[16:20]))
		if cap(buf) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(r, buf); err != nil {
			return fmt.Errorf("exporters: evidence: %w", err)
		}
		var openings []verify.Opening
		if ops := buf[idLen+entryLen:]; len(ops) > 0 {
			if err := json.Unmarshal(ops, &openings); err != nil {
				return fmt.Errorf("exporters: evidence: %w", err)
			}
		}
		if err := fn(binary.BigEndian.Uint64(hdr[:8]), string(buf[:idLen]), buf[idLen:idLen+entryLen], openings); err != nil {
			return err
		}
	}
}

func (e *evidenceTemp) close() { e.f.Close() }

func pad5(n int) string {
	s := strconv.Itoa(n)
	for len(s) < 5 {
		s = "0" + s
	}
	return s
}
