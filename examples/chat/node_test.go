package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	natsserver "github.com/nats-io/nats-server/v2/server"
)

// envRunChat makes the test binary the chat command (TestMain calls
// runAsChat): the cluster tests start it with -cluster, and it starts its
// nodes as it would in real life, by running itself (the variable is
// inherited).
const envRunChat = "WHALESONG_CHAT_RUN"

func runAsChat() {
	if os.Getenv(envRunChat) == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
}

// waitLimit bounds each wait for something that should happen soon (a
// process starting under the race detector, a page reconnecting).
const waitLimit = 30 * time.Second

// embeddedNATS runs -cluster's NATS server on a temporary store; the test's
// cleanup stops it.
func embeddedNATS(t *testing.T) *natsserver.Server {
	t.Helper()
	srv, err := startNATS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopNATS(srv) })
	return srv
}

// testNode is a chat node in this process, run by runNode as -cluster runs
// it in a child: -nats, -node, a free 127.0.0.1 port, its ready line read
// from its stdout.
type testNode struct {
	url   string // http://127.0.0.1:port
	ready readyLine
	stop  func() // stops it and waits until it is gone; idempotent
}

func startTestNode(t *testing.T, natsURL string, id int) *testNode {
	t.Helper()
	cfg := config{addr: "127.0.0.1:0", history: defaultHistory, nodeID: id,
		nats: natsConfig{urls: natsURL, stream: defaultStream, replicas: 1, history: defaultHistory}}
	ctx, cancel := context.WithCancel(context.Background())
	out, in := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := runNode(ctx, cfg, in)
		in.Close()
		done <- err
	}()
	lines := bufio.NewScanner(out)
	if !lines.Scan() {
		cancel()
		t.Fatalf("node %d printed nothing: %v", id, <-done)
	}
	n := &testNode{}
	if _, err := fmt.Sscanf(lines.Text(), readyFormat, &n.ready.addr, &n.ready.epoch, &n.ready.seq); err != nil {
		t.Fatalf("node %d's first line %q: %v", id, lines.Text(), err)
	}
	go io.Copy(io.Discard, out) // until the node returns and closes in
	n.url = "http://" + n.ready.addr
	var once sync.Once
	n.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("node %d: %v", id, err)
			}
		})
	}
	t.Cleanup(n.stop)
	return n
}

// frame is a server frame, with the fields these tests read.
type frame struct {
	Op        string      `json:"op"`
	ID        string      `json:"id"`
	Epoch     string      `json:"epoch"`
	Seq       uint64      `json:"seq"`
	Recovered bool        `json:"recovered"`
	From      uint64      `json:"from"`
	Code      string      `json:"code"`
	Message   string      `json:"message"`
	Events    []wireEvent `json:"events"`
}

type wireEvent struct {
	Topic string  `json:"topic"`
	Seq   uint64  `json:"seq"`
	Data  Message `json:"data"`
}

// nodeClient speaks the wire protocol to one node, keeping every event it
// reads in order.
type nodeClient struct {
	t      *testing.T
	conn   *websocket.Conn
	hello  frame
	events []wireEvent
}

func dialNode(t *testing.T, baseURL, nick string) *nodeClient {
	t.Helper()
	url := "ws" + strings.TrimPrefix(baseURL, "http") + "/ws?nick=" + nick
	conn, res, err := websocket.DefaultDialer.Dial(url, http.Header{"Origin": {baseURL}})
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	res.Body.Close()
	t.Cleanup(func() { conn.Close() })
	c := &nodeClient{t: t, conn: conn}
	c.hello = c.expect("hello")
	return c
}

func (c *nodeClient) send(format string, args ...any) {
	c.t.Helper()
	if err := c.conn.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, format, args...)); err != nil {
		c.t.Fatal(err)
	}
}

// expect reads frames until one with op, keeping the events it passes; an
// error frame fails the test.
func (c *nodeClient) expect(op string) frame {
	c.t.Helper()
	for {
		f := c.read()
		switch f.Op {
		case op:
			return f
		case "events":
			c.events = append(c.events, f.Events...)
		case "error":
			c.t.Fatalf("waiting for %s: error %s: %s", op, f.Code, f.Message)
		}
	}
}

// waitEvents reads until it has n events.
func (c *nodeClient) waitEvents(n int) []wireEvent {
	c.t.Helper()
	for len(c.events) < n {
		f := c.read()
		if f.Op == "events" {
			c.events = append(c.events, f.Events...)
		}
	}
	return c.events
}

func (c *nodeClient) read() frame {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(waitLimit))
	_, data, err := c.conn.ReadMessage()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	var f frame
	if err := json.Unmarshal(data, &f); err != nil {
		c.t.Fatalf("frame %s: %v", data, err)
	}
	return f
}

// publish sends a chat message with publish id n and returns its seq.
func (c *nodeClient) publish(n int, room, text string) uint64 {
	c.t.Helper()
	id := fmt.Sprintf("00000000-0000-4000-8000-%012d", n)
	data, _ := json.Marshal(Message{Nick: "test", Text: text})
	c.send(`{"op":"pub","id":%q,"topic":"chat.%s","data":%s}`, id, room, data)
	f := c.expect("published")
	if f.ID != id || f.Seq == 0 {
		c.t.Fatalf("publish %q: %+v", text, f)
	}
	return f.Seq
}

// TestTwoNodesShareTheChat: two nodes on one stream serve one chat (a
// client on node 1 sees what a client of node 2 says, with the same seq and
// epoch); node 2 stops and comes back on the same stream while node 1 goes
// on, and a client that resumes on it from the last seq it saw gets what it
// missed, in the same epoch, with recovered true.
func TestTwoNodesShareTheChat(t *testing.T) {
	srv := embeddedNATS(t)
	one := startTestNode(t, srv.ClientURL(), 1)
	two := startTestNode(t, srv.ClientURL(), 2)
	if one.ready.epoch != two.ready.epoch {
		t.Fatalf("epochs %s and %s on one stream", one.ready.epoch, two.ready.epoch)
	}
	alice := dialNode(t, one.url, "alice")
	bob := dialNode(t, two.url, "bob")
	if alice.hello.Epoch != one.ready.epoch || bob.hello.Epoch != one.ready.epoch {
		t.Fatalf("hello epochs %s and %s, want the stream's %s", alice.hello.Epoch, bob.hello.Epoch, one.ready.epoch)
	}
	alice.send(`{"op":"sub","id":"r1","sub":"s1","pattern":"chat.lobby"}`)
	alice.expect("subscribed")

	seq := bob.publish(1, "lobby", "hello from node 2")
	got := alice.waitEvents(1)[0]
	if got.Seq != seq || got.Data.Text != "hello from node 2" || got.Data.Nick != "bob" { // the server stamps the nick
		t.Fatalf("alice on node 1 got %+v, want seq %d from node 2", got, seq)
	}

	// Node 2 goes away (a deploy); node 1 takes three messages meanwhile.
	two.stop()
	var missed []string
	for i := range 3 {
		text := fmt.Sprintf("while node 2 was down %d", i)
		missed = append(missed, text)
		alice.publish(2+i, "lobby", text)
	}
	again := startTestNode(t, srv.ClientURL(), 2)
	if again.ready.epoch != one.ready.epoch || again.ready.seq != seq+3 {
		t.Fatalf("restarted node 2: epoch %s seq %d, want %s and %d", again.ready.epoch, again.ready.seq, one.ready.epoch, seq+3)
	}
	bob = dialNode(t, again.url, "bob")
	bob.send(`{"op":"sub","id":"r1","sub":"s1","pattern":"chat.lobby","after":{"epoch":%q,"seq":%d}}`, bob.hello.Epoch, seq)
	sub := bob.expect("subscribed")
	if !sub.Recovered || sub.Epoch != one.ready.epoch || sub.From != seq {
		t.Fatalf("resume on the restarted node: %+v, want recovered from %d in epoch %s", sub, seq, one.ready.epoch)
	}
	for i, ev := range bob.waitEvents(3) {
		if ev.Seq != seq+1+uint64(i) || ev.Data.Text != missed[i] {
			t.Errorf("replayed event %d: %+v, want seq %d %q", i, ev, seq+1+uint64(i), missed[i])
		}
	}
}

func TestRedactURLs(t *testing.T) {
	tests := []struct{ in, want string }{
		{"nats://a:4222", "nats://a:4222"},
		{"nats://u:secret@a:4222, tls://b:4222", "nats://u:xxxxx@a:4222,tls://b:4222"},
		{"nats://s3cr3t-token@a:4222", "nats://REDACTED@a:4222"},
		{"localhost:4222", "localhost:4222"},
	}
	for _, tt := range tests {
		if got := redactURLs(tt.in); got != tt.want {
			t.Errorf("redactURLs(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestFlags(t *testing.T) {
	tests := []struct {
		args []string
		ok   bool
	}{
		{nil, true},
		{[]string{"-cluster", "3"}, true},
		{[]string{"-cluster", "3", "-store", "/tmp/x", "-addr", ":9000"}, true},
		{[]string{"-nats", "nats://a:4222,nats://b:4222", "-replicas", "3", "-stream", "C"}, true},
		{[]string{"-cluster", "0"}, true},
		{[]string{"-cluster", "-1"}, false},
		{[]string{"-cluster", fmt.Sprint(maxNodes + 1)}, false},
		{[]string{"-cluster", "2", "-nats", "nats://a:4222"}, false},
		{[]string{"-cluster", "2", "-replicas", "3"}, false},
		{[]string{"-node", "1"}, false},
		{[]string{"-store", "/tmp/x"}, false},
		{[]string{"-history", "0"}, false},
		{[]string{"-restart-delay", "-1s", "-cluster", "2"}, false},
		{[]string{"extra"}, false},
		{[]string{"-nope"}, false},
	}
	for _, tt := range tests {
		_, err := parseFlags(tt.args, io.Discard)
		if (err == nil) != tt.ok {
			t.Errorf("parseFlags(%q) = %v, want ok=%v", tt.args, err, tt.ok)
		}
	}
}

func TestClusterPorts(t *testing.T) {
	tests := []struct {
		addr string
		n    int
		host string
		port int
		ok   bool
	}{
		{"localhost:8080", 3, "localhost", 8080, true},
		{":8080", 3, "", 8080, true},
		{"127.0.0.1:0", 3, "127.0.0.1", 0, true},
		{"[::1]:65534", 2, "::1", 65534, true},
		{"localhost:65535", 2, "", 0, false},
		{"localhost", 1, "", 0, false},
		{"localhost:http", 1, "", 0, false},
	}
	for _, tt := range tests {
		host, port, err := clusterPorts(tt.addr, tt.n)
		if (err == nil) != tt.ok || (tt.ok && (host != tt.host || port != tt.port)) {
			t.Errorf("clusterPorts(%q, %d) = %q, %d, %v", tt.addr, tt.n, host, port, err)
		}
	}
}

// TestLineWriter: lines are passed on whole whatever the writes' sizes,
// without their newline (or CR), an overlong one in pieces, the last one
// at flush.
func TestLineWriter(t *testing.T) {
	var got []string
	w := &lineWriter{line: func(l string) { got = append(got, l) }}
	for _, chunk := range []string{"ready 1", "27.0.0.1:80 epoch e seq 0\nsec", "ond\r\n\nthird", strings.Repeat("x", maxLine)} {
		w.Write([]byte(chunk))
	}
	w.flush()
	want := []string{"ready 127.0.0.1:80 epoch e seq 0", "second", "", "third" + strings.Repeat("x", maxLine)}
	if len(got) != len(want) {
		t.Fatalf("got %d lines, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d: %.40q, want %.40q", i, got[i], want[i])
		}
	}
}
