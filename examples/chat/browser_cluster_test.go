//go:build unix

package main

import (
	"bytes"
	"fmt"
	"html/template"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/chromedp/chromedp"
)

// openPageAt opens the chat at baseURL as nick in room and waits until it
// is live.
func openPageAt(t *testing.T, baseURL, nick, room string) *chatPage {
	t.Helper()
	p := newTab(t, nick)
	p.do(chromedp.Navigate(baseURL + "/?nick=" + nick + "#" + room))
	p.waitFor(livePage(room))
	return p
}

// landed is want with line moved to where p shows it, if p shows every
// line of want once.
func landed(p *chatPage, want []string, line string) []string {
	var shown []string
	for _, m := range p.messages() {
		shown = append(shown, m.Text)
	}
	others := slices.DeleteFunc(slices.Clone(shown), func(s string) bool { return s == line })
	if len(shown) != len(want) || !slices.Equal(others, slices.DeleteFunc(slices.Clone(want), func(s string) bool { return s == line })) {
		return want // checkExactlyOnce reports it
	}
	return shown
}

// TestBrowserClusterNodeKilled runs `chat -cluster 2` with a page on each
// node. The pages talk; node 2 is killed with SIGKILL; while it is down the
// page on node 1 goes on writing and the page on node 2 writes a message
// offline; the supervisor starts node 2 again and its page resumes by
// itself: both pages show every message once, in order, with no gap, and
// the offline message landed once. With WHALESONG_SCREENSHOT=1 the nodes
// listen on localhost:8080 and 8081 and the test writes
// docs/chat-cluster.png: the two pages after the restart.
func TestBrowserClusterNodeKilled(t *testing.T) {
	browser(t) // skips (or fails) before any process starts
	addr := "127.0.0.1:0"
	if os.Getenv(envScreenshot) == "1" {
		addr = "localhost:8080" // the README's URLs
	}
	s := startSupervisor(t, "-cluster", "2", "-addr", addr, "-restart-delay", "2s")
	nodes := s.waitNodes(2)
	alice := openPageAt(t, nodes[0].url, "alice", "lobby")
	bob := openPageAt(t, nodes[1].url, "bob", "lobby")

	want := []string{"Hi Bob! I'm on node 1.", "Hi Alice, node 2 here. Watch this: kill -9 my node."}
	alice.typeMessage(want[0])
	bob.waitShown(1)
	bob.typeMessage(want[1])
	alice.waitShown(2)
	bob.waitShown(2)

	if err := syscall.Kill(nodes[1].pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	bob.waitFor(`__chat.state === "connecting"`)
	// Bob's line first: the scenario needs it typed while his node is down
	// (checked), and the restart delay is a clock the test does not hold.
	offline := "Typed while my node was down: it waited in my outbox."
	bob.typeMessage(offline)
	bob.waitFor(`document.querySelectorAll("#outbox .msg").length === 1`)
	if state := evalJS[string](bob, `__chat.state`); state != "connecting" {
		t.Fatalf("bob's page is %q before node 2 is back: the message was not typed while it was down", state)
	}
	for _, text := range []string{
		"Your node is gone. I keep writing: the stream keeps every line.",
		"You will get these when it is back.",
	} {
		want = append(want, text)
		alice.typeMessage(text)
		alice.waitShown(len(want))
	}
	stillDown := evalJS[string](bob, `__chat.state`) == "connecting"
	if !stillDown {
		t.Logf("node 2 came back while alice wrote (a loaded machine): bob's line may land between hers")
	}

	back := s.waitUp()
	if back.id != 2 || back.url != nodes[1].url || back.epoch != nodes[1].epoch {
		t.Fatalf("after the kill: %q, want node 2 at %s in epoch %s", back.line, nodes[1].url, nodes[1].epoch)
	}
	bob.waitFor(`__chat.state === "open" && document.querySelectorAll("#outbox .msg").length === 0`)
	want = append(want, offline) // sent once node 2 is back: after alice's lines, if she wrote them while it was down
	bob.waitShown(len(want))
	alice.waitShown(len(want))
	if !stillDown {
		want = landed(alice, want, offline)
	}
	for _, p := range []*chatPage{alice, bob} {
		checkExactlyOnce(t, p, want)
		if gaps := evalJS[[]string](p, `__chat.gaps`); len(gaps) != 0 {
			t.Errorf("%s's page saw gaps %q", p.nick, gaps)
		}
	}
	if opened := evalJS[int](bob, `__ws.opened`); opened < 2 {
		t.Errorf("bob's page opened %d sockets, want a second one after the kill", opened)
	}
	if opened := evalJS[int](alice, `__ws.opened`); opened != 1 {
		t.Errorf("alice's page opened %d sockets; her node never went down", opened)
	}

	shot := clusterScreenshot(t, []*chatPage{alice, bob}, []string{
		strings.TrimPrefix(nodes[0].url, "http://") + " · node 1",
		strings.TrimPrefix(nodes[1].url, "http://") + " · node 2, killed with kill -9 and restarted",
	})
	s.interrupt(2)
	if os.Getenv(envScreenshot) != "1" {
		return
	}
	if err := os.WriteFile(filepath.Join("..", "..", "docs", "chat-cluster.png"), shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote docs/chat-cluster.png (%d bytes)", len(shot))
}

// The screenshot: each page at shotW x shotH, in a window frame with its
// address, side by side.
const (
	shotW, shotH = 720, 620
	framePad     = 28
	frameBar     = 39 // the title bar and its border
	frameW       = 2*shotW + 3*framePad
	frameH       = shotH + frameBar + 2*framePad
)

var frameHTML = template.Must(template.New("frame").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><style>
body { margin: 0; background: #e4e8f0; font: 14px/1 -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
.row { display: flex; gap: {{.Pad}}px; padding: {{.Pad}}px; }
.win { border-radius: 10px; overflow: hidden; background: #fff; box-shadow: 0 6px 24px rgba(20, 32, 58, .25); }
.bar { box-sizing: border-box; height: {{.Bar}}px; display: flex; align-items: center; gap: 7px; padding: 0 12px;
       background: #f3f5f9; border-bottom: 1px solid #d9dde6; }
.dot { width: 11px; height: 11px; border-radius: 50%; background: #cfd4de; }
.url { margin-left: 8px; flex: 1; padding: 6px 12px; border-radius: 6px; background: #fff; color: #1d2433;
       white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
img { display: block; width: {{.W}}px; height: {{.H}}px; }
</style></head><body><div class="row">
{{range $i, $c := .Captions}}<div class="win"><div class="bar"><span class="dot"></span><span class="dot"></span><span class="dot"></span>
<span class="url">{{$c}}</span></div><img src="/{{$i}}.png" alt=""></div>
{{end}}</div></body></html>`))

// clusterScreenshot captures each page and returns them framed side by
// side, as one PNG.
func clusterScreenshot(t *testing.T, pages []*chatPage, captions []string) []byte {
	t.Helper()
	mux := http.NewServeMux()
	for i, p := range pages {
		p.do(chromedp.EmulateViewport(shotW, shotH), chromedp.Evaluate[chromedp.Void](`document.activeElement.blur()`))
		// The page must fit: a taller one would be cut at the bottom.
		p.waitFor(fmt.Sprintf(`innerWidth === %d && document.documentElement.scrollHeight <= %d`, shotW, shotH))
		shot, err := chromedp.Run(p.ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatal(err)
		}
		checkPNG(t, shot, shotW, shotH)
		mux.HandleFunc(fmt.Sprintf("GET /%d.png", i), func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "image/png")
			w.Write(shot)
		})
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		err := frameHTML.Execute(w, map[string]any{"Pad": framePad, "Bar": frameBar, "W": shotW, "H": shotH, "Captions": captions})
		if err != nil {
			t.Error(err)
		}
	})
	hs := httptest.NewServer(mux)
	defer hs.Close()
	frame := newTab(t, "frame")
	frame.do(chromedp.EmulateViewport(frameW, frameH), chromedp.Navigate(hs.URL+"/"))
	if _, err := chromedp.Run(frame.ctx, chromedp.Poll[chromedp.Void](
		`[...document.images].every((img) => img.complete && img.naturalWidth > 0)`)); err != nil {
		t.Fatalf("the framed screenshots did not load: %v", err)
	}
	shot, err := chromedp.Run(frame.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	checkPNG(t, shot, frameW, frameH)
	return shot
}

func checkPNG(t *testing.T, shot []byte, w, h int) {
	t.Helper()
	cfg, err := png.DecodeConfig(bytes.NewReader(shot))
	if err != nil || cfg.Width != w || cfg.Height != h {
		t.Fatalf("screenshot: %dx%d, %v; want a %dx%d PNG", cfg.Width, cfg.Height, err, w, h)
	}
}
