package bridge

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	bus "github.com/whalesong/bus"
	"github.com/whalesong/bus/bridge/internal/wstest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// msg is the payload type of the tests' buses.
type msg struct {
	Text string `json:"text"`
	N    int    `json:"n,omitempty"`
}

// frame is any server frame, decoded loosely.
type frame struct {
	Op        string  `json:"op"`
	V         int     `json:"v"`
	Session   string  `json:"session"`
	Epoch     string  `json:"epoch"`
	Seq       uint64  `json:"seq"`
	ID        string  `json:"id"`
	Sub       string  `json:"sub"`
	Recovered *bool   `json:"recovered"`
	From      *uint64 `json:"from"`
	Code      string  `json:"code"`
	Message   string  `json:"message"`
	Events    []entry `json:"events"`

	// subscribed: what was replayed and what may be missing; page: more
	Reason   string   `json:"reason"`
	Missing  *missing `json:"missing"`
	Replayed *int     `json:"replayed"`
	Until    *uint64  `json:"until"`
	More     *bool    `json:"more"`
}

// missing is the range of a subscribed answer with recovered false.
type missing struct {
	After  uint64 `json:"after"`
	Before uint64 `json:"before"`
}

type entry struct {
	Subs  []string        `json:"subs"`
	Topic string          `json:"topic"`
	Seq   uint64          `json:"seq"`
	Time  time.Time       `json:"time"`
	Data  json.RawMessage `json:"data"`
	Error string          `json:"error"`

	Skipped uint64 `json:"skipped"`
}

const readWait = 10 * time.Second

// server is a bus, a bridge on it and a wstest server around it; the
// test's cleanup closes all three in the order a program would.
type server struct {
	t   testing.TB
	bus *bus.Bus[msg]
	br  *Bridge[msg]
	ws  *wstest.Server
}

// newServer serves on 127.0.0.1.
func newServer(t testing.TB, b *bus.Bus[msg], opts ...Option) *server {
	t.Helper()
	return newServerWith(t, b, wstest.Options{}, opts...)
}

// newMemServer serves over in-memory connections: for tests inside a
// testing/synctest bubble (call it inside), where time is fake and
// synctest.Wait replaces polling.
func newMemServer(t testing.TB, b *bus.Bus[msg], opts ...Option) *server {
	t.Helper()
	return newServerWith(t, b, wstest.Options{Memory: true}, opts...)
}

func newServerWith(t testing.TB, b *bus.Bus[msg], wo wstest.Options, opts ...Option) *server {
	t.Helper()
	if b == nil {
		b = bus.New[msg]()
	}
	br := New(b, opts...)
	ws := wstest.NewServer(t, br, wo)
	s := &server{t: t, bus: b, br: br, ws: ws}
	t.Cleanup(func() { // before the server's own cleanup
		_ = br.Close()
		ws.Close()
		_ = b.Close()
	})
	return s
}

// allowAll authorizes every subscribe and publish.
func allowAll(any, Action, string) error { return nil }

// client is a test client speaking the bridge's protocol.
type client struct {
	t     testing.TB
	c     *websocket.Conn
	hello frame
	early []entry // events read while waiting for another answer
}

// dial connects and reads the hello.
func (s *server) dial(t testing.TB) *client {
	t.Helper()
	return s.dialWith(t, wstest.DialOptions{})
}

// dialWith connects with o and reads the hello.
func (s *server) dialWith(t testing.TB, o wstest.DialOptions) *client {
	t.Helper()
	c, err := s.ws.Dial(t.Context(), "/", o)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	return newClient(t, c)
}

// newClient speaks the protocol on c, which it closes at the test's end;
// it reads the hello.
func newClient(t testing.TB, c *websocket.Conn) *client {
	t.Helper()
	cl := &client{t: t, c: c}
	t.Cleanup(func() { _ = c.Close() })
	cl.hello = cl.read()
	if cl.hello.Op != "hello" {
		t.Fatalf("first frame %+v, want hello", cl.hello)
	}
	return cl
}

// tryDial connects with headers h; a refused handshake is a
// *wstest.StatusError.
func (s *server) tryDial(h http.Header) (*websocket.Conn, error) {
	return s.ws.Dial(s.t.Context(), "/", wstest.DialOptions{Header: h})
}

func (cl *client) send(v any) {
	cl.t.Helper()
	var data []byte
	switch v := v.(type) {
	case string:
		data = []byte(v)
	case []byte:
		data = v
	default:
		var err error
		if data, err = json.Marshal(v); err != nil {
			cl.t.Fatal(err)
		}
	}
	if err := cl.c.WriteMessage(websocket.TextMessage, data); err != nil {
		cl.t.Fatalf("write: %v", err)
	}
}

// read returns the next frame; it fails the test on a close or timeout.
func (cl *client) read() frame {
	cl.t.Helper()
	f, err := cl.tryRead(readWait)
	if err != nil {
		cl.t.Fatalf("read: %v", err)
	}
	return f
}

func (cl *client) tryRead(wait time.Duration) (frame, error) {
	_ = cl.c.SetReadDeadline(time.Now().Add(wait))
	_, data, err := cl.c.ReadMessage()
	if err != nil {
		return frame{}, err
	}
	var f frame
	if err := json.Unmarshal(data, &f); err != nil {
		return frame{}, err
	}
	return f, nil
}

// expect reads frames until one with op arrives; events frames before it
// are returned too.
func (cl *client) expect(op string) frame {
	cl.t.Helper()
	for {
		f := cl.read()
		if f.Op == op {
			return f
		}
		if f.Op != "events" {
			cl.t.Fatalf("got %+v while waiting for %s", f, op)
		}
		cl.early = append(cl.early, f.Events...)
	}
}

// sub subscribes and returns the subscribed answer.
func (cl *client) sub(id, pattern string, extra map[string]any) frame {
	cl.t.Helper()
	req := map[string]any{"op": "sub", "id": "r-" + id, "sub": id, "pattern": pattern}
	for k, v := range extra {
		req[k] = v
	}
	cl.send(req)
	f := cl.expect("subscribed")
	if f.Op != "subscribed" || f.Sub != id || f.ID != "r-"+id {
		cl.t.Fatalf("sub %s %s: got %+v", id, pattern, f)
	}
	return f
}

// events reads until n event entries have arrived.
func (cl *client) events(n int) []entry {
	cl.t.Helper()
	out := cl.early
	cl.early = nil
	for len(out) < n {
		f := cl.read()
		if f.Op != "events" {
			cl.t.Fatalf("got %+v while waiting for events (%d of %d)", f, len(out), n)
		}
		out = append(out, f.Events...)
	}
	return out
}

// closeCode reads until the connection ends and returns its close code.
func (cl *client) closeCode() int {
	cl.t.Helper()
	code := cl.closeCodeQuiet()
	if code < 0 {
		cl.t.Fatal("connection ended without a close frame")
	}
	return code
}

// closeCodeQuiet reads until the connection ends; -1 without a close frame.
func (cl *client) closeCodeQuiet() int {
	for {
		_ = cl.c.SetReadDeadline(time.Now().Add(readWait))
		if _, _, err := cl.c.ReadMessage(); err != nil {
			if code, ok := wstest.CloseCode(err); ok {
				return code
			}
			return -1
		}
	}
}

// shape reads n frames and describes each: its op, with the number of
// events of an events frame ("events:512"), or "close:<code>" for the end.
func (cl *client) shape(n int) []string {
	cl.t.Helper()
	var out []string
	for range n {
		f, err := cl.tryRead(readWait)
		if err != nil {
			code, ok := wstest.CloseCode(err)
			if !ok {
				cl.t.Fatalf("read: %v (after %v)", err, out)
			}
			return append(out, fmt.Sprint("close:", code))
		}
		if f.Op == "events" {
			out = append(out, fmt.Sprint("events:", len(f.Events)))
			continue
		}
		out = append(out, f.Op)
	}
	return out
}

// ping proves the connection still answers.
func (cl *client) ping() {
	cl.t.Helper()
	cl.send(`{"op":"ping","id":"alive"}`)
	if f := cl.expect("pong"); f.ID != "alive" {
		cl.t.Fatalf("pong %+v", f)
	}
}

// publish publishes on the bus directly.
func (s *server) publish(topic string, m msg) uint64 {
	s.t.Helper()
	seq, err := s.bus.Publish(s.t.Context(), topic, m)
	if err != nil {
		s.t.Fatalf("publish: %v", err)
	}
	return seq
}

// waitFor polls cond: only for states that have no signal (counters of
// another goroutine) over real sockets. In a bubble, use synctest.Wait.
func waitFor(t testing.TB, what string, cond func() bool) { t.Helper(); wstest.WaitFor(t, what, cond) }
