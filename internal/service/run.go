package service

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/lineage-audit/lineage/ingest"
	"github.com/lineage-audit/lineage/internal/ha"
	"github.com/lineage-audit/lineage/query"
	"github.com/lineage-audit/lineage/query/auth"
	"github.com/lineage-audit/lineage/web"
	"golang.org/x/sync/errgroup"
)

// Run starts the daemon in three stages — open the stores (openStores), start the workers
// (startWorkers), serve the HTTP API (serve) — and blocks until ctx ends or a goroutine fails.
// Then it undoes the stages in reverse: stop taking records (HTTP drained, exporter and
// ingester stopped), flush the log, stop NATS, stop indexing, close the index, unlock the data
// dir. It returns the first failure, nil when ctx ended.
func Run(ctx context.Context, c Config) error {
	c.Defaults()
	authn, login, err := preflight(c)
	if err != nil {
		return err
	}
	routeKlog(c.Logger)
	if c.HA {
		return runHA(ctx, c, authn, login)
	}

	st, closeStores, err := openStores(ctx, c, nil)
	if err != nil {
		return err
	}
	defer closeStores()
	// A single node is always the writer; the cluster metrics say so (internal/ha).
	ha.NewMetrics(st.reg).Writer.Set(1)

	// g owns every goroutine; its context ends with ctx or on the first failure.
	g, gctx := errgroup.WithContext(ctx)
	w, stopWorkers, err := startWorkers(ctx, gctx, g, c, st, nil)
	if err != nil {
		return err
	}
	defer stopWorkers()

	addr, stopServing, err := serveWith(ctx, g, c, st, w, authn, login, nil)
	if err != nil {
		return err
	}
	defer stopServing()
	c.Logger.Info("lineaged serving", "http", addr, "nats", w.natsURL, "data_dir", c.DataDir)

	<-gctx.Done()
	c.Logger.Info("lineaged shutting down")
	stopServing()
	stopWorkers()
	return g.Wait() // closeStores runs after: every goroutine has returned
}

// serveWith listens on c.HTTPAddr and serves the query API, with HTTP ingest and the exporter
// mounted, as a goroutine of g; tune, when set, adjusts the API before it serves (runHA). It
// returns the address listened on and the function that shuts the server down (waiting up to
// 30s for requests in progress).
func serveWith(ctx context.Context, g *errgroup.Group, c Config, st *stores, w *workers, authn auth.Authenticator, login *auth.Login, tune func(*query.API)) (addr string, stop func(), err error) {
	log := c.Logger
	httpIngest := &ingest.HTTP{JS: w.js, OPA: w.opa, Metrics: w.inMetrics, Seen: st.index,
		Logger: log.With("component", "ingest-http")}
	// The API serves the witnessed log when a witness policy is set: answers, proofs and
	// /v1/checkpoint carry the cosigned checkpoint.
	api := &query.API{Log: st.served, Store: st.index, Findings: st.findings, Verifier: st.vkey, Rotations: st.rotations, LogDir: st.logDir, Gatherer: st.reg, Auth: authn,
		Mounts: []func(*gin.RouterGroup){httpIngest.Mount, w.exports.Mount}, Logger: log.With("component", "api"),
		AllowedHosts: allowedHosts(c), AllowedOrigins: c.HTTPAllowedOrigins, MaxInflightBytes: c.HTTPMaxInflightBytes,
		MaxRequestBody: ingest.DefaultMaxBody, InflightWait: c.HTTPInflightWait, Registerer: st.reg,
		UI: web.Handler(), Login: login}
	if w.findings != nil {
		api.FindingsPosition = w.findings.Position
	}
	api.Decoder = st.decoder()
	if w.eraser != nil {
		api.Erasure = w.eraser
	}
	if tune != nil {
		tune(api)
	}
	srv, ln, err := newHTTPServer(c, api.Handler(), st.reg)
	if err != nil {
		return "", nil, err
	}
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("service: http: %w", err)
		}
		return nil
	})
	return ln.Addr().String(), sync.OnceFunc(func() {
		shCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = srv.Shutdown(shCtx)
	}), nil
}
