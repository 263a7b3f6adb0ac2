package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/whalesong/bus/bridge"
)

// Browser tests of what the chat and the client do about missed events
// (issue 8): scrolling back through history, the gap marker naming what
// is missing, a restart re-applying { last: 20 }, a conflated page that
// cannot keep up.

// scrollToTop scrolls the room to its top, as a reader dragging the
// scrollbar up does (the scroller is a reversed column: its top is the
// most negative scrollTop).
func (p *chatPage) scrollToTop() {
	p.t.Helper()
	p.do(chromedp.Evaluate[chromedp.Void](`(() => { const s = document.getElementById("scroller"); s.scrollTop = -s.scrollHeight; })()`))
}

// TestBrowserScrollBack: a page joins a room with its newest 50 messages;
// scrolling to the top loads older ones, page by page, until the server
// has nothing older: every retained message once, in order. A room whose
// history keeps less stops at its oldest retained message.
func TestBrowserScrollBack(t *testing.T) {
	for _, tt := range []struct {
		name    string
		history int
		keep    int // the oldest message shown at the end
	}{
		{"everything retained", defaultHistory, 0},
		{"history shorter than the room", 120, 180 - 120},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ct := newChatTest(t, tt.history)
			for i := range 180 {
				nick := []string{"carol", "dave"}[i%2] // no grouping: every message has its header
				ct.publish("lobby", nick, fmt.Sprint("m ", i))
			}
			alice := ct.openPage("alice", "lobby")
			alice.waitShown(50)
			checkExactlyOnce(t, alice, numbered("m", 130, 180))
			for round := 0; !evalJS[bool](alice, `__chat.olderDone()`); round++ {
				if round > 10 {
					t.Fatalf("still not at the oldest message after %d scrolls: %s", round, alice.debugState())
				}
				shown := len(alice.messages())
				alice.scrollToTop()
				alice.waitFor(fmt.Sprintf(`__chat.messages().length > %d || __chat.olderDone()`, shown))
			}
			checkExactlyOnce(t, alice, numbered("m", tt.keep, 180))
			if pages := evalJS[int](alice, `__chat.pages`); pages < (180-tt.keep-50)/50 {
				t.Errorf("%d history pages read, want at least %d", pages, (180-tt.keep-50)/50)
			}
			// Live messages still arrive at the bottom.
			ct.publish("lobby", "carol", "live")
			alice.waitShown(180 - tt.keep + 1)
			checkExactlyOnce(t, alice, append(numbered("m", tt.keep, 180), "live"))
		})
	}
}

// TestBrowserGapMarkerNamesTheRange: a page that was away while the room's
// history moved past it resumes with gap info {reason "evicted", after,
// before}, and its marker names the messages that may be missing.
func TestBrowserGapMarkerNamesTheRange(t *testing.T) {
	ct := newChatTest(t, 10)
	var seen []uint64
	for i := range 3 {
		seen = append(seen, ct.publish("lobby", "carol", fmt.Sprint("before ", i)))
	}
	alice := ct.openPage("alice", "lobby")
	alice.waitShown(3)
	ct.setOffline(true)
	if ct.cut("alice") == 0 {
		t.Fatal("no socket of alice's to cut")
	}
	alice.waitFor(`__chat.state === "connecting"`)
	var away []uint64
	for i := range 30 {
		away = append(away, ct.publish("lobby", "dave", fmt.Sprint("away ", i)))
	}
	ct.setOffline(false)
	alice.waitFor(`__chat.gapInfo.length > 0 && __chat.state === "open"`)
	alice.waitShown(13)
	type gapInfo struct {
		Pattern, Reason string
		After, Before   uint64
	}
	gaps := evalJS[[]gapInfo](alice, `__chat.gapInfo.filter((g) => g.pattern === "chat.lobby")`)
	retained := away[20:] // the room keeps 10
	want := gapInfo{"chat.lobby", "evicted", seen[2], retained[0]}
	if len(gaps) != 1 || gaps[0] != want {
		t.Fatalf("gap info %+v, want [%+v]", gaps, want)
	}
	items := evalJS[[]string](alice, `[...document.querySelectorAll("#messages > li")].map((li) =>
	  li.classList.contains("divider") ? li.textContent : li.querySelector(".text").textContent)`)
	marker := fmt.Sprintf("messages #%d to #%d may be missing here", seen[2]+1, retained[0]-1)
	wantItems := append(append(numbered("before", 0, 3), marker), numbered("away", 20, 30)...)
	if !slices.Equal(items, wantItems) {
		t.Errorf("page shows %q,\nwant %q", items, wantItems)
	}
}

// probeScript connects a second client in the page (the served module,
// as an application would) and records what its handler gets, in
// window.__probe. It runs in the chat's origin, so that it may use /ws.
const probeScript = `(async () => {
  const p = window.__probe = { events: [], gaps: [], states: [], errors: [], newest: {}, handed: 0, skipped: 0, withSkipped: 0, lastSeq: 0 };
  const { connect } = await import("/whalesong.js");
  const client = connect("ws://" + location.host + "/ws?nick=probe", { minDelay: 100, initialDelay: 200, maxDelay: 1000 });
  p.client = client;
  client.on("state", (s) => p.states.push(s));
  client.on("gap", (g) => p.gaps.push({ ...g, at: p.events.length }));
  client.on("error", (e) => p.errors.push(e.code));
  const sub = client.subscribe(%q, (ev) => {
    p.handed++;
    if (ev.skipped) { p.skipped += ev.skipped; p.withSkipped++; }
    p.newest[ev.topic] = { seq: ev.seq, text: ev.data.text.split(" ").slice(0, 2).join(" ") };
    p.events.push({ seq: ev.seq, epoch: client.epoch });
    p.lastSeq = ev.seq;
  }, %s);
  await sub.ready;
  p.ready = true;
})()`

// openProbe opens the chat's page without a nick (the page itself does not
// connect) and starts the probe client on pattern with opts.
func (c *chatTest) openProbe(pattern, opts string) *chatPage {
	c.t.Helper()
	p := c.newTab("probe")
	p.do(chromedp.Navigate(c.hs.URL+"/"), chromedp.WaitVisible(chromedp.ID("join-nick")))
	start(p, fmt.Sprintf(probeScript, pattern, opts))
	p.waitFor(`window.__probe && __probe.ready === true && __probe.states.at(-1) === "open"`)
	return p
}

// TestBrowserRestartReappliesLast: after a server restart (a new epoch
// holding 80 messages), a { last: 20 } subscription fires gap "reset" with
// the range and then hands its handler the 20 newest messages of the new
// stream, not all 80; the chat page, which joins with { last: 50 }, shows
// at most 50 of them after its marker.
func TestBrowserRestartReappliesLast(t *testing.T) {
	ct := newChatTest(t, defaultHistory)
	last := ct.publish("lobby", "carol", "before restart")
	probe := ct.openProbe("chat.lobby", `{ last: 20 }`)
	probe.waitFor(`__probe.handed === 1`)
	alice := ct.openPage("alice", "lobby")
	alice.waitShown(1)

	ct.setOffline(true) // the pages come back only once the new stream holds its 80
	ct.restart()
	var fresh []uint64
	for i := range 80 {
		fresh = append(fresh, ct.publish("lobby", "dave", fmt.Sprint("new ", i)))
	}
	ct.setOffline(false)
	probe.waitFor(fmt.Sprintf(`__probe.lastSeq === %d && __probe.states.at(-1) === "open"`, fresh[79]))
	type gap struct {
		Pattern, Reason string
		After, Before   uint64
		At              int
	}
	got := evalJS[struct {
		Handed int      `json:"handed"`
		Gaps   []gap    `json:"gaps"`
		Errors []string `json:"errors"`
		Events []struct {
			Seq   uint64 `json:"seq"`
			Epoch string `json:"epoch"`
		} `json:"events"`
	}](probe, `({handed: __probe.handed, gaps: __probe.gaps, errors: __probe.errors, events: __probe.events})`)
	var newSeqs []uint64
	for _, ev := range got.Events[1:] {
		if ev.Epoch != ct.bus().Epoch() {
			t.Errorf("event %d of epoch %q after the restart", ev.Seq, ev.Epoch)
		}
		newSeqs = append(newSeqs, ev.Seq)
	}
	if !slices.Equal(newSeqs, fresh[60:]) {
		t.Errorf("after the restart { last: 20 } handed %d events %v, want the 20 newest %v", len(newSeqs), newSeqs, fresh[60:])
	}
	if want := (gap{"chat.lobby", "reset", last, fresh[60], 1}); len(got.Gaps) != 1 || got.Gaps[0] != want {
		t.Errorf("gaps %+v, want [%+v] (before the first new event)", got.Gaps, want)
	}

	alice.waitFor(fmt.Sprintf(`__chat.lastSeq === %d`, fresh[79]))
	items := evalJS[[]string](alice, `[...document.querySelectorAll("#messages > li")].map((li) =>
	  li.classList.contains("divider") ? "(gap: " + li.textContent + ")" : li.querySelector(".text").textContent)`)
	want := append([]string{"before restart", fmt.Sprintf("(gap: server restarted: messages after #%d may be missing here)", last)}, numbered("new", 30, 80)...)
	if !slices.Equal(items, want) {
		t.Errorf("chat page shows %q,\nwant %q", items, want)
	}
}

// TestBrowserConflatedPageKeepsNewest: a page on a { conflate: true }
// subscription whose main thread is blocked while the server publishes
// far more than the socket and the bridge's backlog (64) hold is never cut
// off, ends with the newest value of every topic, and accounts for every
// event: handed to it, or counted in the skipped of a later one.
func TestBrowserConflatedPageKeepsNewest(t *testing.T) {
	ct := newChatTest(t, 8, bridge.WithMaxBacklog(64))
	probe := ct.openProbe("chat.*", `{ conflate: true }`)
	start(probe, `setTimeout(() => { const end = Date.now() + 1500; while (Date.now() < end) {} }, 0)`)
	const rooms, n = 5, 10000
	pad := strings.Repeat("x", 400)
	newest := map[string]string{}
	var last uint64
	for i := range n {
		room := fmt.Sprint("r", i%rooms)
		last = ct.publish(room, "bot", fmt.Sprintf("n %d %s", i, pad))
		newest["chat."+room] = fmt.Sprint("n ", i)
	}
	probe.waitFor(fmt.Sprintf(`__probe.lastSeq === %d`, last))
	got := evalJS[struct {
		Handed      int                              `json:"handed"`
		Skipped     int                              `json:"skipped"`
		WithSkipped int                              `json:"withSkipped"`
		States      []string                         `json:"states"`
		Errors      []string                         `json:"errors"`
		Closes      []int                            `json:"closes"`
		Newest      map[string]struct{ Text string } `json:"newest"`
	}](probe, `({handed: __probe.handed, skipped: __probe.skipped, withSkipped: __probe.withSkipped,
	  states: __probe.states, errors: __probe.errors, closes: __ws.closes, newest: __probe.newest})`)
	t.Logf("%d events: %d handed over, %d superseded (counted in %d events' skipped)", n, got.Handed, got.Skipped, got.WithSkipped)
	for topic, text := range newest {
		if got.Newest[topic].Text != text {
			t.Errorf("%s: newest handed %q, want %q", topic, got.Newest[topic].Text, text)
		}
	}
	if got.Skipped == 0 {
		t.Errorf("nothing was superseded: the page kept up, the test proves nothing")
	}
	if got.Handed+got.Skipped != n {
		t.Errorf("handed %d + skipped %d = %d, want all %d accounted for", got.Handed, got.Skipped, got.Handed+got.Skipped, n)
	}
	if len(got.Closes) != 0 || slices.Contains(got.States, "connecting") || len(got.Errors) != 0 {
		t.Errorf("closes %v, states %v, errors %v: a conflated page is never cut off", got.Closes, got.States, got.Errors)
	}
	if s := scrape(t, ct.hs.URL); s["whalesong_bridge_events_superseded_total"] != float64(got.Skipped) || s[`whalesong_bridge_disconnects_total{reason="slow"}`] != 0 {
		t.Errorf("metrics: superseded %v (want %d), slow disconnects %v", s["whalesong_bridge_events_superseded_total"], got.Skipped, s[`whalesong_bridge_disconnects_total{reason="slow"}`])
	}
}
