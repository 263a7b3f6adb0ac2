package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/whalesong/bus"
	"github.com/whalesong/bus/bridge"
)

func TestMain(m *testing.M) { runAsChat(); goleak.VerifyTestMain(withBrowser{m}) }

func TestAuthorize(t *testing.T) {
	tests := []struct {
		action bridge.Action
		target string
		ok     bool
	}{
		{bridge.Publish, "chat.lobby", true},
		{bridge.Publish, "chat.go-lang_2", true},
		{bridge.Publish, "chat", false},
		{bridge.Publish, "chat.", false},
		{bridge.Publish, "chat.lobby.extra", false},
		{bridge.Publish, "chat.Lobby", false},
		{bridge.Publish, "chat.-x", false},
		{bridge.Publish, "chat.*", false},
		{bridge.Publish, "chat.>", false},
		{bridge.Publish, "news.today", false},
		{bridge.Publish, "chatter.lobby", false},
		{bridge.Publish, "chat." + strings.Repeat("a", maxRoom+1), false},
		{bridge.Subscribe, "chat.lobby", true},
		{bridge.Subscribe, "chat.*", true},
		{bridge.Subscribe, "chat.>", false},  // also matches chat.a.b, which is no room
		{bridge.Subscribe, ">", false},       // matches chat.x, and everything else too
		{bridge.Subscribe, "*.lobby", false}, // matches news.lobby
		{bridge.Subscribe, "*", false},
		{bridge.Subscribe, "chat.lobby.>", false}, // nothing is published there
		{bridge.Subscribe, "news.>", false},
		{bridge.Action(42), "chat.lobby", false}, // an action this code does not know
	}
	for _, tt := range tests {
		err := authorize("ada", tt.action, tt.target)
		if (err == nil) != tt.ok {
			t.Errorf("authorize(%v, %q) = %v, want ok=%v", tt.action, tt.target, err, tt.ok)
		}
		if err != nil && !errors.Is(err, errNotChat) {
			t.Errorf("authorize(%v, %q) = %v, want errNotChat", tt.action, tt.target, err)
		}
	}
}

func FuzzAuthorize(f *testing.F) {
	for _, s := range []string{"chat.lobby", "chat.>", ">", "*.x", "chat..x", "chat.a.b"} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, target string, publish bool) {
		a := bridge.Subscribe
		if publish {
			a = bridge.Publish
		}
		if authorize(nil, a, target) != nil {
			return
		}
		room, ok := strings.CutPrefix(target, "chat.")
		if !ok {
			t.Fatalf("allowed %q outside chat.", target)
		}
		if strings.Contains(room, ".") || (publish && !validRoom(room)) {
			t.Fatalf("allowed %q (publish=%v)", target, publish)
		}
	})
}

func TestCheckNick(t *testing.T) {
	tests := []struct {
		nick string
		ok   bool
	}{
		{"ada", true},
		{"Ada Lovelace", true},
		{"zoë_2.0-b", true},
		{"名前", true},
		{strings.Repeat("x", maxNick), true},
		{strings.Repeat("é", maxNick), true}, // runes, not bytes
		{"", false},
		{strings.Repeat("x", maxNick+1), false},
		{" ada", false},
		{"ada ", false},
		{"<script>", false},
		{"a\nb", false},
		{"a\x00b", false},
		{"\xff", false},
	}
	for _, tt := range tests {
		err := checkNick(tt.nick)
		if (err == nil) != tt.ok {
			t.Errorf("checkNick(%q) = %v, want ok=%v", tt.nick, err, tt.ok)
		}
		if err != nil && !errors.Is(err, errBadNick) {
			t.Errorf("checkNick(%q) = %v, want errBadNick", tt.nick, err)
		}
	}
}

func FuzzCheckNick(f *testing.F) {
	for _, s := range []string{"ada", " x", "名前", "\xff", strings.Repeat("y", 30)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, nick string) {
		if checkNick(nick) != nil {
			return
		}
		if n := utf8.RuneCountInString(nick); n < 1 || n > maxNick || !utf8.ValidString(nick) {
			t.Fatalf("accepted %q (%d runes)", nick, n)
		}
		if strings.ContainsAny(nick, "<>&\"'\n\r\t") || strings.TrimSpace(nick) != nick {
			t.Fatalf("accepted %q", nick)
		}
	})
}

// newTestServer serves a chat on a fresh bus over httptest.
func newTestServer(t *testing.T) (*httptest.Server, *bus.Bus[Message]) {
	t.Helper()
	b := bus.New[Message](bus.WithHistory(defaultHistory))
	srv := newServer(b)
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		srv.Close()
		hs.Close()
		b.Close()
	})
	return hs, b
}

func TestServerRoutes(t *testing.T) {
	hs, _ := newTestServer(t)
	tests := []struct {
		path, wantType, wantBody string
		wantStatus               int
	}{
		{"/", "text/html", `<script type="module" src="/app.js">`, http.StatusOK},
		{"/app.js", "text/javascript", `from "/whalesong.js"`, http.StatusOK},
		{"/style.css", "text/css", ".msg", http.StatusOK},
		{"/whalesong.js", "text/javascript", "export function connect", http.StatusOK},
		{"/nope", "text/plain", "404", http.StatusNotFound},
		{"/ws", "", "", http.StatusUnauthorized}, // no nick: refused before any upgrade
		{"/ws?nick=%20", "", "", http.StatusUnauthorized},
	}
	for _, tt := range tests {
		res, err := http.Get(hs.URL + tt.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != tt.wantStatus {
			t.Errorf("GET %s: status %d, want %d", tt.path, res.StatusCode, tt.wantStatus)
		}
		if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, tt.wantType) {
			t.Errorf("GET %s: Content-Type %q, want %s", tt.path, ct, tt.wantType)
		}
		if !strings.Contains(string(body), tt.wantBody) {
			t.Errorf("GET %s: body lacks %q", tt.path, tt.wantBody)
		}
	}
	res, err := http.Get(hs.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("page CSP = %q", csp)
	}
}

// wsClient speaks the wire protocol directly, so the chat's rules are tested
// without a browser too.
type wsClient struct {
	t    *testing.T
	conn *websocket.Conn
}

func dialChat(t *testing.T, hs *httptest.Server, nick string) *wsClient {
	t.Helper()
	url := "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws?nick=" + nick
	conn, res, err := websocket.DefaultDialer.Dial(url, http.Header{"Origin": {hs.URL}})
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	res.Body.Close()
	t.Cleanup(func() { conn.Close() })
	c := &wsClient{t: t, conn: conn}
	if hello := c.read(); hello["op"] != "hello" {
		t.Fatalf("first frame %v, want hello", hello)
	}
	return c
}

func (c *wsClient) send(frame string) {
	c.t.Helper()
	if err := c.conn.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
		c.t.Fatal(err)
	}
}

func (c *wsClient) read() map[string]any {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, data, err := c.conn.ReadMessage()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	var frame map[string]any
	if err := json.Unmarshal(data, &frame); err != nil {
		c.t.Fatalf("frame %s: %v", data, err)
	}
	return frame
}

func TestPublishOnlyToChatRooms(t *testing.T) {
	hs, b := newTestServer(t)
	c := dialChat(t, hs, "ada")
	tests := []struct {
		topic, wantOp, wantCode string
	}{
		{"chat.lobby", "published", ""},
		{"news.today", "error", "forbidden"},
		{"chat.lobby.x", "error", "forbidden"},
		{"chat.Lobby", "error", "forbidden"},
	}
	for i, tt := range tests {
		id := "00000000-0000-4000-8000-00000000000" + string(rune('1'+i))
		c.send(`{"op":"pub","id":"` + id + `","topic":"` + tt.topic + `","data":{"nick":"ada","text":"hi"}}`)
		got := c.read()
		if got["op"] != tt.wantOp || got["id"] != id || (tt.wantCode != "" && got["code"] != tt.wantCode) {
			t.Errorf("pub to %s: got %v, want op %s code %q", tt.topic, got, tt.wantOp, tt.wantCode)
		}
	}
	if n := b.Seq(); n != 1 {
		t.Errorf("bus has %d events, want only the one to chat.lobby", n)
	}
}

func TestSubscribeOutsideChatForbidden(t *testing.T) {
	hs, _ := newTestServer(t)
	c := dialChat(t, hs, "ada")
	c.send(`{"op":"sub","id":"r1","sub":"s1","pattern":">"}`)
	if got := c.read(); got["op"] != "error" || got["code"] != "forbidden" || got["id"] != "r1" {
		t.Errorf("sub to >: %v, want error forbidden", got)
	}
	c.send(`{"op":"sub","id":"r2","sub":"s2","pattern":"chat.*","last":50}`)
	if got := c.read(); got["op"] != "subscribed" || got["id"] != "r2" {
		t.Errorf("sub to chat.*: %v, want subscribed", got)
	}
}

// TestServe runs the real main loop on a free port: it serves the page, and
// when its context ends it shuts down and returns nil.
func TestServe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, ln, 10) }()

	res, err := http.Get("http://" + ln.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Errorf("GET /: %s", res.Status)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serve returned %v after its context ended", err)
	}
}
