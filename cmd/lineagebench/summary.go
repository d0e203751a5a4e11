package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"unicode/utf8"
)

// summaryMain is `lineagebench summary RUN.json [RUN2.json …]`: every figure of the runs as one
// text table, a column per run (scripts/bench.sh ends with it).
func summaryMain(args []string, w io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: lineagebench summary RUN.json [RUN2.json …]")
	}
	var runs []Report
	for _, p := range args {
		r, err := readReport(p)
		if err != nil {
			return err
		}
		runs = append(runs, r)
	}
	return writeSummary(w, runs)
}

// writeSummary writes the runs' figures as a text table: labels left, a right-aligned column
// per run.
func writeSummary(w io.Writer, runs []Report) error {
	var rows [][]string
	line := func(label string, f func(Report) string) {
		row := []string{label}
		for _, r := range runs {
			row = append(row, f(r))
		}
		rows = append(rows, row)
	}
	line("figure", func(r Report) string { return r.Name })
	line("rate", func(r Report) string {
		if r.Params.Rate == 0 {
			return "max"
		}
		return strconv.Itoa(r.Params.Rate) + "/s"
	})
	for _, f := range figures {
		line(f.label, f.format)
	}
	line("answers: user", func(r Report) string {
		if r.Figures.AnswerUser == "" {
			return "–"
		}
		return r.Figures.AnswerTenant + "/" + r.Figures.AnswerUser
	})
	line("signed records", func(r Report) string { return map[bool]string{true: "yes", false: "no"}[r.Params.Signed] })
	line("load average start", func(r Report) string { return loadString(r.LoadAvgStart) })
	line("load average end", func(r Report) string { return loadString(r.LoadAvgEnd) })
	width := make([]int, len(runs)+1)
	for _, row := range rows {
		for i, c := range row {
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	var b strings.Builder
	for _, row := range rows {
		for i, c := range row {
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(c))
			if i == 0 {
				b.WriteString(c + pad)
			} else {
				b.WriteString("  " + pad + c)
			}
		}
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func loadString(v []float64) string {
	if len(v) == 0 {
		return "–"
	}
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.FormatFloat(x, 'f', 2, 64)
	}
	return strings.Join(s, " ")
}

// fieldMain is `lineagebench field RUN.json PATH`: prints one value of a report, PATH being its
// JSON member names joined by dots (e.g. figures.records_per_sec), so scripts need no jq. A
// missing member is an error.
func fieldMain(args []string, w io.Writer) error {
	if len(args) != 2 {
		return errors.New("usage: lineagebench field RUN.json PATH (e.g. figures.records_per_sec)")
	}
	b, err := os.ReadFile(args[0])
	if err != nil {
		return err
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("%s: %w", args[0], err)
	}
	for _, k := range strings.Split(args[1], ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: %s: %q is not inside an object", args[0], args[1], k)
		}
		if v, ok = m[k]; !ok {
			return fmt.Errorf("%s: no %s", args[0], args[1])
		}
	}
	switch x := v.(type) {
	case float64:
		_, err = fmt.Fprintln(w, strconv.FormatFloat(x, 'f', -1, 64))
	case string:
		_, err = fmt.Fprintln(w, x)
	default:
		b, _ := json.Marshal(x)
		_, err = fmt.Fprintln(w, string(b))
	}
	return err
}
