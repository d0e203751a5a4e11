package ingest

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
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
