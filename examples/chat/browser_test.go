package main

import (
	"bytes"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/whalesong/bus/bridge"
)

// checkExactlyOnce fails unless p shows exactly want (texts, oldest first)
// with strictly increasing seqs: nothing lost, nothing twice, in order.
func checkExactlyOnce(t *testing.T, p *chatPage, want []string) {
	t.Helper()
	got := p.messages()
	var texts []string
	for i, m := range got {
		texts = append(texts, m.Text)
		if i > 0 && m.Seq <= got[i-1].Seq {
			t.Errorf("%s's page: seq %d after %d", p.nick, m.Seq, got[i-1].Seq)
		}
	}
	if !slices.Equal(texts, want) {
		t.Errorf("%s's page shows %d messages %q,\nwant %d %q", p.nick, len(texts), texts, len(want), want)
	}
	if n := evalJS[int](p, `__chat.outOfOrder`); n != 0 {
		t.Errorf("%s's page: handler saw %d events out of order", p.nick, n)
	}
}

func numbered(prefix string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%s %d", prefix, i))
	}
	return out
}

// TestBrowserTwoPagesChat: a page joins with the room's last 50 messages; two
// pages talk through the UI; a message in another room only counts as unread.
func TestBrowserTwoPagesChat(t *testing.T) {
	ct := newChatTest(t, defaultHistory)
	for _, text := range numbered("old", 0, 60) {
		ct.publish("lobby", "carol", text)
	}
	alice := ct.openPage("alice", "lobby")
	bob := ct.openPage("bob", "lobby")
	alice.waitShown(50)
	bob.waitShown(50)

	alice.typeMessage("hello bob")
	bob.waitShown(51)
	bob.typeMessage("hi alice")
	alice.waitShown(52)
	bob.waitShown(52)
	want := append(numbered("old", 10, 60), "hello bob", "hi alice")
	checkExactlyOnce(t, alice, want)
	checkExactlyOnce(t, bob, want)
	if got := bob.messages()[50]; got.Nick != "alice" {
		t.Errorf("bob sees %q from %q, want from alice", got.Text, got.Nick)
	}

	alice.do(chromedp.Click(chromedp.CSS(`#rooms button[data-room="golang"]`)))
	alice.waitFor(`__chat.room === "golang" && __chat.messages().length === 0`)
	alice.typeMessage("anyone into generics?")
	alice.waitShown(1)
	checkExactlyOnce(t, alice, []string{"anyone into generics?"})
	bob.waitFor(`document.querySelector('#rooms button[data-room="golang"] .unread')?.textContent === "1"`)
	checkExactlyOnce(t, bob, want)
}

// TestBrowserAskNick: without a nick the page asks for one, refuses a bad
// one, and connects with a good one, which it remembers.
func TestBrowserAskNick(t *testing.T) {
	ct := newChatTest(t, defaultHistory)
	p := ct.newTab("dora")
	p.do(chromedp.Navigate(ct.hs.URL+"/#random"), chromedp.WaitVisible(chromedp.ID("join-nick")))
	p.do(chromedp.SendKeys(chromedp.ID("join-nick"), "<dora>\r"), chromedp.WaitVisible(chromedp.ID("join-error")))
	if state := evalJS[string](p, `__chat.state + " " + __chat.states.length`); state != "connecting 0" {
		t.Errorf("before a nick the page reports %q, want no connection", state)
	}
	p.do(chromedp.Evaluate[chromedp.Void](`document.getElementById("join-nick").value = ""`),
		chromedp.SendKeys(chromedp.ID("join-nick"), "dora\r"))
	p.waitFor(`__chat.state === "open" && __chat.room === "random"`)
	p.do(chromedp.WaitNotVisible(chromedp.ID("join")))
	me := evalJS[string](p, `document.getElementById("me-nick").textContent + " " + localStorage.getItem("whalesong.chat.nick")`)
	if me != "dora dora" {
		t.Errorf("page shows and stores %q, want dora", me)
	}
}

// TestBrowserResumeAfterCut: the server cuts bob's socket while alice keeps
// publishing; bob's page reconnects and shows every message exactly once,
// in order.
func TestBrowserResumeAfterCut(t *testing.T) {
	const n = 80
	ct := newChatTest(t, defaultHistory)
	alice := ct.openPage("alice", "lobby")
	bob := ct.openPage("bob", "lobby")

	start(alice, fmt.Sprintf(`(async () => {
	  window.__sent = 0;
	  for (let i = 0; i < %d; i++) {
	    const r = await __chat.send("m " + i);
	    if (r.seq) __sent++;
	    await new Promise((ok) => setTimeout(ok, 25)); // a person typing fast
	  }
	})()`, n))
	for _, at := range []int{10, 40} {
		bob.waitFor(fmt.Sprintf(`__chat.state === "open" && __chat.received >= %d`, at))
		if ct.cut("bob") == 0 {
			t.Fatal("no socket of bob's to cut")
		}
		if sent := evalJS[int](alice, `__sent`); sent >= n {
			t.Fatalf("the cut after %d messages came when alice had sent all %d: it proves nothing", at, sent)
		}
	}
	alice.waitFor(fmt.Sprintf(`__sent === %d`, n))
	alice.typeMessage("end")
	bob.waitShown(n + 1)
	checkExactlyOnce(t, bob, append(numbered("m", 0, n), "end"))
	if opened := evalJS[int](bob, `__ws.opened`); opened < 3 {
		t.Errorf("bob's page opened %d sockets, want at least 3 (two cuts)", opened)
	}
	if gaps := evalJS[[]string](bob, `__chat.gaps`); len(gaps) != 0 {
		t.Errorf("bob's page saw gaps %q; everything was retained", gaps)
	}
}

// TestBrowserRestartGivesGap: the server restarts with a fresh bus (a new
// epoch); the page reports a gap, marks it, and goes on with the new stream.
func TestBrowserRestartGivesGap(t *testing.T) {
	ct := newChatTest(t, defaultHistory)
	ct.publish("lobby", "carol", "before restart")
	alice := ct.openPage("alice", "lobby")
	alice.waitShown(1)

	// The new bus has a message before the page is back (its reconnect waits
	// at least 250 ms): the gap must still come before it.
	ct.restart()
	ct.publish("lobby", "carol", "after restart")
	alice.waitFor(`__chat.gaps.includes("chat.lobby") && __chat.state === "open"`)
	alice.do(chromedp.WaitVisible(chromedp.ID("notice")))
	alice.waitShown(2)
	items := evalJS[[]string](alice, `[...document.querySelectorAll("#messages > li")].map((li) =>
	  li.classList.contains("divider") ? "(gap)" : li.querySelector(".text").textContent)`)
	if want := []string{"before restart", "(gap)", "after restart"}; !slices.Equal(items, want) {
		t.Errorf("page shows %q, want %q", items, want)
	}
	if n := evalJS[int](alice, `__chat.outOfOrder`); n != 0 {
		t.Errorf("%d events out of order within the new epoch", n)
	}
}

// TestBrowserOfflineMessageLandsOnce: a message written while the page is
// offline waits in the outbox and lands exactly once after the reconnect.
func TestBrowserOfflineMessageLandsOnce(t *testing.T) {
	ct := newChatTest(t, defaultHistory)
	alice := ct.openPage("alice", "lobby")
	bob := ct.openPage("bob", "lobby")

	ct.setOffline(true)
	if ct.cut("alice") == 0 {
		t.Fatal("no socket of alice's to cut")
	}
	alice.waitFor(`__chat.state === "connecting"`)
	alice.do(chromedp.WaitVisible(chromedp.CSS(`#state[data-state="connecting"]`)))
	alice.typeMessage("written offline")
	alice.waitFor(`document.querySelectorAll("#outbox .msg").length === 1`)
	if seq := ct.bus().Seq(); seq != 0 {
		t.Fatalf("bus has %d events while alice is offline", seq)
	}

	ct.setOffline(false)
	alice.waitShown(1)
	alice.waitFor(`document.querySelectorAll("#outbox .msg").length === 0`)
	bob.typeMessage("got it")
	alice.waitShown(2)
	bob.waitShown(2)
	for _, p := range []*chatPage{alice, bob} {
		checkExactlyOnce(t, p, []string{"written offline", "got it"})
	}
	if seq := ct.bus().Seq(); seq != 2 {
		t.Errorf("bus has %d events, want 2: the offline message landed more than once", seq)
	}
}

// TestBrowserForbiddenPublish: a publish outside chat.<room> rejects the
// promise with code forbidden and leaves the connection up.
func TestBrowserForbiddenPublish(t *testing.T) {
	ct := newChatTest(t, defaultHistory)
	alice := ct.openPage("alice", "lobby")
	type result struct {
		Seq  uint64 `json:"seq"`
		Code string `json:"code"`
	}
	tests := []struct {
		topic, code string
	}{
		{"news.today", "forbidden"},
		{"chat.lobby.thread", "forbidden"},
		{"chat.Lobby", "forbidden"},
		{"admin", "forbidden"},
		{"chat.lobby", ""},
	}
	for _, tt := range tests {
		got := evalJS[result](alice, `__chat.publish(`+jsString(tt.topic)+`, {nick: "alice", text: "x"})`)
		if got.Code != tt.code || (tt.code == "" && got.Seq != 1) {
			t.Errorf("publish to %s: %+v, want code %q", tt.topic, got, tt.code)
		}
	}
	if closes := evalJS[[]int](alice, `__ws.closes`); len(closes) != 0 || evalJS[string](alice, `__chat.state`) != "open" {
		t.Errorf("refusals closed the socket: closes %v", closes)
	}
	if seq := ct.bus().Seq(); seq != 1 {
		t.Errorf("bus has %d events, want 1", seq)
	}
}

// start runs JavaScript in p's page without waiting for it to finish.
func start(p *chatPage, js string) {
	p.t.Helper()
	p.do(chromedp.Evaluate[chromedp.Void](js + `, undefined`))
}

// TestBrowserSlowPageIsCutOffAndRecovers: a page whose main thread is busy
// reads nothing while the server publishes megabytes; the bridge (holding at
// most 64 unsent events for it) cuts it off with close code 4000 instead of
// buffering without bound, and the page then resumes from history and shows
// every message exactly once.
func TestBrowserSlowPageIsCutOffAndRecovers(t *testing.T) {
	const n = 1000
	ct := newChatTest(t, n, bridge.WithMaxBacklog(64))
	alice := ct.openPage("alice", "lobby")

	// The busy loop starts as soon as this evaluation returns; the page reads
	// nothing from its socket until it ends.
	start(alice, `setTimeout(() => { const end = Date.now() + 1500; while (Date.now() < end) {} }, 0)`)
	text := strings.Repeat("x", 4<<10)
	began := time.Now()
	var last uint64
	for i := range n {
		last = ct.publish("lobby", "bot", fmt.Sprintf("%d %s", i, text))
	}
	t.Logf("published %d messages of 4 KiB in %v", n, time.Since(began))

	alice.waitFor(`__ws.closes.includes(4000)`)
	t.Logf("the page saw close code 4000 after %v (it had %d messages by then)",
		time.Since(began), evalJS[int](alice, `__chat.received`))
	// The bridge counts a cut-off before it sends the close, so the scrape
	// shows it once the page has seen it.
	if n := scrape(t, ct.hs.URL)[`whalesong_bridge_disconnects_total{reason="slow"}`]; n < 1 {
		t.Errorf("whalesong_bridge_disconnects_total{reason=\"slow\"} = %v after the page saw 4000", n)
	}
	alice.waitFor(fmt.Sprintf(`__chat.state === "open" && __chat.lastSeq === %d`, last))
	t.Logf("the page had every message after %v", time.Since(began))
	got := evalJS[struct {
		Received   int      `json:"received"`
		OutOfOrder int      `json:"outOfOrder"`
		Gaps       []string `json:"gaps"`
	}](alice, `({received: __chat.received, outOfOrder: __chat.outOfOrder, gaps: __chat.gaps})`)
	if got.Received != n || got.OutOfOrder != 0 || len(got.Gaps) != 0 {
		t.Errorf("after the cut the page received %d of %d messages, %d out of order, gaps %q",
			got.Received, n, got.OutOfOrder, got.Gaps)
	}
	t.Logf("close codes seen by the page: %v", evalJS[[]int](alice, `__ws.closes`))
}

// TestBrowserScreenshot renders the chat with a conversation in two rooms. It
// writes docs/chat.png only when WHALESONG_SCREENSHOT=1, so that ordinary
// runs do not rewrite a tracked file.
func TestBrowserScreenshot(t *testing.T) {
	ct := newChatTest(t, defaultHistory)
	for _, m := range [][3]string{
		{"lobby", "maria", "Morning all! Standup in ten minutes."},
		{"lobby", "ken", "Morning! Did anyone try the new bridge build?"},
		{"golang", "rob", "Generics question: can a method have its own type parameters?"},
		{"golang", "lin", "Not on methods. Functions and types only."},
		{"golang", "lin", "The usual trick is a package-level func that takes the receiver as its first argument."},
		{"golang", "rob", "So Map(s, f) instead of s.Map(f). Fine by me, thanks!"},
		{"golang", "sam", "I pulled the network cable in the middle of this thread, by the way."},
		{"golang", "sam", "The page reconnected and caught up: every message once, in order."},
		{"golang", "lin", "That's the resume: it subscribes again after the last seq it saw."},
	} {
		ct.publish(m[0], m[1], m[2])
	}
	p := ct.openPage("ada", "golang")
	p.waitShown(7)
	p.typeMessage("Nice. I'm wiring the chat example into our status page next.")
	p.waitShown(8)
	ct.publish("lobby", "ken", "Shipping it today then.")
	ct.publish("lobby", "maria", "Ship it.")
	p.waitFor(`document.querySelector('#rooms button[data-room="lobby"] .unread')?.textContent === "2"`)
	p.do(chromedp.EmulateViewport(1200, 800), chromedp.Evaluate[chromedp.Void](`document.activeElement.blur()`))

	shot, err := chromedp.Run(p.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(shot))
	if err != nil || cfg.Width != 1200 || cfg.Height != 800 {
		t.Fatalf("screenshot: %dx%d, %v; want a 1200x800 PNG", cfg.Width, cfg.Height, err)
	}
	if os.Getenv(envScreenshot) != "1" {
		return
	}
	if err := os.WriteFile(filepath.Join("..", "..", "docs", "chat.png"), shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote docs/chat.png (%d bytes)", len(shot))
}
