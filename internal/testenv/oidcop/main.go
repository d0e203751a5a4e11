// Command oidcop is the OpenID provider that testenv.StartOIDCProvider runs for tests: the example
// OP of github.com/zitadel/oidc/v3 (its in-memory storage, login page and PKCE support), with
// three changes for Lineage: it listens on a given loopback address with a given issuer, its
// clients get JWT access tokens (the bearer tokens Lineage verifies), and those tokens carry the
// per-user private claims given with -claims (the lineage_roles / lineage_tenants claims).
//
// It is a test tool, never part of a release: its users and keys are the example's, in memory.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/op"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9998", "listen address")
	issuer := flag.String("issuer", "", "issuer (default http://<addr>)")
	clients := flag.String("clients", "lineage", "comma-separated ids of the public (PKCE) clients to register")
	redirect := flag.String("redirect-uri", "http://127.0.0.1/callback", "redirect URI registered for every client")
	claims := flag.String("claims", "{}", `private claims of JWT access tokens by subject, as JSON: {"id1": {"lineage_roles": ["auditor"]}}`)
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if err := run(*addr, *issuer, *clients, *redirect, *claims, log); err != nil {
		log.Error("oidcop failed", "err", err)
		os.Exit(1)
	}
}

func run(addr, issuer, clients, redirect, claimsJSON string, log *slog.Logger) error {
	if issuer == "" {
		issuer = "http://" + addr
	}
	var claims map[string]map[string]any
	if err := json.Unmarshal([]byte(claimsJSON), &claims); err != nil {
		return fmt.Errorf("oidcop: -claims: %w", err)
	}
	for _, id := range strings.Split(clients, ",") {
		storage.RegisterClients(storage.NativeClient(id, redirect))
	}
	// The example's users: "test-user@<issuer host>" (subject id1) and "test-user2" (id2), both
	// with the password "verysecure".
	st := &lineageStorage{Storage: storage.NewStorage(storage.NewUserStore(issuer)), claims: claims}
	router := exampleop.SetupServer(issuer, st, log, false)

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("oidcop: listen: %w", err)
	}
	srv := &http.Server{Handler: router, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	log.Info("oidcop listening", "addr", ln.Addr().String(), "issuer", issuer)
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("oidcop: serve: %w", err)
	}
	return nil
}

// lineageStorage is the example's in-memory storage with JWT access tokens that carry the
// configured claims.
type lineageStorage struct {
	*storage.Storage
	claims map[string]map[string]any
}

// jwtClient makes a registered client receive JWT (not opaque) access tokens.
type jwtClient struct{ op.Client }

func (jwtClient) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeJWT }

// GetClientByClientID implements op.Storage.
func (s *lineageStorage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := s.Storage.GetClientByClientID(ctx, id)
	if err != nil {
		return nil, err
	}
	return jwtClient{c}, nil
}

// GetPrivateClaimsFromScopes implements op.Storage: it is called for every JWT access token.
func (s *lineageStorage) GetPrivateClaimsFromScopes(ctx context.Context, userID, clientID string, scopes []string) (map[string]any, error) {
	out, err := s.Storage.GetPrivateClaimsFromScopes(ctx, userID, clientID, scopes)
	if err != nil {
		return nil, err
	}
	if extra := s.claims[userID]; len(extra) > 0 {
		if out == nil {
			out = map[string]any{}
		}
		maps.Copy(out, extra)
	}
	return out, nil
}
