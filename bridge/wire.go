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
	closing  atomic.Bool  // Close half-closed it: reads drain until closeLinger
}

// closeLinger is how long a socket that sent its close frame keeps reading
// what the client sent before it saw that frame, and its answer.
const closeLinger = 250 * time.Millisecond

// Close is gorilla's, right after the close frame (melody's write loop ends
// with it). Closing the socket outright with bytes from the client still
// unread (a client that went on publishing while its read loop waited)
// makes the kernel reset the connection, and the reset can destroy the
// close frame before the client reads it. So a TCP socket is half-closed
// instead: the close frame is followed by a FIN, and the read loop drains
// for up to closeLinger, until the client answers or goes; disconnected
// then closes it for good (closeNow). Other sockets close at once.
func (w *wire) Close() error {
	cw, ok := w.Conn.(interface{ CloseWrite() error })
	if !ok || !w.closing.CompareAndSwap(false, true) {
		return w.Conn.Close()
	}
	_ = w.Conn.SetReadDeadline(time.Now().Add(closeLinger))
	if err := cw.CloseWrite(); err != nil {
		return w.Conn.Close()
	}
	return nil
}

// closeNow closes the socket at once: when the connection is over, and to
// drop a client that does not take its close frame.
func (w *wire) closeNow() error { return w.Conn.Close() }

// SetReadDeadline is gorilla's (melody's pong handler extends it), except
// once Close half-closed the socket: then its linger bounds the reads.
func (w *wire) SetReadDeadline(t time.Time) error {
	if w.closing.Load() {
		return nil
	}
	return w.Conn.SetReadDeadline(t)
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
	return w.SetReadDeadline(t)
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
