package service

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/lineage-audit/lineage/ledger"
	"github.com/lineage-audit/lineage/ledger/tessera"
	"github.com/lineage-audit/lineage/ledger/tesseraaws"
	"github.com/lineage-audit/lineage/ledger/trillian"
	"github.com/lineage-audit/lineage/ledger/witness"
	"github.com/lineage-audit/lineage/query"
	"github.com/lineage-audit/lineage/query/findings"
	"github.com/lineage-audit/lineage/query/index"
	"github.com/lineage-audit/lineage/query/index/clickhouse"
	"github.com/lineage-audit/lineage/query/index/sqlite"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/mod/sumdb/note"
)

// LogDir and IndexPath locate the embedded stores in the data dir: the Tessera log and the
// SQLite index (the Trillian log and the ClickHouse index live in their servers).
func LogDir(dataDir string) string    { return filepath.Join(dataDir, "log") }
func IndexPath(dataDir string) string { return filepath.Join(dataDir, "index.sqlite") }

// stores is what the daemon keeps, opened by openStores: the data dir (locked), the signing
// key, the ledger and the index, plus the metrics registry every later stage registers in.
type stores struct {
	signer   note.Signer
	verifier note.Verifier
	vkey     string // the verifier key string, as served to clients
	log      ledger.Log
	// served is the log readers get (the query API, the exporters): the witnessed log when a
	// witness policy is set, else log itself. The ingester and the indexer use log.
	served ledger.Log
	// witnessed is the witnessing wrapper of log (nil without --witness-policy); its Run is a
	// worker (startWorkers).
	witnessed *witness.Log
	logDir    string // served as tlog-tiles under /log/ ("" when the ledger has none)
	index     index.Store
	// findings is the index's findings projection (nil with Config.NoFindings).
	findings findings.Store
	// findingsConfig (--findings-config; nil: the defaults) serves the live findings and the
	// exports' identity findings.
	findingsConfig *findings.Configs
	reg            *prometheus.Registry

	// closeLog flushes and closes the ledger, once: every appended entry is integrated and
	// checkpointed. The workers' stop calls it as soon as nothing appends any more.
	closeLog func()

	// erasure is the erasure-enabled log's key store and configuration (nil: erasure off).
	erasure *erasureState

	// rotations are the key's rotation statements, oldest first, as served by GET /v1/keys.
	rotations [][]byte
}

// openStores locks the data dir and opens the signing key, the ledger and the index. The
// returned cleanup closes them in reverse order: the index, the ledger (unless closeLog ran
// already), then the lock. On error, what was opened is closed again.
//
// With shared set (a node of a cluster, --ha) the ledger is opened read-only over the cluster's
// shared checkpoint: what every node serves. The writer opens its own writable copy while it
// holds the writer lease (runHA).
func openStores(ctx context.Context, c Config, shared trillian.CheckpointStore) (st *stores, cleanup func(), err error) {
	var cs cleanups
	defer func() {
		if err != nil {
			cs.run()
		}
	}()
	unlock, err := LockDataDir(c.DataDir)
	if err != nil {
		return nil, nil, err
	}
	cs.add(unlock)

	st = &stores{}
	if c.FindingsConfig != "" {
		data, err := ledger.ReadFileLimit(c.FindingsConfig, findings.MaxConfigSize)
		if err != nil {
			return nil, nil, fmt.Errorf("service: --findings-config: %w", err)
		}
		if st.findingsConfig, err = findings.ParseConfig(data); err != nil {
			return nil, nil, fmt.Errorf("service: --findings-config %s: %w", c.FindingsConfig, err)
		}
	}
	var vkey string
	if st.signer, vkey, err = ledger.LoadOrCreateSigner(c.KeyFile, c.LogOrigin); err != nil {
		return nil, nil, err
	}
	// The verifier holds every key of the rotation chain beside the key file (ledger/rotate.go),
	// so checkpoints signed before a rotation still open; a chain that does not verify, or does
	// not end at the key file's key, refuses the start.
	keyring, chain, err := ledger.LoadKeyring(c.KeyFile, vkey)
	if err != nil {
		return nil, nil, err
	}
	st.verifier = keyring
	for _, r := range chain {
		st.rotations = append(st.rotations, r.Note)
	}
	st.vkey = vkey
	c.Logger.Info("ledger key", "origin", st.signer.Name(), "verifier", vkey, "rotations", len(chain))

	st.reg = prometheus.NewRegistry()
	st.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	if st.log, st.logDir, err = openLedger(ctx, c, st.signer, st.verifier, ledgerMode{readOnly: shared != nil, shared: shared}); err != nil {
		return nil, nil, err
	}
	// The cleanups capture what they close, not st: an error return sets st (a named result)
	// to nil before they run.
	lg := st.log
	st.closeLog = sync.OnceFunc(func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if err := lg.Close(sctx); err != nil {
			c.Logger.Error("ledger close", "err", err)
		}
	})
	cs.add(st.closeLog)
	if st.served, st.witnessed, err = openWitnessed(ctx, c, st); err != nil {
		return nil, nil, err
	}

	if shared == nil {
		size, err := st.log.Size(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("service: log size: %w", err)
		}
		if st.erasure, err = openErasure(ctx, c, size); err != nil {
			return nil, nil, err
		}
		if er := st.erasure; er != nil {
			cs.add(func() { er.keys.Close() })
		}
	}

	if st.index, err = openIndex(ctx, c, IndexPath(c.DataDir)); err != nil {
		return nil, nil, err
	}
	ix := st.index
	cs.add(func() { ix.Close() })
	if !c.NoFindings {
		if st.findings, err = openFindings(ctx, st.index); err != nil {
			return nil, nil, err
		}
	}
	return st, sync.OnceFunc(cs.run), nil
}

// decoder is the entry decoder of this log: with the key store when erasure is on.
func (st *stores) decoder() query.Decoder {
	if st.erasure == nil {
		return query.Decoder{}
	}
	return query.Decoder{Keys: st.erasure.keys}
}

// witnessPoll is how often the witnessing loop reads the log's checkpoint (at most the
// checkpoint interval): a read is one small file or memory, and each poll interval adds to
// the time before a new checkpoint is served cosigned (docs/WITNESSES.md, "Latency").
const witnessPoll = 50 * time.Millisecond

// openWitnessed wraps st.log in a witness.Log when c.WitnessPolicy is set (ledger/witness); it
// returns the log to serve readers and the wrapper (nil without a policy). The newest cosigned
// checkpoint is kept in the data dir (witness.StateFile); one that does not verify with the log
// key or is not consistent with the log refuses the start.
func openWitnessed(ctx context.Context, c Config, st *stores) (ledger.Log, *witness.Log, error) {
	if c.WitnessPolicy == "" {
		return st.log, nil, nil
	}
	p, err := witness.LoadPolicy(c.WitnessPolicy)
	if err != nil {
		return nil, nil, fmt.Errorf("service: --witness-policy: %w", err)
	}
	mode, err := witness.ParseMode(c.WitnessMode)
	if err != nil {
		return nil, nil, fmt.Errorf("service: --witness-mode: %w", err)
	}
	wl, err := witness.New(ctx, st.log, witness.Options{
		Policy: p, Mode: mode, Verifier: st.verifier, StateFile: witness.StateFile(c.DataDir),
		PollInterval: min(c.CheckpointInterval, witnessPoll), Registerer: st.reg,
		Logger: c.Logger.With("component", "witness"),
	})
	if err != nil {
		return nil, nil, err
	}
	var names []string
	for _, w := range p.Witnesses {
		names = append(names, w.Name)
	}
	c.Logger.Info("witnessing checkpoints", "policy", c.WitnessPolicy, "mode", string(mode),
		"witnesses", strings.Join(names, ","), "threshold", p.Quorum.N)
	return wl, wl, nil
}

// openIndex opens the configured index driver; path is the SQLite file (ignored by ClickHouse).
func openIndex(ctx context.Context, c Config, path string) (index.Store, error) {
	if c.Index == "clickhouse" {
		return clickhouse.Open(ctx, clickHouseOptions(c))
	}
	return sqlite.Open(ctx, path)
}

// clickHouseOptions are the ClickHouse index's options, the same for lineaged and for
// rebuild-index so both open the index alike.
func clickHouseOptions(c Config) clickhouse.Options {
	return clickhouse.Options{DSN: c.ClickHouseDSN, Retention: c.IndexRetention,
		ForceShortRetention: c.ForceShortRetention, Logger: c.Logger.With("component", "clickhouse")}
}

// openLedger opens the configured ledger driver. It returns the directory to serve as
// tlog-tiles under /log/ ("" when the driver has none).
func openLedger(ctx context.Context, c Config, s note.Signer, v note.Verifier, m ledgerMode) (ledger.Log, string, error) {
	readOnly := m.readOnly
	switch c.Ledger {
	case "trillian":
		o := trillian.DefaultOptions(c.TrillianAddr, c.TrillianTreeID, filepath.Join(c.DataDir, "trillian-state"), s, v)
		o.CheckpointInterval = c.CheckpointInterval
		o.BatchMaxSize = c.BatchSize
		o.Insecure = c.TrillianInsecure
		if c.TrillianTLSCA != "" {
			tc, err := trillian.TLSFromCA(c.TrillianTLSCA)
			if err != nil {
				return nil, "", err
			}
			o.TLS = tc
		}
		o.Logger = c.Logger.With("component", "trillian")
		o.Checkpoints, o.Fence = m.shared, m.fence
		var l *trillian.Log
		var err error
		if readOnly {
			l, err = trillian.OpenReadOnly(ctx, o)
		} else {
			l, err = trillian.Open(ctx, o)
		}
		return l, "", err
	case "tessera-aws":
		o := tesseraaws.DefaultOptions(c.TesseraAWSDSN, c.S3Bucket, s, v)
		o.Prefix, o.Endpoint, o.Region, o.PathStyle = c.S3Prefix, c.S3Endpoint, c.S3Region, c.S3PathStyle
		o.AccessKeyID, o.SecretAccessKey = c.S3AccessKeyID, c.S3SecretAccessKey
		o.BatchMaxSize = uint(c.BatchSize)
		// The AWS driver publishes checkpoints at most once a second.
		o.CheckpointInterval = max(c.CheckpointInterval, tesseraaws.MinCheckpointInterval)
		var l *tesseraaws.Log
		var err error
		if readOnly {
			l, err = tesseraaws.OpenReadOnly(ctx, o)
		} else {
			l, err = tesseraaws.Open(ctx, o)
		}
		if err != nil {
			return nil, "", err
		}
		return l, "", nil
	default:
		if readOnly {
			l, err := tessera.OpenReadOnly(LogDir(c.DataDir), v)
			return l, LogDir(c.DataDir), err
		}
		o := tessera.DefaultOptions(LogDir(c.DataDir), s, v)
		o.CheckpointInterval = c.CheckpointInterval
		// One ingest batch becomes one Tessera sequencing batch: one group of fsyncs.
		o.BatchMaxSize = uint(c.BatchSize)
		l, err := tessera.Open(ctx, o)
		return l, LogDir(c.DataDir), err
	}
}

// ledgerMode says how openLedger opens the log: read-only or for writing, and for a node of a
// cluster (--ha, Trillian only) with the cluster's shared checkpoint and the writer lease's
// fence (ledger/trillian Options.Checkpoints and Fence).
type ledgerMode struct {
	readOnly bool
	shared   trillian.CheckpointStore
	fence    func() error
}

// cleanups are undo steps, run in the reverse order they were added.
type cleanups []func()

func (cs *cleanups) add(f func()) { *cs = append(*cs, f) }

func (cs cleanups) run() {
	for i := len(cs) - 1; i >= 0; i-- {
		cs[i]()
	}
}

// openFindings opens the findings projection beside the index, in the same database.
func openFindings(ctx context.Context, ix index.Store) (findings.Store, error) {
	switch s := ix.(type) {
	case *sqlite.Store:
		return s.Findings(ctx)
	case *clickhouse.Store:
		return s.Findings(ctx)
	}
	return nil, fmt.Errorf("service: the %T index has no findings store (start with --findings=false)", ix)
}
