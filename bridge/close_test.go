package bridge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/gorilla/websocket"
	bus "github.com/whalesong/bus"
	"github.com/whalesong/bus/bridge/internal/wstest"
)

// TestCloseMidStream closes the bridge while a publisher runs and clients
// read: every client gets 1001, Close returns with every goroutine gone
// (goleak checks at the end of the package), the bus stays open, and new
// requests get 503.
func TestCloseMidStream(t *testing.T) {
	s := newServer(t, nil, WithAuthorize(allowAll))
	const n = 20
	clients := make([]*client, n)
	for i := range clients {
		clients[i] = s.dial(t)
		clients[i].sub("s", "feed.>", nil)
	}
	// One client publishes too, so a read loop is busy in a publish.
	ctx, stop := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			if _, err := s.bus.Publish(ctx, "feed.x", msg{N: i}); err != nil {
				return
			}
		}
	})
	clients[0].send(`{"op":"pub","id":"p","topic":"feed.y","data":{}}`)
	clients[1].events(5)

	codes := make(chan int, n)
	for _, cl := range clients {
		wg.Go(func() { codes <- cl.closeCodeQuiet() })
	}
	if err := s.br.Close(); err != nil {
		t.Fatal(err)
	}
	if s.br.Clients() != 0 {
		t.Fatalf("Clients() = %d after Close", s.br.Clients())
	}
	for range n {
		if code := <-codes; code != closeGoingAway {
			t.Fatalf("close code %d, want 1001", code)
		}
	}
	stop()
	wg.Wait()
	if _, err := s.bus.Publish(t.Context(), "after", msg{}); err != nil {
		t.Fatalf("the bus was closed too: %v", err)
	}
	_, err := s.tryDial(nil)
	var se *wstest.StatusError
	if !errors.As(err, &se) || se.Status != http.StatusServiceUnavailable {
		t.Fatalf("dial after Close: %v, want 503", err)
	}
	if err := s.br.Close(); err != nil { // idempotent
		t.Fatal(err)
	}
}

// TestCloseWithServerShutdown runs the bridge in a real http.Server:
// Shutdown leaves hijacked connections alone, Close ends them.
func TestCloseWithServerShutdown(t *testing.T) {
	s := newServer(t, nil)
	cl := s.dial(t)
	cl.sub("s", "x", nil)

	ctx, cancel := context.WithTimeout(t.Context(), readWait)
	defer cancel()
	if err := s.ws.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	s.publish("x", msg{Text: "still served"})
	if ev := cl.events(1)[0]; ev.Topic != "x" {
		t.Fatalf("event %+v", ev)
	}
	if err := s.br.Close(); err != nil {
		t.Fatal(err)
	}
	if code := cl.closeCode(); code != closeGoingAway {
		t.Fatalf("close code %d", code)
	}
}

func TestBusClosedClosesClients(t *testing.T) {
	s := newServer(t, nil)
	idle := s.dial(t) // no subscription: the bridge's watch notices
	busy := s.dial(t)
	busy.sub("s", "x", nil)
	if err := s.bus.Close(); err != nil {
		t.Fatal(err)
	}
	for _, cl := range []*client{idle, busy} {
		if code := cl.closeCode(); code != closeGoingAway {
			t.Fatalf("close code %d, want 1001", code)
		}
	}
	_, err := s.tryDial(nil)
	var se *wstest.StatusError
	if !errors.As(err, &se) || se.Status != http.StatusServiceUnavailable {
		t.Fatalf("dial with the bus closed: %v, want 503", err)
	}
}

func TestNewOnClosedBus(t *testing.T) {
	b := bus.New[msg]()
	_ = b.Close()
	s := newServer(t, b)
	_, err := s.tryDial(nil)
	var se *wstest.StatusError
	if !errors.As(err, &se) || se.Status != http.StatusServiceUnavailable {
		t.Fatalf("got %v, want 503", err)
	}
}

// TestStats runs in a bubble: synctest.Wait says when the counters of the
// write loops and of a leaving client have settled.
func TestStats(t *testing.T) { synctest.Test(t, testStats) }

func testStats(t *testing.T) {
	s := newMemServer(t, nil, WithAuthorize(func(_ any, a Action, p string) error {
		if strings.HasPrefix(p, "no") {
			return errors.New("no")
		}
		return nil
	}))
	a, b := s.dial(t), s.dial(t)
	a.sub("1", "t.>", nil)
	a.sub("2", "t.x", nil)
	b.sub("1", "t.>", nil)
	s.publish("t.x", msg{})
	a.events(2) // one entry each for "1" and "2"
	b.events(1)
	b.send(`{"op":"pub","id":"p","topic":"t.y","data":{}}`)
	b.expect("published")
	b.send(`{"op":"pub","id":"p","topic":"t.y","data":{}}`)
	b.expect("published")
	b.send(`{"op":"pub","id":"q","topic":"no.y","data":{}}`)
	b.expect("error")
	b.send(`junk`)
	b.expect("error")
	a.events(1) // t.y, for "1"
	b.events(1)

	st := s.br.Stats()
	want := Stats{
		Clients: 2, Subscriptions: 3, Patterns: 2,
		FramesIn: 3 + 4, Published: 1, Deduplicated: 1,
	}
	if st.Clients != want.Clients || st.Subscriptions != want.Subscriptions || st.Patterns != want.Patterns ||
		st.FramesIn != want.FramesIn || st.Published != want.Published || st.Deduplicated != want.Deduplicated {
		t.Fatalf("stats %+v, want %+v", st, want)
	}
	if st.Rejected["forbidden"] != 1 || st.Rejected["bad_frame"] != 1 || len(st.Rejected) != 2 {
		t.Fatalf("rejected %v", st.Rejected)
	}
	// Frames out so far: 2 hellos, 3 acks, 2 published, 2 errors, and the
	// 5 event entries in 3 frames or more.
	synctest.Wait()
	if st := s.br.Stats(); st.EventsOut != 5 || st.FramesOut < 9+3 {
		t.Fatalf("events out %d, frames out %d", st.EventsOut, st.FramesOut)
	}
	_ = a.c.Close()
	synctest.Wait()
	if st := s.br.Stats(); st.Clients != 1 || st.Subscriptions != 1 || st.Patterns != 1 {
		t.Fatalf("after a left: %+v", st)
	}
}

// TestCloseWaitsForMelodysHub: Close returns once melody's hub goroutine
// has handled its exit (melody's own Close only hands it the message): the
// hub says it is closed, and its goroutine, which returns right after
// saying so, is gone within a few yields (melody gives nothing to wait on
// for those last instructions; goleak checks the same at the end).
func TestCloseWaitsForMelodysHub(t *testing.T) {
	b := bus.New[msg]()
	defer b.Close()
	running := func() bool {
		buf := make([]byte, 1<<20)
		return bytes.Contains(buf[:runtime.Stack(buf, true)], []byte("melody.(*hub).run"))
	}
	for round := range 200 {
		br := New(b)
		_ = br.Close()
		if !br.m.IsClosed() {
			t.Fatalf("round %d: melody's hub had not handled its exit when Close returned", round)
		}
		for i := 0; running(); i++ {
			if i == 1000 {
				t.Fatalf("round %d: melody's hub goroutine still runs 1000 yields after Close returned", round)
			}
			runtime.Gosched()
		}
	}
}

// TestGoingAwayReachesAClientStillSending: a client whose frames the server
// has not read yet (its read loop waits in a publish while it goes on
// sending), and which is behind on its events, still gets its 1001 at
// Close. Closing the socket outright with its bytes unread makes the kernel
// reset the connection and throw away what it has not sent yet, the close
// frame with it; the bridge half-closes it instead and drains (see
// wire.Close).
func TestGoingAwayReachesAClientStillSending(t *testing.T) {
	for round := range 5 {
		b := bus.New[msg]()
		full, err := b.Subscribe("r.y", bus.WithBuffer(1)) // Block, never read: the second publish waits
		if err != nil {
			t.Fatal(err)
		}
		s := newServerWith(t, b, wstest.Options{SendBuffer: 4096}, WithAuthorize(allowAll), WithPublishRate(1e6, 1e6))
		cl := s.dialWith(t, wstest.DialOptions{RecvBuffer: 4096})
		cl.sub("s", "r.x", nil)
		for range 300 { // the client reads none of it yet: the server's send queue fills
			s.publish("r.x", msg{Text: strings.Repeat("e", 200)})
		}
		for i := range 200 { // the first fills full, the second waits; the rest stay unread
			cl.send(fmt.Sprintf(`{"op":"pub","id":"p%d","topic":"r.y","data":{"text":%q}}`, i, strings.Repeat("x", 500)))
		}
		waitFor(t, "a publish waiting for room", func() bool { return full.Pending() == 1 })
		closed := make(chan error, 1)
		go func() { closed <- s.br.Close() }()
		code := cl.closeCodeQuiet()
		if err := <-closed; err != nil {
			t.Fatal(err)
		}
		if code != websocket.CloseGoingAway {
			t.Fatalf("round %d: a client still sending got close code %d at Close, want 1001", round, code)
		}
		full.Close()
		_ = b.Close()
	}
}
