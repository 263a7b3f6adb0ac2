package natsbus

// The bridge on several nodes of one stream, frame by frame: the three
// behaviours the chaos runs depend on, each reduced to its smallest case
// (one embedded server, two nodes, a raw WebSocket client speaking
// bridge/PROTOCOL.md).

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/whalesong/bus"
	"github.com/whalesong/bus/bridge"
)

// bridgeNode is a bus on the default stream with a bridge that lets
// clients publish, on an HTTP server; the test's cleanup closes it.
type bridgeNode struct {
	bus *bus.Bus[chaosEvent]
	url string
}

func newBridgeNode(t *testing.T, nc *nats.Conn) *bridgeNode {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	b, err := New[chaosEvent](ctx, nc)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	br := bridge.New(b, bridge.WithAuthorize(func(any, bridge.Action, string) error { return nil }))
	srv := httptest.NewServer(br)
	t.Cleanup(func() {
		_ = br.Close()
		srv.Close()
		_ = b.Close()
	})
	return &bridgeNode{bus: b, url: "ws" + strings.TrimPrefix(srv.URL, "http")}
}

// wsClient is a raw protocol client.
type wsClient struct {
	t     *testing.T
	c     *websocket.Conn
	hello map[string]any
}

func dialNode(t *testing.T, n *bridgeNode) *wsClient {
	t.Helper()
	c, resp, err := websocket.DefaultDialer.Dial(n.url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", n.url, err)
	}
	_ = resp.Body.Close()
	t.Cleanup(func() { _ = c.Close() })
	w := &wsClient{t: t, c: c}
	w.hello = w.next("hello", waitLimit)
	return w
}

func (w *wsClient) send(frame string) {
	w.t.Helper()
	if err := w.c.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
		w.t.Fatalf("send %s: %v", frame, err)
	}
}

// next reads frames until one with op; nil when none comes within limit.
// A closed connection fails the test with its close code.
func (w *wsClient) next(op string, limit time.Duration) map[string]any {
	w.t.Helper()
	_ = w.c.SetReadDeadline(time.Now().Add(limit))
	defer func() { _ = w.c.SetReadDeadline(time.Time{}) }()
	for {
		_, data, err := w.c.ReadMessage()
		if err != nil {
			if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
				return nil
			}
			w.t.Fatalf("waiting for %q: %v", op, err)
		}
		var f map[string]any
		if err := json.Unmarshal(data, &f); err != nil {
			w.t.Fatalf("frame %s: %v", data, err)
		}
		if f["op"] == op {
			return f
		}
	}
}

// closed reads until the connection ends and returns its close code, or
// 0 if it is still open after limit.
func (w *wsClient) closed(limit time.Duration) int {
	w.t.Helper()
	_ = w.c.SetReadDeadline(time.Now().Add(limit))
	for {
		_, _, err := w.c.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if ok := asCloseError(err, &ce); ok {
			return ce.Code
		}
		if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
			return 0
		}
		return websocket.CloseAbnormalClosure
	}
}

func asCloseError(err error, ce **websocket.CloseError) bool {
	c, ok := err.(*websocket.CloseError)
	if ok {
		*ce = c
	}
	return ok
}

// A client publish retried on another node (its answer was lost with the
// connection) lands once: the second node answers with the first one's seq.
func TestBridgeClusterPublishRetryOnAnotherNode(t *testing.T) {
	noLeaks(t)
	s, _ := single(t)
	a, b := newBridgeNode(t, connect(t, s.URL())), newBridgeNode(t, connect(t, s.URL()))
	ca, cb := dialNode(t, a), dialNode(t, b)
	const pub = `{"op":"pub","id":"retry-1","topic":"t","data":{"id":"c0-1"}}`
	ca.send(pub)
	first := ca.next("published", waitLimit)
	cb.send(pub)
	second := cb.next("published", waitLimit)
	if first == nil || second == nil || first["seq"] != second["seq"] {
		t.Fatalf("one pub id on two nodes: answered %v then %v, want one seq", first, second)
	}
	waitSeqOf(t, b.bus, 1)
	if h, _ := b.bus.History(">", 0, 0); len(h) != 1 {
		t.Fatalf("the stream holds %d events for one pub id: %+v", len(h), h)
	}
}

// A client that saw seq x on one node and resumes on a node that is behind
// (it has not applied x yet) is answered exactly, recovered, from x: not
// told that something was lost.
func TestBridgeClusterResumeAheadOfLaggingNode(t *testing.T) {
	noLeaks(t)
	s, _ := single(t)
	a := newBridgeNode(t, connect(t, s.URL()))
	link := natstestProxy(t, s.URL())
	b := newBridgeNode(t, connect(t, link.URL()))
	for i := range 3 {
		if _, err := a.bus.Publish(context.Background(), "t", chaosEvent{ID: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	waitSeqOf(t, b.bus, 3)
	link.Pause() // b falls behind: it hears of nothing more until Resume
	for i := range 3 {
		if _, err := a.bus.Publish(context.Background(), "t", chaosEvent{ID: fmt.Sprint(3 + i)}); err != nil {
			t.Fatal(err)
		}
	}
	cb := dialNode(t, b)
	cb.send(fmt.Sprintf(`{"op":"sub","id":"r1","sub":"s1","pattern":"t","after":{"epoch":%q,"seq":6}}`, a.bus.Epoch()))
	time.AfterFunc(300*time.Millisecond, link.Resume) // b catches up while the client waits
	ack := cb.next("subscribed", waitLimit)
	if ack == nil || ack["recovered"] != true || ack["from"] != float64(6) {
		t.Fatalf("resume after 6 on a node at %d: %v, want recovered from 6", b.bus.Seq(), ack)
	}
}

// When a node's shared subscription of a pattern ends (here the stream is
// recreated: a new epoch), its clients on that pattern are closed with 4000
// so that they resume (and learn of the new epoch); a client subscribing to
// the pattern afterwards gets the new epoch's events.
func TestBridgeClusterFanoutEndsWithTheEpoch(t *testing.T) {
	noLeaks(t)
	s, nc := single(t)
	a := newBridgeNode(t, connect(t, s.URL()))
	c1 := dialNode(t, a)
	c1.send(`{"op":"sub","id":"r1","sub":"s1","pattern":"t"}`)
	c1.next("subscribed", waitLimit)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteStream(context.Background(), defaultStream); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	other, err := New[chaosEvent](ctx, nc) // recreates the stream: a new epoch
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	waitFor(t, "the node in the new epoch", func() bool { return a.bus.Epoch() == other.Epoch() })
	if code := c1.closed(3 * time.Second); code != 4000 {
		t.Errorf("a client of the old epoch's fan-out: close code %d (0: still open), want 4000", code)
	}
	c2 := dialNode(t, a)
	c2.send(`{"op":"sub","id":"r1","sub":"s1","pattern":"t"}`)
	c2.next("subscribed", waitLimit)
	if _, err := other.Publish(context.Background(), "t", chaosEvent{ID: "new"}); err != nil {
		t.Fatal(err)
	}
	if ev := c2.next("events", 3*time.Second); ev == nil {
		t.Errorf("a client subscribed after the epoch change got no live event")
	}
}
