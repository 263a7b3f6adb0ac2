package bridge

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"
)

// The log messages of WithLogger. Attributes: session (the hello's UUID),
// remote (the request's RemoteAddr), code, by, reason, and more per line.
const (
	logConnected    = "whalesong: connected"
	logDisconnected = "whalesong: disconnected"
	logRefusedConn  = "whalesong: connection refused"
	logRefused      = "whalesong: request refused"
	logCutOff       = "whalesong: connection cut off"
	logKicked       = "whalesong: connection kicked"
	logRevoked      = "whalesong: subscription revoked"
	logProbe        = "whalesong: refusal probe answered"
)

// Refusals of one connection are logged in bursts of logBurst, then
// logRate per second.
const (
	logBurst = 10
	logRate  = 1
)

// closer is who ended a connection first.
type closer uint8

const (
	byNobody closer = iota
	byServer
	byClient
	byNetwork
)

func (c closer) String() string { return [...]string{"", "server", "client", "network"}[c] }

// farewell is how a connection ended, for the disconnect line: who closed
// it first and with which code. The first report wins. Guarded by the
// session's mu.
type farewell struct {
	by   closer
	code uint16
	why  ending // by the server: why
}

// server records that the server ended the connection as e says.
func (f *farewell) server(e ending) {
	if f.by == byNobody && e != noEnd {
		*f = farewell{by: byServer, code: uint16(e.code()), why: e}
	}
}

// failed records the error that ended melody's read or write loop: the
// client's close frame, a frame above the hard cap (gorilla answered 1009),
// or the network.
func (f *farewell) failed(err error) {
	if f.by != byNobody {
		return
	}
	var ce *websocket.CloseError
	switch {
	case errors.As(err, &ce) && ce.Code != websocket.CloseAbnormalClosure:
		*f = farewell{by: byClient, code: uint16(ce.Code)}
	case errors.Is(err, websocket.ErrReadLimit):
		f.server(endTooBig)
	default:
		*f = farewell{by: byNetwork, code: websocket.CloseAbnormalClosure}
	}
}

// connLog is the log state of one connection, made when it joins and only
// with WithLogger. Read loop only.
type connLog struct {
	opened time.Time
	lim    *rate.Limiter // made on the first refusal
	muted  int           // refusals not logged since the last one logged
}

func logAttrs(l *slog.Logger, level slog.Level, msg string, attrs ...slog.Attr) {
	l.LogAttrs(context.Background(), level, msg, attrs...)
}

// refusalLog bounds the lines about refused connection requests, bridge
// wide: a flood of foreign or unauthenticated requests costs a line a
// second and a count, not a line each.
type refusalLog struct {
	lim   *rate.Limiter
	muted atomic.Int64 // refusals not logged since the last one logged
}

// logRefusedConn logs a connection request refused before the upgrade.
func (br *Bridge[T]) logRefusedConn(r *http.Request, a admission) {
	l := br.cfg.logger
	if l == nil {
		return
	}
	if !br.refusals.lim.Allow() {
		br.refusals.muted.Add(1)
		return
	}
	attrs := []slog.Attr{
		slog.String("reason", a.refusal.reason()),
		slog.Int("status", a.refusal.status()),
		slog.String("remote", r.RemoteAddr),
	}
	if o := r.Header.Get("Origin"); o != "" {
		attrs = append(attrs, slog.String("origin", clip(o)))
	}
	if a.err != nil {
		attrs = append(attrs, slog.String("error", a.err.Error()))
	}
	if n := br.refusals.muted.Swap(0); n > 0 {
		attrs = append(attrs, slog.Int64("suppressed", n))
	}
	logAttrs(l, slog.LevelWarn, logRefusedConn, attrs...)
}

// logProbeAnswer logs a refusal probe at Debug: it is a question, not a
// connection.
func (br *Bridge[T]) logProbeAnswer(r *http.Request, a admission) {
	if l := br.cfg.logger; l != nil {
		logAttrs(l, slog.LevelDebug, logProbe, slog.String("code", a.refusal.code()), slog.String("remote", r.RemoteAddr))
	}
}

// logReject logs an error frame answering a request, within the
// connection's log budget. Read loop.
func (s *session[T]) logReject(pe *protoError) {
	l := s.br.cfg.logger
	if l == nil || s.log == nil {
		return
	}
	cl := s.log
	if cl.lim == nil {
		cl.lim = rate.NewLimiter(logRate, logBurst)
	}
	if !cl.lim.Allow() {
		cl.muted++
		return
	}
	attrs := []slog.Attr{
		slog.String("session", s.id),
		slog.String("code", pe.code.String()),
		slog.String("message", pe.msg),
	}
	if pe.id != "" {
		attrs = append(attrs, slog.String("id", clip(pe.id)))
	}
	if cl.muted > 0 {
		attrs = append(attrs, slog.Int("suppressed", cl.muted))
		cl.muted = 0
	}
	logAttrs(l, slog.LevelWarn, logRefused, attrs...)
}

// logCutOff logs a slow (4000) or abuse (4001) cut-off. Any goroutine.
func (s *session[T]) logCutOff(e ending) {
	if l := s.br.cfg.logger; l != nil {
		why := "slow"
		if e == endAbuse {
			why = "abuse"
		}
		logAttrs(l, slog.LevelWarn, logCutOff, slog.String("session", s.id), slog.Int("code", e.code()),
			slog.String("reason", why))
	}
}

// logKicked logs a Kick with its reason. Caller's goroutine.
func (s *session[T]) logKicked(reason string) {
	if l := s.br.cfg.logger; l != nil {
		logAttrs(l, slog.LevelInfo, logKicked, slog.String("session", s.id), slog.String("reason", reason))
	}
}

// logRevoked logs a subscription ended by Reauthorize. Caller's goroutine.
func (s *session[T]) logRevoked(sub, pattern string, pe *protoError) {
	if l := s.br.cfg.logger; l != nil {
		logAttrs(l, slog.LevelInfo, logRevoked, slog.String("session", s.id), slog.String("sub", clip(sub)),
			slog.String("pattern", clip(pattern)), slog.String("code", pe.code.String()), slog.String("message", pe.msg))
	}
}

// remote is the client's address as the server saw it.
func (s *session[T]) remote() string {
	if s.ms != nil && s.ms.Request != nil {
		return s.ms.Request.RemoteAddr
	}
	return ""
}
