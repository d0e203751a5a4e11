package main

import "strconv"

// figure is one row of the comparison table (html.go) and of the summary (summary.go).
type figure struct {
	label string
	get   func(Report) float64
	// higherBetter colours the ratio; neutral figures (counts, not measurements) get none and
	// are shown as integers.
	higherBetter, neutral bool
}

// format shows a figure's value ("–" for 0: not measured).
func (f figure) format(r Report) string {
	v := f.get(r)
	if f.neutral && v != 0 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return fmtNum(v)
}

// figures lists every figure of a report in the order the tables show them. A figure that a
// run did not measure (or that an older report lacks) reads 0 and is shown as "–".
var figures = []figure{
	{label: "records", get: func(r Report) float64 { return float64(r.Figures.Records) }, neutral: true},
	{label: "end to end, records/s", get: func(r Report) float64 { return r.Figures.RecordsPerSec }, higherBetter: true},
	{label: "JetStream accepted, records/s", get: func(r Report) float64 { return r.Figures.AcceptedPerSec }, higherBetter: true},
	{label: "publish→queryable p50, ms", get: func(r Report) float64 { return r.Figures.P50Ms }},
	{label: "p90, ms", get: func(r Report) float64 { return r.Figures.P90Ms }},
	{label: "p99, ms", get: func(r Report) float64 { return r.Figures.P99Ms }},
	{label: "max, ms", get: func(r Report) float64 { return r.Figures.MaxMs }},
	{label: "lineaged CPU, µs/record", get: func(r Report) float64 { return r.Figures.CPUMicrosPerRecord }},
	{label: "lineaged RSS, MiB", get: func(r Report) float64 { return r.Figures.RSSMiB }},
	{label: "lineaged allocations/record", get: func(r Report) float64 { return r.Figures.AllocsPerRecord }},
	{label: "lineaged bytes allocated/record", get: func(r Report) float64 { return r.Figures.AllocBytesPerRecord }},
	{label: "disk: log + index, bytes/record", get: func(r Report) float64 { return r.Figures.DiskLogIndex }},
	{label: "disk: log + index allocated, bytes/record", get: func(r Report) float64 { return r.Figures.DiskLogIndexAllocated }},
	{label: "disk: log, bytes/record", get: func(r Report) float64 { return r.Figures.DiskLog }},
	{label: "  of which partial tiles (not yet collected)", get: func(r Report) float64 { return r.Figures.DiskLogPartial }},
	{label: "disk: index, bytes/record", get: func(r Report) float64 { return r.Figures.DiskIndex }},
	{label: "  of which SQLite -wal and -shm", get: func(r Report) float64 { return r.Figures.DiskIndexWAL }},
	{label: "disk: NATS JetStream, bytes/record", get: func(r Report) float64 { return r.Figures.DiskNATS }},
	{label: "disk: other, bytes/record", get: func(r Report) float64 { return r.Figures.DiskOther }},
	{label: "disk: records in the log", get: func(r Report) float64 { return float64(r.Figures.DiskRecords) }, neutral: true},
	{label: "answer: user tree, actions", get: func(r Report) float64 { return float64(r.Figures.AnswerActions) }, neutral: true},
	{label: "answer: tree without proofs p50, ms", get: func(r Report) float64 { return r.Figures.AnswerTreeP50Ms }},
	{label: "answer: tree without proofs p99, ms", get: func(r Report) float64 { return r.Figures.AnswerTreeP99Ms }},
	{label: "answer: tree with every proof p50, ms", get: func(r Report) float64 { return r.Figures.AnswerTreeProofsP50Ms }},
	{label: "answer: tree with every proof p99, ms", get: func(r Report) float64 { return r.Figures.AnswerTreeProofsP99Ms }},
	{label: "answer: record + inclusion proof p50, ms", get: func(r Report) float64 { return r.Figures.AnswerRecordP50Ms }},
	{label: "answer: record + inclusion proof p99, ms", get: func(r Report) float64 { return r.Figures.AnswerRecordP99Ms }},
	{label: "answer: requests of each kind", get: func(r Report) float64 { return float64(r.Figures.AnswerRequests) }, neutral: true},
	{label: "sampled records source_verified", get: func(r Report) float64 { return float64(r.Figures.SourceVerified) }, neutral: true},
}
