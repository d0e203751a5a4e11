package trillian

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// maxRecvBytes is the largest response the client accepts: entriesPerCall leaves of up to
// 64 KiB, plus framing.
const maxRecvBytes = 64 << 20

// dial makes the gRPC client connection (it connects lazily, on the first call). Plaintext is
// only allowed to loopback addresses unless the caller opts in: the ledger carries every
// decision record, and the default must not send them across a network in the clear.
// Every call waits for the connection to become ready (bounded by its context), so a server
// that is still starting, or restarting, delays calls instead of failing them.
func dial(addr string, tlsConfig *tls.Config, allowInsecure bool, extra []grpc.DialOption) (*grpc.ClientConn, error) {
	creds := insecure.NewCredentials()
	if tlsConfig != nil {
		creds = credentials.NewTLS(tlsConfig)
	} else if !allowInsecure && !isLoopback(addr) {
		return nil, fmt.Errorf("trillian: %s is not a loopback address: configure TLS or allow plaintext explicitly (Insecure)", addr)
	}
	opts := append([]grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.WaitForReady(true), grpc.MaxCallRecvMsgSize(maxRecvBytes)),
	}, extra...)
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("trillian: dial %s: %w", addr, err)
	}
	return conn, nil
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// TLSFromCA returns a TLS client config that trusts the CA certificates in caFile (PEM), for
// connecting to a Trillian server whose certificate is not in the system pool.
func TLSFromCA(caFile string) (*tls.Config, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("trillian: read CA %s: %w", caFile, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("trillian: no certificates in %s", caFile)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}
