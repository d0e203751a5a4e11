package service

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"

	"k8s.io/klog/v2"
)

// Tessera logs through klog, whose logger is a process-wide global. Setting it on every Run
// would race with the klog calls of a log opened by an earlier Run in the same process (tests
// run several daemons), so klog is pointed once at a handler that forwards to the logger of the
// latest Run.
var (
	klogTarget atomic.Pointer[slog.Logger]
	klogOnce   sync.Once
)

// routeKlog sends Tessera's klog output to l (tagged component=tessera) from now on.
func routeKlog(l *slog.Logger) {
	klogTarget.Store(l.With("component", "tessera"))
	klogOnce.Do(func() { klog.SetSlogLogger(slog.New(forwardHandler{})) })
}

// forwardHandler is a slog.Handler that hands each record to the current klogTarget, with the
// attributes and groups added on the way.
type forwardHandler struct {
	ops []func(slog.Handler) slog.Handler
}

func (f forwardHandler) target() slog.Handler {
	h := klogTarget.Load().Handler()
	for _, op := range f.ops {
		h = op(h)
	}
	return h
}

func (f forwardHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return f.target().Enabled(ctx, level)
}

func (f forwardHandler) Handle(ctx context.Context, r slog.Record) error {
	return f.target().Handle(ctx, r)
}

func (f forwardHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return f.with(func(h slog.Handler) slog.Handler { return h.WithAttrs(attrs) })
}

func (f forwardHandler) WithGroup(name string) slog.Handler {
	return f.with(func(h slog.Handler) slog.Handler { return h.WithGroup(name) })
}

func (f forwardHandler) with(op func(slog.Handler) slog.Handler) forwardHandler {
	return forwardHandler{ops: append(append([]func(slog.Handler) slog.Handler(nil), f.ops...), op)}
}
