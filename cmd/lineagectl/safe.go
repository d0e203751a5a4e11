package main

import (
	"fmt"
	"sort"
	"strings"

	lineage "github.com/lineage-audit/lineage"
)

// Everything lineagectl prints for a person that comes from a record, the API, a bundle or a
// file (ids, names, reasons, quarantine details, server error messages) goes through these
// helpers: a hostile string then shows its control, bidi and line-break characters as visible
// escapes instead of acting on the terminal. Records logged before ingest rejected such
// characters (see the rules next to Record in record.go) still print safely. --json output
// is JSON, whose encoder escapes control characters itself.

// safe is lineage.Printable.
func safe(s string) string { return lineage.Printable(s) }

// safeV shows any value as %v would, made printable.
func safeV(v any) string { return lineage.Printable(fmt.Sprint(v)) }

// safeList shows a list as %v would ([a b c]), each item made printable.
func safeList(items []string) string {
	out := make([]string, len(items))
	for i, s := range items {
		out[i] = lineage.Printable(s)
	}
	return "[" + strings.Join(out, " ") + "]"
}

// safeCounts shows a map of counts as %v would (map[a:1 b:2], sorted by key), keys made
// printable.
func safeCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("map[")
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s:%d", lineage.Printable(k), m[k])
	}
	b.WriteByte(']')
	return b.String()
}
