package service

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lineage-audit/lineage/ingest"
	"github.com/lineage-audit/lineage/internal/natsclient"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// MaxRecordMsg is the largest message the records stream accepts: a 64 KiB record plus room for
// headers; JetStream refuses larger ones to the publisher. The embedded server's own limit
// (MaxNATSPayload) is twice that, so a rejected record still fits in the quarantine stream with
// its reason headers, and no client can make the server buffer more.
const (
	MaxRecordMsg   = 64<<10 + ingest.HeaderAllowance
	MaxNATSPayload = 2 * MaxRecordMsg
)

// connectNATS starts the embedded server (unless an external URL is given) and connects.
// The connection (and every JetStream context made on it) receives its replies under
// ingest.ServiceInboxPrefix, never under the default "_INBOX" that publishers may read: the
// ingester's fetched records and the quarantine listings travel there. With publisher NKeys the
// embedded server also puts each publisher in a NATS account of its own, so the reply subjects
// of its records cannot reach lineaged's (ingest/natsaccounts.go); with a token or no auth
// every client shares lineaged's account.
//
// With an external server, NATSURL may list several seed URLs of a cluster: the client connects
// to one of them (in random order), learns the cluster's other servers from it, and on losing
// its server reconnects to another one for ever (MaxReconnects(-1)); pings every
// natsPingInterval notice a server that went silent without closing the connection. JetStream
// keeps the streams on StreamReplicas servers (checkStreamReplicas), so a reconnect loses
// nothing: the ingester's pull consumer issues a new pull on the new server.
func connectNATS(c Config, log *slog.Logger) (*nats.Conn, string, func(), error) {
	if err := checkStreamReplicas(c); err != nil {
		return nil, "", nil, err
	}
	opts := []nats.Option{nats.Name("lineaged"), nats.MaxReconnects(-1), nats.ReconnectWait(500 * time.Millisecond)}
	inbox := nats.CustomInboxPrefix(ingest.ServiceInboxPrefix)
	if c.NATSURL != "" {
		urls, err := natsclient.SplitURLs(c.NATSURL)
		if err != nil {
			return nil, "", nil, fmt.Errorf("service: --nats-url: %w", err)
		}
		seeds := strings.Join(urls, ",")
		creds, err := c.NATS.Options()
		if err != nil {
			return nil, "", nil, err
		}
		opts = append(opts, failoverOptions(log)...)
		// The inbox option goes last: it overrides the publisher prefix an NKey seed sets.
		nc, err := nats.Connect(seeds, append(append(opts, creds...), inbox)...)
		if err != nil {
			return nil, "", nil, fmt.Errorf("service: connect %s (%s): %w", redactURL(seeds), c.NATS.Describe(), err)
		}
		if cluster := nc.ConnectedClusterName(); cluster != "" {
			log.Info("NATS cluster", "cluster", cluster, "connected", redactURL(nc.ConnectedUrl()),
				"servers", len(nc.Servers()), "stream_replicas", max(c.StreamReplicas, 1))
			if c.StreamReplicas <= 1 {
				log.Warn("NATS is a cluster but the streams have one replica: the records acked to publishers are " +
					"unavailable while the one server holding them is down, and lost with its disk; set --stream-replicas 3 on a 3-node cluster")
			}
		}
		return nc, redactURL(seeds), nc.Close, nil
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
		log.Info("embedded NATS requires publisher NKeys, each in its own NATS account", "publishers", len(eo.Publishers))
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

// natsPingInterval is how often lineaged pings its NATS server; after natsMaxPingsOut
// unanswered pings it takes the server for dead and reconnects to another one.
const (
	natsPingInterval = 5 * time.Second
	natsMaxPingsOut  = 3
)

// failoverOptions are the connection settings for an external server or cluster: dead-server
// detection, jittered reconnects (so that several lineaged nodes do not reconnect in step) and
// a log line for every disconnect and reconnect.
func failoverOptions(log *slog.Logger) []nats.Option {
	return []nats.Option{
		nats.PingInterval(natsPingInterval),
		nats.MaxPingsOutstanding(natsMaxPingsOut),
		nats.ReconnectJitter(250*time.Millisecond, time.Second),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			log.Warn("NATS disconnected; reconnecting", "server", redactURL(nc.ConnectedUrl()), "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("NATS reconnected", "server", redactURL(nc.ConnectedUrl()), "reconnects", nc.Stats().Reconnects)
		}),
		nats.ClosedHandler(func(nc *nats.Conn) {
			if err := nc.LastError(); err != nil {
				log.Warn("NATS connection closed", "err", err)
			}
		}),
	}
}

// checkStreamReplicas refuses a --stream-replicas the NATS setup cannot honour, before
// connecting: out of JetStream's range, or above 1 with the embedded server, which is a single
// node. (Too many replicas for an external cluster's size is JetStream's to refuse, and
// ingest.EnsureStreams says so.)
func checkStreamReplicas(c Config) error {
	if err := (ingest.StreamOptions{Replicas: c.StreamReplicas}).Validate(); err != nil {
		return fmt.Errorf("service: --stream-replicas: %w", err)
	}
	if c.StreamReplicas > 1 && c.NATSURL == "" {
		return fmt.Errorf("service: --stream-replicas %d needs a NATS cluster (--nats-url with its seed URLs): "+
			"the embedded NATS server is a single node and can keep only one replica", c.StreamReplicas)
	}
	return nil
}

// warnSharedToken says at start what a shared --nats-token grants. The nats-server library
// attaches permissions to users and NKeys only, never to a token, so every token holder may
// subscribe to and publish on every subject: read all tenants' records and quarantine, write
// the quarantine (directly, or by aiming JetStream's PubAcks at it as reply subject), call the
// JetStream API. Publisher NKeys, each in its own NATS account, are the isolation mode
// (ingest/natsaccounts.go).
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

// redactURL drops credentials from a URL, or from each URL of a comma-separated seed list,
// before it is logged (natsclient.RedactURL).
func redactURL(s string) string { return natsclient.RedactURL(s) }
