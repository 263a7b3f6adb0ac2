package bridge_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"time"

	"github.com/gorilla/websocket"
)

// The plumbing of the examples: a client of PROTOCOL.md in a few lines.

// exampleWait bounds every read of an example's client, so that a broken
// example fails instead of hanging; no example waits for it to pass.
const exampleWait = 10 * time.Second

// serve runs h at /ws on an httptest server on 127.0.0.1, as an app mounts
// a bridge on its mux, and returns its WebSocket URL and how to stop it.
func serve(h http.Handler) (url string, stop func()) {
	mux := http.NewServeMux()
	mux.Handle("/ws", h)
	srv := httptest.NewServer(mux)
	return wsURL(srv.URL, "/ws"), srv.Close
}

// wsURL is the WebSocket URL of path on the httptest server at base.
func wsURL(base, path string) string { return "ws" + strings.TrimPrefix(base, "http") + path }

// connect dials the bridge at url and reads its hello, as a client waits
// for it before it sends anything. It panics if the bridge refuses.
func connect(url string, header http.Header) *websocket.Conn {
	ws, _, err := websocket.DefaultDialer.Dial(url, header)
	if err != nil {
		panic(err)
	}
	if _, hello, err := ws.ReadMessage(); err != nil || !strings.Contains(string(hello), `"op":"hello"`) {
		panic("no hello: " + string(hello))
	}
	return ws
}

// connectSlow is connect for a client on a slow link: its socket holds
// only a few KiB that it has not read, so a server writing to it while it
// does not read soon waits.
func connectSlow(url string) *websocket.Conn {
	d := *websocket.DefaultDialer
	d.NetDialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err == nil {
			err = c.(*net.TCPConn).SetReadBuffer(4096)
		}
		return c, err
	}
	ws, _, err := d.Dial(url, nil)
	if err != nil {
		panic(err)
	}
	if _, _, err := ws.ReadMessage(); err != nil {
		panic(err)
	}
	return ws
}

// serveSlow is serve for a server whose sockets hold only a few KiB that
// it has sent and the client has not read: its writes to a client that
// stops reading wait at once, not after megabytes.
func serveSlow(h http.Handler) (url string, stop func()) {
	mux := http.NewServeMux()
	mux.Handle("/ws", h)
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		_ = c.(*net.TCPConn).SetWriteBuffer(4096)
		return ctx
	}
	srv.Start()
	return wsURL(srv.URL, "/ws"), srv.Close
}

// send writes one text frame.
func send(ws *websocket.Conn, frame string) {
	if err := ws.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
		panic(err)
	}
}

// randomEpoch is the epoch a frame names: a UUID, new for every bus.
var randomEpoch = regexp.MustCompile(`"epoch":"[0-9a-f-]{36}",`)

// receive returns the next frame the client reads without its epoch (a
// random UUID, the same in every frame of one bus), or, once the
// connection has ended, the error that says how (its close code).
func receive(ws *websocket.Conn) string {
	_ = ws.SetReadDeadline(time.Now().Add(exampleWait))
	_, frame, err := ws.ReadMessage()
	if err != nil {
		return err.Error()
	}
	return randomEpoch.ReplaceAllString(string(frame), "")
}

// closed reads and drops frames until the connection ends, and returns
// the error that says how.
func closed(ws *websocket.Conn) error {
	for {
		_ = ws.SetReadDeadline(time.Now().Add(exampleWait))
		if _, _, err := ws.ReadMessage(); err != nil {
			return err
		}
	}
}
