// Package service wires Lineage's parts into the running daemon: NATS (embedded or external),
// the ledger, the index, the indexer, the ingester and the HTTP API. cmd/lineaged parses flags
// into a Config and calls Run; tests call Run in-process with the same Config.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/exporters"
	"github.com/lineage-audit/lineage/ingest"
	"github.com/lineage-audit/lineage/internal/natsclient"
	"github.com/lineage-audit/lineage/ledger"
	"github.com/lineage-audit/lineage/ledger/tessera"
	"github.com/lineage-audit/lineage/ledger/trillian"
	"github.com/lineage-audit/lineage/query"
	"github.com/lineage-audit/lineage/query/auth"
	"github.com/lineage-audit/lineage/query/index"
	"github.com/lineage-audit/lineage/query/index/clickhouse"
	"github.com/lineage-audit/lineage/query/index/sqlite"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/mod/sumdb/note"
	"k8s.io/klog/v2"
)

// Config is everything `lineaged serve` can be told.
type Config struct {
	DataDir string
	// Ledger and Index name the drivers: ledger "tessera" (embedded) or "trillian"; index
	// "sqlite" (embedded).
	Ledger string
	Index  string
	// TrillianAddr and TrillianTreeID locate the Trillian log (a PREORDERED_LOG tree, see
	// `lineagectl trillian create-tree`). TrillianTLS* enable TLS to it; plaintext is only
	// allowed to loopback addresses.
	TrillianAddr     string
	TrillianTreeID   int64
	TrillianTLSCA    string
	TrillianInsecure bool
	// ClickHouseDSN locates the ClickHouse index (--index clickhouse), e.g.
	// clickhouse://user:password@host:9000/lineage. IndexRetention bounds how long the index
	// keeps records (0: forever; the log always stays whole); windows under six months need
	// ForceShortRetention (EU AI Act Art. 19/26(6)).
	ClickHouseDSN       string
	IndexRetention      time.Duration
	ForceShortRetention bool
	// LogOrigin names a new log (used only when the signing key is created).
	LogOrigin string
	// KeyFile is the checkpoint signing key (default <data-dir>/keys/log.key).
	KeyFile string

	NATSAddr string // embedded server listen address
	NATSURL  string // external server; disables the embedded one
	// NATS holds the client credentials and TLS. With the embedded server, a token given here
	// is also what the server requires from every client.
	NATS natsclient.Settings
	// NATSPublisherNKeys is a file of publisher NKeys for the embedded server (see
	// ingest.ParsePublisherNKeys): then only those keys may connect, each to its tenants.
	NATSPublisherNKeys string
	// APIKeys is the API key file; setting it turns authentication on (and allows listening
	// beyond loopback).
	APIKeys string
	// OIDC, when its Issuer is set, accepts bearer tokens from that identity provider.
	OIDC auth.OIDCConfig
	// SourceKeys is the file of registered source keys (Ed25519) and tenants that require them.
	SourceKeys string
	// OPAIdentityPath is where the identity object sits in OPA decision input.
	OPAIdentityPath string

	HTTPAddr string

	// ExportDir holds compliance exports (default <data-dir>/exports); ExportSchedule is the
	// schedule file of recurring exports (none if empty).
	ExportDir      string
	ExportSchedule string

	CheckpointInterval time.Duration
	BatchSize          int
	AckWait            time.Duration
	// Ready, if set, is called once the service accepts records and queries.
	Ready  func(Info)
	Logger *slog.Logger

	// HTTP server limits (zero: the Default* in httpserver.go). HTTPReadTimeout bounds reading
	// a whole request; HTTPWriteTimeout bounds one stalled write, not a whole answer.
	HTTPReadHeaderTimeout time.Duration
	HTTPReadTimeout       time.Duration
	HTTPWriteTimeout      time.Duration
	HTTPIdleTimeout       time.Duration
	HTTPMaxConns          int
	// HTTPMaxInflightBytes bounds the request bodies received at once across all requests
	// (query.DefaultMaxInflightBytes); HTTPInflightWait is how long a request waits for room
	// before a 503 (query.DefaultInflightWait).
	HTTPMaxInflightBytes int64
	HTTPInflightWait     time.Duration
	// HTTPAllowedHosts are Host names served besides localhost and IP literals ("*": any;
	// empty with authentication on: any); HTTPAllowedOrigins are browser origins that may
	// change state besides the API's own.
	HTTPAllowedHosts   []string
	HTTPAllowedOrigins []string
}

// Info describes a started service.
type Info struct {
	HTTPAddr string // actual address (useful with port 0)
	NATSURL  string
	Verifier string
}

// Defaults fills unset fields with the embedded defaults.
func (c *Config) Defaults() {
	if c.DataDir == "" {
		c.DataDir = "./data"
	}
	if c.Ledger == "" {
		c.Ledger = "tessera"
	}
	if c.Index == "" {
		c.Index = "sqlite"
	}
	if c.KeyFile == "" {
		c.KeyFile = filepath.Join(c.DataDir, "keys", "log.key")
	}
	if c.LogOrigin == "" {
		host, _ := os.Hostname()
		if host == "" {
			host = "localhost"
		}
		c.LogOrigin = "lineage.local/" + host
	}
	if c.NATSAddr == "" {
		c.NATSAddr = "127.0.0.1:4222"
	}
	if c.HTTPAddr == "" {
		c.HTTPAddr = "127.0.0.1:8080"
	}
	if c.ExportDir == "" {
		c.ExportDir = filepath.Join(c.DataDir, "exports")
	}
	if c.CheckpointInterval == 0 {
		c.CheckpointInterval = 250 * time.Millisecond
	}
	if c.BatchSize == 0 {
		c.BatchSize = 1000
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// MaxRecordMsg is the largest message the records stream accepts: a 64 KiB record plus room for
// headers; JetStream refuses larger ones to the publisher. The embedded server's own limit
// (MaxNATSPayload) is twice that, so a rejected record still fits in the quarantine stream with
// its reason headers, and no client can make the server buffer more.
const (
	MaxRecordMsg   = 64<<10 + ingest.HeaderAllowance
	MaxNATSPayload = 2 * MaxRecordMsg
)

// LogDir and IndexPath locate the embedded stores in the data dir.
func LogDir(dataDir string) string    { return filepath.Join(dataDir, "log") }
func IndexPath(dataDir string) string { return filepath.Join(dataDir, "index.sqlite") }

// Run starts everything and blocks until ctx ends, then shuts down in dependency order: stop
// taking records, flush the log, stop indexing, close the index, stop NATS.
func Run(ctx context.Context, c Config) error {
	c.Defaults()
	log := c.Logger
	if c.Ledger != "tessera" && c.Ledger != "trillian" {
		return fmt.Errorf("service: --ledger %q is not available (tessera, trillian)", c.Ledger)
	}
	if c.Ledger == "trillian" && (c.TrillianAddr == "" || c.TrillianTreeID == 0) {
		return errors.New("service: --ledger trillian needs --trillian-addr and --trillian-tree-id")
	}
	if c.Index != "sqlite" && c.Index != "clickhouse" {
		return fmt.Errorf("service: --index %q is not available (sqlite, clickhouse)", c.Index)
	}
	if c.Index == "clickhouse" && c.ClickHouseDSN == "" {
		return errors.New("service: --index clickhouse needs --clickhouse-dsn")
	}
	var chain auth.Chain
	if c.APIKeys != "" {
		keys, err := auth.LoadAPIKeys(c.APIKeys)
		if err != nil {
			return err
		}
		chain = append(chain, keys)
	}
	if c.OIDC.Issuer != "" {
		o, err := auth.NewOIDC(c.OIDC)
		if err != nil {
			return err
		}
		chain = append(chain, o)
	}
	var authn auth.Authenticator
	if len(chain) > 0 {
		authn = chain
	} else if err := requireLoopback("--http-addr (without --api-keys or --oidc-issuer)", c.HTTPAddr); err != nil {
		// Without credentials every caller is an admin of every tenant: loopback only.
		return err
	}
	if c.NATSURL == "" && c.NATS.Token == "" && c.NATSPublisherNKeys == "" {
		if err := requireLoopback("--nats-addr (without --nats-token or --nats-publisher-nkeys)", c.NATSAddr); err != nil {
			return err
		}
	}
	klog.SetSlogLogger(log.With("component", "tessera"))
	unlock, err := LockDataDir(c.DataDir)
	if err != nil {
		return err
	}
	defer unlock()

	signer, vkey, err := ledger.LoadOrCreateSigner(c.KeyFile, c.LogOrigin)
	if err != nil {
		return err
	}
	verifier, err := ledger.NewVerifier(vkey)
	if err != nil {
		return err
	}
	log.Info("ledger key", "origin", signer.Name(), "verifier", vkey)

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	lg, logDir, err := openLedger(ctx, c, signer, verifier, false)
	if err != nil {
		return err
	}
	logOpen := true
	closeLog := func() {
		if !logOpen {
			return
		}
		logOpen = false
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if err := lg.Close(sctx); err != nil {
			log.Error("ledger close", "err", err)
		}
	}
	defer closeLog()

	store, err := openIndex(ctx, c, IndexPath(c.DataDir))
	if err != nil {
		return err
	}
	defer store.Close()

	ix, err := query.NewIndexer(ctx, lg, store, reg, log.With("component", "indexer"))
	if err != nil {
		return err
	}
	ixCtx, stopIndexer := context.WithCancel(context.WithoutCancel(ctx))
	ixDone := make(chan struct{})
	go func() { defer close(ixDone); _ = ix.Run(ixCtx) }()
	defer func() { stopIndexer(); <-ixDone }()

	nc, natsURL, stopNATS, err := connectNATS(c, log)
	if err != nil {
		return err
	}
	defer stopNATS()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("service: jetstream: %w", err)
	}
	if err := ingest.EnsureStreams(ctx, js, ingest.StreamOptions{MaxMsgSize: MaxRecordMsg}); err != nil {
		return err
	}
	opaCfg := ingest.OPAConfig{IdentityPath: c.OPAIdentityPath}
	if err := opaCfg.Check(); err != nil {
		return err
	}
	var srcKeys *ingest.SourceKeys
	if c.SourceKeys != "" {
		if srcKeys, err = ingest.LoadSourceKeys(c.SourceKeys); err != nil {
			return err
		}
	}
	inMetrics := ingest.NewMetrics(reg)
	in, err := ingest.New(ingest.Config{
		JS: js, Log: lg, Seen: store, Indexed: ix.Position, WaitIndexed: ix.WaitFor,
		BatchSize: c.BatchSize, AckWait: c.AckWait, SourceKeys: srcKeys, Metrics: inMetrics, Logger: log.With("component", "ingest"),
	})
	if err != nil {
		return err
	}
	inCtx, stopIngest := context.WithCancel(ctx)
	defer stopIngest()
	inDone := make(chan error, 1)
	go func() { inDone <- in.Run(inCtx) }()

	exports, err := exporters.NewService(exporters.Config{
		Log: lg, Signer: signer, Verifier: verifier,
		Dir: c.ExportDir, ScheduleFile: c.ExportSchedule,
		// Each export run is recorded like any decision: through JetStream, the one durable path.
		Publish: func(ctx context.Context, rec lineage.Record) error {
			b, err := rec.Canonical()
			if err != nil {
				return err
			}
			_, err = js.PublishMsg(ctx, ingest.RecordMsg(rec.Tenant, rec.ID, b))
			return err
		},
		Registerer: reg, Logger: log.With("component", "exporter"),
	})
	if err != nil {
		return err
	}
	// The exporter reads the log and publishes to NATS: it stops before either closes.
	expCtx, stopExp := context.WithCancel(context.WithoutCancel(ctx))
	expDone := make(chan struct{})
	go func() { defer close(expDone); _ = exports.Run(expCtx) }()
	stopExports := sync.OnceFunc(func() { stopExp(); <-expDone })
	defer stopExports()

	httpIngest := &ingest.HTTP{JS: js, OPA: opaCfg, Metrics: inMetrics, Seen: store,
		Logger: log.With("component", "ingest-http")}
	api := &query.API{Log: lg, Store: store, Verifier: vkey, LogDir: logDir, Gatherer: reg, Auth: authn,
		Mounts: []func(*gin.RouterGroup){httpIngest.Mount, exports.Mount}, Logger: log.With("component", "api"),
		AllowedHosts: allowedHosts(c), AllowedOrigins: c.HTTPAllowedOrigins, MaxInflightBytes: c.HTTPMaxInflightBytes,
		MaxRequestBody: ingest.DefaultMaxBody, InflightWait: c.HTTPInflightWait, Registerer: reg}
	srv, ln, err := newHTTPServer(&c, api.Handler(), reg)
	if err != nil {
		return err
	}
	httpDone := make(chan error, 1)
	go func() { httpDone <- srv.Serve(ln) }()
	log.Info("lineaged serving", "http", ln.Addr().String(), "nats", natsURL, "data_dir", c.DataDir)
	if c.Ready != nil {
		c.Ready(Info{HTTPAddr: ln.Addr().String(), NATSURL: natsURL, Verifier: vkey})
	}

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-inDone:
		runErr = fmt.Errorf("service: ingester stopped: %w", err)
		inDone <- nil
	case err := <-httpDone:
		runErr = fmt.Errorf("service: http: %w", err)
	}
	log.Info("lineaged shutting down")
	shCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	_ = srv.Shutdown(shCtx)
	stopExports()
	stopIngest()
	<-inDone
	closeLog() // every appended entry is integrated and checkpointed before the index stops
	return runErr
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
func openLedger(ctx context.Context, c Config, s note.Signer, v note.Verifier, readOnly bool) (ledger.Log, string, error) {
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
		var l *trillian.Log
		var err error
		if readOnly {
			l, err = trillian.OpenReadOnly(ctx, o)
		} else {
			l, err = trillian.Open(ctx, o)
		}
		return l, "", err
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

// connectNATS starts the embedded server (unless an external URL is given) and connects.
// The connection (and every JetStream context made on it) receives its replies under
// ingest.ServiceInboxPrefix, never under the default "_INBOX" that publishers may read: the
// ingester's fetched records and the quarantine listings travel there.
func connectNATS(c Config, log *slog.Logger) (*nats.Conn, string, func(), error) {
	opts := []nats.Option{nats.Name("lineaged"), nats.MaxReconnects(-1), nats.ReconnectWait(500 * time.Millisecond)}
	inbox := nats.CustomInboxPrefix(ingest.ServiceInboxPrefix)
	if c.NATSURL != "" {
		creds, err := c.NATS.Options()
		if err != nil {
			return nil, "", nil, err
		}
		// The inbox option goes last: it overrides the publisher prefix an NKey seed sets.
		nc, err := nats.Connect(c.NATSURL, append(append(opts, creds...), inbox)...)
		if err != nil {
			return nil, "", nil, fmt.Errorf("service: connect %s (%s): %w", redactURL(c.NATSURL), c.NATS.Describe(), err)
		}
		return nc, redactURL(c.NATSURL), nc.Close, nil
	}
	eo := ingest.EmbeddedOptions{
		Addr: c.NATSAddr, StoreDir: filepath.Join(c.DataDir, "nats"), MaxPayload: MaxNATSPayload, Token: c.NATS.Token,
	}
	opts = append(opts, inbox)
	if c.NATS.Token != "" {
		opts = append(opts, nats.Token(c.NATS.Token))
		warnSharedToken(log)
	}
	if c.NATSPublisherNKeys != "" {
		b, err := os.ReadFile(c.NATSPublisherNKeys)
		if err != nil {
			return nil, "", nil, fmt.Errorf("service: publisher nkeys: %w", err)
		}
		if eo.Publishers, err = ingest.ParsePublisherNKeys(string(b)); err != nil {
			return nil, "", nil, err
		}
		// lineaged's own identity on its embedded server: a fresh NKey each start, never stored.
		kp, err := nkeys.CreateUser()
		if err != nil {
			return nil, "", nil, fmt.Errorf("service: nkey: %w", err)
		}
		if eo.ServiceNKey, err = kp.PublicKey(); err != nil {
			return nil, "", nil, err
		}
		opts = append(opts, nats.Nkey(eo.ServiceNKey, kp.Sign))
		log.Info("embedded NATS requires publisher NKeys", "publishers", len(eo.Publishers))
	}
	ns, err := ingest.StartEmbedded(eo)
	if err != nil {
		return nil, "", nil, err
	}
	clientURL := ns.ClientURL()
	nc, err := nats.Connect(clientURL, opts...)
	if err != nil {
		ns.Shutdown()
		return nil, "", nil, fmt.Errorf("service: connect embedded nats: %w", err)
	}
	return nc, clientURL, func() {
		nc.Close()
		ns.Shutdown()
		ns.WaitForShutdown()
	}, nil
}

// warnSharedToken says at start what a shared --nats-token grants. The nats-server library
// attaches permissions to users and NKeys only, never to a token, so every token holder may
// subscribe to and publish on every subject: read all tenants' records and quarantine, write
// the quarantine, call the JetStream API. Publisher NKeys are the isolation mode.
func warnSharedToken(log *slog.Logger) {
	log.Warn("embedded NATS: every holder of the shared --nats-token has full NATS rights " +
		"(reads every tenant's records and quarantine, publishes to any subject, uses the JetStream API); " +
		"give each publisher an NKey with --nats-publisher-nkeys to confine it to its tenants")
}

func requireLoopback(flag, addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("service: %s %q: %w", flag, addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("service: %s %q is not a loopback address; listening beyond this host needs authentication, which is not configured (refusing to start)", flag, addr)
}

// redactURL drops credentials from a URL before it is logged.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparseable url)"
	}
	return u.Redacted()
}
