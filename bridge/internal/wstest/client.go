package wstest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// DialOptions configure Server.Dial.
type DialOptions struct {
	Header http.Header // request headers (Origin, credentials)
	// RecvBuffer, if positive, sets the kernel receive buffer of the
	// client's socket before it connects (127.0.0.1 only), so that a
	// client that stops reading makes the server's writes block soon.
	RecvBuffer int
	// BufferSize, if positive, sets gorilla's read and write buffers.
	BufferSize int
	// HandshakeTimeout bounds the handshake (0: DefaultHandshakeTimeout).
	HandshakeTimeout time.Duration
}

// DefaultHandshakeTimeout bounds Dial's handshake by default.
const DefaultHandshakeTimeout = 10 * time.Second

// StatusError is a handshake that the server answered with an HTTP status
// instead of 101.
type StatusError struct {
	Status int
	Err    error
}

func (e *StatusError) Error() string { return fmt.Sprintf("status %d: %v", e.Status, e.Err) }
func (e *StatusError) Unwrap() error { return e.Err }

// Dial opens a WebSocket to path on s over its transport. A refused
// handshake is a *StatusError.
func (s *Server) Dial(ctx context.Context, path string, o DialOptions) (*websocket.Conn, error) {
	if _, mem := s.ln.Listener.(*memListener); mem {
		return dial(ctx, s.URL+path, o, s.ln.dial)
	}
	return Dial(ctx, s.URL+path, o)
}

// Dial opens a WebSocket to a ws:// URL over TCP. A refused handshake is a
// *StatusError.
func Dial(ctx context.Context, url string, o DialOptions) (*websocket.Conn, error) {
	var nd net.Dialer
	netDial := nd.DialContext
	if o.RecvBuffer > 0 {
		netDial = recvBufferDialer(o.RecvBuffer)
	}
	return dial(ctx, url, o, netDial)
}

func dial(ctx context.Context, url string, o DialOptions, netDial func(context.Context, string, string) (net.Conn, error)) (*websocket.Conn, error) {
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = DefaultHandshakeTimeout
	}
	d := websocket.Dialer{
		NetDialContext:   netDial,
		HandshakeTimeout: o.HandshakeTimeout,
		ReadBufferSize:   o.BufferSize,
		WriteBufferSize:  o.BufferSize,
	}
	c, resp, err := d.DialContext(ctx, url, o.Header)
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil && resp != nil {
		return nil, &StatusError{resp.StatusCode, err}
	}
	return c, err
}

func recvBufferDialer(size int) func(ctx context.Context, network, addr string) (net.Conn, error) {
	nd := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, size)
		})
		return errors.Join(err, serr)
	}}
	return nd.DialContext
}

// CloseCode returns the close code of a read error that ended a
// connection with a close frame. A connection that ended without one
// (gorilla reports 1006, which never travels on the wire) has none.
func CloseCode(err error) (int, bool) {
	var ce *websocket.CloseError
	if errors.As(err, &ce) && ce.Code != websocket.CloseAbnormalClosure {
		return ce.Code, true
	}
	return 0, false
}

// Drain reads c until the connection ends, on a goroutine that ends with
// it, and then sends the close code on the channel (-1: no close frame).
// It stands for a client that reads normally.
func Drain(c *websocket.Conn) <-chan int {
	code := make(chan int, 1)
	go func() {
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				cc, ok := CloseCode(err)
				if !ok {
					cc = -1
				}
				code <- cc
				return
			}
		}
	}()
	return code
}
