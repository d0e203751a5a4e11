package service

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/exporters"
	"github.com/lineage-audit/lineage/ingest"
	"github.com/lineage-audit/lineage/ledger"
	"github.com/lineage-audit/lineage/ledger/seal"
	"github.com/lineage-audit/lineage/ledger/seal/sqlitekeys"
	"github.com/lineage-audit/lineage/query"
	"github.com/lineage-audit/lineage/query/index"
	"github.com/lineage-audit/lineage/query/index/sqlite"
	"github.com/nats-io/nats.go/jetstream"
)

// Erasure modes (--erasure). "on" seals a new log; "auto" (the default) keeps the mode a log
// was started with, seals a new log on the SQLite index (Tessera or Trillian, one node) and
// leaves a new log on ClickHouse, tessera-aws or --ha off, where erasure is not implemented;
// an existing log written before erasure keeps working unchanged. The mode chosen is written
// to ErasureModeFile at first start and never changes afterwards (a log is either sealed from
// its first entry or never).
const (
	ErasureAuto = "auto"
	ErasureOn   = "on"
	ErasureOff  = "off"
)

// ErasureMasterKeyEnv is the environment variable that may hold the key store's master key
// (instead of the master key file).
const ErasureMasterKeyEnv = "LINEAGE_ERASURE_MASTER_KEY"

// DefaultMinRetention is a tenant's minimum retention unless configured: the AI Act's six
// months (Art. 19(1), 26(6)). Erasing a subject with records younger than this needs a legal
// basis.
const DefaultMinRetention = 183 * 24 * time.Hour

// ErasureModeFile records a data dir's erasure mode.
func ErasureModeFile(dataDir string) string { return filepath.Join(dataDir, "erasure.mode") }

// ErasureKeyStorePath and ErasureMasterKeyPath are the defaults of --erasure-key-store and
// --erasure-master-key-file.
func ErasureKeyStorePath(dataDir string) string {
	return filepath.Join(dataDir, "keys", "erasure.sqlite")
}
func ErasureMasterKeyPath(dataDir string) string {
	return filepath.Join(dataDir, "keys", "erasure.master")
}

// erasureTenants is the optional per-tenant erasure configuration (--erasure-config), a strict
// JSON file:
//
//	{"tenants": {"acme": {"paths": [{"pointer": "/action/target", "subject": "/user/id"}],
//	                      "min_retention_days": 365}}}
type erasureTenants struct {
	Tenants map[string]erasureTenant `json:"tenants"`
}

type erasureTenant struct {
	Paths            []erasurePath `json:"paths"`
	MinRetentionDays *int          `json:"min_retention_days"`
	// RetentionDays, if set, erases on schedule every subject of the tenant not seen for
	// that many days (retention.go); at least the minimum retention.
	RetentionDays *int `json:"retention_days"`
}

type erasurePath struct {
	Pointer string `json:"pointer"`
	Subject string `json:"subject"`
}

// maxErasureConfig bounds the erasure configuration file.
const maxErasureConfig = 1 << 20

// erasureState is an erasure-enabled log's key store and configuration.
type erasureState struct {
	keys      *sqlitekeys.SQLiteStore
	defaults  *seal.Paths
	paths     map[string]*seal.Paths
	retention map[string]time.Duration
	sealer    *ingest.Sealer
	// windows are the tenants' own retention windows, globalWindow the window of the others
	// (0: none); see retention.go.
	windows      map[string]time.Duration
	globalWindow time.Duration
}

func (e *erasureState) pathsFor(tenant string) *seal.Paths {
	if p, ok := e.paths[tenant]; ok {
		return p
	}
	return e.defaults
}

func (e *erasureState) minRetention(tenant string) time.Duration {
	if d, ok := e.retention[tenant]; ok {
		return d
	}
	return DefaultMinRetention
}

// loadErasureConfig reads --erasure-config (empty: defaults for every tenant).
func loadErasureConfig(path string) (map[string]*seal.Paths, map[string]time.Duration, map[string]time.Duration, error) {
	paths, ret, win := map[string]*seal.Paths{}, map[string]time.Duration{}, map[string]time.Duration{}
	if path == "" {
		return paths, ret, win, nil
	}
	data, err := ledger.ReadFileLimit(path, maxErasureConfig)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("service: --erasure-config: %w", err)
	}
	var cfg erasureTenants
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(&cfg); err != nil {
		return nil, nil, nil, fmt.Errorf("service: --erasure-config %s: %w", path, err)
	}
	if d.More() {
		return nil, nil, nil, fmt.Errorf("service: --erasure-config %s: trailing data", path)
	}
	for t, tc := range cfg.Tenants {
		if !lineage.ValidTenant(t) {
			return nil, nil, nil, fmt.Errorf("service: --erasure-config %s: %q is not a valid tenant", path, t)
		}
		var ps []seal.Path
		for _, p := range tc.Paths {
			ps = append(ps, seal.Path{Pointer: p.Pointer, Subject: p.Subject})
		}
		sp, err := seal.NewPaths(ps...)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("service: --erasure-config %s: tenant %s: %w", path, t, err)
		}
		paths[t] = sp
		if tc.MinRetentionDays != nil {
			if *tc.MinRetentionDays < 0 || *tc.MinRetentionDays > 100*366 {
				return nil, nil, nil, fmt.Errorf("service: --erasure-config %s: tenant %s: min_retention_days %d out of range", path, t, *tc.MinRetentionDays)
			}
			ret[t] = time.Duration(*tc.MinRetentionDays) * 24 * time.Hour
		}
		if tc.RetentionDays != nil {
			if *tc.RetentionDays < 1 || *tc.RetentionDays > 100*366 {
				return nil, nil, nil, fmt.Errorf("service: --erasure-config %s: tenant %s: retention_days %d out of range", path, t, *tc.RetentionDays)
			}
			win[t] = time.Duration(*tc.RetentionDays) * 24 * time.Hour
		}
	}
	return paths, ret, win, nil
}

// openErasure decides the log's erasure mode (recorded in ErasureModeFile at first start) and,
// when it is on, opens the key store. logSize is the log's size when lineaged starts: a new
// log (size 0) may be turned on, an existing one keeps the mode it has (a log written before
// erasure existed has no mode file and stays off).
func openErasure(ctx context.Context, c Config, logSize uint64) (*erasureState, error) {
	modeFile := ErasureModeFile(c.DataDir)
	mode, err := readErasureMode(modeFile)
	if err != nil {
		return nil, err
	}
	requested := c.Erasure
	if requested == "" {
		requested = ErasureAuto
	}
	if requested != ErasureAuto && requested != ErasureOn && requested != ErasureOff {
		return nil, fmt.Errorf("service: --erasure %q: want auto, on or off", requested)
	}
	// Sealing is the ingester's and opening the decoder's, whatever the log; the purge is the
	// SQLite index's, and the key store is one node's file: erasure needs the SQLite index on
	// one node, with the embedded Tessera log or Trillian.
	embedded := (c.Ledger == "tessera" || c.Ledger == "trillian") && c.Index == "sqlite" && !c.HA
	fresh := false
	if mode == "" {
		switch {
		case logSize > 0 && requested == ErasureOn:
			return nil, fmt.Errorf("service: --erasure on: the log already holds %d entries written without erasure; a log cannot switch to sealed entries (start a new log)", logSize)
		case logSize > 0:
			mode = ErasureOff // an existing log keeps working unchanged
		case requested == ErasureOn && !embedded:
			return nil, fmt.Errorf("service: --erasure on needs the SQLite index on one node (--index sqlite, --ledger tessera or trillian, no --ha); erasure with %s/%s is not implemented yet (docs/ERASURE.md)", c.Ledger, c.Index)
		case requested == ErasureAuto && !embedded:
			mode = ErasureOff
			c.Logger.Warn("erasure stays off: it is implemented for the SQLite index on one node only", "ledger", c.Ledger, "index", c.Index, "ha", c.HA)
		case requested == ErasureOff:
			mode = ErasureOff
		default:
			// A new log on the SQLite index seals personal fields unless --erasure off says so.
			mode, fresh = ErasureOn, true
		}
		if err := writeErasureMode(modeFile, mode); err != nil {
			return nil, err
		}
	} else if requested != ErasureAuto && requested != mode {
		return nil, fmt.Errorf("service: --erasure %s, but this log was started with erasure %s (%s); a log cannot switch modes", requested, mode, modeFile)
	}
	if mode == ErasureOff {
		c.Logger.Info("erasure off for this log", "mode_file", modeFile)
		return nil, nil
	}
	if !embedded {
		return nil, fmt.Errorf("service: this log has erasure on (%s), which needs --index sqlite on one node (--ledger tessera or trillian)", modeFile)
	}
	mk, err := loadMasterKey(c, fresh)
	if err != nil {
		return nil, err
	}
	ksPath := c.ErasureKeyStore
	if _, err := os.Stat(ksPath); errors.Is(err, os.ErrNotExist) && logSize > 0 {
		// A new empty store would open, and every sealed entry would then fail with "key
		// missing": say what happened instead.
		return nil, fmt.Errorf("service: the erasure key store %s is missing, but the log holds %d entries sealed under its keys: restore it from a backup (docs/ERASURE.md); refusing to start", ksPath, logSize)
	}
	if err := os.MkdirAll(filepath.Dir(ksPath), 0o700); err != nil {
		return nil, fmt.Errorf("service: erasure key store dir: %w", err)
	}
	keys, err := sqlitekeys.OpenSQLite(ctx, ksPath, mk, sqlitekeys.SQLiteOptions{Now: c.keyStoreClock})
	if err != nil {
		return nil, fmt.Errorf("service: erasure key store: %w", err)
	}
	paths, ret, win, err := loadErasureConfig(c.ErasureConfig)
	if err != nil {
		keys.Close()
		return nil, err
	}
	defaults, err := seal.NewPaths()
	if err != nil {
		keys.Close()
		return nil, err
	}
	e := &erasureState{keys: keys, defaults: defaults, paths: paths, retention: ret,
		windows: win, globalWindow: time.Duration(c.ErasureRetentionDays) * 24 * time.Hour}
	if err := e.checkWindows(); err != nil {
		keys.Close()
		return nil, err
	}
	e.sealer = &ingest.Sealer{Keys: keys, Paths: e.pathsFor}
	c.Logger.Info("erasure on: personal fields are sealed under per-subject keys", "key_store", ksPath, "tenants_configured", len(paths))
	return e, nil
}

func readErasureMode(path string) (string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("service: erasure mode: %w", err)
	}
	switch m := strings.TrimSpace(string(b)); m {
	case ErasureOn, ErasureOff:
		return m, nil
	default:
		return "", fmt.Errorf("service: erasure mode file %s holds %q, want on or off", path, m)
	}
}

// writeErasureMode records the mode durably (written, synced, renamed into place).
func writeErasureMode(path, mode string) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("service: erasure mode: %w", err)
	}
	_, werr := f.WriteString(mode + "\n")
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp, path)
	}
	if werr == nil {
		if d, err := os.Open(filepath.Dir(path)); err == nil {
			werr = d.Sync()
			d.Close()
		}
	}
	if werr != nil {
		return fmt.Errorf("service: erasure mode %s: %w", path, werr)
	}
	return nil
}

// loadMasterKey reads the master key from LINEAGE_ERASURE_MASTER_KEY or the key file; for a
// new log (create) with neither, it creates the file (0600, random) as the signing key is.
func loadMasterKey(c Config, create bool) (*seal.MasterKey, error) {
	if v, ok := os.LookupEnv(ErasureMasterKeyEnv); ok && v != "" {
		return seal.LoadMasterKeyEnv(ErasureMasterKeyEnv)
	}
	path := c.ErasureMasterKeyFile
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		if !create {
			return nil, fmt.Errorf("service: this log has erasure on, but its master key is neither in %s nor in %s (refusing to start)", path, ErasureMasterKeyEnv)
		}
		_, text, err := seal.GenerateMasterKey()
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("service: master key dir: %w", err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("service: create master key: %w", err)
		}
		_, werr := f.WriteString(text + "\n")
		if werr == nil {
			werr = f.Sync()
		}
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return nil, fmt.Errorf("service: write master key %s: %w", path, werr)
		}
		c.Logger.Warn("created the erasure master key; back it up apart from the key store (docs/ERASURE.md)", "path", path)
	}
	return seal.LoadMasterKeyFile(path)
}

// eraser carries out erasures for the API (query.Eraser).
type eraser struct {
	// mu serializes the erasures that publish a record, from their record written ahead to
	// their keys' destruction, with the flush of pending records (destroyLogged, retention.go).
	mu       sync.Mutex
	e        *erasureState
	log      ledger.Log
	index    *sqlite.Store
	indexer  *query.Indexer
	findings *query.FindingsWorker // nil without findings
	pending  *pendingRecords       // publishes the erasure records (retention.go)
	exports  *exporters.Service    // its stored exports holding an erased key are deleted
	scrub    scrubFunc
	logger   *slog.Logger
	now      func() time.Time
	metrics  *retentionMetrics
}

// erasureContext is the policy context of an erasure record.
type erasureContext struct {
	KeyIDs          []string `json:"key_ids"`
	LegalBasis      string   `json:"legal_basis"`
	WithinRetention bool     `json:"within_retention"`
	Tag             []byte   `json:"tag,omitempty"`
}

// ErasurePolicy is the policy erasure records name.
var ErasurePolicy = lineage.Policy{ID: "lineage.erasure", Version: "v1"}

// defaultErasureBasis is recorded when the subject has no record inside the minimum retention
// and the request gives no basis.
const defaultErasureBasis = "erasure on request of the data subject (GDPR Art. 17(1)); no record inside the minimum retention"

// Erase implements query.Eraser: refuse inside the retention without a basis; destroy the key
// (with a tombstone) while ingest hands nothing over and the indexer is paused; record the
// erasure as a decision record; purge the index.
func (er *eraser) Erase(ctx context.Context, req query.ErasureRequest) (query.ErasureResult, error) {
	var res query.ErasureResult
	if !lineage.ValidTenant(req.Tenant) || strings.TrimSpace(req.Subject) == "" || len(req.Subject) > lineage.MaxStringLen {
		return res, fmt.Errorf("%w: tenant or subject", query.ErrErasureInvalid)
	}
	now := er.now().UTC()
	floor := now.Add(-er.e.minRetention(req.Tenant))
	// Any record sealed under the subject's key inside the minimum retention counts, whatever
	// the path: as the user (/user/id is always sealed, seal.DefaultPaths), a reviewer or a
	// configured path. A subject without a key has no record at all.
	kid, ok, err := er.e.keys.SubjectKey(ctx, req.Tenant, req.Subject)
	if err != nil {
		return res, fmt.Errorf("erasure: retention check: %w", err)
	}
	if ok {
		if res.WithinRetention, err = er.index.SealedSince(ctx, req.Tenant, kid, floor); err != nil {
			return res, fmt.Errorf("erasure: retention check: %w", err)
		}
	}
	basis := strings.TrimSpace(req.LegalBasis)
	if res.WithinRetention && basis == "" {
		return res, query.ErrErasureRetention
	}
	if basis == "" {
		basis = defaultErasureBasis
	}
	kids, rec, resume, err := er.destroyLogged(ctx, req.Tenant, req.RequestedBy, basis, res.WithinRetention,
		func() ([]seal.KeyID, error) {
			kid, ok, err := er.e.keys.SubjectKey(ctx, req.Tenant, req.Subject)
			if err != nil {
				return nil, err
			}
			if !ok {
				return nil, fmt.Errorf("tenant %q: %w", req.Tenant, seal.ErrNoSubject)
			}
			return []seal.KeyID{kid}, nil
		},
		func([]seal.KeyID) ([]seal.KeyID, error) { return er.e.keys.Erase(ctx, req.Tenant, req.Subject, basis) })
	if err != nil {
		if errors.Is(err, seal.ErrNoSubject) {
			return res, query.ErrErasureNoSubject
		}
		if strings.Contains(err.Error(), "legal basis") {
			return res, fmt.Errorf("%w: %v", query.ErrErasureInvalid, err)
		}
		return res, fmt.Errorf("erasure: %w", err)
	}
	defer resume()

	res.Tenant = req.Tenant
	for _, k := range kids {
		res.KeyIDs = append(res.KeyIDs, k.String())
	}
	res.ErasedAt = now.Format(time.RFC3339)
	id, n, err := er.finishErasure(ctx, req.Tenant, kids, rec)
	res.RecordID = id
	if err != nil {
		return res, err
	}
	res.RecordsPurged = n
	er.logger.Info("erasure", "tenant", req.Tenant, "key_ids", res.KeyIDs, "records_purged", n, "within_retention", res.WithinRetention, "by", req.RequestedBy)
	return res, nil
}

// pause stops the indexer and the findings worker between steps (dropping what was handed to
// them in memory) until resume.
func (er *eraser) pause() (resume func()) {
	ri := er.indexer.Pause()
	rf := func() {}
	if er.findings != nil {
		rf = er.findings.Pause()
	}
	return func() { rf(); ri() }
}

// erasureRecord is the decision record of one erasure: who erased how many keys, on which
// basis. It names the subject keys by id (as the log's entries do), never the subject.
//
// tag (sqlitekeys.SQLiteStore.ErasureTag over kids in order) lets a key store restored from an
// older backup re-apply the erasure (reapplyErasures, retention.go) knowing the record is its own.
func erasureRecord(tenant, by string, kids []seal.KeyID, basis string, withinRetention bool, now time.Time, tag []byte) (lineage.Record, error) {
	ids := make([]string, len(kids))
	for i, k := range kids {
		ids[i] = k.String()
	}
	slices.Sort(ids)
	pc, err := json.Marshal(erasureContext{KeyIDs: ids, LegalBasis: basis, WithinRetention: withinRetention, Tag: tag})
	if err != nil {
		return lineage.Record{}, err
	}
	if by == "" {
		by = "lineage"
	}
	rec := lineage.Record{
		Schema: lineage.SchemaV1,
		ID:     "erasure-" + ids[0],
		Time:   now.UTC().Format("2006-01-02T15:04:05.000Z"),
		Tenant: tenant,
		Source: lineage.Source{ID: erasureSourceID, Type: "lineage"},
		User:   lineage.Person{ID: by, Issuer: "lineage"},
		Agent:  lineage.Agent{ID: "lineage-erasure"},
		Role:   "eraser",
		Action: lineage.Action{Type: "erasure.subject", Target: fmt.Sprintf("%s/subject-keys/%d", tenant, len(ids))},
		Decision: lineage.Decision{
			Effect: lineage.EffectAllow,
			Policy: ErasurePolicy,
			Reason: "subject erased by destroying its keys: " + strings.Join(ids, ","),
		},
		PolicyContext: pc,
	}
	if err := rec.Validate(); err != nil {
		return lineage.Record{}, fmt.Errorf("erasure: record: %w", err)
	}
	return rec, nil
}

// purgeKeys re-derives, from the log, every index row holding a field sealed under kids (the
// keys are gone, so those fields now decode as tokens), replaces the clear values those rows
// held in the findings with "erased:<key id>", and marks kids purged, in one transaction. The
// indexer must not be applying meanwhile (paused, or not started). It returns the rows
// rewritten.
func purgeKeys(ctx context.Context, l ledger.Log, st *sqlite.Store, dec query.Decoder, tenant string, kids []seal.KeyID, scrub scrubFunc) (int, error) {
	old, err := st.SealedRows(ctx, kids)
	if err != nil {
		return 0, err
	}
	var entries []index.Entry
	replace := map[string]string{}
	erased := make(map[seal.KeyID]bool, len(kids))
	for _, k := range kids {
		erased[k] = true
	}
	if len(old) > 0 {
		size, err := l.Size(ctx)
		if err != nil {
			return 0, fmt.Errorf("purge: log size: %w", err)
		}
		idxs := make([]uint64, 0, len(old))
		for i := range old {
			idxs = append(idxs, i)
		}
		slices.Sort(idxs)
		for _, i := range idxs {
			raw, err := l.Entries(ctx, i, 1, size)
			if err != nil || len(raw) != 1 {
				return 0, fmt.Errorf("purge: read entry %d: %v", i, err)
			}
			ent, err := dec.Decode(ctx, i, raw[0])
			if err != nil {
				return 0, fmt.Errorf("purge: %w", err)
			}
			if ent.Record.Tenant != tenant {
				return 0, fmt.Errorf("purge: entry %d belongs to tenant %q, not %q", i, ent.Record.Tenant, tenant)
			}
			for _, f := range ent.Sealed {
				if !erased[f.KeyID] {
					continue
				}
				if f.State != seal.Erased {
					return 0, fmt.Errorf("purge: entry %d: %s still opens under an erased key", i, f.Path)
				}
				v, ok, err := seal.LocateString(old[i], f.Path)
				if err != nil {
					return 0, fmt.Errorf("purge: entry %d: stored row: %w", i, err)
				}
				if ok && !seal.IsSealedToken(v) {
					replace[v] = seal.ErasedPrefix + f.KeyID.String()
				}
			}
			entries = append(entries, ent)
		}
	}
	// The streams first: once the index is purged, nothing knows the clear values any more,
	// and the purge is marked done with it. A crash before that repeats both at the next start.
	if scrub != nil && len(replace) > 0 {
		values := make([]string, 0, len(replace))
		for v := range replace {
			values = append(values, v)
		}
		if err := scrub(ctx, tenant, values); err != nil {
			return 0, fmt.Errorf("purge: %w", err)
		}
	}
	if err := st.Purge(ctx, tenant, entries, replace, kids); err != nil {
		return 0, err
	}
	return len(entries), nil
}

// scrubFunc removes the messages of tenant that hold any of values from the streams that keep
// messages after they are consumed.
type scrubFunc func(ctx context.Context, tenant string, values []string) error

// scrubStreams scrubs the findings stream (findings name users) and the quarantine stream
// (rejected records, kept whole) of JetStream: each message of the tenant's subject holding a
// value, raw or JSON-escaped, is deleted with SecureDeleteMsg (its bytes overwritten in the
// store). The records stream needs none: it is a work queue, whose messages are removed once
// the ingester acks them. This reads every message of the tenant in those streams: bounded by
// their retention (30 days of findings; the quarantine's limits), not by the log.
func scrubStreams(js jetstream.JetStream, logger *slog.Logger) scrubFunc {
	return func(ctx context.Context, tenant string, values []string) error {
		var needles [][]byte
		for _, v := range values {
			needles = append(needles, []byte(v))
			if j, err := json.Marshal(v); err == nil {
				needles = append(needles, j[1:len(j)-1])
			}
		}
		for _, sc := range []struct{ stream, subject string }{
			{ingest.FindingsStream, "lineage.findings." + tenant},
			{ingest.QuarantineStream, ingest.QuarantinePrefix + tenant},
		} {
			str, err := js.Stream(ctx, sc.stream)
			if errors.Is(err, jetstream.ErrStreamNotFound) {
				continue
			}
			if err != nil {
				return fmt.Errorf("scrub %s: %w", sc.stream, err)
			}
			n := 0
			for seq := uint64(1); ; {
				m, err := str.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(sc.subject))
				if errors.Is(err, jetstream.ErrMsgNotFound) {
					break
				}
				if err != nil {
					return fmt.Errorf("scrub %s: message %d: %w", sc.stream, seq, err)
				}
				if containsAny(m.Data, needles) || containsAny([]byte(fmt.Sprint(m.Header)), needles) {
					if err := str.SecureDeleteMsg(ctx, m.Sequence); err != nil {
						return fmt.Errorf("scrub %s: delete message %d: %w", sc.stream, m.Sequence, err)
					}
					n++
				}
				seq = m.Sequence + 1
			}
			if n > 0 {
				logger.Info("erasure: scrubbed stream messages", "stream", sc.stream, "tenant", tenant, "messages", n)
			}
		}
		return nil
	}
}

func containsAny(b []byte, needles [][]byte) bool {
	for _, n := range needles {
		if len(n) > 0 && bytes.Contains(b, n) {
			return true
		}
	}
	return false
}

// completePurges purges the index (and the streams) of every erased key the index has not
// purged yet: after a crash between an erasure's key deletion and its index purge. Run while
// the indexer and the findings worker are paused (or not started).
func completePurges(ctx context.Context, e *erasureState, l ledger.Log, st *sqlite.Store, scrub scrubFunc, logger *slog.Logger) error {
	tombs, err := e.keys.Tombstones(ctx)
	if err != nil {
		return err
	}
	byTenant := map[string][]seal.KeyID{}
	var all []seal.KeyID
	for _, t := range tombs {
		all = append(all, t.KeyID)
	}
	done, err := st.Purged(ctx, all)
	if err != nil {
		return err
	}
	for _, t := range tombs {
		if !done[t.KeyID] {
			byTenant[t.Tenant] = append(byTenant[t.Tenant], t.KeyID)
		}
	}
	for tenant, kids := range byTenant {
		n, err := purgeKeys(ctx, l, st, query.Decoder{Keys: e.keys}, tenant, kids, scrub)
		if err != nil {
			return fmt.Errorf("service: complete the index purge of %d erased keys of tenant %s: %w", len(kids), tenant, err)
		}
		logger.Warn("erasure: completed an index purge a stop had cut short", "tenant", tenant, "keys", len(kids), "records_purged", n)
	}
	return nil
}
