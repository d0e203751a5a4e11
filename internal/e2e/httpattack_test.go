package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lineage-audit/lineage/internal/demo"
	"github.com/lineage-audit/lineage/query/auth"
)

// Attacks on lineaged's HTTP front, over real TCP connections (security issue items 4, 5, 6, 9).

// Short limits, so each attack shows within seconds (see `lineaged serve -h`).
var (
	timeoutFlags = []string{"--http-read-header-timeout", "1s", "--http-read-timeout", "2s", "--http-idle-timeout", "1s"}
	connsFlags   = []string{"--http-read-header-timeout", "3s", "--http-max-conns", "8"}
	budgetFlags  = []string{"--http-read-timeout", "20s", "--http-max-inflight-bytes", "33554432"}
	hostsFlags   = []string{"--http-allowed-hosts", "lineage.test", "--http-allowed-origins", "http://ui.example"}
)

// rawConn opens a TCP connection to addr and writes head.
func rawConn(t *testing.T, addr, head string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if head != "" {
		if _, err := io.WriteString(c, head); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// waitClosed reads (and discards) until the server closes c, for at most d. It returns how long
// that took and the status line of the answer, if one came.
func waitClosed(c net.Conn, d time.Duration) (time.Duration, string, bool) {
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(d))
	var got bytes.Buffer
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if got.Len() < 256 {
			got.Write(buf[:n])
		}
		if err != nil {
			var ne net.Error
			closed := !(errors.As(err, &ne) && ne.Timeout())
			status, _, _ := strings.Cut(got.String(), "\r\n")
			return time.Since(start), status, closed
		}
	}
}

func TestHTTPTimeouts(t *testing.T) {
	d := startDaemon(t, t.TempDir(), freeAddr(t), freeAddr(t), timeoutFlags...)
	defer d.stop()

	// 1. Slow bodies: 1 byte every 500 ms never completes a 1000-byte body.
	const slow = 40
	var wg sync.WaitGroup
	conns := make([]net.Conn, slow)
	for i := range conns {
		conns[i] = rawConn(t, d.httpAddr, "POST /v1/records HTTP/1.1\r\nHost: "+d.httpAddr+
			"\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n")
		wg.Go(func() {
			for range 20 {
				if _, err := conns[i].Write([]byte(" ")); err != nil {
					return
				}
				time.Sleep(500 * time.Millisecond)
			}
		})
	}
	// 2. A chunked body that never ends.
	chunked := rawConn(t, d.httpAddr, "POST /v1/records HTTP/1.1\r\nHost: "+d.httpAddr+
		"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n[\r\n")
	// 3. An idle keep-alive connection, after one answer.
	idle := rawConn(t, d.httpAddr, "GET /healthz HTTP/1.1\r\nHost: "+d.httpAddr+"\r\n\r\n")
	br := bufio.NewReader(idle)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	// 4. Headers that never end.
	slowHead := rawConn(t, d.httpAddr, "GET /healthz HTTP/1.1\r\nHost: x\r\n")

	start := time.Now()
	var worst time.Duration
	closed := 0
	for _, c := range conns {
		if _, _, ok := waitClosed(c, 6*time.Second-time.Since(start)); ok {
			closed++
		}
	}
	worst = time.Since(start)
	t.Logf("slow bodies: %d of %d connections closed by the server, the last after %s", closed, slow, worst.Round(time.Millisecond))
	if closed != slow {
		t.Errorf("%d of %d slow-body connections still open after %s (read timeout 2s)", slow-closed, slow, worst.Round(time.Millisecond))
	}
	_, status, ok := waitClosed(chunked, 5*time.Second)
	t.Logf("endless chunked body: answer %q, closed %v, %s after the attack began", status, ok, time.Since(start).Round(time.Millisecond))
	if !ok || !strings.HasPrefix(status, "HTTP/1.1 4") {
		t.Errorf("endless chunked body: answer %q, closed %v within 5s; want a 4xx and a close", status, ok)
	}
	idle.SetReadDeadline(time.Now().Add(4 * time.Second))
	_, err = br.ReadByte()
	t.Logf("idle keep-alive: read %v", err)
	if err == nil || isTimeout(err) {
		t.Errorf("idle keep-alive connection still open after 4s (idle timeout 1s): %v", err)
	}
	if took, _, ok := waitClosed(slowHead, 4*time.Second); !ok {
		t.Errorf("unfinished headers still open after %s (header timeout 1s)", took)
	}
	for _, c := range conns {
		c.Close()
	}
	wg.Wait()
	// The server still answers.
	if code := d.getJSON(t, "/healthz", nil); code != http.StatusOK {
		t.Fatalf("healthz after the attack: %d", code)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestHTTPMaxConns(t *testing.T) {
	d := startDaemon(t, t.TempDir(), freeAddr(t), freeAddr(t), connsFlags...)
	defer d.stop()
	// Eight connections that say nothing take every slot (each is dropped after the 3 s header
	// timeout); a ninth caller waits for one of them to go.
	var silent []net.Conn
	for range 8 {
		silent = append(silent, rawConn(t, d.httpAddr, ""))
	}
	time.Sleep(200 * time.Millisecond)
	client := &http.Client{Timeout: time.Second}
	if resp, err := client.Get(d.url("/healthz")); err == nil {
		resp.Body.Close()
		t.Fatalf("a ninth connection was served (%s) while 8 were open with --http-max-conns 8", resp.Status)
	}
	client.Timeout = 10 * time.Second
	start := time.Now()
	resp, err := client.Get(d.url("/healthz"))
	if err != nil {
		t.Fatalf("healthz once the silent connections time out: %v", err)
	}
	resp.Body.Close()
	t.Logf("ninth connection: refused service for 1s while 8 were held, served after another %s", time.Since(start).Round(time.Millisecond))
	for _, c := range silent {
		c.Close()
	}
}

func TestHTTPUnauthenticatedBodyIsNotRead(t *testing.T) {
	key, entry, err := auth.NewKey("pub", []auth.Role{auth.RolePublisher}, []string{"*"})
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "keys.json")
	if err := os.WriteFile(keyFile, must(json.Marshal(auth.KeyFile{Keys: []auth.KeyEntry{entry}})), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = key
	d := startDaemon(t, t.TempDir(), freeAddr(t), freeAddr(t), "--api-keys", keyFile)
	defer d.stop()
	// No credentials, a chunked body that never ends: the 401 comes at once, then the close.
	c := rawConn(t, d.httpAddr, "POST /v1/records HTTP/1.1\r\nHost: "+d.httpAddr+
		"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n[\r\n")
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	start := time.Now()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer to an unauthenticated endless chunked POST within 3s: %v", err)
	}
	first := time.Since(start)
	took, _, closed := waitClosed(c, 3*time.Second)
	t.Logf("unauthenticated endless chunked POST: %s after %s, connection closed %v after another %s", resp.Status, first.Round(time.Millisecond), closed, took.Round(time.Millisecond))
	if resp.StatusCode != http.StatusUnauthorized || !closed {
		t.Fatalf("got %s, closed %v; want 401 and a closed connection", resp.Status, closed)
	}
}

// heapInuse reads go_memstats_heap_inuse_bytes from the daemon's /metrics.
func heapInuse(t *testing.T, d *daemon) float64 {
	b, err := getQuiet(d.url("/metrics"))
	if err != nil {
		t.Log(err)
		return 0
	}
	m := regexp.MustCompile(`(?m)^go_memstats_heap_inuse_bytes ([0-9.e+]+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("no go_memstats_heap_inuse_bytes in /metrics")
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

func TestHTTPInflightBudget(t *testing.T) {
	d := startDaemon(t, t.TempDir(), freeAddr(t), freeAddr(t), budgetFlags...)
	defer d.stop()
	base := heapInuse(t, d)
	// 16 uploads of 15 MB bodies stall after 14 MB: before the budget, the server held all of
	// them (~224 MB and more).
	const n, size, sent = 16, 15_000_000, 14_000_000
	body := bytes.Repeat([]byte(" "), sent)
	type outcome struct {
		status string
		retry  string
	}
	results := make(chan outcome, n)
	var conns []net.Conn
	for range n {
		c := rawConn(t, d.httpAddr, "POST /v1/records HTTP/1.1\r\nHost: "+d.httpAddr+
			"\r\nContent-Type: application/json\r\nContent-Length: "+strconv.Itoa(size)+"\r\n\r\n")
		conns = append(conns, c)
		go func() { _, _ = c.Write(body) }()
		go func() {
			_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				results <- outcome{status: err.Error()}
				return
			}
			resp.Body.Close()
			results <- outcome{status: resp.Status, retry: resp.Header.Get("Retry-After")}
		}()
	}
	// While the admitted uploads stall, sample the heap.
	var peak float64
	busy := 0
	deadline := time.After(4 * time.Second)
sample:
	for {
		select {
		case o := <-results:
			if strings.HasPrefix(o.status, "503") && o.retry != "" {
				busy++
			} else {
				t.Logf("upload answered early: %+v", o)
			}
		case <-deadline:
			break sample
		case <-time.After(250 * time.Millisecond):
			peak = max(peak, heapInuse(t, d))
		}
	}
	peak = max(peak, heapInuse(t, d))
	growth := (peak - base) / 1e6
	t.Logf("%d uploads of %d MB stalled at %d MB: %d refused with 503 + Retry-After, heap in use %.0f MB -> peak %.0f MB (+%.0f MB)",
		n, size/1_000_000, sent/1_000_000, busy, base/1e6, peak/1e6, growth)
	if busy < n-3 {
		t.Errorf("%d of %d uploads refused with 503; a 32 MiB budget admits two 15 MB bodies", busy, n)
	}
	if growth > 120 {
		t.Errorf("heap grew by %.0f MB holding stalled uploads; the budget is 32 MiB", growth)
	}
	for _, c := range conns {
		c.Close()
	}
	// Once they are gone, a normal upload goes through.
	rec := demo.Generate(demo.Options{Seed: 3, Tenants: 1}, 1)
	req, _ := http.NewRequest(http.MethodPost, d.url("/v1/records"), bytes.NewReader(must(json.Marshal(rec))))
	req.Header.Set("Content-Type", "application/json")
	var resp *http.Response
	for range 20 { // the admitted uploads' reservations return as the server sees them close
		var err error
		if resp, err = http.DefaultClient.Do(req); err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusServiceUnavailable {
			break
		}
		resp.Body.Close()
		time.Sleep(100 * time.Millisecond)
		req.Body = io.NopCloser(bytes.NewReader(must(json.Marshal(rec))))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("a normal upload after the attack: %s %s", resp.Status, b)
	}
}

// send makes one request with the given Host, Origin and Content-Type headers.
func send(t *testing.T, d *daemon, method, path, host, origin, ctype string, body []byte) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, d.url(path), bytes.NewReader(body))
	if body == nil {
		req.Body = nil
	}
	if host != "" {
		req.Host = host
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
	return resp, b
}

func TestHTTPBrowserSafety(t *testing.T) {
	d := startDaemon(t, t.TempDir(), freeAddr(t), freeAddr(t), hostsFlags...)
	defer d.stop()
	recs := demo.Generate(demo.Options{Seed: 4, Tenants: 1}, 4)
	body := func(i int) []byte { return must(json.Marshal(recs[i : i+1])) }
	_, port, _ := net.SplitHostPort(d.httpAddr)
	for _, tc := range []struct {
		name                string
		host, origin, ctype string
		i                   int
		want                int
	}{
		// The attack: a page's "simple" cross-origin POST after rebinding its name to loopback.
		{"rebound text/plain", "evil.example:28080", "http://evil.example:28080", "text/plain", 0, 403},
		{"cross-origin text/plain", "", "http://evil.example", "text/plain", 0, 403},
		{"cross-origin json", "", "http://evil.example", "application/json", 0, 403},
		{"null origin", "", "null", "application/json", 0, 403},
		{"text/plain without origin", "", "", "text/plain", 0, 415},
		{"form without origin", "", "", "application/x-www-form-urlencoded", 0, 415},
		{"no content type", "", "", "", 0, 415},
		{"same origin", "", "http://" + d.httpAddr, "application/json", 0, 202},
		{"localhost origin and host", "localhost:" + port, "http://localhost:" + port, "application/json; charset=utf-8", 1, 202},
		{"allowed origin", "", "http://ui.example", "application/x-ndjson", 2, 202},
		{"allowed host", "lineage.test:443", "", "application/json", 3, 202},
	} {
		resp, b := send(t, d, http.MethodPost, "/v1/records", tc.host, tc.origin, tc.ctype, body(tc.i))
		t.Logf("POST Host %q Origin %q Content-Type %q: %s", tc.host, tc.origin, tc.ctype, resp.Status)
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %s %s; want %d", tc.name, resp.Status, b, tc.want)
		}
	}
	d.waitIndexed(t, 4)
	path := "/v1/records/" + recs[0].ID
	for _, tc := range []struct {
		host string
		want int
	}{{"attacker.example", 403}, {"attacker.example:" + port, 403}, {"127.0.0.1:" + port, 200}, {"[::1]:" + port, 200}, {"localhost", 200}, {"LINEAGE.test", 200}} {
		resp, b := send(t, d, http.MethodGet, path, tc.host, "", "", nil)
		t.Logf("GET Host %q: %s", tc.host, resp.Status)
		if resp.StatusCode != tc.want {
			t.Errorf("GET with Host %q: %s %s; want %d", tc.host, resp.Status, b, tc.want)
		}
	}

	// Every answer, errors included, is marked nosniff and unframeable.
	resp, b := send(t, d, http.MethodGet, "/v1/records/%3Cscript%3Ealert(1)%3C%2Fscript%3E", "", "", "", nil)
	for h, want := range map[string]string{"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'", "X-Frame-Options": "DENY"} {
		if got := resp.Header.Get(h); got != want {
			t.Errorf("%s on a %s answer %s: %q, want %q", h, resp.Status, b, got, want)
		}
	}

	// Malformed tile paths are "not found", not server errors.
	for _, p := range []string{"/log/tile/0", "/log/tile/entries", "/log/tile/%00", "/log/tile/0/x000", "/log/tile/0/000.p/0"} {
		resp, b := send(t, d, http.MethodGet, p, "", "", "", nil)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %s %s; want 404", p, resp.Status, b)
		}
	}
	if resp, _ := send(t, d, http.MethodGet, "/log/tile/entries/000.p/4", "", "", "", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("GET /log/tile/entries/000.p/4: %s; want 200", resp.Status)
	}
	if strings.Contains(d.logs.String(), "level=ERROR") {
		t.Errorf("lineaged logged errors:\n%s", d.logs)
	}
}
