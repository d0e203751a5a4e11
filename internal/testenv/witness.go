package testenv

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/mod/sumdb/note"
)

// The witness that tests run is torchwood's litewitness, a C2SP tlog-witness server backed by
// SQLite, with witnessctl to register logs in its database. torchwood is not a dependency of
// Lineage (it is not in go.mod): the binaries are built from this pinned release with
// torchwood's own go.mod, as `go install module@version` does.
const (
	torchwoodModule  = "filippo.io/torchwood"
	torchwoodVersion = "v0.6.1"
)

// algCosignatureV1 is the signature type byte of a C2SP tlog-cosignature (cosignature/v1)
// Ed25519 key, the prefix of the key bytes in its verifier key.
const algCosignatureV1 = 0x04

// witnessStartTimeout bounds how long a litewitness process may take to answer HTTP.
const witnessStartTimeout = 30 * time.Second

// Witness is a running litewitness process on loopback.
type Witness struct {
	Name string // the witness's name (its cosignature key name), e.g. "witness-1.lineage.test"
	URL  string // base URL "http://127.0.0.1:PORT"; the C2SP endpoint is URL+"/add-checkpoint"
	VKey string // its C2SP cosignature/v1 verifier key "name+hash+base64(0x04||pubkey)", as formats/note.NewVerifierForCosignatureV1 accepts

	dir         string // the test's temp dir: database and process logs
	db          string // the SQLite database (kept across Stop and Start)
	addr        string // the listen address, 127.0.0.1:PORT (kept across Stop and Start)
	bin, ctl    string // litewitness and witnessctl
	fingerprint string // "SHA256:..." of the witness key in agent
	agent       *sshAgent

	mu     sync.Mutex
	proc   *proc
	starts int
}

// StartWitness builds litewitness (once per machine), starts it with a fresh Ed25519 key held
// by an ssh-agent served from the test process, and waits until it answers HTTP. The process
// is stopped and the agent closed when the test ends. name is the witness's cosignature key
// name: non-empty, without spaces or '+'.
func StartWitness(t testing.TB, name string) *Witness {
	t.Helper()
	if !validKeyName(name) {
		t.Fatalf("testenv: witness name %q: must be non-empty UTF-8 without spaces or '+'", name)
	}
	t0 := time.Now()
	bin, ctl := witnessBinaries(t)
	prepared := time.Now()

	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("testenv: witness %s: generate key: %v", name, err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatalf("testenv: witness %s: ssh public key: %v", name, err)
	}
	ag, err := startSSHAgent(priv)
	if err != nil {
		t.Fatalf("testenv: witness %s: %v", name, err)
	}
	t.Cleanup(ag.close)

	w := &Witness{
		Name:        name,
		VKey:        cosignatureV1VKey(name, pub),
		dir:         t.TempDir(),
		bin:         bin,
		ctl:         ctl,
		fingerprint: ssh.FingerprintSHA256(sshPub),
		agent:       ag,
	}
	w.db = filepath.Join(w.dir, "litewitness.db")
	w.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	w.URL = "http://" + w.addr
	t.Cleanup(func() {
		w.mu.Lock()
		p := w.proc
		w.mu.Unlock()
		if p == nil {
			return
		}
		if t.Failed() {
			t.Logf("testenv: litewitness %s output (tail):\n%s", w.Name, p.tail(40))
		}
		stopWitnessProc(p)
	})
	w.Start(t)
	t.Logf("testenv: litewitness %s (torchwood %s) up at %s in %v (one-time preparation checks %v)",
		name, torchwoodVersion, w.URL, time.Since(prepared).Round(time.Millisecond), prepared.Sub(t0).Round(time.Millisecond))
	return w
}

// Start starts the witness process (again) on the same port with the same database and key.
// It is a no-op while the process runs.
func (w *Witness) Start(t testing.TB) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.proc != nil && !w.proc.exited() {
		return
	}
	w.starts++
	p, err := startProc("litewitness", filepath.Join(w.dir, fmt.Sprintf("litewitness.%d.log", w.starts)), w.bin,
		"-name", w.Name,
		"-db", w.db,
		"-ssh-agent", w.agent.path,
		"-key", w.fingerprint,
		"-listen", w.addr,
	)
	if err != nil {
		t.Fatal(err)
	}
	w.proc = p
	if err := waitHTTP(w.URL+"/", p, witnessStartTimeout); err != nil {
		stopWitnessProc(p)
		t.Fatalf("testenv: litewitness %s: %v\n%s", w.Name, err, p.tail(40))
	}
	// litewitness logs the verifier key it signs with before it listens: it must be the key
	// this package computed, or every cosignature a test checks would be checked against the
	// wrong key.
	logged, err := loggedVKey(p.logPath)
	if err != nil {
		stopWitnessProc(p)
		t.Fatalf("testenv: litewitness %s: %v\n%s", w.Name, err, p.tail(40))
	}
	if logged != w.VKey {
		stopWitnessProc(p)
		t.Fatalf("testenv: litewitness %s signs with verifier key %q, computed %q", w.Name, logged, w.VKey)
	}
}

// Stop stops the witness process: a graceful interrupt, then SIGTERM, then SIGKILL. The
// database, key and port are kept for Start.
func (w *Witness) Stop(t testing.TB) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.proc != nil {
		stopWitnessProc(w.proc)
	}
}

// PolicyLine is the witness's line in a Sigsum-style policy file (formats/witness.ParsePolicy):
// "witness <Name> <VKey> <URL>".
func (w *Witness) PolicyLine() string {
	return "witness " + w.Name + " " + w.VKey + " " + w.URL
}

// AddLog registers a log origin and its note verifier key in the witness's database with
// witnessctl; it works while the witness runs. It is idempotent, and adding a second key for
// a known origin (a key rotation) keeps the first: remove it with RemoveLogKey.
func (w *Witness) AddLog(t testing.TB, origin, logVKey string) {
	t.Helper()
	v, err := note.NewVerifier(logVKey)
	if err != nil {
		t.Fatalf("testenv: witness %s: log key for %q: %v", w.Name, origin, err)
	}
	if v.Name() != origin {
		// witnessctl only warns; a key named after another origin is a test bug.
		t.Fatalf("testenv: witness %s: log key is named %q, not after the origin %q", w.Name, v.Name(), origin)
	}
	known, ok := w.logs(t)[origin]
	if !ok {
		w.witnessctl(t, "add-log", "-db", w.db, "-origin", origin)
	}
	for _, k := range known.Keys {
		if k != nil && *k == logVKey {
			return
		}
	}
	w.witnessctl(t, "add-key", "-db", w.db, "-origin", origin, "-key", logVKey)
}

// RemoveLogKey removes a log's verifier key from the witness (witnessctl del-key): checkpoints
// signed only with that key are refused afterwards. The origin and its tree size stay.
func (w *Witness) RemoveLogKey(t testing.TB, origin, logVKey string) {
	t.Helper()
	w.witnessctl(t, "del-key", "-db", w.db, "-origin", origin, "-key", logVKey)
}

// LogSize is the tree size the witness holds for origin (the size of the last checkpoint it
// cosigned, 0 before the first). It fails the test for an origin the witness does not know.
func (w *Witness) LogSize(t testing.TB, origin string) uint64 {
	t.Helper()
	l, ok := w.logs(t)[origin]
	if !ok {
		t.Fatalf("testenv: witness %s does not know the log %q", w.Name, origin)
	}
	return l.Size
}

// witnessLog is one line of `witnessctl list-logs`.
type witnessLog struct {
	Origin   string    `json:"origin"`
	Size     uint64    `json:"size"`
	RootHash string    `json:"root_hash"`
	Keys     []*string `json:"keys"` // [null] for a log without keys (a SQL LEFT JOIN)
}

// logs reads the witness's known logs from its database.
func (w *Witness) logs(t testing.TB) map[string]witnessLog {
	t.Helper()
	out := w.witnessctl(t, "list-logs", "-db", w.db)
	logs := make(map[string]witnessLog)
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var l witnessLog
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&l); err != nil {
			t.Fatalf("testenv: witness %s: witnessctl list-logs line %q: %v", w.Name, line, err)
		}
		logs[l.Origin] = l
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("testenv: witness %s: witnessctl list-logs: %v", w.Name, err)
	}
	return logs
}

// witnessctl runs witnessctl with args and returns its standard output.
func (w *Witness) witnessctl(t testing.TB, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(w.ctl, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("testenv: witness %s: witnessctl %s: %v: %s", w.Name, strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out
}

// stopWitnessProc interrupts litewitness, which then shuts its HTTP server down cleanly; a
// process that does not exit in time gets SIGTERM and then SIGKILL (proc.stop).
func stopWitnessProc(p *proc) {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.done:
		return
	case <-time.After(6 * time.Second): // litewitness waits up to 5 s for open requests
	}
	p.stop(2 * time.Second)
}

// waitHTTP waits until url answers a GET with 200, the process exits, or timeout passes.
func waitHTTP(url string, p *proc, timeout time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	for {
		resp, err := client.Get(url)
		if err == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		if p.exited() {
			return fmt.Errorf("%s exited before answering HTTP at %s: %v", p.name, url, p.err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not answering HTTP at %s after %v: %w", p.name, url, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// loggedVKey finds the verifier key litewitness logged at startup, a log/slog text line
// `... msg="verifier key" vkey=<vkey>`.
func loggedVKey(logPath string) (string, error) {
	b, err := os.ReadFile(logPath)
	if err != nil {
		return "", fmt.Errorf("read log: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.Contains(line, `msg="verifier key"`) {
			continue
		}
		_, v, ok := strings.Cut(line, " vkey=")
		if !ok {
			break
		}
		if strings.HasPrefix(v, `"`) {
			q, err := strconv.QuotedPrefix(v)
			if err != nil {
				return "", fmt.Errorf("verifier key log line %q: %w", line, err)
			}
			return strconv.Unquote(q)
		}
		v, _, _ = strings.Cut(v, " ")
		return v, nil
	}
	return "", errors.New(`no "verifier key" line in the log`)
}

// cosignatureV1VKey is the C2SP signed-note verifier key of an Ed25519 C2SP tlog-cosignature
// (cosignature/v1) key: name+hex(key hash)+base64(0x04||pubkey), where the key hash is the
// first 4 bytes (big-endian) of SHA-256(name || "\n" || 0x04 || pubkey).
func cosignatureV1VKey(name string, pub ed25519.PublicKey) string {
	key := append([]byte{algCosignatureV1}, pub...)
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte("\n"))
	h.Write(key)
	return fmt.Sprintf("%s+%08x+%s", name, binary.BigEndian.Uint32(h.Sum(nil)), base64.StdEncoding.EncodeToString(key))
}

// validKeyName reports whether name is a valid note key name: non-empty UTF-8 without Unicode
// spaces or '+'.
func validKeyName(name string) bool {
	return name != "" && utf8.ValidString(name) && strings.IndexFunc(name, unicode.IsSpace) < 0 && !strings.Contains(name, "+")
}

// witnessBinaries returns litewitness and witnessctl built from torchwood at torchwoodVersion,
// building them into the cache on first use (about a minute and a half). torchwood is pure Go
// (modernc SQLite), so it builds with CGO off.
func witnessBinaries(t testing.TB) (litewitness, witnessctl string) {
	t.Helper()
	paths := installModuleBinaries(t, "torchwood-"+torchwoodVersion, torchwoodModule, torchwoodVersion, "litewitness", "witnessctl")
	return paths[0], paths[1]
}

// sshAgent is an ssh-agent serving one Ed25519 key on a unix socket, the way litewitness takes
// its signing key. It runs in the test process.
type sshAgent struct {
	path string
	dir  string
	ln   net.Listener
	kr   agent.Agent

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// maxSocketPath is below the smallest sun_path limit of the unix socket address (104 bytes on
// BSDs, 108 on Linux), including the terminating NUL.
const maxSocketPath = 100

func startSSHAgent(key ed25519.PrivateKey) (*sshAgent, error) {
	kr := agent.NewKeyring()
	if err := kr.Add(agent.AddedKey{PrivateKey: key, Comment: "lineage testenv witness"}); err != nil {
		return nil, fmt.Errorf("ssh-agent: add key: %w", err)
	}
	// t.TempDir paths carry the test name and can exceed the socket path limit: use a short
	// directory of our own.
	base := os.TempDir()
	if len(base)+len("/lw-0123456789/agent.sock") > maxSocketPath {
		base = "/tmp"
	}
	dir, err := os.MkdirTemp(base, "lw-")
	if err != nil {
		return nil, fmt.Errorf("ssh-agent: socket dir: %w", err)
	}
	path := filepath.Join(dir, "agent.sock")
	if len(path) > maxSocketPath {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("ssh-agent: socket path %s is longer than %d bytes", path, maxSocketPath)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("ssh-agent: listen %s: %w", path, err)
	}
	a := &sshAgent{path: path, dir: dir, ln: ln, kr: kr, conns: make(map[net.Conn]struct{})}
	a.wg.Add(1)
	go a.serve()
	return a, nil
}

func (a *sshAgent) serve() {
	defer a.wg.Done()
	for {
		c, err := a.ln.Accept()
		if err != nil {
			return // closed
		}
		a.mu.Lock()
		if a.closed {
			a.mu.Unlock()
			c.Close()
			return
		}
		a.conns[c] = struct{}{}
		a.wg.Add(1)
		a.mu.Unlock()
		go func() {
			defer a.wg.Done()
			_ = agent.ServeAgent(a.kr, c) // returns when litewitness disconnects or close runs
			c.Close()
			a.mu.Lock()
			delete(a.conns, c)
			a.mu.Unlock()
		}()
	}
}

// close stops serving, closes the open connections and removes the socket's directory.
func (a *sshAgent) close() {
	a.mu.Lock()
	a.closed = true
	for c := range a.conns {
		c.Close()
	}
	a.mu.Unlock()
	a.ln.Close()
	a.wg.Wait()
	os.RemoveAll(a.dir)
}
