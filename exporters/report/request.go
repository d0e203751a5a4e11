package report

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/verify"
)

// Kind is the regulation an export reports for (defined with the bundle format, in
// verify/manifest.go, since the signed manifest names it).
type Kind = verify.Kind

// The export kinds.
const (
	// KindEUAIAct is the EU AI Act record-keeping report: Art. 12 logs per use, Art. 14 human
	// oversight, Art. 19 / 26(6) retention coverage, for one AI system or all.
	KindEUAIAct = verify.KindEUAIAct
	// KindFannieMae is the Fannie Mae LL-2026-04 disclosure: AI tools, safeguards, and the
	// natural person and delegation behind each AI-assisted decision of a lending process.
	KindFannieMae = verify.KindFannieMae
)

// Report formats. The bundle always holds all three; Request.Formats selects which are also
// offered as separate downloads.
const (
	FormatJSON = "json"
	FormatCSV  = "csv"
	FormatHTML = "html"
)

// AllFormats is the default of Request.Formats.
var AllFormats = []string{FormatJSON, FormatCSV, FormatHTML}

// Request says what to export.
type Request struct {
	Kind   Kind   `json:"kind"`
	Tenant string `json:"tenant"`
	// AISystem restricts the export to one AI system (ai_system.id of the records); empty means
	// every AI system of the tenant. For Fannie Mae it names the lending process.
	AISystem string `json:"ai_system,omitempty"`
	// From and To bound the period on the records' decision time: From inclusive, To exclusive.
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// Formats are the loose report files offered for download besides the bundle.
	Formats []string `json:"formats,omitempty"`
}

// maxAISystemLen is the schema's limit on ai_system.id.
const maxAISystemLen = 128

// Validate checks the request and fills in default formats.
func (r *Request) Validate() error {
	if !r.Kind.Valid() {
		return fmt.Errorf("exporters: kind %q: want %q or %q", r.Kind, KindEUAIAct, KindFannieMae)
	}
	if !lineage.ValidTenant(r.Tenant) {
		return fmt.Errorf("exporters: tenant %q is not a valid tenant name", r.Tenant)
	}
	if len(r.AISystem) > maxAISystemLen || strings.ContainsAny(r.AISystem, "\n\r") {
		return errors.New("exporters: ai_system is not a valid AI system id")
	}
	if r.From.IsZero() || r.To.IsZero() {
		return errors.New("exporters: from and to are required")
	}
	if !r.From.Before(r.To) {
		return fmt.Errorf("exporters: from (%s) must be before to (%s)", r.From.Format(time.RFC3339), r.To.Format(time.RFC3339))
	}
	if r.From.Year() < 1970 || r.To.Year() > 2200 {
		return errors.New("exporters: the period must lie within 1970–2200 (the times records may carry)")
	}
	r.From, r.To = r.From.UTC(), r.To.UTC()
	if len(r.Formats) == 0 {
		r.Formats = slices.Clone(AllFormats)
	}
	for _, f := range r.Formats {
		if !slices.Contains(AllFormats, f) {
			return fmt.Errorf("exporters: format %q: want json, csv or html", f)
		}
	}
	slices.Sort(r.Formats)
	r.Formats = slices.Compact(r.Formats)
	return nil
}

// ParseTime reads a period bound: RFC 3339, or a date (YYYY-MM-DD, meaning 00:00 UTC).
func ParseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("exporters: time %q: want RFC 3339 or YYYY-MM-DD", s)
	}
	return t, nil
}

// Clip shortens untrusted text quoted in an error (here and in the export service's answers).
func Clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
