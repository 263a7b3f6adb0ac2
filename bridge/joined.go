package bridge

import (
	"log/slog"
	"time"

	"github.com/gorilla/websocket"
)

// joined starts the connection's log and expiry once it is registered.
// Read loop.
func (s *session[T]) joined() {
	br := s.br
	if s.exp.at != 0 {
		br.expiries.add(s)
	}
	l := br.cfg.logger
	if l == nil {
		return
	}
	s.log = &connLog{opened: time.Now()}
	logAttrs(l, slog.LevelInfo, logConnected, slog.String("session", s.id), slog.String("remote", s.remote()))
}

// left ends what joined started, once the connection is gone. Read loop.
func (s *session[T]) left() {
	if s.exp.at != 0 {
		s.br.expiries.remove(s)
	}
	l := s.br.cfg.logger
	if l == nil || s.log == nil {
		return
	}
	s.mu.Lock()
	f := s.gone
	s.mu.Unlock()
	if f.by == byNobody {
		f = farewell{by: byNetwork, code: websocket.CloseAbnormalClosure}
	}
	attrs := []slog.Attr{
		slog.String("session", s.id),
		slog.Int("code", int(f.code)),
		slog.String("by", f.by.String()),
	}
	if f.by == byServer {
		attrs = append(attrs, slog.String("reason", f.why.reason()))
	}
	attrs = append(attrs, slog.Duration("duration", time.Since(s.log.opened)))
	if s.log.muted > 0 {
		attrs = append(attrs, slog.Int("suppressed", s.log.muted))
	}
	logAttrs(l, slog.LevelInfo, logDisconnected, attrs...)
}
