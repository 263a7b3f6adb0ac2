package bridge

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// wire is a session's socket, which two write to: gorilla, for what it
// sends of its own accord (the handshake's response, pongs, its reply to a
// client's close, melody's pings, and the close frame the bridge hands to
// melody), and the session's writer, for every other frame the bridge
// sends (see writer.go). Its lock makes each write whole,
// so that frames of the two never interleave on the socket: gorilla writes
// each of those frames with one Write, and the writer each of its own with
// one writeFrame.
//
// Gorilla sets its write deadline just before each of its writes, within
// its own write lock; the wire keeps that deadline and applies it under mu,
// as the writer applies its own, so that neither runs on the other's.
type wire struct {
	net.Conn
	mu       sync.Mutex   // makes each write whole
	deadline atomic.Int64 // gorilla's write deadline (unix ns; 0: none)
}

// Write is gorilla's write of one whole frame (or of the handshake's
// response), under gorilla's own deadline.
func (w *wire) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var d time.Time
	if ns := w.deadline.Load(); ns != 0 {
		d = time.Unix(0, ns)
	}
	if err := w.Conn.SetWriteDeadline(d); err != nil {
		return 0, err
	}
	return w.Conn.Write(p)
}

// SetWriteDeadline keeps gorilla's deadline for its next Write.
func (w *wire) SetWriteDeadline(t time.Time) error {
	var ns int64
	if !t.IsZero() {
		ns = t.UnixNano()
	}
	w.deadline.Store(ns)
	return nil
}

// SetDeadline sets the read deadline, and keeps the write one as
// SetWriteDeadline does.
func (w *wire) SetDeadline(t time.Time) error {
	_ = w.SetWriteDeadline(t)
	return w.Conn.SetReadDeadline(t)
}

// writeFrame writes frame, a whole WebSocket frame (header included), that
// must be on its way within timeout.
func (w *wire) writeFrame(frame []byte, timeout time.Duration) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.Conn.SetWriteDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	_, err := w.Conn.Write(frame)
	return err
}

// WebSocket framing (RFC 6455, section 5.2) of what a server sends: a final
// frame, never masked.
const (
	opText   = 0x1
	finalBit = 0x80
	headroom = 10 // the longest header: 2 bytes and a 64-bit length
)

// frameHead writes the header of a final frame of op carrying n bytes
// right before them: into the headroom of b, whose payload is b[headroom:].
// It returns the whole frame, a subslice of b.
func frameHead(b []byte, op byte) []byte {
	n := len(b) - headroom
	var h int
	switch {
	case n < 126:
		h = 2
		b[headroom-1] = byte(n)
	case n <= 0xffff:
		h = 4
		b[headroom-3] = 126
		b[headroom-2], b[headroom-1] = byte(n>>8), byte(n)
	default:
		h = 10
		b[1] = 127
		for i := range 8 {
			b[headroom-1-i] = byte(n >> (8 * i))
		}
	}
	b[headroom-h] = finalBit | op
	return b[headroom-h:]
}
