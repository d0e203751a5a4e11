package exporters

import (
	"encoding/json"
	"fmt"
	"time"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/exporters/report"
)

// ExportPolicy is the policy the export records name: exports are decisions of Lineage's own
// access control (the compliance role, the caller's tenants).
var ExportPolicy = lineage.Policy{ID: "lineage.export", Version: "v1"}

// exportRecord is the decision record of one export run, appended to the log of the exported
// tenant: who exported what (kind, AI system, period), when, how it ended, and the SHA-256 of
// the bundle it produced. The log then vouches for the bundle: an auditor handed a bundle can
// find the record that says Lineage issued it.
func exportRecord(j *Job, status, detail string, now time.Time) (lineage.Record, error) {
	ctx := map[string]any{
		"status":  status,
		"trigger": j.Trigger,
		"formats": j.Formats,
		"export":  j.ID,
	}
	if j.AISystem != "" {
		ctx["ai_system"] = j.AISystem
	}
	if j.Bundle != "" {
		ctx["bundle"] = j.Bundle
		ctx["bundle_sha256"] = j.BundleSHA256
		ctx["records"] = j.Records
		ctx["checkpoint_size"] = j.CheckpointSize
	}
	pc, err := json.Marshal(ctx)
	if err != nil {
		return lineage.Record{}, err
	}
	reason := fmt.Sprintf("%s export requested by %s (%s): %s", j.Kind, j.RequestedBy, j.Trigger, status)
	if detail != "" {
		reason += ": " + detail
	}
	if len(reason) > lineage.MaxStringLen {
		reason = reason[:lineage.MaxStringLen-3] + "..."
	}
	rec := lineage.Record{
		Schema: lineage.SchemaV1,
		ID:     "export-" + j.ID,
		Time:   now.UTC().Format("2006-01-02T15:04:05.000Z"),
		Tenant: j.Tenant,
		Source: lineage.Source{ID: report.ExportSourceID, Type: report.ExportSourceType},
		User:   lineage.Person{ID: j.RequestedBy, Issuer: "lineage"},
		Agent:  lineage.Agent{ID: report.ExportSourceID},
		Role:   "exporter",
		Action: lineage.Action{Type: "export." + string(j.Kind), Target: j.Tenant + "/" + j.From + "/" + j.To},
		Decision: lineage.Decision{
			Effect: lineage.EffectAllow,
			Policy: ExportPolicy,
			Reason: reason,
		},
		PolicyContext: pc,
	}
	if err := rec.Validate(); err != nil {
		return lineage.Record{}, fmt.Errorf("exporters: export record: %w", err)
	}
	return rec, nil
}
