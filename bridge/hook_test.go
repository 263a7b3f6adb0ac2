package bridge

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gorilla/websocket"
	bus "github.com/whalesong/bus"
	"github.com/whalesong/bus/bridge/internal/wstest"
	"github.com/whalesong/bus/internal/memlog"
)

// nameAuth makes the ?name= query parameter the identity.
func nameAuth(r *http.Request) (any, error) {
	name := r.URL.Query().Get("name")
	if name == "" {
		return nil, errors.New("no name")
	}
	return name, nil
}

// dialAs connects as name (see nameAuth).
func (s *server) dialAs(t testing.TB, name string) *client {
	t.Helper()
	c, err := s.ws.Dial(t.Context(), "/?name="+name, wstest.DialOptions{})
	if err != nil {
		t.Fatalf("dial as %s: %v", name, err)
	}
	return newClient(t, c)
}

// pub sends a publish and returns the answer to it.
func (cl *client) pub(id, topic, data string) frame {
	cl.t.Helper()
	cl.send(fmt.Sprintf(`{"op":"pub","id":%q,"topic":%q,"data":%s}`, id, topic, data))
	for {
		f := cl.read()
		if f.ID == id {
			return f
		}
		if f.Op != "events" {
			cl.t.Fatalf("got %+v while waiting for the answer to %s", f, id)
		}
		cl.early = append(cl.early, f.Events...)
	}
}

// stamp is a hook that writes the sender into the message and refuses
// empty text; it counts its calls.
type stamp struct{ calls atomic.Int64 }

var errEmpty = errors.New("chat: empty message")

func (h *stamp) hook(identity any, topic string, m msg) (msg, error) {
	h.calls.Add(1)
	if m.Text == "" {
		return m, errEmpty
	}
	m.Text = identity.(string) + ": " + strings.TrimSpace(m.Text)
	return m, nil
}

// TestPublishHookRewrites: what the hook returns is what the bus and every
// subscriber see, whatever the client sent.
func TestPublishHookRewrites(t *testing.T) {
	h := &stamp{}
	s := newServer(t, nil, WithAuthenticate(nameAuth), WithAuthorize(allowAll), WithPublishHook(h.hook))
	bob := s.dialAs(t, "bob")
	bob.sub("s", "chat", nil)
	alice := s.dialAs(t, "alice")
	f := alice.pub("p1", "chat", `{"text":"  bob: I am bob  "}`)
	if f.Op != "published" {
		t.Fatalf("publish: %+v", f)
	}
	evs := bob.events(1)
	if string(evs[0].Data) != `{"text":"alice: bob: I am bob"}` || evs[0].Seq != f.Seq {
		t.Fatalf("bob saw %s (seq %d), want the hook's rewrite at seq %d", evs[0].Data, evs[0].Seq, f.Seq)
	}
	hist, err := s.bus.History("chat", 0, 0)
	if err != nil || len(hist) != 1 || hist[0].Data.Text != "alice: bob: I am bob" {
		t.Fatalf("the bus holds %+v (%v), want the rewrite only", hist, err)
	}
}

// TestPublishHookRefuses: an error refuses the publish with forbidden and
// the error's text; nothing reaches the bus; the refusal is not
// remembered, so a retry with the same id runs the hook again.
func TestPublishHookRefuses(t *testing.T) {
	h := &stamp{}
	s := newServer(t, nil, WithAuthenticate(nameAuth), WithAuthorize(allowAll), WithPublishHook(h.hook))
	cl := s.dialAs(t, "alice")
	for range 2 {
		f := cl.pub("p1", "chat", `{"text":""}`)
		if f.Op != "error" || f.Code != "forbidden" || f.Message != errEmpty.Error() {
			t.Fatalf("refused publish answered %+v, want forbidden %q", f, errEmpty)
		}
	}
	if n := h.calls.Load(); n != 2 {
		t.Fatalf("hook ran %d times for a refused publish and its retry, want 2", n)
	}
	if s.bus.Seq() != 0 || s.br.Stats().Published != 0 {
		t.Fatalf("a refused publish reached the bus (seq %d)", s.bus.Seq())
	}
	if f := cl.pub("p1", "chat", `{"text":"now"}`); f.Op != "published" || f.Seq != 1 {
		t.Fatalf("the same id after refusals: %+v", f)
	}
	cl.ping()
}

// TestPublishHookOncePerPublish: the hook runs once per publish that
// reaches the bus, after authorization and the rate limit, and not for a
// retry answered from the dedup window, on this connection or another.
func TestPublishHookOncePerPublish(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &stamp{}
		authorize := func(_ any, a Action, topic string) error {
			if a == Publish && topic != "chat" {
				return errors.New("chat only")
			}
			return nil
		}
		s := newMemServer(t, nil, WithAuthenticate(nameAuth), WithAuthorize(authorize),
			WithPublishRate(1, 3), WithBadFrameBudget(100, time.Hour), WithPublishHook(h.hook))
		cl := s.dialAs(t, "alice")
		first := cl.pub("p1", "chat", `{"text":"a"}`)
		if f := cl.pub("p1", "chat", `{"text":"a"}`); f.Seq != first.Seq {
			t.Fatalf("retry: %+v, want seq %d", f, first.Seq)
		}
		other := s.dialAs(t, "bob")
		if f := other.pub("p1", "chat", `{"text":"a"}`); f.Seq != first.Seq {
			t.Fatalf("retry on another connection: %+v, want seq %d", f, first.Seq)
		}
		if f := cl.pub("x", "admin", `{"text":"a"}`); f.Code != "forbidden" || !strings.Contains(f.Message, "chat only") {
			t.Fatalf("unauthorized publish: %+v", f)
		}
		if f := cl.pub("p2", "chat", `{"text":"b"}`); f.Op != "published" {
			t.Fatalf("p2: %+v", f)
		}
		if f := cl.pub("p3", "chat", `{"text":"c"}`); f.Code != "rate_limited" { // burst 3: p1, its retry, p2 (x was refused before the limit)
			t.Fatalf("beyond the burst: %+v", f)
		}
		if n, want := h.calls.Load(), int64(2); n != want {
			t.Fatalf("hook ran %d times, want %d: p1 and p2, not for the retries, the refused or the rate-limited", n, want)
		}
		if st := s.br.Stats(); st.Published != 2 || st.Deduplicated != 2 {
			t.Fatalf("stats %+v: want 2 published, 2 deduplicated", st)
		}
	})
}

// TestPublishHookNotForConcurrentRetry: a retry that arrives while the
// first attempt is still in the hook waits for it and gets its seq; the
// hook runs once. In a bubble, synctest.Wait says when each is blocked.
func TestPublishHookNotForConcurrentRetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var calls atomic.Int64
		hook := func(_ any, _ string, m msg) (msg, error) {
			calls.Add(1)
			<-release
			return m, nil
		}
		s := newMemServer(t, nil, WithAuthorize(allowAll), WithPublishHook(hook))
		a, b := s.dial(t), s.dial(t)
		a.send(`{"op":"pub","id":"same","topic":"t","data":{}}`)
		synctest.Wait() // a's publish is in the hook
		b.send(`{"op":"pub","id":"same","topic":"t","data":{}}`)
		synctest.Wait() // b's waits for a's in the dedup window
		if calls.Load() != 1 {
			t.Fatalf("hook calls %d while the first attempt runs, want 1", calls.Load())
		}
		close(release)
		fa, fb := a.expect("published"), b.expect("published")
		if fa.Seq != 1 || fb.Seq != 1 || calls.Load() != 1 || s.bus.Seq() != 1 {
			t.Fatalf("answers %d and %d, hook calls %d, bus seq %d; want seq 1 twice, one call", fa.Seq, fb.Seq, calls.Load(), s.bus.Seq())
		}
	})
}

// TestPublishHookPanics: a panicking hook refuses with internal, publishes
// nothing, and the connection goes on.
func TestPublishHookPanics(t *testing.T) {
	hook := func(any, string, msg) (msg, error) { panic("boom") }
	s := newServer(t, nil, WithAuthorize(allowAll), WithPublishHook(hook))
	cl := s.dial(t)
	f := cl.pub("p", "t", `{}`)
	if f.Code != "internal" || !strings.Contains(f.Message, "publish hook panicked: boom") {
		t.Fatalf("answer %+v, want internal naming the panic", f)
	}
	if s.bus.Seq() != 0 {
		t.Fatal("a publish whose hook panicked reached the bus")
	}
	cl.ping()
}

// TestPublishHookWrongType: New panics, naming both types, when the hook's
// data type is not the bus's.
func TestPublishHookWrongType(t *testing.T) {
	b := bus.New[msg]()
	defer b.Close()
	defer func() {
		r := recover()
		text, _ := r.(string)
		if !strings.Contains(text, "func(interface {}, string, string) (string, error)") || !strings.Contains(text, "bridge.msg") {
			t.Fatalf("panic %v, want one naming the hook's type and the bus's", r)
		}
	}()
	br := New(b, WithPublishHook(func(_ any, _ string, s string) (string, error) { return s, nil }))
	br.Close()
	t.Fatal("New accepted a hook of another type")
}

// TestPublishHookLastOptionWins: a later WithPublishHook replaces an
// earlier one; a nil one removes it.
func TestPublishHookLastOptionWins(t *testing.T) {
	h := &stamp{}
	s := newServer(t, nil, WithAuthorize(allowAll), WithPublishHook(h.hook), WithPublishHook[msg](nil))
	cl := s.dial(t)
	if f := cl.pub("p", "t", `{"text":""}`); f.Op != "published" || h.calls.Load() != 0 {
		t.Fatalf("answer %+v, hook calls %d: want no hook", f, h.calls.Load())
	}
}

// TestPublishUsesBusIDs: a client publish goes to the bus with its id
// (prefixed), so that the bus's own window, the shared log's across nodes,
// catches a retry the bridge's window no longer holds: it lands once.
// The same id with another topic there is bad_frame.
func TestPublishUsesBusIDs(t *testing.T) {
	s := newServer(t, nil, WithAuthorize(allowAll), WithDedupWindow(1, time.Hour))
	cl := s.dial(t)
	first := cl.pub("a", "t", `{}`)
	cl.pub("b", "t", `{}`) // pushes a out of the bridge's window of 1
	if f := cl.pub("a", "t", `{}`); f.Op != "published" || f.Seq != first.Seq || s.bus.Seq() != 2 {
		t.Fatalf("retry of a: %+v (bus seq %d), want seq %d from the bus's window", f, s.bus.Seq(), first.Seq)
	}
	cl.pub("c", "t", `{}`)
	if f := cl.pub("a", "other", `{}`); f.Code != "bad_frame" || !strings.Contains(f.Message, "another topic") {
		t.Fatalf("a on another topic: %+v, want bad_frame", f)
	}
	if _, err := s.bus.PublishID(t.Context(), "a", "t", msg{}); err != nil { // the client's ids do not take the server's
		t.Fatal(err)
	}
	if s.bus.Seq() != 4 {
		t.Fatalf("bus seq %d, want 4: a server publish with id a is not the client's", s.bus.Seq())
	}
}

// TestPublishUncertainIsUnavailable: on a shared log, a publish whose
// outcome is unknown (the ack was lost) is answered unavailable; the
// client's retry with the same id, on another node, lands once with the
// seq the log gave it, and the hook ran once per attempt that reached the
// bus.
func TestPublishUncertainIsUnavailable(t *testing.T) {
	l := memlog.New[msg](0)
	h := &stamp{}
	node := func() *server {
		b := bus.New[msg](bus.WithLog[msg](l.View()))
		return newServer(t, b, WithAuthenticate(nameAuth), WithAuthorize(allowAll), WithPublishHook(h.hook))
	}
	n1, n2 := node(), node()
	cl := n1.dialAs(t, "alice")
	l.LoseAcks(1)
	f := cl.pub("p1", "chat", `{"text":"hi"}`)
	if f.Code != "unavailable" || !strings.Contains(f.Message, "outcome unknown") {
		t.Fatalf("lost ack answered %+v, want unavailable", f)
	}
	again := n2.dialAs(t, "alice")
	f = again.pub("p1", "chat", `{"text":"hi"}`)
	if f.Op != "published" || f.Seq != 1 {
		t.Fatalf("retry on the other node: %+v, want the stored seq 1", f)
	}
	if got := l.Retained(); len(got) != 1 || got[0].Data.Text != "alice: hi" {
		t.Fatalf("the log holds %+v, want the one stamped event", got)
	}
	if n := h.calls.Load(); n != 2 {
		t.Fatalf("hook ran %d times, want 2: each node ran it once", n)
	}
}

// TestPublishHookIdentity: the hook sees the identity of the connection
// that published, for concurrent publishers.
func TestPublishHookIdentity(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]string{} // text -> identity
	hook := func(id any, _ string, m msg) (msg, error) {
		mu.Lock()
		defer mu.Unlock()
		seen[m.Text] = id.(string)
		return m, nil
	}
	s := newServer(t, nil, WithAuthenticate(nameAuth), WithAuthorize(allowAll), WithPublishHook(hook), WithPublishRate(1000, 1000))
	var wg sync.WaitGroup
	for _, name := range []string{"ann", "ben", "cid"} {
		cl := s.dialAs(t, name)
		wg.Go(func() { // the three publish at once
			for i := range 20 {
				frame := fmt.Sprintf(`{"op":"pub","id":"%s%d","topic":"t","data":{"text":"%s%d"}}`, name, i, name, i)
				if err := cl.c.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	waitFor(t, "60 publishes", func() bool { return s.bus.Seq() == 60 })
	mu.Lock()
	defer mu.Unlock()
	for text, id := range seen {
		if !strings.HasPrefix(text, id) {
			t.Errorf("the hook saw %q from %s", text, id)
		}
	}
	if len(seen) != 60 {
		t.Errorf("hook saw %d publishes, want 60", len(seen))
	}
}
