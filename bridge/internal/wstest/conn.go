package wstest

import (
	"errors"
	"net"
	"os"
	"sync"
	"time"
)

// Conn is the server's side of one accepted connection. It passes
// everything through, records the frames the server writes once the
// connection is upgraded, and lets a test stall or slow those writes (a
// client that stops reading, a slow link) or cut the connection. Write
// deadlines are honoured while a write is held back, as a socket would.
type Conn struct {
	net.Conn
	closeOnce sync.Once
	closed    chan struct{} // closed by Close

	mu       sync.Mutex
	deadline time.Time     // the write deadline, as last set
	gate     chan struct{} // non-nil while stalled: closed by Unstall
	delay    time.Duration // added before every write
	rec      recorder
}

func newConn(c net.Conn) *Conn {
	return &Conn{Conn: c, closed: make(chan struct{})}
}

// Write holds p back while the connection is stalled or slowed, then
// records and writes it. It records first, so that whatever the client has
// read is already in Frames.
func (c *Conn) Write(p []byte) (int, error) {
	if err := c.hold(); err != nil {
		return 0, err
	}
	c.mu.Lock()
	c.rec.write(p)
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// CloseWrite half-closes a TCP connection, as the bridge does after its
// close frame; over an in-memory one it reports errors.ErrUnsupported.
func (c *Conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// hold waits out the delay and the stall, until the write deadline passes
// or the connection is closed.
func (c *Conn) hold() error {
	c.mu.Lock()
	deadline, gate, delay := c.deadline, c.gate, c.delay
	c.mu.Unlock()
	var expired <-chan time.Time
	if !deadline.IsZero() {
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		expired = t.C
	}
	if delay > 0 {
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-expired:
			return os.ErrDeadlineExceeded
		case <-c.closed:
			return net.ErrClosed
		}
	}
	if gate == nil {
		return nil
	}
	select {
	case <-gate:
		return nil
	case <-expired:
		return os.ErrDeadlineExceeded
	case <-c.closed:
		return net.ErrClosed
	}
}

// SetDeadline sets both deadlines and remembers the write one.
func (c *Conn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	c.mu.Unlock()
	return c.Conn.SetDeadline(t)
}

// SetWriteDeadline remembers the deadline for writes held back.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	c.mu.Unlock()
	return c.Conn.SetWriteDeadline(t)
}

// Close closes the connection; a write held back returns net.ErrClosed.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// Stall makes the server's writes wait, as if the client stopped reading,
// until Unstall, the write deadline or Close.
func (c *Conn) Stall() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gate == nil {
		c.gate = make(chan struct{})
	}
}

// Unstall lets writes through again, the waiting ones first.
func (c *Conn) Unstall() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gate != nil {
		close(c.gate)
		c.gate = nil
	}
}

// Slow delays every later write by d (0: no delay), like a slow link.
func (c *Conn) Slow(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.delay = d
}

// Upgraded reports whether the server answered this connection with 101
// Switching Protocols.
func (c *Conn) Upgraded() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rec.upgraded
}

// Frames returns the frames the server has written so far, in order.
func (c *Conn) Frames() []Frame {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Frame(nil), c.rec.frames...)
}

// CloseFrames returns the close frames among Frames.
func (c *Conn) CloseFrames() []Frame {
	var out []Frame
	for _, f := range c.Frames() {
		if f.Opcode == OpClose {
			out = append(out, f)
		}
	}
	return out
}
