package ingest

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
)

// EmbeddedOptions configures the in-process NATS server that `lineaged serve` runs by default.
type EmbeddedOptions struct {
	// Addr is host:port to listen on (127.0.0.1:4222 by default).
	Addr string
	// StoreDir holds JetStream's file storage.
	StoreDir string
	// MaxPayload is the largest message the server accepts, headers included. It is enforced by
	// the server itself so an oversized record never reaches the ingester's memory.
	MaxPayload int32
	// Token, when set, is required from every client (publishers and the ingester). The server
	// cannot attach permissions to a token: every holder has full rights (see Publishers).
	Token string
	// Publishers, when set, are the only NKeys (besides ServiceNKey) that may connect, each
	// allowed to publish only to its tenants' record subjects and to subscribe only to its
	// private inbox (PublisherInboxPrefix), each in a NATS account of its own that reaches
	// lineaged's account only through its tenants' record subjects (natsaccounts.go): tenant
	// isolation at the broker. Without publisher NKeys every client shares one account.
	Publishers []PublisherNKey
	// ServiceNKey is the public NKey of lineaged itself, with full permissions in the global
	// account, which holds the streams.
	ServiceNKey string
}

// PublisherNKey is a publisher's public NKey ("U…") and the tenants it may publish for ("*":
// every tenant).
type PublisherNKey struct {
	PublicKey string
	Tenants   []string
}

// ParsePublisherNKeys reads lines "<public nkey> <tenant>[,<tenant>…|*]"; '#' starts a comment.
func ParsePublisherNKeys(text string) ([]PublisherNKey, error) {
	var out []PublisherNKey
	for n, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 || !nkeys.IsValidPublicUserKey(f[0]) {
			return nil, fmt.Errorf("ingest: publisher nkeys line %d: want \"<U… public key> <tenant>[,<tenant>|*]\"", n+1)
		}
		p := PublisherNKey{PublicKey: f[0]}
		for _, t := range strings.Split(f[1], ",") {
			if t != "*" && !validTenant(t) {
				return nil, fmt.Errorf("ingest: publisher nkeys line %d: invalid tenant %q", n+1, t)
			}
			p.Tenants = append(p.Tenants, t)
		}
		out = append(out, p)
	}
	return out, nil
}

// Inbox prefixes. A NATS client receives replies (JetStream PubAcks, the messages a pull
// consumer fetches, API answers) on subjects under its inbox prefix, "_INBOX" unless it picks
// another. Anyone who may subscribe to a client's inbox prefix reads those replies, so every
// connection lineaged makes uses ServiceInboxPrefix, which no publisher may subscribe to, and a
// publisher signing in with an NKey must use PublisherInboxPrefix(its public key), the only
// subjects it may subscribe to.
const ServiceInboxPrefix = "_LINEAGED_INBOX"

// PublisherInboxPrefix is the private inbox prefix of the publisher with this public NKey:
// "_INBOX_<public key>" (set it with nats.CustomInboxPrefix).
func PublisherInboxPrefix(publicKey string) string { return "_INBOX_" + publicKey }

// publisherSubjects are the record subjects of these tenants ("*": all of them).
func publisherSubjects(tenants []string) []string {
	var subjects []string
	for _, t := range tenants {
		if t == "*" {
			return []string{RecordsSubjects}
		}
		subjects = append(subjects, RecordsPrefix+t)
	}
	return subjects
}

// publisherPermissions lets a publisher send records for its tenants and receive the
// JetStream acks on its private inbox, and nothing else: it cannot read other tenants'
// records, other clients' inboxes (lineaged's carry every tenant's records and quarantine),
// the quarantine, or the JetStream API. It gets no response permission (allow_responses): a
// publisher answers no requests. The publisher also sits in an account of its own, so the
// reply subjects it names cannot reach lineaged's subjects either (natsaccounts.go).
func publisherPermissions(publicKey string, tenants []string) *server.Permissions {
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: publisherSubjects(tenants)},
		Subscribe: &server.SubjectPermission{Allow: []string{PublisherInboxPrefix(publicKey) + ".>"}},
	}
}

// StartEmbedded starts a NATS server with JetStream in this process and waits until it
// accepts connections.
func StartEmbedded(o EmbeddedOptions) (*server.Server, error) {
	host, portStr, err := net.SplitHostPort(o.Addr)
	if err != nil {
		return nil, fmt.Errorf("ingest: nats addr %q: %w", o.Addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("ingest: nats port %q: %w", portStr, err)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	opts := &server.Options{
		ServerName:            "lineage-embedded",
		Host:                  host,
		Port:                  port,
		JetStream:             true,
		StoreDir:              filepath.Clean(o.StoreDir),
		MaxPayload:            o.MaxPayload,
		Authorization:         o.Token,
		NoSigs:                true, // lineaged handles signals itself
		DisableShortFirstPing: true,
	}
	if len(o.Publishers) > 0 {
		if o.Token != "" {
			return nil, errors.New("ingest: the embedded NATS server takes a token or publisher NKeys, not both")
		}
		if o.ServiceNKey == "" {
			return nil, errors.New("ingest: publisher NKeys need the service's own NKey")
		}
		if opts.Accounts, opts.Nkeys, err = publisherAccounts(o.ServiceNKey, o.Publishers); err != nil {
			return nil, err
		}
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("ingest: nats server: %w", err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("ingest: embedded nats server not ready after 10s")
	}
	if len(o.Publishers) > 0 {
		if err := enableServiceJetStream(ns); err != nil {
			ns.Shutdown()
			return nil, err
		}
	}
	return ns, nil
}
