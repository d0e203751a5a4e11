package service

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/lineage-audit/lineage/ingest"
	"github.com/lineage-audit/lineage/internal/ha"
	"github.com/lineage-audit/lineage/internal/natsclient"
	"github.com/lineage-audit/lineage/ledger/witness"
	"github.com/lineage-audit/lineage/query"
	"github.com/lineage-audit/lineage/query/auth"
)

// Config is everything `lineaged serve` can be told. A zero field means its default
// (DefaultConfig, or one derived from DataDir: see Defaults).
type Config struct {
	DataDir string
	// Ledger and Index name the drivers: ledger "tessera" (embedded) or "trillian"; index
	// "sqlite" (embedded, <data-dir>/index.sqlite) or "clickhouse".
	Ledger string
	Index  string
	// TrillianAddr and TrillianTreeID locate the Trillian log (a PREORDERED_LOG tree, see
	// `lineagectl trillian create-tree`). TrillianTLS* enable TLS to it; plaintext is only
	// allowed to loopback addresses.
	TrillianAddr     string
	TrillianTreeID   int64
	TrillianTLSCA    string
	TrillianInsecure bool
	// TesseraAWS* locate the log of --ledger tessera-aws (ledger/tesseraaws: Tessera's AWS
	// driver on a MySQL-compatible database and an S3-compatible bucket; docs/SHARED-LOG.md).
	// TesseraAWSDSN is a go-sql-driver/mysql DSN; the S3 credentials may be empty to use the
	// AWS SDK's default chain.
	TesseraAWSDSN     string
	S3Bucket          string
	S3Prefix          string
	S3Endpoint        string
	S3Region          string
	S3AccessKeyID     string
	S3SecretAccessKey string
	S3PathStyle       bool
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
	// WitnessPolicy is a witness policy file (ledger/witness, docs/WITNESSES.md). When set,
	// every new checkpoint is sent to the witnesses it names, and the query API and the
	// exporters serve checkpoints carrying their cosignatures; the ingester and the indexer
	// keep using the log itself, so ingest never waits for a witness. WitnessMode is "hold"
	// (the default: serve only checkpoints whose cosignatures meet the policy's quorum) or
	// "open" (serve the newest, and raise lineage_witness_serving_unwitnessed below quorum).
	WitnessPolicy string
	WitnessMode   string

	// HA runs this daemon as one node of a cluster (docs/OPERATIONS.md): every node serves the
	// API, the UI and ingest, and the node holding the writer lease (internal/ha, a key in a
	// NATS KV bucket with LeaseTTL) also appends, signs checkpoints, indexes and runs exports.
	// It needs the Trillian log, the ClickHouse index, an external NATS (cluster) and a signing
	// key file shared by every node. NodeID names the node (default: the host name).
	HA       bool
	NodeID   string
	LeaseTTL time.Duration

	NATSAddr string // embedded server listen address
	// NATSURL is an external server, or the comma-separated seed URLs of a NATS cluster (any
	// reachable one will do; the client learns the others from it and fails over between
	// them); it disables the embedded server.
	NATSURL string
	// StreamReplicas is the replication factor of the records, quarantine and findings streams
	// (ingest.EnsureStreams; 0 means 1): 3 on a 3-node NATS cluster keeps every acked record
	// through the loss of any one server. Above 1 it needs NATSURL (the embedded server is a
	// single node).
	StreamReplicas int
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
	// OIDCLogin, when its ClientID is set, adds the web UI's browser login with that provider
	// (query/auth/login.go): it needs OIDC.Issuer and a RedirectURL. Its sessions live in
	// memory (lost on restart).
	OIDCLogin auth.LoginConfig
	// SourceKeys is the file of registered source keys (Ed25519) and tenants that require them.
	SourceKeys string
	// OPAIdentityPath is where the identity object sits in OPA decision input.
	OPAIdentityPath string

	// Erasure is "auto" (default: keep the log's recorded mode; a new log on the SQLite index is sealed), "on" or "off"
	// (docs/ERASURE.md). The mode is recorded in the data dir at first start and a log never
	// switches. ErasureKeyStore is the key store file (default <data-dir>/keys/erasure.sqlite);
	// ErasureMasterKeyFile its master key (default <data-dir>/keys/erasure.master, created for
	// a new log; LINEAGE_ERASURE_MASTER_KEY overrides it); ErasureConfig an optional JSON file
	// of per-tenant sealed paths and minimum retention.
	Erasure              string
	ErasureKeyStore      string
	ErasureMasterKeyFile string
	ErasureConfig        string
	// ErasureRetentionDays, if positive, erases on schedule every subject not seen for that
	// many days, in every tenant without its own retention_days in ErasureConfig (at least
	// the minimum retention); ErasureRetentionInterval is how often that job runs (default
	// 1h). See internal/service/retention.go.
	ErasureRetentionDays     int
	ErasureRetentionInterval time.Duration

	// NoFindings turns the findings projection off (query/findings; on by default);
	// FindingsConfig is its per-tenant configuration file (docs/FINDINGS.md; defaults if empty).
	NoFindings     bool
	FindingsConfig string

	HTTPAddr string

	// ExportDir holds compliance exports (default <data-dir>/exports); ExportSchedule is the
	// schedule file of recurring exports (none if empty).
	ExportDir      string
	ExportSchedule string

	CheckpointInterval time.Duration
	BatchSize          int
	AckWait            time.Duration
	Logger             *slog.Logger

	// HTTP server limits. HTTPReadTimeout bounds reading a whole request; HTTPWriteTimeout
	// bounds one stalled write, not a whole answer (see newHTTPServer).
	HTTPReadHeaderTimeout time.Duration
	HTTPReadTimeout       time.Duration
	HTTPWriteTimeout      time.Duration
	HTTPIdleTimeout       time.Duration
	HTTPMaxConns          int
	// HTTPMaxInflightBytes bounds the request bodies received at once across all requests;
	// HTTPInflightWait is how long a request waits for room before a 503.
	HTTPMaxInflightBytes int64
	HTTPInflightWait     time.Duration
	// HTTPAllowedHosts are Host names served besides localhost and IP literals ("*": any;
	// empty with authentication on: any); HTTPAllowedOrigins are browser origins that may
	// change state besides the API's own.
	HTTPAllowedHosts   []string
	HTTPAllowedOrigins []string

	// clock, if set, replaces time.Now for the eraser and the retention job, keyStoreClock for
	// the erasure key store (tests: a subject seen, then the clock moved past its window).
	clock         func() time.Time
	keyStoreClock func() time.Time
}

// DefaultConfig holds every default of `lineaged serve`: cmd/lineaged takes its flag defaults
// from it and Defaults fills unset fields from it, so a default is changed here only. The
// defaults that depend on other fields (KeyFile, ExportDir, LogOrigin, Logger) are left empty
// and derived by Defaults.
func DefaultConfig() Config {
	return Config{
		DataDir:                  "./data",
		Ledger:                   "tessera",
		Index:                    "sqlite",
		NATSAddr:                 "127.0.0.1:4222",
		StreamReplicas:           1,
		LeaseTTL:                 ha.DefaultTTL,
		HTTPAddr:                 "127.0.0.1:8080",
		OIDC:                     auth.OIDCConfig{RolesClaim: "lineage_roles", TenantsClaim: "lineage_tenants"},
		OIDCLogin:                auth.LoginConfig{SessionMaxAge: auth.DefaultSessionMaxAge},
		OPAIdentityPath:          ingest.DefaultOPAIdentityPath,
		WitnessMode:              string(witness.ModeHold),
		Erasure:                  ErasureAuto,
		ErasureRetentionInterval: DefaultRetentionInterval,

		CheckpointInterval: 250 * time.Millisecond,
		BatchSize:          1000,
		// After a crash, records the ingester received but did not ack come back after this.
		AckWait: 30 * time.Second,

		HTTPReadHeaderTimeout: 10 * time.Second,
		// Reading one whole request, headers and body: a 16 MiB ingest body needs at least
		// ~280 KB/s.
		HTTPReadTimeout: 60 * time.Second,
		// How long one write to a client may stall (a client that stopped reading), not the
		// whole answer: long export downloads keep going while the client reads.
		HTTPWriteTimeout:     60 * time.Second,
		HTTPIdleTimeout:      30 * time.Second,
		HTTPMaxConns:         512,
		HTTPMaxInflightBytes: query.DefaultMaxInflightBytes,
		HTTPInflightWait:     query.DefaultInflightWait,
	}
}

// Defaults fills unset fields: from DefaultConfig, and KeyFile, ExportDir, LogOrigin and Logger
// from DataDir, the host name and slog.Default.
func (c *Config) Defaults() {
	d := DefaultConfig()
	orDefault(&c.DataDir, d.DataDir)
	orDefault(&c.Ledger, d.Ledger)
	orDefault(&c.Index, d.Index)
	orDefault(&c.KeyFile, filepath.Join(c.DataDir, "keys", "log.key"))
	if c.LogOrigin == "" {
		host, _ := os.Hostname()
		if host == "" {
			host = "localhost"
		}
		c.LogOrigin = "lineage.local/" + host
	}
	orDefault(&c.NATSAddr, d.NATSAddr)
	if c.NodeID == "" {
		c.NodeID, _ = os.Hostname()
	}
	orDefault(&c.LeaseTTL, d.LeaseTTL)
	orDefault(&c.HTTPAddr, d.HTTPAddr)
	orDefault(&c.OIDC.RolesClaim, d.OIDC.RolesClaim)
	orDefault(&c.OIDC.TenantsClaim, d.OIDC.TenantsClaim)
	orDefault(&c.OPAIdentityPath, d.OPAIdentityPath)
	orDefault(&c.ExportDir, filepath.Join(c.DataDir, "exports"))
	orDefault(&c.Erasure, ErasureAuto)
	orDefault(&c.ErasureKeyStore, ErasureKeyStorePath(c.DataDir))
	orDefault(&c.ErasureMasterKeyFile, ErasureMasterKeyPath(c.DataDir))
	orDefault(&c.WitnessMode, d.WitnessMode)
	orDefault(&c.CheckpointInterval, d.CheckpointInterval)
	orDefault(&c.BatchSize, d.BatchSize)
	orDefault(&c.StreamReplicas, d.StreamReplicas)
	// Negative values too mean the default for these, as they do in the packages using them.
	positiveOr(&c.AckWait, d.AckWait)
	positiveOr(&c.HTTPReadHeaderTimeout, d.HTTPReadHeaderTimeout)
	positiveOr(&c.HTTPReadTimeout, d.HTTPReadTimeout)
	positiveOr(&c.HTTPWriteTimeout, d.HTTPWriteTimeout)
	positiveOr(&c.HTTPIdleTimeout, d.HTTPIdleTimeout)
	positiveOr(&c.HTTPMaxConns, d.HTTPMaxConns)
	positiveOr(&c.HTTPMaxInflightBytes, d.HTTPMaxInflightBytes)
	positiveOr(&c.HTTPInflightWait, d.HTTPInflightWait)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// RegisterTesseraAWSFlags registers the flags of --ledger tessera-aws on fs (lineaged serve and
// lineagectl rebuild-index share them, with their LINEAGE_* environment variables).
func (c *Config) RegisterTesseraAWSFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.TesseraAWSDSN, "tessera-aws-dsn", "", "MySQL/MariaDB DSN of the log's sequencing database for --ledger tessera-aws (user:password@tcp(host:3306)/db); prefer the environment variable, it holds a password")
	fs.StringVar(&c.S3Bucket, "s3-bucket", "", "S3 bucket holding the log's tiles, bundles and checkpoint (--ledger tessera-aws); it must exist")
	fs.StringVar(&c.S3Prefix, "s3-prefix", "", "object name prefix of the log in --s3-bucket")
	fs.StringVar(&c.S3Endpoint, "s3-endpoint", "", "S3-compatible endpoint URL (http://host:port); empty: AWS's endpoint for --s3-region")
	fs.StringVar(&c.S3Region, "s3-region", "", "S3 region (default us-east-1)")
	fs.StringVar(&c.S3AccessKeyID, "s3-access-key-id", "", "S3 access key id; empty with --s3-secret-access-key: the AWS SDK's default credential chain")
	fs.StringVar(&c.S3SecretAccessKey, "s3-secret-access-key", "", "S3 secret access key (prefer the environment variable)")
	fs.BoolVar(&c.S3PathStyle, "s3-path-style", false, "address the bucket as ENDPOINT/BUCKET (most S3-compatible servers need it)")
}

// checkHA refuses a cluster node (--ha) whose stores are one machine's: every node must see the
// same log, index and NATS.
func checkHA(c Config) error {
	if !c.HA {
		return nil
	}
	switch {
	case c.Ledger == "tessera-aws":
		// Tessera sequences every append itself, so an append a paused old writer sends after a
		// takeover is stored, not refused, and could store a record twice (docs/SHARED-LOG.md).
		return errors.New("service: --ha runs on --ledger trillian only: Tessera's AWS driver cannot refuse a paused old writer's appends (no per-index fencing; docs/SHARED-LOG.md)")
	case c.Ledger != "trillian":
		return fmt.Errorf("service: --ha needs a log every node shares: --ledger trillian (the %q log lives on one machine's disk; docs/OPERATIONS.md)", c.Ledger)
	case c.Index != "clickhouse":
		return fmt.Errorf("service: --ha needs an index every node shares: --index clickhouse (the %q index is a file on one machine; docs/OPERATIONS.md)", c.Index)
	case c.NATSURL == "":
		return errors.New("service: --ha needs the cluster's NATS servers (--nats-url); the embedded NATS server serves one node only")
	case c.WitnessPolicy != "":
		return errors.New("service: --ha with --witness-policy is not supported yet: the cosigned checkpoint is kept in one node's data dir")
	case c.NodeID == "" || len(c.NodeID) > 128:
		return errors.New("service: --ha needs a --node-id of 1 to 128 characters")
	case c.LeaseTTL < ha.MinTTL:
		return fmt.Errorf("service: --lease-ttl %v is below the minimum %v", c.LeaseTTL, ha.MinTTL)
	}
	if _, err := os.Stat(c.KeyFile); err != nil {
		// A node must not make a key of its own: the nodes sign one log with one key.
		return fmt.Errorf("service: --ha needs the cluster's signing key at --key-file %s, shared by every node (create it once with lineagectl keygen and give each node a copy): %w", c.KeyFile, err)
	}
	return nil
}

// orDefault sets *v to d if *v is the zero value.
func orDefault[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}

// positiveOr sets *v to d unless *v is positive.
func positiveOr[T int | int64 | time.Duration](v *T, d T) {
	if *v <= 0 {
		*v = d
	}
}

// preflight refuses a configuration before anything is opened, and returns the API's
// authenticator (nil: none configured, so the API must listen on loopback only) and the
// browser login (nil unless configured).
func preflight(c Config) (auth.Authenticator, *auth.Login, error) {
	if c.Ledger != "tessera" && c.Ledger != "trillian" && c.Ledger != "tessera-aws" {
		return nil, nil, fmt.Errorf("service: --ledger %q is not available (tessera, trillian, tessera-aws)", c.Ledger)
	}
	if c.Ledger == "tessera-aws" && (c.TesseraAWSDSN == "" || c.S3Bucket == "") {
		return nil, nil, errors.New("service: --ledger tessera-aws needs --tessera-aws-dsn and --s3-bucket")
	}
	if c.Ledger == "trillian" && (c.TrillianAddr == "" || c.TrillianTreeID == 0) {
		return nil, nil, errors.New("service: --ledger trillian needs --trillian-addr and --trillian-tree-id")
	}
	if c.Index != "sqlite" && c.Index != "clickhouse" {
		return nil, nil, fmt.Errorf("service: --index %q is not available (sqlite, clickhouse)", c.Index)
	}
	if c.Index == "clickhouse" && c.ClickHouseDSN == "" {
		return nil, nil, errors.New("service: --index clickhouse needs --clickhouse-dsn")
	}
	if err := checkHA(c); err != nil {
		return nil, nil, err
	}
	if _, err := witness.ParseMode(c.WitnessMode); err != nil {
		return nil, nil, fmt.Errorf("service: --witness-mode: %w", err)
	}
	if c.WitnessPolicy != "" {
		// Read again by openStores; refusing here stops the start before anything is opened.
		if _, err := witness.LoadPolicy(c.WitnessPolicy); err != nil {
			return nil, nil, fmt.Errorf("service: --witness-policy: %w (refusing to start)", err)
		}
	}
	var chain auth.Chain
	if c.APIKeys != "" {
		keys, err := auth.LoadAPIKeys(c.APIKeys)
		if err != nil {
			return nil, nil, err
		}
		chain = append(chain, keys)
	}
	var login *auth.Login
	if c.OIDC.Issuer != "" {
		o, err := auth.NewOIDC(c.OIDC)
		if err != nil {
			return nil, nil, err
		}
		chain = append(chain, o)
		if c.OIDCLogin.ClientID != "" {
			lc := c.OIDCLogin
			if lc.Logger == nil {
				lc.Logger = c.Logger
			}
			if login, err = auth.NewLogin(o, lc); err != nil {
				return nil, nil, fmt.Errorf("service: --oidc-client-id: %w", err)
			}
			// Last: a request with an Authorization header is the bearer authenticators'.
			chain = append(chain, login.Sessions())
		}
	} else if c.OIDCLogin.ClientID != "" {
		return nil, nil, errors.New("service: --oidc-client-id needs --oidc-issuer and --oidc-audience")
	}
	var authn auth.Authenticator
	if len(chain) > 0 {
		authn = chain
	} else if err := requireLoopback("--http-addr (without --api-keys or --oidc-issuer)", c.HTTPAddr); err != nil {
		// Without credentials every caller is an admin of every tenant: loopback only.
		return nil, nil, err
	}
	if c.NATSURL == "" && c.NATS.Token == "" && c.NATSPublisherNKeys == "" {
		if err := requireLoopback("--nats-addr (without --nats-token or --nats-publisher-nkeys)", c.NATSAddr); err != nil {
			return nil, nil, err
		}
	}
	return authn, login, nil
}
