package loadgen

import (
	"os"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	// A command name with spaces and a ')' of its own: fields count from the last ')'.
	line := []byte("4242 (line aged) x) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 37 0 0 20 0 12 0 100 0 0\n")
	got, err := parseStatCPU(line)
	if err != nil {
		t.Fatal(err)
	}
	if want := 2870 * time.Millisecond; got != want {
		t.Fatalf("cpu = %s, want %s (utime 250 + stime 37 ticks)", got, want)
	}
	if _, err := parseStatCPU([]byte("4242 (x) S 1 2")); err == nil {
		t.Fatal("short stat line accepted")
	}
	if _, err := parseStatCPU([]byte("no parens")); err == nil {
		t.Fatal("stat line without a command name accepted")
	}
}

func TestProcessCPUSelf(t *testing.T) {
	if _, err := ProcessCPU(os.Getpid()); err != nil {
		t.Fatal(err)
	}
}

func TestIndexedPerSecond(t *testing.T) {
	start := time.Unix(1000, 0)
	at := func(ms int) time.Time { return start.Add(time.Duration(ms) * time.Millisecond) }
	obs := []observation{
		{at(-5), 100}, {at(300), 150}, {at(900), 400}, // bucket 0: 300 applied
		// bucket 1: no sample
		{at(2100), 900}, {at(2500), 1000}, // bucket 2: 600
		{at(3000), 1000}, // bucket 3: 0
	}
	got := indexedPerSecond(obs, start, 100)
	want := []int{300, 0, 600, 0}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	if indexedPerSecond(nil, start, 0) != nil {
		t.Fatal("no observations: want nil")
	}
}

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	for _, c := range []struct {
		lat  []time.Duration
		p    float64
		want time.Duration
	}{
		{nil, 0.5, 0},
		{ms(7), 0.5, 7 * time.Millisecond},
		{ms(7), 0.99, 7 * time.Millisecond},
		{ms(1, 2), 0.5, 1 * time.Millisecond}, // nearest rank: ceil(0.5*2) = 1st
		{ms(1, 2, 3, 4), 0.5, 2 * time.Millisecond},
		{ms(1, 2, 3, 4), 0.99, 4 * time.Millisecond},
		{hundred, 0.50, 50 * time.Millisecond},
		{hundred, 0.90, 90 * time.Millisecond},
		{hundred, 0.99, 99 * time.Millisecond},
		{hundred, 1, 100 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20), 0.99, 20 * time.Millisecond},
	} {
		if got := percentile(c.lat, c.p); got != c.want {
			t.Errorf("percentile(%v, %v) = %v, want %v", c.lat, c.p, got, c.want)
		}
	}
	l := summarize(ms(30, 10, 20), 123)
	if l.Requests != 3 || l.P50 != 20*time.Millisecond || l.P99 != 30*time.Millisecond || l.Max != 30*time.Millisecond || l.Bytes != 123 {
		t.Fatalf("summarize: %+v", l)
	}
}

func TestParseMetrics(t *testing.T) {
	text := []byte(`# HELP go_memstats_mallocs_total Total number of heap objects allocated.
# TYPE go_memstats_mallocs_total counter
go_memstats_mallocs_total 925320
go_memstats_alloc_bytes 1.8035e+07
go_memstats_alloc_bytes_total 1.50066048e+08
go_gc_duration_seconds{quantile="0"} 2.5e-05
process_resident_memory_bytes 1.17440512e+08 1700000000000
`)
	m, err := parseMetrics(text, metricMallocs, metricAllocBytes, metricRSS, "go_gc_duration_seconds", "absent")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{metricMallocs: 925320, metricAllocBytes: 1.50066048e+08, metricRSS: 1.17440512e+08}
	if len(m) != len(want) {
		t.Fatalf("got %v, want %v (labelled and absent samples are not read)", m, want)
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
	if _, err := parseMetrics([]byte("go_memstats_mallocs_total x\n"), metricMallocs); err == nil {
		t.Error("a non-number value accepted")
	}
}

func TestBusiestAndSignKeyID(t *testing.T) {
	u, n := busiest(map[userKey]int{{"b", "x"}: 5, {"a", "z"}: 5, {"a", "y"}: 3, {"c", "w"}: 4})
	if u != (userKey{"a", "z"}) || n != 5 {
		t.Fatalf("busiest = %v %d, want {a z} 5 (ties broken by tenant, then user)", u, n)
	}
	if got := SignKeyID("bench-{source}@{tenant}", "acme-bank", "opa-sidecar"); got != "bench-opa-sidecar@acme-bank" {
		t.Fatalf("SignKeyID = %q", got)
	}
	src := Sources(42, 2000)
	if len(src) != DemoTenants*2 {
		t.Fatalf("Sources = %v, want each of %d tenants with its gateway and OPA sidecar", src, DemoTenants)
	}
	for i := 1; i < len(src); i++ {
		if src[i-1].Tenant > src[i].Tenant || src[i-1] == src[i] {
			t.Fatalf("Sources not sorted and distinct: %v", src)
		}
	}
}
