// Package witness has lineaged's checkpoints cosigned by independent witnesses, so that trust in
// the log does not rest on the operator alone (issue #13).
//
// A witness (C2SP tlog-witness, e.g. litewitness) keeps the latest checkpoint it cosigned for
// each log it follows and cosigns a newer one only with a consistency proof from that one: a
// quorum of witnesses cosigning a checkpoint means no other history of the log was shown to
// them. Client sends one add-checkpoint request; Log wraps a ledger.Log (either driver), sends
// every new checkpoint to the witnesses of a Policy, merges their cosignatures (C2SP
// tlog-cosignature) into the note and serves, in hold mode, only checkpoints that meet the
// policy's quorum. docs/WITNESSES.md is the operator's guide.
package witness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/lineage-audit/lineage/internal/atomicfile"
	"github.com/lineage-audit/lineage/ledger"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/mod/sumdb/note"
)

// Mode says which checkpoint Log.Checkpoint serves.
type Mode string

const (
	// ModeHold serves the newest checkpoint whose cosignatures meet the quorum, and
	// ledger.ErrNotFound until one does. The log keeps sequencing; only the served checkpoint
	// (and so what readers can be given proofs for) lags while the quorum is not met.
	ModeHold Mode = "hold"
	// ModeOpen serves the log's newest checkpoint with whatever cosignatures it got, and raises
	// lineage_witness_serving_unwitnessed while they do not meet the quorum.
	ModeOpen Mode = "open"
)

// ParseMode parses a --witness-mode value ("" is ModeHold).
func ParseMode(s string) (Mode, error) {
	switch Mode(s) {
	case "", ModeHold:
		return ModeHold, nil
	case ModeOpen:
		return ModeOpen, nil
	}
	return "", fmt.Errorf("witness: mode %q is not available (hold, open)", s)
}

// MaxStateFile bounds the persisted cosigned checkpoint: a note with at most 100 signatures.
const MaxStateFile = 64 << 10

// Options configures a witnessed Log.
type Options struct {
	// Policy names the witnesses and the quorum (required).
	Policy *Policy
	// Mode is ModeHold (the default) or ModeOpen.
	Mode Mode
	// Verifier is the log's checkpoint key: it checks the persisted checkpoint (required).
	Verifier note.Verifier
	// StateFile keeps the newest checkpoint that met the quorum, so that a restart in hold
	// mode serves it at once ("": not kept).
	StateFile string
	// PollInterval is how often the inner log's checkpoint is read (default 250 ms; use the
	// log's checkpoint interval). It is also the first retry delay after a witness failed.
	PollInterval time.Duration
	// RetryMax caps the retry delay of a failing witness (default 5 s).
	RetryMax time.Duration
	// RequestTimeout bounds one add-checkpoint request (default DefaultRequestTimeout).
	RequestTimeout time.Duration
	// HTTP sends the requests (nil: NewHTTPClient()).
	HTTP *http.Client
	// Registerer receives the metrics (nil: a private registry).
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// Log is a ledger.Log whose Checkpoint carries witness cosignatures. Every other method
// delegates to the inner log. Run does the witnessing; without it no checkpoint gets cosigned.
type Log struct {
	inner     ledger.Log
	policy    *Policy
	mode      Mode
	verifier  note.Verifier
	stateFile string
	poll      time.Duration
	retryMax  time.Duration
	client    *Client
	m         *metrics
	logger    *slog.Logger
	ws        []*witnessState

	mu     sync.Mutex
	latest *target // the inner log's newest checkpoint seen by Run
	// cosigned is the newest checkpoint that met the quorum, its Note with the cosignatures;
	// cosignedSigs counts the witnesses that cosigned it.
	cosigned     ledger.Checkpoint
	hasCosigned  bool
	cosignedSigs int
	failing      map[string]string // witness name → result of its failing last request
	quorumState  int               // quorumUnknown, quorumMet, quorumUnmet: for logging changes

	persistMu     sync.Mutex
	persistedSize uint64
	persistedSigs int

	// observe, when set (tests), gets each latency observed.
	observe func(time.Duration)
}

const (
	quorumUnknown = iota
	quorumMet
	quorumUnmet
)

var _ ledger.Log = (*Log)(nil)

// target is one checkpoint of the inner log being witnessed.
type target struct {
	cp       ledger.Checkpoint
	seen     time.Time
	sigs     map[string][]byte // witness name → its verified cosignature lines
	answered map[string]bool   // witnesses that answered (or failed) for this checkpoint
	merged   []byte            // cp.Note with the cosignatures, in policy order
	met      bool

	proofMu sync.Mutex
	proofs  map[uint64][][]byte // consistency proofs to cp.Size, by old size
}

// witnessState is Run's view of one witness. size and lastResult belong to the witness's
// worker goroutine.
type witnessState struct {
	w          Witness
	wake       chan struct{}
	size       uint64 // the size the witness last cosigned for this log, as far as we know
	lastResult string
}

// New wraps inner. If opts.StateFile holds a checkpoint, it must verify with the log key and be
// consistent with the inner log (its size at most the inner checkpoint's, with a consistency
// proof): a file that does not is refused with an error, never served. A verified file whose
// cosignatures do not meet the current policy is not served (a warning is logged).
func New(ctx context.Context, inner ledger.Log, opts Options) (*Log, error) {
	if opts.Policy == nil || len(opts.Policy.Witnesses) == 0 {
		return nil, errors.New("witness: a policy with witnesses is required")
	}
	if opts.Verifier == nil {
		return nil, errors.New("witness: the log's verifier is required")
	}
	mode, err := ParseMode(string(opts.Mode))
	if err != nil {
		return nil, err
	}
	l := &Log{
		inner: inner, policy: opts.Policy, mode: mode, verifier: opts.Verifier, stateFile: opts.StateFile,
		poll: opts.PollInterval, retryMax: opts.RetryMax, logger: opts.Logger,
		client:  &Client{HTTP: opts.HTTP, Timeout: opts.RequestTimeout},
		failing: map[string]string{},
	}
	if l.poll <= 0 {
		l.poll = 250 * time.Millisecond
	}
	if l.retryMax <= 0 {
		l.retryMax = 5 * time.Second
	}
	if l.retryMax < l.poll {
		l.retryMax = l.poll
	}
	if l.logger == nil {
		l.logger = slog.Default()
	}
	reg := opts.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	if l.m, err = newMetrics(reg, opts.Policy); err != nil {
		return nil, fmt.Errorf("witness: metrics: %w", err)
	}
	for _, w := range opts.Policy.Witnesses {
		l.ws = append(l.ws, &witnessState{w: w, wake: make(chan struct{}, 1)})
	}
	if l.stateFile != "" {
		if err := os.MkdirAll(filepath.Dir(l.stateFile), 0o700); err != nil {
			return nil, fmt.Errorf("witness: state dir: %w", err)
		}
		if err := l.load(ctx); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// load reads the persisted cosigned checkpoint, if any (see New).
func (l *Log) load(ctx context.Context) error {
	f, err := os.Open(l.stateFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("witness: cosigned checkpoint: %w", err)
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, MaxStateFile+1))
	if err != nil {
		return fmt.Errorf("witness: cosigned checkpoint %s: %w", l.stateFile, err)
	}
	if len(raw) > MaxStateFile {
		return fmt.Errorf("witness: cosigned checkpoint %s: larger than %d bytes; refusing it", l.stateFile, MaxStateFile)
	}
	cp, err := ledger.OpenCheckpoint(raw, l.verifier)
	if err != nil {
		return fmt.Errorf("witness: cosigned checkpoint %s does not verify with the log key %s; refusing it (move the file away to start without it): %w", l.stateFile, l.verifier.Name(), err)
	}
	head, err := l.inner.Checkpoint(ctx)
	if err != nil {
		return fmt.Errorf("witness: cosigned checkpoint %s (size %d) is kept but the log has no checkpoint to check it against: %w", l.stateFile, cp.Size, err)
	}
	if cp.Size > head.Size {
		return fmt.Errorf("witness: cosigned checkpoint %s has size %d, beyond the log's checkpoint (size %d): the log lost entries or the file is another log's; refusing it", l.stateFile, cp.Size, head.Size)
	}
	p, err := l.inner.ConsistencyProof(ctx, cp.Size, head.Size)
	if err != nil {
		return fmt.Errorf("witness: cosigned checkpoint %s: consistency proof %d→%d: %w", l.stateFile, cp.Size, head.Size, err)
	}
	if err := ledger.VerifyConsistency(cp, head, p); err != nil {
		return fmt.Errorf("witness: cosigned checkpoint %s is not consistent with the log; refusing it: %w", l.stateFile, err)
	}
	if !l.policy.Satisfied(raw) {
		l.logger.Warn("witness: the kept cosigned checkpoint does not meet the current witness quorum; not serving it",
			"file", l.stateFile, "size", cp.Size)
		return nil
	}
	n := l.countCosigners(raw)
	l.cosigned, l.hasCosigned, l.cosignedSigs = cp, true, n
	l.persistedSize, l.persistedSigs = cp.Size, n
	l.m.servedSize.Set(float64(cp.Size))
	l.m.lag.Set(float64(head.Size - cp.Size))
	l.logger.Info("witness: serving the kept cosigned checkpoint", "size", cp.Size, "cosigners", n, "log_size", head.Size)
	return nil
}

// countCosigners counts the policy's witnesses whose cosignature on the note n verifies.
func (l *Log) countCosigners(n []byte) int {
	c := 0
	for _, ws := range l.ws {
		if nt, err := note.Open(n, note.VerifierList(ws.w.Verifier)); err == nil && len(nt.Sigs) == 1 {
			c++
		}
	}
	return c
}

// Run witnesses the inner log's checkpoints until ctx ends: it reads the inner checkpoint every
// PollInterval and has one goroutine per witness send it the newest one. It returns ctx's error.
func (l *Log) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, ws := range l.ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.worker(ctx, ws)
		}()
	}
	defer wg.Wait()
	tick := time.NewTicker(l.poll)
	defer tick.Stop()
	var lastErr string
	for {
		if err := l.pollOnce(ctx); err != nil && ctx.Err() == nil {
			if err.Error() != lastErr {
				l.logger.Warn("witness: reading the log's checkpoint", "err", err)
			}
			lastErr = err.Error()
		} else {
			lastErr = ""
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// pollOnce reads the inner checkpoint and, when it is new, makes it the target of every witness.
func (l *Log) pollOnce(ctx context.Context) error {
	cp, err := l.inner.Checkpoint(ctx)
	if errors.Is(err, ledger.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if cp.Size == 0 {
		// An empty tree commits to nothing; a witness that follows another history of the log
		// would only report it as behind.
		return nil
	}
	l.mu.Lock()
	switch t := l.latest; {
	case t == nil || cp.Size > t.cp.Size:
		t = &target{cp: cp, seen: time.Now(), sigs: map[string][]byte{}, answered: map[string]bool{}, proofs: map[uint64][][]byte{}}
		l.latest = t
		t.merged = cp.Note
		upd := l.evaluateLocked(t)
		l.mu.Unlock()
		if upd != nil {
			l.persist(*upd)
		}
		for _, ws := range l.ws {
			select {
			case ws.wake <- struct{}{}:
			default:
			}
		}
		return nil
	case cp.Size == t.cp.Size && !bytes.Equal(cp.Hash, t.cp.Hash):
		l.mu.Unlock()
		return fmt.Errorf("the log's checkpoint changed its root hash at size %d; not witnessing it", cp.Size)
	case cp.Size < t.cp.Size:
		l.mu.Unlock()
		return fmt.Errorf("the log's checkpoint went back from size %d to %d; not witnessing it", t.cp.Size, cp.Size)
	}
	l.mu.Unlock()
	return nil
}

// worker sends the newest target to one witness whenever there is one it did not cosign, and
// retries a failed witness with a growing delay (PollInterval doubling up to RetryMax).
func (l *Log) worker(ctx context.Context, ws *witnessState) {
	var backoff time.Duration
	for {
		if backoff > 0 {
			timer := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				timer.Stop()
				return
			case <-timer.C:
			}
		} else {
			select {
			case <-ctx.Done():
				return
			case <-ws.wake:
			}
		}
		t := l.pending(ws)
		if t == nil {
			backoff = 0
			continue
		}
		if err := l.witnessOne(ctx, ws, t); err != nil {
			if ctx.Err() != nil {
				return
			}
			backoff = min(max(2*backoff, l.poll), l.retryMax)
			continue
		}
		backoff = 0
	}
}

// pending returns the newest target if ws has not cosigned it, else nil.
func (l *Log) pending(ws *witnessState) *target {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.latest
	if t == nil || t.sigs[ws.w.Name] != nil {
		return nil
	}
	return t
}

// witnessOne sends t to one witness: from the size the witness last cosigned, resynchronizing
// once on a 409 that gives the witness's size.
func (l *Log) witnessOne(ctx context.Context, ws *witnessState, t *target) error {
	name := ws.w.Name
	if ws.size > t.cp.Size {
		ws.size = 0 // cannot be: let the witness say its size
	}
	for attempt := 0; ; attempt++ {
		p, err := t.proof(ctx, l.inner, ws.size)
		if err != nil {
			l.logger.Warn("witness: consistency proof for a witness", "witness", name, "from", ws.size, "to", t.cp.Size, "err", err)
			return err
		}
		cs, err := l.client.AddCheckpoint(ctx, ws.w, ws.size, p, t.cp.Note)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		res := ResultOf(err)
		l.m.requests.WithLabelValues(name, res).Inc()
		if err == nil {
			if cs.Ignored > 0 {
				l.logger.Warn("witness: answer has signature lines that do not verify with the witness key; dropped them",
					"witness", name, "dropped", cs.Ignored)
			}
			if ws.lastResult != "" && ws.lastResult != ResultOK {
				l.logger.Info("witness: cosigning again", "witness", name, "size", t.cp.Size, "after", ws.lastResult)
			}
			ws.lastResult = res
			ws.size = t.cp.Size
			l.record(ws, t, cs.Lines, "")
			return nil
		}
		var we *Error
		if !errors.As(err, &we) {
			we = &Error{Witness: name, Result: res, Err: err}
		}
		switch {
		case we.Result == ResultConflict && we.Size <= t.cp.Size && attempt == 0:
			l.logger.Info("witness: resynchronizing with the witness's tree size", "witness", name, "assumed", ws.size, "witness_size", we.Size, "size", t.cp.Size)
			ws.size = we.Size
			continue
		case we.Result == ResultConflict || we.Status == http.StatusUnprocessableEntity:
			l.m.differentHistory.WithLabelValues(name).Inc()
			l.logger.Error("witness reports a different history (possible split view)",
				"witness", name, "status", we.Status, "witness_size", witnessSize(we, ws), "log_size", t.cp.Size,
				"message", we.Body, "err", err)
		case res == ResultRefused || res == ResultBadResponse:
			attrs := []any{"witness", name, "status", we.Status, "message", we.Body,
				"old", ws.size, "size", t.cp.Size, "result", res, "err", err}
			if we.Status == http.StatusForbidden || we.Status == http.StatusNotFound {
				attrs = append(attrs, "hint", "the witness does not know this log or its key: add them with witnessctl add-log and add-key (docs/WITNESSES.md)")
			}
			l.logger.Warn("witness refused the checkpoint", attrs...)
		case res != ws.lastResult:
			l.logger.Warn("witness unreachable", "witness", name, "status", we.Status, "err", err)
		}
		ws.lastResult = res
		l.record(ws, t, nil, res)
		return err
	}
}

// witnessSize is the witness's size as the failed request knew it.
func witnessSize(we *Error, ws *witnessState) uint64 {
	if we.HasSize {
		return we.Size
	}
	return ws.size
}

// proof returns the consistency proof from old to t's size (none from 0 or from t's size),
// fetched once per old size for all witnesses.
func (t *target) proof(ctx context.Context, inner ledger.Log, old uint64) ([][]byte, error) {
	if old == 0 || old == t.cp.Size {
		return nil, nil
	}
	t.proofMu.Lock()
	defer t.proofMu.Unlock()
	if p, ok := t.proofs[old]; ok {
		return p, nil
	}
	p, err := inner.ConsistencyProof(ctx, old, t.cp.Size)
	if err != nil {
		return nil, err
	}
	t.proofs[old] = p
	return p, nil
}

// record stores one witness's outcome for t: its cosignature lines, or the failed result.
func (l *Log) record(ws *witnessState, t *target, lines []byte, failed string) {
	if failed == "" {
		l.m.lastCosigned.WithLabelValues(ws.w.Name).Set(float64(t.cp.Size))
	}
	l.mu.Lock()
	t.answered[ws.w.Name] = true
	if failed == "" {
		t.sigs[ws.w.Name] = lines
		delete(l.failing, ws.w.Name)
	} else {
		l.failing[ws.w.Name] = failed
	}
	upd := l.evaluateLocked(t)
	l.mu.Unlock()
	if upd != nil {
		l.persist(*upd)
	}
}

// evaluateLocked merges t's cosignatures into its note and checks the quorum. It returns the
// checkpoint to persist when t became the newest checkpoint meeting the quorum.
func (l *Log) evaluateLocked(t *target) *ledger.Checkpoint {
	var b bytes.Buffer
	b.Write(t.cp.Note)
	for _, ws := range l.ws {
		b.Write(t.sigs[ws.w.Name])
	}
	t.merged = b.Bytes()
	met := l.policy.Satisfied(t.merged)
	newest := t == l.latest
	var upd *ledger.Checkpoint
	if met {
		if !t.met {
			t.met = true
			d := time.Since(t.seen)
			l.m.latency.Observe(d.Seconds())
			if l.observe != nil {
				l.observe(d)
			}
		}
		n := len(t.sigs)
		if !l.hasCosigned || t.cp.Size > l.cosigned.Size ||
			(t.cp.Size == l.cosigned.Size && bytes.Equal(t.cp.Hash, l.cosigned.Hash) && n > l.cosignedSigs) {
			cp := t.cp
			cp.Note = t.merged
			l.cosigned, l.hasCosigned, l.cosignedSigs = cp, true, n
			l.m.servedSize.Set(float64(cp.Size))
			upd = &cp
		}
		if newest {
			l.m.quorumMet.Set(1)
			l.m.unwitnessed.Set(0)
			if l.quorumState == quorumUnmet {
				l.logger.Info("witness: quorum met again", "size", t.cp.Size, "cosigners", l.cosignerNames(t))
			}
			l.quorumState = quorumMet
		}
	} else if newest && l.allAnsweredLocked(t) {
		l.m.quorumMet.Set(0)
		if l.mode == ModeOpen {
			l.m.unwitnessed.Set(1)
		}
		if l.quorumState != quorumUnmet {
			served := "none"
			if l.hasCosigned {
				served = fmt.Sprint(l.cosigned.Size)
			}
			l.logger.Warn("witness: quorum not met", "size", t.cp.Size, "mode", string(l.mode),
				"cosigners", l.cosignerNames(t), "failing", l.failingLocked(), "cosigned_size", served)
		}
		l.quorumState = quorumUnmet
	}
	if newest {
		lag := t.cp.Size
		if l.hasCosigned && l.cosigned.Size <= lag {
			lag -= l.cosigned.Size
		}
		l.m.lag.Set(float64(lag))
	}
	return upd
}

// allAnsweredLocked reports whether every witness cosigned t, answered for it, or is failing.
func (l *Log) allAnsweredLocked(t *target) bool {
	for _, ws := range l.ws {
		n := ws.w.Name
		if t.sigs[n] == nil && !t.answered[n] && l.failing[n] == "" {
			return false
		}
	}
	return true
}

func (l *Log) cosignerNames(t *target) string {
	var names []string
	for _, ws := range l.ws {
		if t.sigs[ws.w.Name] != nil {
			names = append(names, ws.w.Name)
		}
	}
	return strings.Join(names, ",")
}

func (l *Log) failingLocked() string {
	var s []string
	for n, r := range l.failing {
		s = append(s, n+"="+r)
	}
	sort.Strings(s)
	return strings.Join(s, ",")
}

// persist writes cp to the state file unless the file holds a newer checkpoint, or the same
// one with as many cosignatures.
func (l *Log) persist(cp ledger.Checkpoint) {
	if l.stateFile == "" {
		return
	}
	n := l.countCosigners(cp.Note)
	l.persistMu.Lock()
	defer l.persistMu.Unlock()
	if cp.Size < l.persistedSize || (cp.Size == l.persistedSize && n <= l.persistedSigs) {
		return
	}
	if err := atomicfile.WriteFile(l.stateFile, cp.Note, 0o644); err != nil {
		l.m.persistErrors.Inc()
		l.logger.Error("witness: keeping the cosigned checkpoint", "file", l.stateFile, "size", cp.Size, "err", err)
		return
	}
	l.persistedSize, l.persistedSigs = cp.Size, n
}

// Checkpoint implements ledger.Log: in hold mode the newest checkpoint that met the quorum
// (ledger.ErrNotFound, wrapped with the reason, before the first); in open mode the inner log's
// newest checkpoint with the cosignatures it got so far.
func (l *Log) Checkpoint(ctx context.Context) (ledger.Checkpoint, error) {
	if l.mode == ModeOpen {
		cp, err := l.inner.Checkpoint(ctx)
		if err != nil {
			return cp, err
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		if t := l.latest; t != nil && t.cp.Size == cp.Size && bytes.Equal(t.cp.Hash, cp.Hash) {
			cp.Note = t.merged
		}
		return cp, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.hasCosigned {
		return ledger.Checkpoint{}, fmt.Errorf("witness: no checkpoint has met the witness quorum yet (%s): %w", l.reasonLocked(), ledger.ErrNotFound)
	}
	return l.cosigned, nil
}

// reasonLocked says why no checkpoint met the quorum yet.
func (l *Log) reasonLocked() string {
	t := l.latest
	if t == nil {
		return "the log has no entries yet, or witnessing has not started"
	}
	s := fmt.Sprintf("checkpoint %d cosigned by %d of %d witnesses", t.cp.Size, len(t.sigs), len(l.ws))
	if f := l.failingLocked(); f != "" {
		s += "; failing: " + f
	}
	return s
}

// Add implements ledger.Log (the inner log's).
func (l *Log) Add(ctx context.Context, entry []byte) ledger.IndexFuture {
	return l.inner.Add(ctx, entry)
}

// Size implements ledger.Log (the inner log's).
func (l *Log) Size(ctx context.Context) (uint64, error) { return l.inner.Size(ctx) }

// Entries implements ledger.Log (the inner log's).
func (l *Log) Entries(ctx context.Context, start, count, treeSize uint64) ([][]byte, error) {
	return l.inner.Entries(ctx, start, count, treeSize)
}

// InclusionProof implements ledger.Log (the inner log's).
func (l *Log) InclusionProof(ctx context.Context, index, treeSize uint64) ([][]byte, error) {
	return l.inner.InclusionProof(ctx, index, treeSize)
}

// ConsistencyProof implements ledger.Log (the inner log's).
func (l *Log) ConsistencyProof(ctx context.Context, from, to uint64) ([][]byte, error) {
	return l.inner.ConsistencyProof(ctx, from, to)
}

// Close implements ledger.Log: it closes the inner log. lineaged closes the inner log itself
// and never calls this.
func (l *Log) Close(ctx context.Context) error { return l.inner.Close(ctx) }

// StateFile is where lineaged keeps the newest cosigned checkpoint in its data dir.
func StateFile(dataDir string) string {
	return filepath.Join(dataDir, "witness", "cosigned-checkpoint")
}
