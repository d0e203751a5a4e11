package loadgen

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// Metrics of the Go collector lineaged registers (internal/service/stores.go,
// collectors.NewGoCollector): cumulative heap allocations and bytes allocated since the start.
const (
	metricMallocs    = "go_memstats_mallocs_total"
	metricAllocBytes = "go_memstats_alloc_bytes_total"
	metricRSS        = "process_resident_memory_bytes"
)

// Allocs is a reading of lineaged's cumulative allocation counters.
type Allocs struct {
	Mallocs, Bytes float64
}

// parseMetrics reads the values of the unlabelled samples named in names from a Prometheus text
// exposition. Names not present are missing from the result.
func parseMetrics(b []byte, names ...string) (map[string]float64, error) {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		// name value [timestamp]; a labelled sample has '{' in its name field and never matches.
		f := strings.Fields(line)
		if len(f) < 2 || !want[f[0]] {
			continue
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			return nil, fmt.Errorf("metric %s: %w", f[0], err)
		}
		out[f[0]] = v
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// metrics reads the named metrics from lineaged's /metrics (role admin when lineaged has API
// keys). Every name must be present.
func (a apiClient) metrics(names ...string) (map[string]float64, error) {
	resp, err := a.get("/metrics")
	if err != nil {
		return nil, fmt.Errorf("GET /metrics: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("GET /metrics: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s (it needs role admin when lineaged has API keys)", resp.Status)
	}
	m, err := parseMetrics(b, names...)
	if err != nil {
		return nil, fmt.Errorf("GET /metrics: %w", err)
	}
	for _, n := range names {
		if _, ok := m[n]; !ok {
			return nil, fmt.Errorf("GET /metrics: no %s", n)
		}
	}
	return m, nil
}

// allocs reads lineaged's cumulative allocation counters.
func (a apiClient) allocs() (Allocs, error) {
	m, err := a.metrics(metricMallocs, metricAllocBytes)
	if err != nil {
		return Allocs{}, err
	}
	return Allocs{Mallocs: m[metricMallocs], Bytes: m[metricAllocBytes]}, nil
}
