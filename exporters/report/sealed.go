package report

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/ledger/seal"
	"github.com/lineage-audit/lineage/verify"
)

// Sealed (v2) entries (docs/ERASURE.md). An erasure-enabled log writes each personal field of a
// record (the user, the reviewer, configured paths) as a hiding commitment in the record and
// the value encrypted under the subject's key. An export opens every such entry of the tenant
// with the key store (Exporter.Keys) and reports on the clear record: the report shows the
// clear user and reviewer ids while the keys exist. A field whose key was erased is shown as
// ErasedMarker(key id), never as its token, and counted (Summary.Erasure); the bundle's records
// lines carry the openings of the clear fields, and its manifest the counts.
//
// A key-store failure, including a key missing without a tombstone (seal.ErrKeyMissing), fails
// the export: showing that field as erased would be false, and leaving the record out would
// make the report incomplete.

// ErrNoKeyStore: the log holds sealed (v2) entries of the tenant but the exporter has no key
// store (Exporter.Keys) to open them.
var ErrNoKeyStore = errors.New("exporters: the log holds sealed (v2) entries but no erasure key store is configured for exports")

// ErasedPrefix starts the value a report shows for a sealed field whose key was erased.
const ErasedPrefix = "erased (key "

// ErasedMarker is what a report shows in place of a sealed field whose subject key was erased:
// "erased (key <key id>)". The key id is the subject's pseudonym in the log (one per subject
// and tenant, no personal data), so every record of one erased person is grouped as one person
// in the tables; the field's commitment is in the row's erased_fields.
func ErasedMarker(keyID string) string { return ErasedPrefix + keyID + ")" }

// ErasureSummary counts the sealed fields of the records in the report (the records the bundle
// cites) as they were when the export ran.
type ErasureSummary struct {
	// RecordsSealed is the number of records in scope written with sealed fields (v2 entries).
	RecordsSealed uint64 `json:"records_sealed"`
	// RecordsWithErasedFields have at least one field whose subject key was erased.
	RecordsWithErasedFields uint64 `json:"records_with_erased_fields"`
	// ClearFields were opened with their subject key; the bundle carries their openings.
	ClearFields uint64 `json:"clear_fields"`
	// ErasedFields are shown as ErasedMarker: their subject key was erased before the export.
	ErasedFields uint64 `json:"erased_fields"`
	// ClearSubjects and ErasedSubjects are the distinct subject keys of each group.
	ClearSubjects  uint64 `json:"clear_subjects"`
	ErasedSubjects uint64 `json:"erased_subjects"`
	Note           string `json:"note"`
}

// ErasedField is a sealed field of a record whose subject key was erased before the export.
type ErasedField struct {
	Path       string `json:"path"`
	KeyID      string `json:"key_id"`
	Commitment string `json:"commitment"`
}

// String is the field as the erased_fields CSV cell lists it.
func (f ErasedField) String() string {
	return f.Path + " erased (key " + f.KeyID + ", commitment " + f.Commitment + ")"
}

// opened is what opening a sealed entry gave: the openings of its clear fields (for the bundle)
// and the state of each field.
type opened struct {
	openings []verify.Opening
	status   []seal.FieldStatus
}

// erased lists the fields of o whose key was erased.
func (o *opened) erased() []ErasedField {
	var out []ErasedField
	for _, s := range o.status {
		if s.State == seal.Erased {
			out = append(out, ErasedField{Path: s.Path, KeyID: s.KeyID.String(), Commitment: s.Commitment.String()})
		}
	}
	return out
}

// openSealed opens a v2 entry of the tenant with the key store and returns the envelope with the
// record the report shows: clear values where the keys exist, ErasedMarker where they were
// erased.
func (x *exportRun) openSealed(ctx context.Context, idx uint64, entry []byte, env *lineage.Envelope) (*lineage.Envelope, *opened, error) {
	if x.e.Keys == nil {
		return nil, nil, fmt.Errorf("exporters: entry %d: %w", idx, ErrNoKeyStore)
	}
	v2, err := seal.DecodeEnvelopeV2(entry)
	if err != nil { // verify.DecodeEntry decoded it; defensive
		return nil, nil, fmt.Errorf("exporters: entry %d: %w", idx, err)
	}
	rec := v2.Record
	clear, openings, status, err := seal.Open(ctx, x.e.Keys, rec.Tenant, rec.ID, v2.Canonical, v2.Sealed)
	if errors.Is(err, seal.ErrIntegrity) {
		return nil, nil, fmt.Errorf("exporters: entry %d (record %s): a sealed field fails its integrity check (refusing to report on it): %w", idx, rec.ID, err)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("exporters: entry %d (record %s): the erasure key store cannot open its sealed fields (not reported as erased): %w", idx, rec.ID, err)
	}
	shown := clear
	for _, s := range status {
		if s.State == seal.Erased {
			// The token is base64url and the marker plain ASCII: the record stays canonical.
			shown = bytes.ReplaceAll(shown, []byte(`"`+s.Commitment.Token()+`"`), []byte(`"`+ErasedMarker(s.KeyID.String())+`"`))
		}
	}
	if len(status) > 0 {
		if rec, err = lineage.DecodeRecord(shown); err != nil {
			return nil, nil, fmt.Errorf("exporters: entry %d: the opened record: %w", idx, err)
		}
	}
	for _, s := range status {
		if s.State == seal.Clear {
			x.clearKeys[s.KeyID.String()] = struct{}{}
		}
	}
	out := *env
	out.Record, out.Canonical = rec, shown
	return &out, &opened{openings: verify.Openings(openings), status: status}, nil
}

// erasureCounts accumulates ErasureSummary and the manifest's sealed counts over the records
// in scope.
type erasureCounts struct {
	sum                   ErasureSummary
	clearKeys, erasedKeys map[seal.KeyID]struct{}
}

func (c *erasureCounts) add(o *opened) {
	if c.clearKeys == nil {
		c.clearKeys, c.erasedKeys = map[seal.KeyID]struct{}{}, map[seal.KeyID]struct{}{}
	}
	c.sum.RecordsSealed++
	erased := false
	for _, s := range o.status {
		if s.State == seal.Clear {
			c.sum.ClearFields++
			c.clearKeys[s.KeyID] = struct{}{}
		} else {
			c.sum.ErasedFields++
			c.erasedKeys[s.KeyID] = struct{}{}
			erased = true
		}
	}
	if erased {
		c.sum.RecordsWithErasedFields++
	}
}

// summary returns the report's erasure summary, nil when no record in scope is sealed.
func (c *erasureCounts) summary() *ErasureSummary {
	if c.sum.RecordsSealed == 0 {
		return nil
	}
	s := c.sum
	s.ClearSubjects, s.ErasedSubjects = uint64(len(c.clearKeys)), uint64(len(c.erasedKeys))
	s.Note = "Personal fields of these records are sealed (crypto-shredding, docs/ERASURE.md). Clear values were opened with the subject keys at export time, and the evidence bundle carries their openings, which the verifier checks against the commitments in the log. A field whose subject asked for erasure shows \"" + ErasedPrefix + "<key id>)\": its key was destroyed and the value can no longer be read by anyone."
	return &s
}

// manifest returns the manifest's sealed counts, nil when no record in scope is sealed.
func (c *erasureCounts) manifest() *verify.SealedCounts {
	if c.sum.RecordsSealed == 0 || c.sum.ClearFields+c.sum.ErasedFields == 0 {
		return nil
	}
	return &verify.SealedCounts{ClearFields: c.sum.ClearFields, ErasedFields: c.sum.ErasedFields,
		ClearKeys: uint64(len(c.clearKeys)), ErasedKeys: uint64(len(c.erasedKeys))}
}

// clearKeyIDs returns the subject key ids of which the export holds clear values, sorted.
func (x *exportRun) clearKeyIDs() []string {
	out := make([]string, 0, len(x.clearKeys))
	for k := range x.clearKeys {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// erasedCell is the erased_fields cell of a decision row.
func erasedCell(fs []ErasedField) string {
	parts := make([]string, len(fs))
	for i, f := range fs {
		parts[i] = f.String()
	}
	return strings.Join(parts, listSep)
}
