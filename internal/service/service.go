package service

import (
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/lineage-audit/lineage/ingest"
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

// redactURL drops credentials from a URL before it is logged.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparseable url)"
	}
	return u.Redacted()
}
