package bridge_test

// Integration tests of the browser client's answers to missed events (issue
// 8): latest, caughtUp, history paging, the gap info and the fallback of a
// resume, conflate and skipped. The served client runs in node
// (client/test/missed_it.mjs, conflate_it.mjs) against a real bridge.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	bus "github.com/whalesong/bus"
	"github.com/whalesong/bus/bridge"
)

// serveScript serves ClientJS at /whalesong.js and handler at /ws on
// httptest, and runs a script of client/test against it with
// WHALESONG_WS_URL and WHALESONG_CLIENT_URL set, plus env.
func serveScript(t *testing.T, ctx context.Context, handler http.Handler, script string, env ...string) *nodeScript {
	t.Helper()
	node, flags := findNode(t)
	mux := http.NewServeMux()
	mux.Handle("/whalesong.js", bridge.ClientJS())
	mux.Handle("/ws", handler)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	module := fetchClientJS(t, srv.URL+"/whalesong.js")
	path, err := filepath.Abs(filepath.Join("client", "test", script))
	if err != nil {
		t.Fatal(err)
	}
	env = append(env,
		"WHALESONG_WS_URL=ws"+strings.TrimPrefix(srv.URL, "http")+"/ws",
		"WHALESONG_CLIENT_URL="+(&url.URL{Scheme: "file", Path: filepath.ToSlash(module)}).String(),
	)
	return startScript(t, ctx, node, append(slices.Clone(flags), path), env)
}

// swappable serves whichever bridge is current (a server restart).
type swappable struct {
	current atomic.Pointer[bridge.Bridge[json.RawMessage]]
}

func (s *swappable) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.current.Load().ServeHTTP(w, r)
}

// publishN publishes n events on topic with data {"n": i}, returning the seqs.
func publishN(t *testing.T, ctx context.Context, b *bus.Bus[json.RawMessage], topic string, n int) []uint64 {
	t.Helper()
	seqs := make([]uint64, 0, n)
	for i := range n {
		seq, err := b.Publish(ctx, topic, json.RawMessage(fmt.Sprintf(`{"n":%d}`, i)))
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, seq)
	}
	return seqs
}

// jsBrief is an event as the scripts print it.
type jsBrief struct {
	Seq   uint64 `json:"seq"`
	Topic string `json:"topic"`
	Data  struct {
		N int `json:"n"`
	} `json:"data"`
}

func seqsOf(evs []jsBrief) []uint64 {
	out := make([]uint64, len(evs))
	for i, e := range evs {
		out[i] = e.Seq
	}
	return out
}

func seqRange(from, to uint64) []uint64 {
	var out []uint64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

// TestClientJSMissedEvents: { latest } hands the newest event of each
// topic and then caughtUp resolves; { last: 20 } the 20 newest; two history
// pages read back before them with `more` right; a forbidden pattern's page
// is refused; after a restart with a new bus the { last: 20 } subscription
// gets gap "reset" with the range first and then at most 20 events of the
// new stream (the fallback), not all 50.
func TestClientJSMissedEvents(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	authorize := bridge.WithAuthorize(func(_ any, _ bridge.Action, subject string) error {
		if strings.HasPrefix(subject, "deny.") {
			return errors.New("denied by the test")
		}
		return nil
	})
	b1 := bus.New[json.RawMessage](bus.WithHistory(100))
	defer b1.Close()
	var newestPx []uint64 // seqs of px.a, px.b, px.c's newest events
	for i := range 30 {
		topic := "px." + string(rune('a'+i%3))
		seq, err := b1.Publish(ctx, topic, json.RawMessage(fmt.Sprintf(`{"n":%d}`, i)))
		if err != nil {
			t.Fatal(err)
		}
		if i >= 27 {
			newestPx = append(newestPx, seq)
		}
	}
	room := publishN(t, ctx, b1, "room.1", 60) // seqs 31..90
	br1 := bridge.New(b1, authorize)
	defer br1.Close()
	sw := &swappable{}
	sw.current.Store(br1)
	js := serveScript(t, ctx, sw, "missed_it.mjs")

	var joined struct {
		Latest []jsBrief `json:"latest"`
		Last   []jsBrief `json:"last"`
		Pages  []struct {
			More   bool      `json:"more"`
			Epoch  string    `json:"epoch"`
			Events []jsBrief `json:"events"`
		} `json:"pages"`
		Forbidden string   `json:"forbidden"`
		Errors    []string `json:"errors"`
	}
	js.stepInto("joined", &joined)
	if got := seqsOf(joined.Latest); !slices.Equal(got, newestPx) {
		t.Errorf("{ latest } handed %v by caughtUp, want the newest of each topic %v, in seq order", got, newestPx)
	}
	if got := seqsOf(joined.Last); !slices.Equal(got, room[40:]) {
		t.Errorf("{ last: 20 } handed %v by caughtUp, want %v", got, room[40:])
	}
	if len(joined.Pages) != 2 {
		t.Fatalf("pages %+v", joined.Pages)
	}
	p1, p2 := joined.Pages[0], joined.Pages[1]
	if !slices.Equal(seqsOf(p1.Events), room[15:40]) || !p1.More || p1.Epoch != b1.Epoch() {
		t.Errorf("page 1: %v more %v epoch %q; want %v, more, %q", seqsOf(p1.Events), p1.More, p1.Epoch, room[15:40], b1.Epoch())
	}
	if !slices.Equal(seqsOf(p2.Events), room[:15]) || p2.More {
		t.Errorf("page 2: %v more %v; want %v, no more", seqsOf(p2.Events), p2.More, room[:15])
	}
	if joined.Forbidden != "forbidden" || len(joined.Errors) != 0 {
		t.Errorf("forbidden history: %q, errors %v; want a rejection with forbidden, no error event", joined.Forbidden, joined.Errors)
	}

	// Restart: a new bus (new epoch) holding 50 room.1 events; the old bridge goes away.
	b2 := bus.New[json.RawMessage](bus.WithHistory(100))
	defer b2.Close()
	room2 := publishN(t, ctx, b2, "room.1", 50)
	br2 := bridge.New(b2, authorize)
	defer br2.Close()
	sw.current.Store(br2)
	if err := br1.Close(); err != nil {
		t.Fatal(err)
	}
	js.send("restart " + strconv.FormatUint(room2[len(room2)-1], 10))
	var restarted struct {
		Gaps []struct {
			Pattern string `json:"pattern"`
			Reason  string `json:"reason"`
			After   uint64 `json:"after"`
			Before  uint64 `json:"before"`
		} `json:"gaps"`
		Events []jsBrief `json:"events"`
		Order  []string  `json:"order"`
		Epoch  string    `json:"epoch"`
	}
	js.stepInto("restarted", &restarted)
	if got := seqsOf(restarted.Events); !slices.Equal(got, room2[30:]) {
		t.Errorf("after the restart { last: 20 } handed %v, want the fallback's 20 newest %v", got, room2[30:])
	}
	var roomGap bool
	for _, g := range restarted.Gaps {
		if g.Pattern == "room.1" {
			roomGap = true
			if g.Reason != "reset" || g.After != room[len(room)-1] || g.Before != room2[30] {
				t.Errorf("room.1 gap %+v; want reset after %d before %d", g, room[len(room)-1], room2[30])
			}
		}
	}
	first := slices.Index(restarted.Order, fmt.Sprintf("ev:room.1:%d", room2[30]))
	if !roomGap || first < 0 || !slices.Contains(restarted.Order[:first], "gap:room.1") {
		t.Errorf("order %v: want gap:room.1 before the new stream's first event", restarted.Order)
	}
	if restarted.Epoch != b2.Epoch() {
		t.Errorf("client epoch %q, want %q", restarted.Epoch, b2.Epoch())
	}
}

// TestClientJSConflate: a reader that blocks while the server publishes far
// more than the socket and the bridge's backlog (WithMaxBacklog 64) hold, on
// a { conflate: true } subscription: it is never cut off, ends with the
// newest value of every topic, and every event is either handed over or
// counted in the skipped of a later one.
func TestClientJSConflate(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	b := bus.New[json.RawMessage](bus.WithHistory(8))
	defer b.Close()
	br := bridge.New(b, bridge.WithMaxBacklog(64))
	defer br.Close()
	js := serveScript(t, ctx, br, "conflate_it.mjs", "WHALESONG_STALL_MS=1500")
	var ready struct {
		From uint64 `json:"from"`
	}
	js.stepInto("ready", &ready)
	js.send("stall")
	js.stepInto("stalling", &struct{}{})
	const topics, events = 5, 20000
	pad := strings.Repeat("x", 400) // about 8 MB in all: far past the socket buffers
	last := map[string]int{}
	var seq uint64
	for i := range events {
		topic := "px." + string(rune('a'+i%topics))
		var err error
		seq, err = b.Publish(ctx, topic, json.RawMessage(fmt.Sprintf(`{"n":%d,"pad":%q}`, i, pad)))
		if err != nil {
			t.Fatal(err)
		}
		last[topic] = i
	}
	js.send("done " + strconv.FormatUint(seq, 10))
	var caught struct {
		Newest map[string]struct {
			Seq uint64 `json:"seq"`
			N   int    `json:"n"`
		} `json:"newest"`
		Handed      int      `json:"handed"`
		Skipped     int      `json:"skipped"`
		WithSkipped int      `json:"withSkipped"`
		States      []string `json:"states"`
		Errors      []string `json:"errors"`
	}
	js.stepInto("caught", &caught)
	t.Logf("%d events: %d handed over, %d superseded (in %d events' skipped)", events, caught.Handed, caught.Skipped, caught.WithSkipped)
	for topic, n := range last {
		if caught.Newest[topic].N != n {
			t.Errorf("%s: newest value handed %+v, want n=%d", topic, caught.Newest[topic], n)
		}
	}
	if caught.Skipped == 0 {
		t.Errorf("nothing was superseded: the reader kept up, the test proves nothing (stall longer or publish more)")
	}
	if caught.Handed+caught.Skipped != events {
		t.Errorf("handed %d + skipped %d = %d, want every one of the %d events accounted for", caught.Handed, caught.Skipped, caught.Handed+caught.Skipped, events)
	}
	if slices.Contains(caught.States, "connecting") || len(caught.Errors) != 0 {
		t.Errorf("states %v, errors %v: a conflated reader is never cut off", caught.States, caught.Errors)
	}
}
