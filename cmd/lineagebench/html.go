package main

import (
	"bytes"
	"flag"
	"fmt"
	"html/template"
	"io"
	"os"
	"strconv"
	"strings"
)

// reportMain is `lineagebench report --out FILE.html RUN.json [RUN2.json …]`: one self-contained
// HTML page (inline CSS and SVG, no script) comparing the runs.
func reportMain(args []string) error {
	fs := flag.NewFlagSet("lineagebench report", flag.ContinueOnError)
	out := fs.String("out", "compare.html", "HTML file to write")
	ratio := fs.Bool("ratio", true, "show the ratio of the second run to the first (false for runs that are not a before and after, e.g. one bench.sh's two runs)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), errUsage.Error()+"\n\nThe first run is the baseline: the ratio column is the second run over the first.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errUsage
	}
	var runs []Report
	for _, p := range fs.Args() {
		r, err := readReport(p)
		if err != nil {
			return err
		}
		runs = append(runs, r)
	}
	var b bytes.Buffer
	if err := renderHTML(&b, runs, *ratio); err != nil {
		return err
	}
	if err := os.WriteFile(*out, b.Bytes(), 0o644); err != nil {
		return err
	}
	fmt.Println(*out)
	return nil
}

type row struct {
	Label  string
	Values []string
	Ratio  string // second run / first, "" with one run or an unmeasured figure
	Better string // "better", "worse" or ""
}

type chart struct {
	Title         string
	Width, Height int
	Points        string // polyline
	Bars          []bar
	XLabel        string
	YMax          string
	XTicks        []tick
}

type bar struct {
	X, Y, W, H float64
	Title      string
}

type tick struct {
	X     float64
	Label string
}

type runView struct {
	Report
	Throughput, Latency chart
}

type page struct {
	Runs  []runView
	Rows  []row
	Ratio bool
}

const (
	chartW, chartH = 560, 200
	padL, padB     = 50, 30
)

func fmtNum(v float64) string {
	switch {
	case v == 0:
		return "–"
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

func throughputChart(r Report) chart {
	c := chart{Title: "records indexed per second", Width: chartW, Height: chartH, XLabel: "seconds from the first publish"}
	s := r.Throughput.Indexed
	peak := 1
	for _, v := range s {
		peak = max(peak, v)
	}
	c.YMax = strconv.Itoa(peak)
	plotW, plotH := float64(chartW-padL-10), float64(chartH-padB-10)
	n := max(1, len(s)-1)
	var pts []string
	for i, v := range s {
		x := padL + plotW*float64(i)/float64(n)
		y := 10 + plotH*(1-float64(v)/float64(peak))
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", x, y))
	}
	c.Points = strings.Join(pts, " ")
	for _, i := range []int{0, len(s) / 2, len(s) - 1} {
		if i >= 0 && len(s) > 0 {
			c.XTicks = append(c.XTicks, tick{X: padL + plotW*float64(i)/float64(n), Label: strconv.FormatFloat(float64(i)*r.Throughput.BucketSeconds, 'f', -1, 64)})
		}
	}
	return c
}

func latencyChart(r Report) chart {
	c := chart{Title: "publish→queryable latency (sampled records)", Width: chartW, Height: chartH, XLabel: "latency, ms (upper bound of each bin)"}
	h := r.Latency
	peak := 1
	for _, b := range h {
		peak = max(peak, b.Count)
	}
	c.YMax = strconv.Itoa(peak)
	plotW, plotH := float64(chartW-padL-10), float64(chartH-padB-10)
	w := plotW / float64(max(1, len(h)))
	for i, b := range h {
		bh := plotH * float64(b.Count) / float64(peak)
		c.Bars = append(c.Bars, bar{X: padL + w*float64(i) + 1, Y: 10 + plotH - bh, W: max(1, w-2), H: bh,
			Title: fmt.Sprintf("≤ %s ms: %d", fmtNum(b.UpperMs), b.Count)})
		if i%max(1, len(h)/6) == 0 {
			c.XTicks = append(c.XTicks, tick{X: padL + w*float64(i) + w/2, Label: fmtNum(b.UpperMs)})
		}
	}
	return c
}

// renderHTML writes the comparison page of runs; the first is the baseline of the ratio column
// (shown with ratio and two runs or more).
func renderHTML(w io.Writer, runs []Report, ratio bool) error {
	p := page{Ratio: ratio && len(runs) >= 2}
	for _, f := range figures {
		rw := row{Label: f.label}
		for _, r := range runs {
			rw.Values = append(rw.Values, f.format(r))
		}
		if p.Ratio {
			if a, b := f.get(runs[0]), f.get(runs[1]); a != 0 && b != 0 {
				q := b / a
				rw.Ratio = strconv.FormatFloat(q, 'f', 2, 64) + "×"
				if !f.neutral && (q > 1.02 || q < 0.98) {
					if (q > 1) == f.higherBetter {
						rw.Better = "better"
					} else {
						rw.Better = "worse"
					}
				}
			}
		}
		p.Rows = append(p.Rows, rw)
	}
	for _, r := range runs {
		p.Runs = append(p.Runs, runView{Report: r, Throughput: throughputChart(r), Latency: latencyChart(r)})
	}
	return pageTmpl.Execute(w, p)
}

var pageTmpl = template.Must(template.New("page").Funcs(template.FuncMap{
	"load": loadString,
	"rate": func(r int) string {
		if r == 0 {
			return "as fast as possible"
		}
		return strconv.Itoa(r) + "/s"
	},
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>lineagebench: {{range $i, $r := .Runs}}{{if $i}} vs {{end}}{{$r.Name}}{{end}}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:right}
th:first-child,td:first-child{text-align:left}
td.better{background:#e3f6e3}td.worse{background:#fbe3e3}
.runs{display:flex;flex-wrap:wrap;gap:2em}
.run{border:1px solid #ddd;padding:1em}
svg{display:block;background:#fafafa}
svg text{font-size:11px;fill:#555}
code{font-size:12px}
</style></head><body>
<h1>lineagebench</h1>
<table>
<tr><th>figure</th>{{range .Runs}}<th>{{.Name}}</th>{{end}}{{if .Ratio}}<th>ratio {{(index .Runs 1).Name}} / {{(index .Runs 0).Name}}</th>{{end}}</tr>
{{range .Rows}}<tr><td>{{.Label}}</td>{{range .Values}}<td>{{.}}</td>{{end}}{{if $.Ratio}}<td class="{{.Better}}">{{or .Ratio "–"}}</td>{{end}}</tr>
{{end}}<tr><td>rate</td>{{range .Runs}}<td>{{rate .Params.Rate}}</td>{{end}}{{if .Ratio}}<td></td>{{end}}</tr>
<tr><td>seed</td>{{range .Runs}}<td>{{.Params.Seed}}</td>{{end}}{{if .Ratio}}<td></td>{{end}}</tr>
<tr><td>started (UTC)</td>{{range .Runs}}<td>{{.Timestamp.Format "2006-01-02 15:04:05"}}</td>{{end}}{{if .Ratio}}<td></td>{{end}}</tr>
<tr><td>Go</td>{{range .Runs}}<td>{{.GoVersion}}</td>{{end}}{{if .Ratio}}<td></td>{{end}}</tr>
<tr><td>load average at start</td>{{range .Runs}}<td>{{load .LoadAvgStart}}</td>{{end}}{{if .Ratio}}<td></td>{{end}}</tr>
<tr><td>load average at end</td>{{range .Runs}}<td>{{load .LoadAvgEnd}}</td>{{end}}{{if .Ratio}}<td></td>{{end}}</tr>
<tr><td>note</td>{{range .Runs}}<td>{{.Params.Note}}</td>{{end}}{{if .Ratio}}<td></td>{{end}}</tr>
<tr><td>signed records</td>{{range .Runs}}<td>{{if .Params.Signed}}yes{{else}}no{{end}}</td>{{end}}{{if .Ratio}}<td></td>{{end}}</tr>
<tr><td>answers: user</td>{{range .Runs}}<td>{{.Figures.AnswerTenant}} {{.Figures.AnswerUser}}</td>{{end}}{{if .Ratio}}<td></td>{{end}}</tr>
</table>
<div class="runs">
{{range .Runs}}<div class="run">
<h2>{{.Name}}</h2>
<p><code>{{range $k, $v := .Params.Flags}}--{{$k}}={{$v}} {{end}}</code></p>
{{with .Throughput}}<h3>{{.Title}}</h3>
<svg width="{{.Width}}" height="{{.Height}}" viewBox="0 0 {{.Width}} {{.Height}}" role="img" aria-label="{{.Title}}">
<line x1="50" y1="10" x2="50" y2="170" stroke="#999"/><line x1="50" y1="170" x2="550" y2="170" stroke="#999"/>
<text x="46" y="16" text-anchor="end">{{.YMax}}</text><text x="46" y="170" text-anchor="end">0</text>
{{range .XTicks}}<text x="{{.X}}" y="184" text-anchor="middle">{{.Label}}</text>{{end}}
<text x="300" y="198" text-anchor="middle">{{.XLabel}}</text>
<polyline fill="none" stroke="#2a6fdb" stroke-width="1.5" points="{{.Points}}"/>
</svg>{{end}}
{{with .Latency}}<h3>{{.Title}}</h3>
<svg width="{{.Width}}" height="{{.Height}}" viewBox="0 0 {{.Width}} {{.Height}}" role="img" aria-label="{{.Title}}">
<line x1="50" y1="10" x2="50" y2="170" stroke="#999"/><line x1="50" y1="170" x2="550" y2="170" stroke="#999"/>
<text x="46" y="16" text-anchor="end">{{.YMax}}</text><text x="46" y="170" text-anchor="end">0</text>
{{range .Bars}}<rect x="{{.X}}" y="{{.Y}}" width="{{.W}}" height="{{.H}}" fill="#db8a2a"><title>{{.Title}}</title></rect>{{end}}
{{range .XTicks}}<text x="{{.X}}" y="184" text-anchor="middle">{{.Label}}</text>{{end}}
<text x="300" y="198" text-anchor="middle">{{.XLabel}}</text>
</svg>{{end}}
</div>
{{end}}</div>
</body></html>
`))
