package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gorilla/websocket"
	bus "github.com/whalesong/bus"
	"github.com/whalesong/bus/bridge/internal/wstest"
)

// closeBound is the write timeout of the tests below over real sockets:
// Close must return within it, plus closeSlack for a loaded machine to
// unwind (the bubble tests further down check the bound exactly). Without
// the fix these interleavings hang until the client hangs up.
const (
	closeBound = 2 * time.Second
	closeSlack = time.Second
)

// readToClose reads a client connection normally until it ends and returns
// the ops of the frames it got and the close code (-1: no close frame).
func readToClose(c *websocket.Conn, deadline time.Time) (ops []string, code int) {
	_ = c.SetReadDeadline(deadline)
	for {
		_, data, err := c.ReadMessage()
		if err != nil {
			if code, ok := wstest.CloseCode(err); ok {
				return ops, code
			}
			return ops, -1
		}
		var f struct{ Op string }
		_ = json.Unmarshal(data, &f)
		ops = append(ops, f.Op)
	}
}

// closeAsync starts br.Close; the channel is closed when it returns.
func closeAsync(br *Bridge[msg]) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		_ = br.Close()
		close(done)
	}()
	return done
}

// returnedBy reports whether done is closed by deadline.
func returnedBy(done <-chan struct{}, deadline time.Time) bool {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case <-done:
		return true
	case <-timer.C:
		return false
	}
}

// closeWithin runs br.Close, failing the test if it takes longer than
// bound. Then it calls unblock (hang up the clients) so that Close can
// finish and nothing leaks.
func closeWithin(t *testing.T, br *Bridge[msg], bound time.Duration, unblock func()) {
	t.Helper()
	start := time.Now()
	done := closeAsync(br)
	if returnedBy(done, start.Add(bound)) {
		return
	}
	unblock()
	<-done
	t.Fatalf("Close took longer than %v (returned %v after it began, once the clients hung up)", bound, time.Since(start))
}

// TestCloseDuringAuthenticate is the interleaving of issue 9: a request
// that Close finds in WithAuthenticate, which then succeeds. The socket is
// upgraded and sent hello; it must get its going-away like every other, and
// Close must return within the write timeout while the client reads
// normally. Half the rounds resume the authentication once Close has
// closed its registry (the session finds the bridge closing when it
// connects), half at the same time as Close (either order).
func TestCloseDuringAuthenticate(t *testing.T) {
	const rounds = 100
	for i := range rounds {
		closeDuringAuthenticate(t, i%2 == 0)
	}
}

func closeDuringAuthenticate(t *testing.T, afterClosing bool) {
	t.Helper()
	b := bus.New[msg]()
	defer b.Close()
	inAuth, resume := make(chan struct{}), make(chan struct{})
	br := New(b, WithWriteTimeout(closeBound), WithAuthenticate(func(*http.Request) (any, error) {
		close(inAuth)
		<-resume
		return "someone", nil
	}))
	if afterClosing {
		br.onClosing = func() { close(resume) }
	}
	srv := wstest.NewServer(t, br, wstest.Options{})
	defer srv.Close()
	type dialed struct {
		c   *websocket.Conn
		err error
	}
	dial := make(chan dialed, 1)
	go func() {
		c, err := srv.Dial(context.Background(), "/", wstest.DialOptions{})
		dial <- dialed{c, err}
	}()
	<-inAuth
	start := time.Now()
	done := closeAsync(br)
	if !afterClosing {
		close(resume)
	}
	d := <-dial
	if d.err != nil {
		<-done
		t.Fatalf("dial: %v", d.err)
	}
	defer d.c.Close()
	ops, code := readToClose(d.c, start.Add(closeBound))
	if !returnedBy(done, start.Add(closeBound+closeSlack)) {
		_ = d.c.Close() // the client hangs up at last
		<-done
		t.Fatalf("Close did not return within %v (after closing: %v); the client got %v, close code %d",
			closeBound, afterClosing, ops, code)
	}
	if len(ops) != 1 || ops[0] != "hello" || code != closeGoingAway {
		t.Fatalf("the client got %v then close code %d, want hello then 1001 (after closing: %v)", ops, code, afterClosing)
	}
}

// TestCloseWhileConnecting closes the bridge while clients keep dialing:
// each dial is refused with 503 or gets hello then going-away, and Close
// returns within the write timeout.
func TestCloseWhileConnecting(t *testing.T) {
	for range 10 {
		b := bus.New[msg]()
		br := New(b, WithWriteTimeout(closeBound))
		srv := wstest.NewServer(t, br, wstest.Options{})
		var wg sync.WaitGroup
		var mu sync.Mutex
		var conns []*websocket.Conn
		hangUp := func() {
			mu.Lock()
			defer mu.Unlock()
			for _, c := range conns {
				_ = c.Close()
			}
		}
		upgraded := make(chan struct{}, 64)
		failures := make(chan string, 64)
		for range 8 {
			wg.Go(func() {
				for {
					c, err := srv.Dial(context.Background(), "/", wstest.DialOptions{})
					var se *wstest.StatusError
					if errors.As(err, &se) && se.Status == http.StatusServiceUnavailable {
						return
					}
					if err != nil {
						failures <- fmt.Sprintf("dial: %v", err)
						return
					}
					mu.Lock()
					conns = append(conns, c)
					mu.Unlock()
					select {
					case upgraded <- struct{}{}:
					default:
					}
					ops, code := readToClose(c, time.Now().Add(2*closeBound))
					if len(ops) == 0 || ops[0] != "hello" || code != closeGoingAway {
						failures <- fmt.Sprintf("got %v, close code %d; want hello first, then 1001", ops, code)
						return
					}
				}
			})
		}
		<-upgraded
		closeWithin(t, br, closeBound+closeSlack, hangUp)
		wg.Wait()
		hangUp()
		srv.Close()
		_ = b.Close()
		close(failures)
		for f := range failures {
			t.Fatal(f)
		}
	}
}

// TestCloseWhileBusCloses closes the bus and the bridge at once: every
// client gets one close frame, going-away, and Close returns in time.
func TestCloseWhileBusCloses(t *testing.T) {
	for range 20 {
		b := bus.New[msg]()
		br := New(b, WithWriteTimeout(closeBound))
		srv := wstest.NewServer(t, br, wstest.Options{})
		clients := make([]*websocket.Conn, 5)
		for i := range clients {
			c, err := srv.Dial(context.Background(), "/", wstest.DialOptions{})
			if err != nil {
				t.Fatal(err)
			}
			clients[i] = c
			if i%2 == 0 { // some hold a subscription (a fanout sees the bus close too)
				_ = c.WriteMessage(websocket.TextMessage, []byte(`{"op":"sub","id":"r","sub":"s","pattern":"x"}`))
			}
		}
		go func() { _ = b.Close() }()
		closeWithin(t, br, closeBound+closeSlack, func() {
			for _, c := range clients {
				_ = c.Close()
			}
		})
		for i, c := range clients {
			if _, code := readToClose(c, time.Now().Add(closeBound)); code != closeGoingAway {
				t.Fatalf("client %d: close code %d, want 1001", i, code)
			}
			_ = c.Close()
		}
		for i, sc := range srv.Upgraded() {
			if cf := sc.CloseFrames(); len(cf) != 1 || cf[0].CloseCode() != closeGoingAway {
				t.Fatalf("connection %d: the server wrote close frames %+v, want one 1001", i, cf)
			}
		}
		srv.Close()
	}
}

// TestCloseWhileClientsHangUp closes the bridge while clients drop their
// sockets without a close frame (melody reports read and write errors
// during Close): Close returns in time.
func TestCloseWhileClientsHangUp(t *testing.T) {
	for range 20 {
		b := bus.New[msg]()
		br := New(b, WithWriteTimeout(closeBound))
		srv := wstest.NewServer(t, br, wstest.Options{})
		var clients []*websocket.Conn
		for range 5 {
			c, err := srv.Dial(context.Background(), "/", wstest.DialOptions{})
			if err != nil {
				t.Fatal(err)
			}
			clients = append(clients, c)
		}
		go srv.Cut()
		closeWithin(t, br, closeBound+closeSlack, func() {})
		for _, c := range clients {
			_ = c.Close()
		}
		srv.Close()
		_ = b.Close()
	}
}

// TestCloseDropsStalledClient: a client whose socket takes nothing holds
// a frame in flight; Close returns within the write timeout.
func TestCloseDropsStalledClient(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const timeout = 10 * time.Second
		s := newMemServer(t, nil, WithWriteTimeout(timeout))
		cl := s.dial(t)
		cl.sub("s", "x", nil)
		s.ws.Last().Stall()
		ended := wstest.Drain(cl.c)
		s.publish("x", msg{})
		time.Sleep(timeout / 2) // the frame waits in flight
		start := time.Now()
		_ = s.br.Close()
		if d := time.Since(start); d > timeout {
			t.Fatalf("Close took %v, write timeout %v", d, timeout)
		}
		if code := <-ended; code != -1 {
			t.Fatalf("a client that read nothing got close code %d", code)
		}
	})
}

// TestCloseDropsSlowClient is a slow link: each write takes most of the
// write timeout, so the frame in flight and then the close frame each fit
// in it, but not both. Close drops the socket once the write timeout has
// passed instead of waiting for both.
func TestCloseDropsSlowClient(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const timeout = 10 * time.Second
		s := newMemServer(t, nil, WithWriteTimeout(timeout))
		cl := s.dial(t)
		cl.sub("s", "x", nil)
		ended := wstest.Drain(cl.c)
		s.ws.Last().Slow(timeout * 8 / 10)
		s.publish("x", msg{})
		synctest.Wait() // the event is in flight
		start := time.Now()
		_ = s.br.Close()
		if d := time.Since(start); d > timeout {
			t.Fatalf("Close took %v, write timeout %v", d, timeout)
		}
		<-ended
	})
}

// TestStalledClientIsDropped: outside Close too, a client whose socket
// takes nothing for the write timeout is dropped, exactly then.
func TestStalledClientIsDropped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const timeout = 10 * time.Second
		s := newMemServer(t, nil, WithWriteTimeout(timeout))
		cl := s.dial(t)
		cl.sub("s", "x", nil)
		s.ws.Last().Stall()
		s.publish("x", msg{})
		time.Sleep(timeout - time.Nanosecond)
		synctest.Wait()
		if n := s.br.Clients(); n != 1 {
			t.Fatalf("dropped before the write timeout: %d clients", n)
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if n := s.br.Clients(); n != 0 {
			t.Fatalf("%d clients after the write timeout, want the stalled one dropped", n)
		}
	})
}

// TestOneCloseFramePerSession ends one session in every way at once while
// its socket takes nothing (so every close frame would queue in melody's
// buffer of 8): cut-offs, abuse and going-aways, then the bus closing and
// Close. Exactly one close frame leaves, the first decided.
func TestOneCloseFramePerSession(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newMemServer(t, nil)
		cl := s.dial(t)
		sc := s.ws.Last()
		sc.Stall()
		var sess *session[msg]
		s.br.mu.Lock()
		for x := range s.br.sessions {
			sess = x
		}
		s.br.mu.Unlock()
		sess.send(appendPong(newFrame(), "in flight")) // a frame held by the stall
		synctest.Wait()                                // the writer is in it
		var sent atomic.Int32
		var wg sync.WaitGroup
		for i := range 10 {
			e := []ending{endResumeNeeded, endAbuse, endGoingAway, endBusClosed}[i%4]
			wg.Go(func() {
				if sess.end(e) {
					sent.Add(1)
				}
			})
		}
		wg.Wait()
		_ = s.bus.Close() // the bus closing ends it once more
		synctest.Wait()
		sc.Unstall()
		ended := wstest.Drain(cl.c)
		_ = s.br.Close()
		code := <-ended
		if n := sent.Load(); n != 1 {
			t.Fatalf("%d calls sent a close frame, want 1", n)
		}
		cf := sc.CloseFrames()
		if len(cf) != 1 || cf[0].CloseCode() != code {
			t.Fatalf("close frames written %+v, client saw %d: want exactly one", cf, code)
		}
		// The close frame goes after the frame that was being written, and
		// nothing after it.
		frames := sc.Frames()
		last := len(frames) - 1
		pong := len(appendPong(nil, "in flight"))
		if frames[last].Opcode != wstest.OpClose || last == 0 || frames[last-1].Opcode != websocket.TextMessage || frames[last-1].Len != pong {
			t.Fatalf("frames written: %+v; want the frame in flight, then the close frame, last", frames)
		}
	})
}
