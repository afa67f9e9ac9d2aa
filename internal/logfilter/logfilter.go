// Package logfilter adjusts the levels of log records written by libraries
// autopatch does not control.
//
// River logs, at info, every queue's job counts every five seconds
// ("producer: Producer job counts") and every successful maintenance run
// ("maintenance.JobScheduler: Ran successfully"). On a quiet system that is
// most of the log, and it hides the lines an operator looks for. River has
// no setting for it, so its logger gets a handler that writes those records
// at debug; everything else River says keeps its level.
package logfilter

import (
	"context"
	"log/slog"
	"strings"
)

// River returns a handler for River's logger: h with River's periodic
// chatter moved from info to debug.
func River(h slog.Handler) slog.Handler { return riverHandler{h} }

// RiverLogger is l with River's chatter at debug; nil stays nil (River's
// default logger).
func RiverLogger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return nil
	}
	return slog.New(River(l.Handler()))
}

type riverHandler struct{ next slog.Handler }

// Chatter reports whether a River message at info is periodic chatter.
func Chatter(msg string) bool {
	return strings.HasPrefix(msg, "producer: ") || strings.HasSuffix(msg, ": Ran successfully")
}

// Enabled is true when the record could be written at info or at debug: the
// level is decided in Handle, once the message is known.
func (r riverHandler) Enabled(ctx context.Context, l slog.Level) bool {
	if l == slog.LevelInfo {
		return r.next.Enabled(ctx, slog.LevelInfo) || r.next.Enabled(ctx, slog.LevelDebug)
	}
	return r.next.Enabled(ctx, l)
}

func (r riverHandler) Handle(ctx context.Context, rec slog.Record) error {
	if rec.Level == slog.LevelInfo && Chatter(rec.Message) {
		rec.Level = slog.LevelDebug
	}
	if !r.next.Enabled(ctx, rec.Level) {
		return nil
	}
	return r.next.Handle(ctx, rec)
}

func (r riverHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return riverHandler{r.next.WithAttrs(as)}
}
func (r riverHandler) WithGroup(name string) slog.Handler {
	return riverHandler{r.next.WithGroup(name)}
}
