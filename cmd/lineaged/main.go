// Command lineaged is the Lineage daemon: `lineaged serve` runs ingest, the ledger, the index
// and the query API. With no flags it keeps everything under ./data with an embedded NATS
// JetStream server, a Tessera POSIX log and a SQLite index (--ledger trillian and --index
// clickhouse use servers instead), listening on loopback only. The flag defaults are
// service.DefaultConfig's.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/lineage-audit/lineage/internal/cliflag"
	"github.com/lineage-audit/lineage/internal/service"
)

const envPrefix = "LINEAGE_"

func main() {
	if len(os.Args) < 2 || os.Args[1] != "serve" {
		fmt.Fprintln(os.Stderr, "usage: lineaged serve [flags]   (lineaged serve -h lists the flags)")
		os.Exit(2)
	}
	if err := serve(os.Args[2:]); err != nil {
		fmt.Fprintln(os.Stderr, "lineaged:", err)
		os.Exit(1)
	}
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	// Every flag default comes from service.DefaultConfig; Run fills the derived ones.
	d := service.DefaultConfig()
	var c service.Config
	fs.StringVar(&c.DataDir, "data-dir", d.DataDir, "directory for the log, the index, NATS storage and the signing key")
	fs.StringVar(&c.Ledger, "ledger", d.Ledger, "ledger driver: tessera (embedded), trillian, or tessera-aws (Tessera on MySQL + S3, docs/SHARED-LOG.md)")
	c.RegisterTesseraAWSFlags(fs)
	fs.StringVar(&c.TrillianAddr, "trillian-addr", "", "Trillian log server gRPC address (with --ledger trillian)")
	fs.Int64Var(&c.TrillianTreeID, "trillian-tree-id", 0, "Trillian PREORDERED_LOG tree id (lineagectl trillian create-tree makes one)")
	fs.StringVar(&c.TrillianTLSCA, "trillian-tls-ca", "", "CA file: connect to Trillian over TLS, trusting this CA")
	fs.BoolVar(&c.TrillianInsecure, "trillian-insecure", false, "allow plaintext gRPC to a non-loopback Trillian (not recommended)")
	fs.StringVar(&c.Index, "index", d.Index, "index driver: sqlite (embedded) or clickhouse")
	fs.StringVar(&c.ClickHouseDSN, "clickhouse-dsn", "", "ClickHouse native DSN for --index clickhouse (clickhouse://user:password@host:9000/lineage); prefer the environment variable, it holds a password")
	fs.DurationVar(&c.IndexRetention, "index-retention", 0, "how long the index keeps records (0: forever; the log stays whole); under 4392h (six months) needs --force-short-retention")
	fs.BoolVar(&c.ForceShortRetention, "force-short-retention", false, "allow an index retention under six months (below what EU AI Act Art. 19/26(6) require)")
	fs.StringVar(&c.LogOrigin, "log-origin", "", "origin (key name) for a new log; default lineage.local/<hostname>")
	fs.StringVar(&c.KeyFile, "key-file", "", "checkpoint signing key; default <data-dir>/keys/log.key (created if missing)")
	fs.StringVar(&c.WitnessPolicy, "witness-policy", "", "witness policy file (docs/WITNESSES.md): send each checkpoint to these witnesses and serve cosigned checkpoints")
	fs.StringVar(&c.WitnessMode, "witness-mode", d.WitnessMode, "hold: serve only checkpoints meeting the witness quorum; open: serve the newest, alarm below the quorum")
	fs.BoolVar(&c.HA, "ha", false, "run as one node of a cluster (docs/OPERATIONS.md): needs --ledger trillian, --index clickhouse, --nats-url and a --key-file shared by every node; the node holding the writer lease appends, signs, indexes and exports")
	fs.StringVar(&c.NodeID, "node-id", "", "this node's name in the cluster (with --ha; default: the host name)")
	fs.DurationVar(&c.LeaseTTL, "lease-ttl", d.LeaseTTL, "writer lease TTL (with --ha; the same on every node): a standby takes over about this long after the writer dies")
	fs.StringVar(&c.NATSAddr, "nats-addr", d.NATSAddr, "listen address of the embedded NATS server")
	fs.StringVar(&c.NATSURL, "nats-url", "", "use this external NATS server instead of the embedded one; for a cluster, a comma-separated list of seed URLs (nats://a:4222,nats://b:4222,nats://c:4222)")
	fs.IntVar(&c.StreamReplicas, "stream-replicas", d.StreamReplicas, "replicas of the records, quarantine and findings streams (1-5; 3 on a 3-node NATS cluster; above 1 needs --nats-url); an existing stream is scaled up, never down")
	c.NATS.Register(fs)
	fs.StringVar(&c.NATSPublisherNKeys, "nats-publisher-nkeys", "", "file of publisher NKeys the embedded NATS server admits (\"<U… key> <tenant>[,…|*]\" per line), each confined to its tenants")
	fs.StringVar(&c.APIKeys, "api-keys", "", "API key file (lineagectl apikey create); turns authentication on and allows non-loopback --http-addr")
	fs.StringVar(&c.OIDC.Issuer, "oidc-issuer", "", "accept OIDC bearer tokens from this issuer (discovery at <issuer>/.well-known/openid-configuration)")
	fs.StringVar(&c.OIDC.Audience, "oidc-audience", "", "audience OIDC tokens must carry (Lineage's client id)")
	fs.StringVar(&c.OIDC.JWKSURL, "oidc-jwks-url", "", "JWKS URL, if not discovered from the issuer")
	fs.StringVar(&c.OIDC.RolesClaim, "oidc-roles-claim", d.OIDC.RolesClaim, "token claim listing the caller's roles")
	fs.StringVar(&c.OIDC.TenantsClaim, "oidc-tenants-claim", d.OIDC.TenantsClaim, "token claim listing the caller's tenants (\"*\" for all)")
	fs.StringVar(&c.OIDCLogin.ClientID, "oidc-client-id", "", "enable the web UI's browser login (authorization code + PKCE) as this client of --oidc-issuer; needs --oidc-redirect-url")
	fs.StringVar(&c.OIDCLogin.ClientSecret, "oidc-client-secret", "", "client secret, for a confidential client only (prefer the environment variable or --oidc-client-secret-file)")
	secretFile := fs.String("oidc-client-secret-file", "", "file holding the client secret (a confidential client)")
	fs.StringVar(&c.OIDCLogin.RedirectURL, "oidc-redirect-url", "", "the login's redirect URI as browsers reach lineaged, registered at the provider: https://<host>/v1/auth/callback")
	fs.Var((*commaList)(&c.OIDCLogin.Scopes), "oidc-scopes", "comma-separated scopes the login requests (openid is always added)")
	fs.DurationVar(&c.OIDCLogin.SessionMaxAge, "oidc-session-max-age", d.OIDCLogin.SessionMaxAge, "longest browser session; it ends sooner when the provider's access token expires (sessions are in memory: a restart ends them)")
	findingsOn := fs.Bool("findings", true, "detect findings (identity failures, docs/FINDINGS.md) continuously as records are indexed")
	fs.StringVar(&c.FindingsConfig, "findings-config", "", "JSON file of per-tenant findings thresholds and patterns (docs/FINDINGS.md); defaults if empty")
	fs.StringVar(&c.Erasure, "erasure", d.Erasure, "crypto-shredding erasure of personal fields (docs/ERASURE.md): auto (keep the log's recorded mode; seal a new log on the SQLite index, Tessera or Trillian), on (seal a new log; refused with ClickHouse, tessera-aws, --ha) or off; recorded at first start, a log never switches")
	fs.StringVar(&c.ErasureKeyStore, "erasure-key-store", "", "the erasure key store (default <data-dir>/keys/erasure.sqlite); back it up apart from the master key")
	fs.StringVar(&c.ErasureMasterKeyFile, "erasure-master-key-file", "", "the key store's master key, 32 bytes hex or base64, mode 0600 (default <data-dir>/keys/erasure.master, created for a new log); LINEAGE_ERASURE_MASTER_KEY holds the key itself instead")
	fs.StringVar(&c.ErasureConfig, "erasure-config", "", "JSON file of per-tenant sealed paths and minimum retention (docs/ERASURE.md); defaults if empty")
	fs.IntVar(&c.ErasureRetentionDays, "erasure-retention-days", 0, "erase on schedule every subject not seen for this many days, in tenants without their own retention_days in --erasure-config (0: never; at least the minimum retention, 183 days by default)")
	fs.DurationVar(&c.ErasureRetentionInterval, "erasure-retention-interval", d.ErasureRetentionInterval, "how often the retention job runs and pending erasure records are republished")
	fs.StringVar(&c.SourceKeys, "source-keys", "", "JSON file of enforcement points' Ed25519 keys and tenants that require signed records")
	fs.StringVar(&c.OPAIdentityPath, "opa-identity-path", d.OPAIdentityPath, "dotted path in OPA decision input that holds the identity object")
	fs.StringVar(&c.HTTPAddr, "http-addr", d.HTTPAddr, "listen address of the query API")
	fs.DurationVar(&c.HTTPReadHeaderTimeout, "http-read-header-timeout", d.HTTPReadHeaderTimeout, "time allowed to read a request's headers")
	fs.DurationVar(&c.HTTPReadTimeout, "http-read-timeout", d.HTTPReadTimeout, "time allowed to read a whole request, headers and body (a 16 MiB ingest body then needs 16 MiB/this)")
	fs.DurationVar(&c.HTTPWriteTimeout, "http-write-timeout", d.HTTPWriteTimeout, "how long one write to a client may stall (a client that stops reading); not a limit on a whole answer such as an export download")
	fs.DurationVar(&c.HTTPIdleTimeout, "http-idle-timeout", d.HTTPIdleTimeout, "how long an idle keep-alive connection stays open")
	fs.IntVar(&c.HTTPMaxConns, "http-max-conns", d.HTTPMaxConns, "most HTTP connections open at once (further ones wait to be accepted)")
	fs.Int64Var(&c.HTTPMaxInflightBytes, "http-max-inflight-bytes", d.HTTPMaxInflightBytes, "most request-body bytes received at once across all requests; beyond it requests wait briefly, then get 503 with Retry-After")
	fs.Var((*commaList)(&c.HTTPAllowedHosts), "http-allowed-hosts", "comma-separated Host names served besides localhost and IP literals (\"*\": any); default with authentication on: any")
	fs.Var((*commaList)(&c.HTTPAllowedOrigins), "http-allowed-origins", "comma-separated browser origins (https://ui.example) that may POST besides the API's own (\"*\": any)")
	fs.StringVar(&c.ExportDir, "export-dir", "", "directory for compliance exports (default <data-dir>/exports)")
	fs.StringVar(&c.ExportSchedule, "export-schedule", "", "JSON schedule file of recurring exports (cron, kind, tenant, period; see docs/EXPORTS.md)")
	fs.DurationVar(&c.CheckpointInterval, "checkpoint-interval", d.CheckpointInterval, "how often a signed checkpoint is published while the log grows (min 100ms)")
	fs.IntVar(&c.BatchSize, "batch-size", d.BatchSize, "records per ingest batch (one group commit)")
	pprofAddr := fs.String("pprof-addr", "", "serve Go pprof profiles on this loopback address (debugging only)")
	fs.DurationVar(&c.AckWait, "ack-wait", d.AckWait, "JetStream redelivery timeout for records the ingester received but did not ack (after a crash they come back after this)")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	format := fs.String("log-format", "text", "text or json")
	fs.Usage = cliflag.Usage(fs, envPrefix, "usage: lineaged serve [flags]")
	if err := cliflag.Parse(fs, envPrefix, args); err != nil {
		return err
	}
	c.NoFindings = !*findingsOn
	if *secretFile != "" {
		if c.OIDCLogin.ClientSecret != "" {
			return fmt.Errorf("--oidc-client-secret and --oidc-client-secret-file are exclusive")
		}
		b, err := os.ReadFile(*secretFile)
		if err != nil {
			return fmt.Errorf("--oidc-client-secret-file: %w", err)
		}
		c.OIDCLogin.ClientSecret = strings.TrimSpace(string(b))
	}
	logger, err := newLogger(*level, *format)
	if err != nil {
		return err
	}
	c.Logger = logger
	if *pprofAddr != "" {
		if err := servePprof(*pprofAddr); err != nil {
			return err
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return service.Run(ctx, c)
}

// servePprof exposes net/http/pprof on a loopback address, never beside the API.
func servePprof(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--pprof-addr: %w", err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("--pprof-addr %q must be a loopback address", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--pprof-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	go func() { _ = http.Serve(ln, mux) }()
	return nil
}

func newLogger(level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", level, err)
	}
	o := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, o)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, o)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

// commaList is a flag holding a comma-separated list; each Set replaces it.
type commaList []string

func (l *commaList) String() string { return strings.Join(*l, ",") }

func (l *commaList) Set(v string) error {
	*l = nil
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}
