package bridge

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// closeFrame reads until the connection ends and returns its close code
// and reason; it fails the test without a close frame.
func (cl *client) closeFrame() (int, string) {
	cl.t.Helper()
	for {
		_ = cl.c.SetReadDeadline(time.Now().Add(readWait))
		if _, _, err := cl.c.ReadMessage(); err != nil {
			var ce *websocket.CloseError
			if !errors.As(err, &ce) {
				cl.t.Fatalf("connection ended without a close frame: %v", err)
			}
			return ce.Code, ce.Text
		}
	}
}

// TestKickClosesMatching: Kick closes with 4003 and the reason exactly the
// connections whose identity matches, returns how many, and leaves the
// others open.
func TestKickClosesMatching(t *testing.T) {
	s := newServer(t, nil, WithAuthenticate(nameAuth))
	ann1, ann2, ben := s.dialAs(t, "ann"), s.dialAs(t, "ann"), s.dialAs(t, "ben")
	ann1.sub("s", "t", nil)
	waitFor(t, "three clients", func() bool { return s.br.Clients() == 3 })
	n := s.br.Kick(func(id any) bool { return id == "ann" }, "banned: spam")
	if n != 2 {
		t.Fatalf("Kick returned %d, want 2", n)
	}
	for _, cl := range []*client{ann1, ann2} {
		if code, reason := cl.closeFrame(); code != closeKicked || reason != "banned: spam" {
			t.Fatalf("kicked client: closed with %d %q, want 4003 with the reason", code, reason)
		}
	}
	ben.ping()
	waitFor(t, "the kicked to leave", func() bool { return s.br.Clients() == 1 })
	if n := s.br.Kick(func(id any) bool { return id == "ann" }, "again"); n != 0 {
		t.Fatalf("Kick of gone connections returned %d", n)
	}
	if n := s.br.Kick(nil, "nil matches none"); n != 0 {
		t.Fatalf("Kick(nil) returned %d", n)
	}
	ben.ping()
	if st := s.br.Stats(); st.Kicked != 2 || st.Subscriptions != 0 {
		t.Fatalf("stats: kicked %d, subscriptions %d; want 2, 0", st.Kicked, st.Subscriptions)
	}
}

// TestKickReasonFitsACloseFrame: a reason too long for a close frame, or
// not valid UTF-8, is clipped at a character boundary and made valid, so
// that the close frame is one a browser accepts.
func TestKickReasonFitsACloseFrame(t *testing.T) {
	long := strings.Repeat("é", 100) // 200 bytes
	tests := []struct{ reason, want string }{
		{"short", "short"},
		{long, strings.Repeat("é", 61)}, // 122 bytes: the 62nd would end at 124
		{"bad \xff byte", "bad \uFFFD byte"},
		{"", ""},
	}
	for _, tt := range tests {
		synctest.Test(t, func(t *testing.T) {
			s := newMemServer(t, nil)
			cl := s.dial(t)
			synctest.Wait()
			if n := s.br.Kick(func(any) bool { return true }, tt.reason); n != 1 {
				t.Fatalf("Kick returned %d", n)
			}
			if code := cl.closeCode(); code != closeKicked {
				t.Fatalf("close code %d", code)
			}
			cf := s.ws.Last().CloseFrames()
			if len(cf) != 1 || cf[0].CloseReason() != tt.want || len(cf[0].Payload) > 125 || !utf8.ValidString(cf[0].CloseReason()) {
				t.Fatalf("reason %q: close frames %+v, want one with reason %q", tt.reason, cf, tt.want)
			}
		})
	}
}

// TestKickAndReauthorizeHoldNoLock: match and the authorizer run with no
// lock of the bridge held: calling back into the bridge from them does not
// deadlock.
func TestKickAndReauthorizeHoldNoLock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var br *Bridge[msg]
		reentrant := func() {
			br.Kick(func(any) bool { return false }, "")
			br.Reauthorize(func(any) bool { return false })
			_ = br.Stats()
			_ = br.Clients()
		}
		var recheck atomic.Bool
		authorize := func(any, Action, string) error {
			if recheck.Load() {
				reentrant()
			}
			return nil
		}
		s := newMemServer(t, nil, WithAuthorize(authorize))
		br = s.br
		cl := s.dial(t)
		cl.sub("s", "t", nil)
		recheck.Store(true)
		if n := br.Reauthorize(func(any) bool { reentrant(); return true }); n != 0 {
			t.Fatalf("Reauthorize ended %d", n)
		}
		if n := br.Kick(func(any) bool { reentrant(); return true }, "bye"); n != 1 {
			t.Fatalf("Kick closed %d", n)
		}
		if code := cl.closeCode(); code != closeKicked {
			t.Fatalf("close code %d", code)
		}
	})
}

// TestHelloLeavesAfterTheSessionJoins: a client has its hello only once
// its session is in the registry, so that Kick (and Close) find every
// client that has one. The hook sees, as each session joins, whether its
// writer had already taken the hello; a Kick sent the moment the hello
// arrives closes the client.
func TestHelloLeavesAfterTheSessionJoins(t *testing.T) {
	var joins, early atomic.Int32
	hook := func(taken bool) {
		joins.Add(1)
		if taken {
			early.Add(1)
		}
	}
	joinHook.Store(&hook)
	defer joinHook.Store(nil)
	s := newServer(t, nil, WithAuthenticate(nameAuth))
	for i := range 20 {
		name := "ann" + strings.Repeat("n", i)
		cl := s.dialAs(t, name) // returns once the hello is read
		if n := s.br.Kick(func(id any) bool { return id == name }, "at once"); n != 1 {
			t.Fatalf("Kick right after the hello found %d sessions, want 1", n)
		}
		if code, _ := cl.closeFrame(); code != closeKicked {
			t.Fatalf("kicked right after its hello: closed with %d, want %d", code, closeKicked)
		}
	}
	if joins.Load() != 20 || early.Load() != 0 {
		t.Fatalf("%d of %d sessions had their hello taken before they joined", early.Load(), joins.Load())
	}
}
