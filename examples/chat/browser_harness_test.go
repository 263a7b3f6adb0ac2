package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/whalesong/bus"
	"github.com/whalesong/bus/bridge"
)

// The browser tests drive Debian's chromium (or any Chrome) headless through
// chromedp. Without a browser they skip, unless WHALESONG_BROWSER=required,
// which CI sets after installing chromium: then they fail.
const (
	envChrome     = "WHALESONG_CHROME"     // path of the browser binary
	envRequired   = "WHALESONG_BROWSER"    // "required": no browser is a failure
	envScreenshot = "WHALESONG_SCREENSHOT" // "1": write docs/chat.png
	pageDeadline  = 45 * time.Second       // everything one page does in one test
	pollDeadline  = 20 * time.Second       // one wait for the page to reach a state
)

var errNoBrowser = errors.New("no Chromium or Chrome found (looked for $" + envChrome +
	", /usr/bin/chromium, chromium, chromium-browser, google-chrome)")

// shared is the one browser of the test binary: starting Chromium costs about
// a second, a tab costs milliseconds. TestMain closes it.
var shared struct {
	once    sync.Once
	ctx     context.Context // the first tab; chromedp.NewContext(ctx) opens more
	cancel  func()
	dataDir string
	err     error
}

// withBrowser runs the tests, then closes the shared browser before goleak
// looks for leftover goroutines.
type withBrowser struct{ m *testing.M }

func (w withBrowser) Run() int {
	defer closeBrowser()
	return w.m.Run()
}

func chromePath() string {
	for _, name := range []string{os.Getenv(envChrome), "/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"} {
		if name == "" {
			continue
		}
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// browser returns the shared browser's context, starting it on first use. No
// browser skips the test (fails it with WHALESONG_BROWSER=required); a browser
// that is there but does not start always fails it.
func browser(t *testing.T) context.Context {
	t.Helper()
	shared.once.Do(startBrowser)
	switch {
	case errors.Is(shared.err, errNoBrowser) && os.Getenv(envRequired) != "required":
		t.Skipf("browser test skipped: %v; install chromium or set %s (%s=required makes this a failure)",
			shared.err, envChrome, envRequired)
	case shared.err != nil:
		t.Fatalf("browser: %v", shared.err)
	}
	return shared.ctx
}

func startBrowser() {
	path := chromePath()
	if path == "" {
		shared.err = errNoBrowser
		return
	}
	dir, err := os.MkdirTemp("", "whalesong-chromium-")
	if err != nil {
		shared.err = err
		return
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.UserDataDir(dir), // fresh profile, removed by closeBrowser
		chromedp.NoSandbox,        // containers and CI run as root
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(1200, 800),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(allocCtx)
	shared.dataDir = dir
	shared.cancel = func() { cancelTab(); cancelAlloc() } // cancelAlloc waits for the process
	// The first Do starts the browser and binds it to ctx, so it gets no
	// deadline of its own; the timer stops a browser that hangs at start.
	hung := time.AfterFunc(30*time.Second, cancelAlloc)
	defer hung.Stop()
	if err := chromedp.Do(ctx); err != nil {
		shared.err = fmt.Errorf("starting %s: %w", path, err)
		return
	}
	shared.ctx = ctx
}

func closeBrowser() {
	if shared.cancel != nil {
		shared.cancel()
	}
	if shared.dataDir != "" {
		os.RemoveAll(shared.dataDir)
	}
}

// ---- the server side -----------------------------------------------------

// chatTest is a chat server behind a stable httptest URL, with the hooks the
// browser tests need: cut a page's sockets, refuse new ones (offline), and
// restart with a fresh bus (a new epoch).
type chatTest struct {
	t       *testing.T
	hs      *httptest.Server
	history int
	opts    []bridge.Option
	live    atomic.Pointer[instance]

	mu      sync.Mutex
	offline bool
	conns   map[string][]net.Conn // live sockets by nick
}

// instance is one life of the server: a bus and the chat on it.
type instance struct {
	bus *bus.Bus[Message]
	srv *server
}

func newChatTest(t *testing.T, history int, opts ...bridge.Option) *chatTest {
	t.Helper()
	c := &chatTest{t: t, history: history, opts: opts, conns: map[string][]net.Conn{}}
	c.live.Store(c.newInstance())
	c.hs = httptest.NewServer(c)
	t.Cleanup(func() {
		c.hs.CloseClientConnections()
		c.live.Load().close()
		c.hs.Close()
	})
	return c
}

func (c *chatTest) newInstance() *instance {
	b := bus.New[Message](bus.WithHistory(c.history))
	return &instance{bus: b, srv: newServer(b, c.opts...)}
}

func (in *instance) close() {
	in.srv.Close()
	in.bus.Close()
}

// ServeHTTP answers 503 to sockets while offline and remembers every socket
// it hands to the bridge, so cut can close it.
func (c *chatTest) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/ws" {
		c.mu.Lock()
		offline := c.offline
		c.mu.Unlock()
		if offline {
			http.Error(w, "offline for the test", http.StatusServiceUnavailable)
			return
		}
		w = &hijackSpy{ResponseWriter: w, nick: r.URL.Query().Get("nick"), c: c}
	}
	c.live.Load().srv.ServeHTTP(w, r)
}

// hijackSpy records the connection the WebSocket upgrade takes over.
type hijackSpy struct {
	http.ResponseWriter
	nick string
	c    *chatTest
}

func (h *hijackSpy) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err == nil {
		h.c.mu.Lock()
		h.c.conns[h.nick] = append(h.c.conns[h.nick], conn)
		h.c.mu.Unlock()
	}
	return conn, rw, err
}

// cut closes every socket nick's pages opened so far, the way a network
// failure would (no close frame), and says how many it closed.
func (c *chatTest) cut(nick string) int {
	c.mu.Lock()
	conns := c.conns[nick]
	delete(c.conns, nick)
	c.mu.Unlock()
	for _, conn := range conns {
		conn.Close()
	}
	return len(conns)
}

func (c *chatTest) setOffline(offline bool) {
	c.mu.Lock()
	c.offline = offline
	c.mu.Unlock()
}

// restart swaps in a fresh bus and server behind the same URL and closes
// the old ones: pages reconnect into a new epoch.
func (c *chatTest) restart() {
	old := c.live.Swap(c.newInstance())
	old.close()
}

func (c *chatTest) bus() *bus.Bus[Message] { return c.live.Load().bus }

// publish puts a message on the current bus as a Go publisher would.
func (c *chatTest) publish(room, nick, text string) uint64 {
	c.t.Helper()
	seq, err := c.bus().Publish(context.Background(), "chat."+room, Message{Nick: nick, Text: text})
	if err != nil {
		c.t.Fatalf("publish to %s: %v", room, err)
	}
	return seq
}

// ---- the page side -------------------------------------------------------

// wsSpy runs before the page's own scripts: it counts the sockets the page
// opens and records every close code it sees (4000: cut off as too slow).
const wsSpy = `(() => {
  const Native = window.WebSocket;
  const log = window.__ws = { opened: 0, closes: [] };
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      log.opened++;
      this.addEventListener("close", (e) => log.closes.push(e.code));
    }
  };
})();`

// chatPage is one browser tab showing the chat.
type chatPage struct {
	t    *testing.T
	ctx  context.Context
	nick string
}

// openPage opens the chat as nick in room and waits until it is live: the
// connection open and the room's subscription acknowledged, so that every
// event published afterwards reaches it.
func (c *chatTest) openPage(nick, room string) *chatPage {
	c.t.Helper()
	p := c.newTab(nick)
	p.do(chromedp.Navigate(c.hs.URL + "/?nick=" + nick + "#" + room))
	p.waitFor(livePage(room))
	return p
}

// livePage is the condition openPage waits for.
func livePage(room string) string {
	return `window.__chat && __chat.state === "open" && __chat.subscribed === ` + jsString(room)
}

// newTab opens a blank tab with the socket spy installed; the test closes
// it when it ends.
func (c *chatTest) newTab(name string) *chatPage {
	c.t.Helper()
	return newTab(c.t, name)
}

// newTab is chatTest.newTab for a page on any server (the cluster tests'
// nodes).
func newTab(t *testing.T, name string) *chatPage {
	t.Helper()
	tab, closeTab := chromedp.NewContext(browser(t))
	t.Cleanup(closeTab)
	if err := chromedp.Do(tab); err != nil { // opens the tab, bound to tab
		t.Fatalf("new tab: %v", err)
	}
	ctx, cancel := context.WithTimeout(tab, pageDeadline)
	t.Cleanup(cancel)
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument,
		page.AddScriptToEvaluateOnNewDocumentParams{Source: wsSpy}); err != nil {
		t.Fatalf("inject the socket spy: %v", err)
	}
	return &chatPage{t: t, ctx: ctx, nick: name}
}

func (p *chatPage) do(actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	if err := chromedp.Do(p.ctx, actions...); err != nil {
		p.t.Fatalf("%s's page: %v", p.nick, err)
	}
}

// waitFor polls a JavaScript expression until it is truthy. On timeout it
// fails the test with the page's state, so a red run says what it saw.
func (p *chatPage) waitFor(expr string) {
	p.t.Helper()
	_, err := chromedp.Run(p.ctx, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingInterval(20*time.Millisecond),
		chromedp.WithPollingTimeout(pollDeadline)))
	if err != nil {
		p.t.Fatalf("%s's page: waiting for %s: %v\npage state: %s", p.nick, expr, err, p.debugState())
	}
}

// evalJS evaluates expr in p's page (awaiting a promise) and decodes the
// result into T.
func evalJS[T any](p *chatPage, expr string) T {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		p.t.Fatalf("%s's page: %s: %v", p.nick, expr, err)
	}
	return v
}

func (p *chatPage) debugState() string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(p.ctx), 2*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify({
	  state: __chat.state, states: __chat.states, gaps: __chat.gaps, errors: __chat.errors,
	  room: __chat.room, received: __chat.received, lastSeq: __chat.lastSeq, outOfOrder: __chat.outOfOrder,
	  ws: window.__ws, shown: __chat.messages().length,
	  last: __chat.messages().slice(-3).map((m) => ({...m, text: m.text.slice(0, 40)}))})`))
	if err != nil {
		return "unreadable: " + err.Error()
	}
	return s
}

// shownMessage is one message as the page shows it.
type shownMessage struct {
	Seq  uint64 `json:"seq"`
	Nick string `json:"nick"`
	Text string `json:"text"`
}

func (p *chatPage) messages() []shownMessage {
	p.t.Helper()
	return evalJS[[]shownMessage](p, `__chat.messages()`)
}

// texts returns the texts on screen, oldest first.
func (p *chatPage) texts() []string {
	p.t.Helper()
	var out []string
	for _, m := range p.messages() {
		out = append(out, m.Text)
	}
	return out
}

// waitShown waits until the page shows at least n messages.
func (p *chatPage) waitShown(n int) {
	p.t.Helper()
	p.waitFor(fmt.Sprintf(`__chat.messages().length >= %d`, n))
}

// typeMessage sends text the way a person does: type, press Enter.
func (p *chatPage) typeMessage(text string) {
	p.t.Helper()
	p.do(chromedp.SendKeys(chromedp.ID("text"), text+"\r"))
}

func jsString(s string) string { return fmt.Sprintf("%q", s) }
