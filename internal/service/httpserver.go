package service

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// newHTTPServer listens on c.HTTPAddr and builds the server of handler, with every timeout
// set: headers and whole requests are read within their timeouts, idle keep-alive connections
// close, a write may stall only so long, and at most c.HTTPMaxConns connections are open
// (further ones wait in the kernel's accept queue). c has its defaults filled (Config.Defaults).
//
// There is deliberately no http.Server.WriteTimeout: it bounds the whole answer, which would
// cut long export downloads. Instead every write to a connection gets its own deadline.
func newHTTPServer(c Config, handler http.Handler, reg prometheus.Registerer) (*http.Server, net.Listener, error) {
	ln, err := net.Listen("tcp", c.HTTPAddr)
	if err != nil {
		return nil, nil, fmt.Errorf("service: listen %s: %w", c.HTTPAddr, err)
	}
	open := prometheus.NewGauge(prometheus.GaugeOpts{Name: "lineage_http_open_connections",
		Help: "Open HTTP connections (bounded by --http-max-conns)."})
	if reg != nil {
		if err := reg.Register(open); err != nil {
			ln.Close()
			return nil, nil, fmt.Errorf("service: http metrics: %w", err)
		}
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: c.HTTPReadHeaderTimeout,
		ReadTimeout:       c.HTTPReadTimeout,
		IdleTimeout:       c.HTTPIdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(c.Logger.With("component", "http").Handler(), slog.LevelWarn),
	}
	return srv, &limitListener{Listener: ln, slots: make(chan struct{}, c.HTTPMaxConns),
		done: make(chan struct{}), writeTimeout: c.HTTPWriteTimeout, open: open}, nil
}

// limitListener admits at most cap(slots) connections at once and gives every write on them a
// deadline of writeTimeout.
type limitListener struct {
	net.Listener
	slots        chan struct{}
	done         chan struct{}
	closeOnce    sync.Once
	writeTimeout time.Duration
	open         prometheus.Gauge
}

// Accept waits for a free slot, then for a connection.
func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	l.open.Inc()
	return &limitConn{Conn: c, l: l}, nil
}

// Close stops accepting; waiting Accepts return net.ErrClosed.
func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

type limitConn struct {
	net.Conn
	l      *limitListener
	closed atomic.Bool
}

// Write gives each write its own deadline: a client that stops reading loses the connection,
// one that keeps reading gets however long an answer is.
func (c *limitConn) Write(p []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(c.l.writeTimeout)); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

// CloseWrite keeps net/http's graceful close (half-close, then wait) after a refused body.
func (c *limitConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	if c.closed.CompareAndSwap(false, true) {
		c.l.open.Dec()
		<-c.l.slots
	}
	return err
}

// allowedHosts is --http-allowed-hosts plus, when that is given, the listen address's host if
// it is a name (an empty list keeps its meaning: see query.API.AllowedHosts).
func allowedHosts(c Config) []string {
	hosts := c.HTTPAllowedHosts
	if h, _, err := net.SplitHostPort(c.HTTPAddr); err == nil && len(hosts) > 0 && h != "" && net.ParseIP(h) == nil {
		hosts = append(hosts[:len(hosts):len(hosts)], h)
	}
	return hosts
}
