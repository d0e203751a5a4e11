package report

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/lineage-audit/lineage/verify"
)

// Tables. Each is one CSV file under report/ in the bundle, and one array in report.json.
// The CSV columns and the JSON members carry the same names.
//
// Cells are defused for spreadsheets (verify.CSVCell, defined with the bundle format in
// verify/manifest.go because the verifier reverses it to match citations).

// Lists inside a cell are joined with listSep; OAuth scopes with a space (RFC 6749 §3.3).
const listSep = "; "

var decisionHeader = []string{
	"log_index", "record_id", "time", "received_at", "ai_system", "use_id",
	"user_id", "user_issuer", "delegation_token", "delegation_issuer", "delegation_mechanism", "delegation_scope", "actors", "role",
	"agent_id", "model_provider", "model_name", "model_version",
	"action_type", "target", "effect", "policy_id", "policy_version", "reason", "safeguards", "parent_id",
	"reviewer_id", "reviewer_issuer", "review_outcome", "review_time", "source_id", "source_verified", "delegation_valid",
}

func decisionCells(r *DecisionRow, c []string) []string {
	return append(c[:0],
		itoa(r.LogIndex), r.RecordID, r.Time, r.ReceivedAt, r.AISystem, r.UseID,
		r.UserID, r.UserIssuer, r.DelegationToken, r.DelegationIssuer, r.DelegationMechanism, strings.Join(r.DelegationScope, " "), strings.Join(r.Actors, listSep), r.Role,
		r.AgentID, r.ModelProvider, r.ModelName, r.ModelVersion,
		r.ActionType, r.Target, r.Effect, r.PolicyID, r.PolicyVersion, r.Reason, strings.Join(r.Safeguards, listSep), r.ParentID,
		r.ReviewerID, r.ReviewerIssuer, r.ReviewOutcome, r.ReviewTime, r.SourceID, strconv.FormatBool(r.SourceVerified), r.DelegationValid,
	)
}

var identityFindingHeader = []string{
	"finding_id", "severity", "kind", "title", "agent", "user", "count", "first_time", "last_time", "explanation",
	"log_index", "record_id", "evidence_time", "note",
}

var useHeader = []string{
	"use_id", "use_kind", "ai_system", "start", "end", "duration_seconds", "users", "reviewers", "oversight",
	"agents", "models", "actions", "targets", "truncated", "records", "allow", "deny", "modify", "escalate",
	"delegation_issuer", "delegation_mechanism", "delegation_scope", "delegation_issued_at", "delegation_expires_at",
	"first_log_index", "last_log_index", "first_record_id",
}

func useCells(r *UseRow, c []string) []string {
	return append(c[:0],
		r.UseID, r.UseKind, r.AISystem, r.Start, r.End, strconv.FormatFloat(r.DurationSeconds, 'f', 3, 64),
		strings.Join(r.Users, listSep), strings.Join(r.Reviewers, listSep), strings.Join(r.Oversight, listSep),
		strings.Join(r.Agents, listSep), strings.Join(r.Models, listSep), strings.Join(r.Actions, listSep), strings.Join(r.Targets, listSep),
		strconv.FormatBool(r.Truncated), itoa(r.Records), itoa(r.Effects.Allow), itoa(r.Effects.Deny), itoa(r.Effects.Modify), itoa(r.Effects.Escalate),
		r.Delegation.Issuer, r.Delegation.Mechanism, strings.Join(r.Delegation.Scope, " "), r.Delegation.IssuedAt, r.Delegation.ExpiresAt,
		itoa(r.FirstLogIndex), itoa(r.LastLogIndex), r.FirstRecordID,
	)
}

// streamTable is a table written row by row while the log is scanned: to its CSV file in the
// staging area, and to a temporary JSON fragment that is spliced into report.json at the end.
type streamTable struct {
	name   string // JSON member and CSV base name
	out    *outFile
	cw     *csv.Writer
	jf     *os.File
	jw     *bufio.Writer
	enc    *json.Encoder
	rows   uint64
	cells  []string
	sample []any // the first rows, for the HTML report
	keep   int
}

func newStreamTable(st *staging, tmpDir, name string, header []string, keep int) (*streamTable, error) {
	out, err := st.create("report/" + name + ".csv")
	if err != nil {
		return nil, err
	}
	jf, err := os.CreateTemp(tmpDir, name+"-*.json")
	if err != nil {
		out.abort()
		return nil, fmt.Errorf("exporters: %w", err)
	}
	t := &streamTable{name: name, out: out, cw: csv.NewWriter(out), jf: jf, jw: bufio.NewWriterSize(jf, 256<<10), keep: keep}
	t.enc = json.NewEncoder(t.jw)
	t.enc.SetEscapeHTML(false)
	if err := t.cw.Write(header); err != nil {
		t.abort()
		return nil, err
	}
	return t, nil
}

// add writes one row: cells to the CSV (defused), row to the JSON fragment.
func (t *streamTable) add(row any, cells []string) error {
	for i, c := range cells {
		cells[i] = verify.CSVCell(c)
	}
	if err := t.cw.Write(cells); err != nil {
		return fmt.Errorf("exporters: %s.csv: %w", t.name, err)
	}
	if t.rows > 0 {
		t.jw.WriteByte(',')
	}
	if err := t.enc.Encode(row); err != nil {
		return fmt.Errorf("exporters: %s json: %w", t.name, err)
	}
	t.rows++
	if len(t.sample) < t.keep {
		t.sample = append(t.sample, row)
	}
	return nil
}

// finish closes the CSV file; the JSON fragment stays open for splice.
func (t *streamTable) finish() error {
	t.cw.Flush()
	if err := t.cw.Error(); err != nil {
		t.abort()
		return fmt.Errorf("exporters: %s.csv: %w", t.name, err)
	}
	if err := t.out.close(); err != nil {
		return err
	}
	return t.jw.Flush()
}

// splice copies the JSON fragment into w as the member's array.
func (t *streamTable) splice(w io.Writer) error {
	if _, err := fmt.Fprintf(w, ",\n%q: [\n", t.name); err != nil {
		return err
	}
	if _, err := t.jf.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if _, err := io.Copy(w, t.jf); err != nil {
		return err
	}
	_, err := io.WriteString(w, "]")
	return err
}

func (t *streamTable) abort() {
	t.out.abort()
	t.jf.Close()
}

func (t *streamTable) close() { t.jf.Close() }

// writeCSV writes a whole small table.
func writeCSV(st *staging, name string, header []string, rows [][]string) (TableInfo, error) {
	o, err := st.create("report/" + name + ".csv")
	if err != nil {
		return TableInfo{}, err
	}
	w := csv.NewWriter(o)
	w.Write(header)
	for _, r := range rows {
		for i, c := range r {
			r[i] = verify.CSVCell(c)
		}
		w.Write(r)
	}
	w.Flush()
	if err := w.Error(); err != nil {
		o.abort()
		return TableInfo{}, fmt.Errorf("exporters: %s.csv: %w", name, err)
	}
	return TableInfo{File: name + ".csv", Rows: uint64(len(rows))}, o.close()
}

// writeSmallTables writes the tables computed in memory.
func writeSmallTables(st *staging, h *Header) ([]TableInfo, error) {
	b := strconv.FormatBool
	u := itoa
	j := func(s []string) string { return strings.Join(s, listSep) }
	type tbl struct {
		name   string
		header []string
		rows   [][]string
	}
	var ts []tbl
	var rows [][]string
	for _, r := range h.AISystems {
		rows = append(rows, []string{r.ID, r.Name, r.RiskClass, r.UseCase, b(r.HighRisk), u(r.Records), u(r.Uses), r.FirstSeen, r.LastSeen})
	}
	ts = append(ts, tbl{"ai_systems", []string{"id", "name", "risk_class", "use_case", "high_risk", "records", "uses", "first_seen", "last_seen"}, rows})
	rows = nil
	for _, r := range h.Persons {
		rows = append(rows, []string{r.ID, r.Issuer, j(r.Roles), u(r.RecordsAuthorized), u(r.UsesAuthorized), u(r.Reviews), u(r.ReviewsApproved), u(r.ReviewsRejected), r.FirstSeen, r.LastSeen})
	}
	ts = append(ts, tbl{"persons", []string{"id", "issuer", "roles", "records_authorized", "uses_authorized", "reviews", "reviews_approved", "reviews_rejected", "first_seen", "last_seen"}, rows})
	rows = nil
	for _, r := range h.Agents {
		rows = append(rows, []string{r.ID, j(r.Roles), j(r.Models), u(r.Records), u(r.Effects.Allow), u(r.Effects.Deny), u(r.Effects.Modify), u(r.Effects.Escalate), b(r.SharedIdentity), r.FirstSeen, r.LastSeen})
	}
	ts = append(ts, tbl{"agents", []string{"id", "roles", "models", "records", "allow", "deny", "modify", "escalate", "shared_identity", "first_seen", "last_seen"}, rows})
	rows = nil
	for _, r := range h.Models {
		rows = append(rows, []string{r.Provider, r.Name, r.Version, u(r.Records), j(r.Agents)})
	}
	ts = append(ts, tbl{"models", []string{"provider", "name", "version", "records", "agents"}, rows})
	rows = nil
	for _, r := range h.Providers {
		rows = append(rows, []string{r.Provider, j(r.Models), u(r.Records)})
	}
	ts = append(ts, tbl{"providers", []string{"provider", "models", "records"}, rows})
	rows = nil
	for _, r := range h.Policies {
		rows = append(rows, []string{r.ID, r.Version, u(r.Records), u(r.Effects.Allow), u(r.Effects.Deny), u(r.Effects.Modify), u(r.Effects.Escalate)})
	}
	ts = append(ts, tbl{"policies", []string{"id", "version", "records", "allow", "deny", "modify", "escalate"}, rows})
	rows = nil
	for _, r := range h.Safeguards {
		rows = append(rows, []string{r.Safeguard, u(r.Records)})
	}
	ts = append(ts, tbl{"safeguards", []string{"safeguard", "records"}, rows})
	rows = nil
	for _, r := range h.Lineage {
		rows = append(rows, []string{r.From, r.To, u(r.Records)})
	}
	ts = append(ts, tbl{"lineage", []string{"from", "to", "records"}, rows})
	rows = nil
	for _, r := range h.Retention.Months {
		rows = append(rows, []string{r.Month, u(r.Records)})
	}
	ts = append(ts, tbl{"retention_months", []string{"month", "records"}, rows})
	rows = nil
	for _, r := range h.Retention.Gaps {
		rows = append(rows, []string{r.From, r.To, strconv.Itoa(r.Days)})
	}
	ts = append(ts, tbl{"retention_gaps", []string{"from", "to", "days"}, rows})
	rows = nil
	for _, r := range h.Findings {
		rows = append(rows, []string{r.Severity, r.Code, r.Message, j(r.Items)})
	}
	ts = append(ts, tbl{"findings", []string{"severity", "code", "message", "items"}, rows})
	// One row per evidence record, so that the verifier checks each cited record is in the
	// bundle (its log_index column); the finding's columns repeat on each of its rows.
	rows = nil
	for _, f := range h.IdentityFindings {
		for _, e := range f.Evidence {
			rows = append(rows, []string{f.ID, f.Severity, f.Kind, f.Title, f.Agent, f.User, u(f.Count), f.FirstTime, f.LastTime, f.Explanation,
				u(e.LogIndex), e.RecordID, e.Time, e.Note})
		}
	}
	ts = append(ts, tbl{"identity_findings", identityFindingHeader, rows})

	var infos []TableInfo
	for _, t := range ts {
		info, err := writeCSV(st, t.name, t.header, t.rows)
		if err != nil {
			return nil, err
		}
		infos = append(infos, info)
	}
	return infos, nil
}
