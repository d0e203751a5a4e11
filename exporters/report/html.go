package report

import (
	_ "embed"
	"fmt"
	"html/template"
	"math"
	"slices"
	"strings"
	"time"

	lineage "github.com/lineage-audit/lineage"
)

// The HTML report is one self-contained file (inline CSS, inline SVG, no scripts, no external
// resources), laid out like an auditor's workpaper: scope and sources first, then the summary
// and findings, then the supporting schedules, then how to re-perform the integrity check. It
// is rendered with html/template, so every value taken from a record is escaped for the
// context it lands in: a record cannot inject markup into an examiner's browser.

//go:embed report.html.tmpl
var reportTemplate string

var tmpl = template.Must(template.New("report").Funcs(template.FuncMap{
	"short": shorten,
	"join":  func(s []string) string { return strings.Join(s, "; ") },
	"first": func(n int, s []string) []string {
		if len(s) > n {
			return s[:n]
		}
		return s
	},
	"more": func(n int, s []string) int { return max(0, len(s)-n) },
	"pct": func(part, whole uint64) string {
		if whole == 0 {
			return "–"
		}
		return fmt.Sprintf("%.1f%%", 100*float64(part)/float64(whole))
	},
	"minus":     func(a, b int) int { return a - b },
	"printable": lineage.Printable,
	"agentName": agentName,
	"span":      span,
	"cap": func(n int, rows any) any {
		switch r := rows.(type) {
		case []PersonRow:
			return r[:min(n, len(r))]
		case []AgentRow:
			return r[:min(n, len(r))]
		case []ModelRow:
			return r[:min(n, len(r))]
		case []PolicyRow:
			return r[:min(n, len(r))]
		case []SafeguardRow:
			return r[:min(n, len(r))]
		case []IdentityFinding:
			return r[:min(n, len(r))]
		case []IdentityEvidence:
			return r[:min(n, len(r))]
		}
		return rows
	},
	"count": func(rows any) int {
		switch r := rows.(type) {
		case []PersonRow:
			return len(r)
		case []AgentRow:
			return len(r)
		case []ModelRow:
			return len(r)
		case []PolicyRow:
			return len(r)
		case []SafeguardRow:
			return len(r)
		case []IdentityFinding:
			return len(r)
		case []IdentityEvidence:
			return len(r)
		}
		return 0
	},
}).Parse(reportTemplate))

// htmlMaxRows bounds the rows of inventory tables shown in HTML (the CSV has all).
const htmlMaxRows = 200

// htmlData is what the template renders.
type htmlData struct {
	H             *Header
	EU            bool
	Uses          []UseRow
	UseExceptions []UseRow
	Oversight     []*DecisionRow
	Denies        []*DecisionRow
	Decisions     []*DecisionRow
	Rows          struct{ Uses, Oversight, Denies, Decisions uint64 }
	Figure        *figure
	MaxRows       int
}

func (x *exportRun) writeHTML(h *Header) error {
	d := &htmlData{
		H: h, EU: x.req.Kind == KindEUAIAct, Uses: x.useSample, UseExceptions: x.useExceptionSample,
		Oversight: rowsOf(x.oversight.sample), Denies: rowsOf(x.denies.sample), Decisions: rowsOf(x.decisions.sample),
		Figure: buildFigure(h.Lineage), MaxRows: htmlMaxRows,
	}
	d.Rows.Uses, d.Rows.Oversight, d.Rows.Denies, d.Rows.Decisions = x.usesTable.rows, x.oversight.rows, x.denies.rows, x.decisions.rows
	o, err := x.st.create("report/report.html")
	if err != nil {
		return err
	}
	if err := tmpl.Execute(o, d); err != nil {
		o.abort()
		return fmt.Errorf("exporters: report.html: %w", err)
	}
	return o.close()
}

func rowsOf(s []any) []*DecisionRow {
	out := make([]*DecisionRow, 0, len(s))
	for _, r := range s {
		out = append(out, r.(*DecisionRow))
	}
	return out
}

// shorten clips a string for a table cell; the full value is in the CSV.
func shorten(n int, s string) string {
	if len([]rune(s)) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}

// span renders a use's period compactly: "2026-06-01 22:00:00.11 – 22:00:05.26 (5.1 s)", with
// the end's date repeated only when it differs.
func span(start, end string) string {
	s, err1 := time.Parse(time.RFC3339Nano, start)
	e, err2 := time.Parse(time.RFC3339Nano, end)
	if err1 != nil || err2 != nil {
		return start + " – " + end
	}
	const day, clock = "2006-01-02", "15:04:05.00"
	out := s.Format(day) + " " + s.Format(clock) + " – "
	if e.Format(day) != s.Format(day) {
		out += e.Format(day) + " "
	}
	d := e.Sub(s)
	dur := fmt.Sprintf("%.1f s", d.Seconds())
	if d >= time.Minute {
		dur = d.Round(time.Second).String()
	}
	return out + e.Format(clock) + " (" + dur + ")"
}

// agentName is the readable part of a workload identity: the last path segment of a SPIFFE id
// or ARN ("spiffe://bank.example/ns/agents/sa/underwriting-planner" → "underwriting-planner").
func agentName(id string) string {
	id = strings.TrimRight(id, "/")
	if i := strings.LastIndexAny(id, "/:"); i >= 0 && i+1 < len(id) {
		return id[i+1:]
	}
	return id
}

// figure is the lineage diagram: natural persons on the left, the agents they delegated to in
// the next column, sub-agents further right; an edge's width grows with the records that
// passed along it.
type figure struct {
	Width, Height int
	Columns       []figColumn
	Nodes         []figNode
	Edges         []figEdge
	Omitted       string
}

type figColumn struct {
	X     int
	Title string
}

type figNode struct {
	X, Y, W, H int
	TX, TY, CX int
	Label      string
	Count      uint64
	Title      string
	User       bool
}

type figEdge struct {
	D     string
	Width string
	Label string
}

// Figure limits: a figure an examiner can read on one page.
const (
	figMaxUsers   = 8
	figMaxPerCol  = 12
	figMaxColumns = 4
	figColW       = 250
	figNodeW      = 210
	figNodeH      = 26
	figRowH       = 36
)

func buildFigure(edges []EdgeRow) *figure {
	if len(edges) == 0 {
		return nil
	}
	out := map[string][]EdgeRow{}
	userTotal := map[string]uint64{}
	inbound := map[string]uint64{}
	for _, e := range edges {
		out[e.From] = append(out[e.From], e)
		inbound[e.To] += e.Records
		if strings.HasPrefix(e.From, "user:") {
			userTotal[e.From] += e.Records
		}
	}
	users := make([]string, 0, len(userTotal))
	for u := range userTotal {
		users = append(users, u)
	}
	slices.SortFunc(users, func(a, b string) int {
		if userTotal[a] != userTotal[b] {
			if userTotal[a] > userTotal[b] {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	omittedUsers := 0
	if len(users) > figMaxUsers {
		omittedUsers = len(users) - figMaxUsers
		users = users[:figMaxUsers]
	}
	// Breadth-first from the chosen users: a node's column is its shortest delegation depth.
	depth := map[string]int{}
	var cols [figMaxColumns][]string
	queue := []string{}
	for _, u := range users {
		depth[u] = 0
		cols[0] = append(cols[0], u)
		queue = append(queue, u)
	}
	omittedAgents := 0
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		next := out[n]
		slices.SortFunc(next, func(a, b EdgeRow) int { return strings.Compare(a.To, b.To) })
		for _, e := range next {
			if _, seen := depth[e.To]; seen {
				continue
			}
			d := depth[n] + 1
			if d >= figMaxColumns || len(cols[d]) >= figMaxPerCol {
				depth[e.To] = -1
				omittedAgents++
				continue
			}
			depth[e.To] = d
			cols[d] = append(cols[d], e.To)
			queue = append(queue, e.To)
		}
	}
	f := &figure{}
	pos := map[string]int{} // node id → index in f.Nodes
	rows := 0
	titles := []string{"Natural persons", "Agents delegated to", "Sub-agents", "Further sub-agents"}
	for c, nodes := range cols {
		if len(nodes) == 0 {
			continue
		}
		f.Columns = append(f.Columns, figColumn{X: 10 + c*figColW, Title: titles[c]})
		rows = max(rows, len(nodes))
		for i, id := range nodes {
			user := c == 0
			label := strings.TrimPrefix(strings.TrimPrefix(id, "user:"), "agent:")
			title := label
			if !user {
				label = agentName(label)
			}
			count := inbound[id]
			if user {
				count = userTotal[id]
			}
			n := figNode{X: 10 + c*figColW, Y: 40 + i*figRowH, W: figNodeW, H: figNodeH, Label: shorten(28, label), Count: count, Title: title, User: user}
			n.TX, n.TY, n.CX = n.X+8, n.Y+17, n.X+n.W-6
			f.Nodes = append(f.Nodes, n)
			pos[id] = len(f.Nodes) - 1
		}
	}
	for _, e := range edges {
		ai, okA := pos[e.From]
		bi, okB := pos[e.To]
		if !okA || !okB || f.Nodes[ai].X >= f.Nodes[bi].X {
			continue
		}
		a, b := f.Nodes[ai], f.Nodes[bi]
		x1, y1 := a.X+a.W, a.Y+a.H/2
		x2, y2 := b.X, b.Y+b.H/2
		mx := (x1 + x2) / 2
		w := 1 + 1.5*math.Log10(float64(e.Records))
		f.Edges = append(f.Edges, figEdge{
			D:     fmt.Sprintf("M%d %d C%d %d, %d %d, %d %d", x1, y1, mx, y1, mx, y2, x2, y2),
			Width: fmt.Sprintf("%.1f", w), Label: fmt.Sprintf("%s → %s: %d records", e.From, e.To, e.Records),
		})
	}
	f.Width = 20 + len(f.Columns)*figColW
	f.Height = 50 + rows*figRowH
	var omitted []string
	if omittedUsers > 0 {
		omitted = append(omitted, plural(omittedUsers, "less active person", "less active persons"))
	}
	if omittedAgents > 0 {
		omitted = append(omitted, plural(omittedAgents, "further agent", "further agents"))
	}
	if len(omitted) > 0 {
		f.Omitted = "Not drawn: " + strings.Join(omitted, " and ") + " (lineage.csv has every edge)."
	}
	return f
}
