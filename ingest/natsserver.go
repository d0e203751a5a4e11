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
	// Token, when set, is required from every client (publishers and the ingester).
	Token string
	// Publishers, when set, are the only NKeys (besides ServiceNKey) that may connect, each
	// allowed to publish only to its tenants' record subjects: tenant isolation at the broker.
	Publishers []PublisherNKey
	// ServiceNKey is the public NKey of lineaged itself, with full permissions.
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

// publisherPermissions lets a publisher send records for its tenants and receive the
// JetStream acks on its inbox, and nothing else: it cannot read other tenants' records, the
// quarantine, or the JetStream API.
func publisherPermissions(tenants []string) *server.Permissions {
	var subjects []string
	for _, t := range tenants {
		if t == "*" {
			subjects = []string{RecordsSubjects}
			break
		}
		subjects = append(subjects, RecordsPrefix+t)
	}
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: subjects},
		Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>"}},
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
		opts.Nkeys = append(opts.Nkeys, &server.NkeyUser{Nkey: o.ServiceNKey})
		for _, p := range o.Publishers {
			opts.Nkeys = append(opts.Nkeys, &server.NkeyUser{Nkey: p.PublicKey, Permissions: publisherPermissions(p.Tenants)})
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
	return ns, nil
}
