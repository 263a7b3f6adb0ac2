package wstest

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"testing"
)

// Options configure a Server.
type Options struct {
	// Memory serves over in-memory connections (net.Pipe) instead of
	// 127.0.0.1, so that a test can run inside a testing/synctest bubble
	// (make the Server inside it). A net.Pipe has no buffer: a write
	// waits until the other side reads.
	Memory bool
	// SendBuffer, if positive, sets the kernel send buffer of every
	// accepted socket (127.0.0.1 only), so that a client that stops
	// reading blocks the server's writes soon.
	SendBuffer int
}

// Server serves an http.Handler over Options' transport and keeps the
// server's side of every connection it accepted. Close (run by the test's
// cleanup too) stops it; connections that the handler hijacked are left to
// it, as with http.Server.
type Server struct {
	// URL is the server's ws:// base URL ("ws://127.0.0.1:port"); HTTP is
	// the same with http://.
	URL, HTTP string

	ln        *listener
	srv       *http.Server
	serveDone chan struct{}
	closeOnce sync.Once
}

// NewServer starts serving h. The test's cleanup closes the server.
func NewServer(t testing.TB, h http.Handler, o Options) *Server {
	t.Helper()
	ln, err := newListener(o)
	if err != nil {
		t.Fatalf("wstest: listen: %v", err)
	}
	s := &Server{
		URL:       "ws://" + ln.Addr().String(),
		HTTP:      "http://" + ln.Addr().String(),
		ln:        ln,
		srv:       &http.Server{Handler: h},
		serveDone: make(chan struct{}),
	}
	go func() {
		defer close(s.serveDone)
		_ = s.srv.Serve(ln)
	}()
	t.Cleanup(s.Close)
	return s
}

// Close stops accepting and closes every connection not hijacked, then
// waits for the server's goroutine. It is idempotent.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		_ = s.srv.Close()
		<-s.serveDone
	})
}

// Shutdown is http.Server.Shutdown: it stops accepting and waits for
// requests in flight, leaving hijacked connections alone, then waits for
// the server's goroutine.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if err == nil {
		<-s.serveDone
	}
	return err
}

// Conns returns the server's side of every connection accepted so far.
func (s *Server) Conns() []*Conn { return s.ln.all() }

// Upgraded returns the connections the server answered with 101.
func (s *Server) Upgraded() []*Conn {
	var out []*Conn
	for _, c := range s.Conns() {
		if c.Upgraded() {
			out = append(out, c)
		}
	}
	return out
}

// Cut closes every upgraded connection, the way a failed network would
// (no close frame), and returns how many it closed. Each is cut once.
func (s *Server) Cut() int {
	n := 0
	for _, c := range s.ln.take() {
		if c.Upgraded() {
			_ = c.Close()
			n++
		}
	}
	return n
}

// Last returns the connection accepted most recently (nil before any).
func (s *Server) Last() *Conn {
	all := s.Conns()
	if len(all) == 0 {
		return nil
	}
	return all[len(all)-1]
}

// listener wraps every accepted connection in a Conn and remembers it.
type listener struct {
	net.Listener
	opts Options

	mu    sync.Mutex
	conns []*Conn
	cut   int // conns before this index were handed to Cut
}

func newListener(o Options) (*listener, error) {
	if o.Memory {
		return &listener{Listener: newMemListener(), opts: o}, nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	return &listener{Listener: ln, opts: o}, nil
}

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok && l.opts.SendBuffer > 0 {
		_ = tc.SetWriteBuffer(l.opts.SendBuffer)
	}
	wc := newConn(c)
	l.mu.Lock()
	l.conns = append(l.conns, wc)
	l.mu.Unlock()
	return wc, nil
}

func (l *listener) all() []*Conn {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*Conn(nil), l.conns...)
}

// take returns the connections not yet handed out by take.
func (l *listener) take() []*Conn {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := append([]*Conn(nil), l.conns[l.cut:]...)
	l.cut = len(l.conns)
	return out
}

// dial connects to a memory listener, whatever the address.
func (l *listener) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	return l.Listener.(*memListener).dial(ctx)
}

// memListener hands out the server ends of net.Pipe connections.
type memListener struct {
	accept    chan net.Conn
	done      chan struct{}
	closeOnce sync.Once
}

func newMemListener() *memListener {
	return &memListener{accept: make(chan net.Conn), done: make(chan struct{})}
}

// errListenerClosed answers a dial after Close.
var errListenerClosed = errors.New("wstest: memory listener closed")

func (m *memListener) Accept() (net.Conn, error) {
	select {
	case c := <-m.accept:
		return c, nil
	case <-m.done:
		return nil, net.ErrClosed
	}
}

func (m *memListener) Close() error {
	m.closeOnce.Do(func() { close(m.done) })
	return nil
}

// Addr is a made-up loopback address: URLs need a host.
func (m *memListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }

func (m *memListener) dial(ctx context.Context) (_ net.Conn, err error) {
	client, server := net.Pipe()
	select {
	case m.accept <- server:
		return client, nil
	case <-m.done:
		err = errListenerClosed
	case <-ctx.Done():
		err = ctx.Err()
	}
	_ = client.Close()
	_ = server.Close()
	return nil, err
}
