package bridge

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/uuid"
	bus "github.com/whalesong/bus"
)

func TestHello(t *testing.T) {
	s := newServer(t, nil)
	s.publish("a.b", msg{Text: "x"})
	cl := s.dial(t)
	h := cl.hello
	if h.V != 1 || h.Epoch != s.bus.Epoch() || h.Seq != 1 {
		t.Fatalf("hello %+v, want v 1, epoch %s, seq 1", h, s.bus.Epoch())
	}
	if _, err := uuid.Parse(h.Session); err != nil {
		t.Fatalf("session %q is not a uuid", h.Session)
	}
	if s.br.Clients() != 1 {
		t.Fatalf("Clients() = %d", s.br.Clients())
	}
}

func TestSubscribeDeliversEvents(t *testing.T) {
	s := newServer(t, nil)
	cl := s.dial(t)
	ack := cl.sub("s1", "chat.lobby", nil)
	if ack.Epoch != s.bus.Epoch() || ack.Recovered == nil || !*ack.Recovered || ack.From == nil || *ack.From != 0 {
		t.Fatalf("ack %+v", ack)
	}
	before := time.Now()
	seq := s.publish("chat.lobby", msg{Text: "hi"})
	s.publish("chat.other", msg{Text: "not for s1"})
	ev := cl.events(1)[0]
	if !slices.Equal(ev.Subs, []string{"s1"}) || ev.Topic != "chat.lobby" || ev.Seq != seq {
		t.Fatalf("event %+v", ev)
	}
	if string(ev.Data) != `{"text":"hi"}` {
		t.Fatalf("data %s", ev.Data)
	}
	if ev.Time.Before(before.Add(-time.Second)) || ev.Time.After(time.Now().Add(time.Second)) {
		t.Fatalf("time %v", ev.Time)
	}
}

func TestWildcardSubscriptions(t *testing.T) {
	topics := []string{"chat.lobby", "chat.eu.lobby", "chat", "orders.eu.created", "orders.us.created", "orders.eu.paid"}
	tests := []struct {
		pattern  string
		want     []string
		sentinel string // a topic the pattern matches, published last
	}{
		{"chat.*", []string{"chat.lobby"}, "chat.zz"},
		{"chat.>", []string{"chat.lobby", "chat.eu.lobby"}, "chat.zz"},
		{"orders.*.created", []string{"orders.eu.created", "orders.us.created"}, "orders.zz.created"},
		{"*.eu.*", []string{"chat.eu.lobby", "orders.eu.created", "orders.eu.paid"}, "zz.eu.zz"},
		{">", topics, "zz"},
		{"chat", []string{"chat"}, "chat"},
	}
	s := newServer(t, nil)
	for _, tt := range tests {
		t.Run(tt.pattern, func(t *testing.T) {
			cl := s.dial(t)
			cl.sub("w", tt.pattern, nil)
			for _, topic := range topics {
				s.publish(topic, msg{Text: topic})
			}
			sentinel := s.publish(tt.sentinel, msg{Text: "sentinel"})
			var got []string
			for done := false; !done; {
				for _, ev := range cl.events(1) {
					if ev.Seq == sentinel {
						done = true
						continue
					}
					got = append(got, ev.Topic)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("%s got %v, want %v", tt.pattern, got, tt.want)
			}
		})
	}
}

func TestOneEventForSeveralSubscriptions(t *testing.T) {
	s := newServer(t, nil)
	cl := s.dial(t)
	cl.sub("a", "chat.>", nil)
	cl.sub("b", "chat.>", nil)
	cl.sub("c", "chat.lobby", nil)
	seq := s.publish("chat.lobby", msg{Text: "x"})
	got := map[string]int{}
	evs := cl.events(2)
	for _, ev := range evs {
		if ev.Seq != seq {
			t.Fatalf("event %+v", ev)
		}
		for _, sub := range ev.Subs {
			got[sub]++
		}
	}
	if len(evs) != 2 || got["a"] != 1 || got["b"] != 1 || got["c"] != 1 {
		t.Fatalf("entries %+v: want one for a and b together, one for c", evs)
	}
	if st := s.br.Stats(); st.Patterns != 2 || st.Subscriptions != 3 {
		t.Fatalf("stats %+v: want 2 shared patterns, 3 subscriptions", st)
	}
}

// TestUnsubscribe runs in a bubble: synctest.Wait tells exactly when the
// shared subscription is gone.
func TestUnsubscribe(t *testing.T) { synctest.Test(t, testUnsubscribe) }

func testUnsubscribe(t *testing.T) {
	s := newMemServer(t, nil)
	cl := s.dial(t)
	cl.sub("a", "t", nil)
	cl.sub("b", "t", nil)
	for i := range 50 {
		s.publish("t", msg{N: i})
	}
	cl.send(`{"op":"unsub","id":"u1","sub":"a"}`)
	// Events may precede the answer; none for "a" may follow it.
	for {
		f := cl.read()
		if f.Op == "unsubscribed" {
			if f.ID != "u1" || f.Sub != "a" {
				t.Fatalf("answer %+v", f)
			}
			break
		}
	}
	s.publish("t", msg{Text: "after"})
	cl.send(`{"op":"unsub","id":"u2","sub":"b"}`)
	for {
		f := cl.read()
		for _, ev := range f.Events {
			if slices.Contains(ev.Subs, "a") {
				t.Fatalf("event %+v for a after unsubscribed", ev)
			}
		}
		if f.Op == "unsubscribed" {
			break
		}
	}
	synctest.Wait()
	if n := s.br.Stats().Patterns; n != 0 {
		t.Fatalf("%d shared subscriptions left after the last unsubscribe", n)
	}
	cl.send(`{"op":"unsub","id":"u3","sub":"a"}`)
	if f := cl.read(); f.Code != "unknown_subscription" || f.ID != "u3" || f.Sub != "a" {
		t.Fatalf("unsub again: %+v", f)
	}
}

func TestIdleClientGetsEachEventAtOnce(t *testing.T) {
	s := newServer(t, nil)
	cl := s.dial(t)
	cl.sub("s", "t", nil)
	for i := range 5 {
		seq := s.publish("t", msg{N: i})
		f := cl.read()
		if len(f.Events) != 1 || f.Events[0].Seq != seq {
			t.Fatalf("frame %+v, want the one event %d", f, seq)
		}
	}
}

func TestBacklogIsBatched(t *testing.T) {
	s := newServer(t, nil)
	cl := s.dial(t)
	cl.sub("s", "t", nil)
	const n = 2000
	for i := range n {
		s.publish("t", msg{N: i})
	}
	frames, events := 0, 0
	last := uint64(0)
	for events < n {
		f := cl.read()
		frames++
		for _, ev := range f.Events {
			if ev.Seq <= last {
				t.Fatalf("seq %d after %d", ev.Seq, last)
			}
			last = ev.Seq
			events++
		}
	}
	if frames >= n {
		t.Fatalf("%d events came in %d frames: no batching", events, frames)
	}
	t.Logf("%d events in %d frames", events, frames)
}

func TestPing(t *testing.T) {
	s := newServer(t, nil)
	s.dial(t).ping()
}

func TestPublishAckAndIdempotentRetry(t *testing.T) {
	s := newServer(t, nil, WithAuthorize(allowAll))
	watcher := s.dial(t)
	watcher.sub("w", "chat.>", nil)

	a := s.dial(t)
	id := uuid.NewString()
	pub := fmt.Sprintf(`{"op":"pub","id":%q,"topic":"chat.lobby","data":{"text":"once"}}`, id)
	a.send(pub)
	f := a.read()
	if f.Op != "published" || f.ID != id || f.Seq == 0 {
		t.Fatalf("answer %+v", f)
	}
	a.send(pub) // same connection
	if g := a.read(); g.Op != "published" || g.Seq != f.Seq {
		t.Fatalf("retry answer %+v, want seq %d", g, f.Seq)
	}
	_ = a.c.Close()
	b := s.dial(t) // "after a reconnect"
	b.send(pub)
	if g := b.read(); g.Op != "published" || g.Seq != f.Seq {
		t.Fatalf("retry on a new connection: %+v, want seq %d", g, f.Seq)
	}
	b.send(fmt.Sprintf(`{"op":"pub","id":%q,"topic":"chat.other","data":{}}`, id))
	if g := b.read(); g.Code != "bad_frame" || g.ID != id {
		t.Fatalf("same id, other topic: %+v", g)
	}
	evs := watcher.events(1)
	if evs[0].Seq != f.Seq || string(evs[0].Data) != `{"text":"once"}` {
		t.Fatalf("event %+v", evs[0])
	}
	if st := s.bus.Stats(); st.Published != 1 {
		t.Fatalf("bus published %d events, want 1", st.Published)
	}
	if st := s.br.Stats(); st.Published != 1 || st.Deduplicated != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// TestErrorCodes provokes every error code; none closes the connection.
func TestErrorCodes(t *testing.T) {
	huge := strings.Repeat("x", 1500)
	tests := []struct {
		name  string
		frame string
		code  string
		id    string
		sub   string
	}{
		{"not json", `{"op":`, "bad_frame", "", ""},
		{"not an object", `[1,2]`, "bad_frame", "", ""},
		{"no op", `{"id":"r1"}`, "bad_frame", "r1", ""},
		{"wrong type", `{"op":"sub","id":"r1","sub":"s","pattern":"a","last":"x"}`, "bad_frame", "r1", "s"},
		{"two resume options", `{"op":"sub","id":"r1","sub":"s","pattern":"a","last":1,"after":{"seq":1}}`, "bad_frame", "r1", "s"},
		{"negative last", `{"op":"sub","id":"r1","sub":"s","pattern":"a","last":-1}`, "bad_frame", "r1", "s"},
		{"bad since", `{"op":"sub","id":"r1","sub":"s","pattern":"a","since":"yesterday"}`, "bad_frame", "r1", "s"},
		{"after without seq", `{"op":"sub","id":"r1","sub":"s","pattern":"a","after":{}}`, "bad_frame", "r1", "s"},
		{"long id", `{"op":"ping","id":"` + strings.Repeat("i", 65) + `"}`, "bad_frame", "", ""},
		{"no sub id", `{"op":"sub","id":"r1","pattern":"a"}`, "bad_frame", "r1", ""},
		{"bad data", `{"op":"pub","id":"p1","topic":"a","data":{"text":5}}`, "bad_frame", "p1", ""},
		{"unknown op", `{"op":"subscribe","id":"r2"}`, "unknown_op", "r2", ""},
		{"invalid topic", `{"op":"pub","id":"p2","topic":"a..b","data":{}}`, "invalid_topic", "p2", ""},
		{"wildcard topic", `{"op":"pub","id":"p3","topic":"a.*","data":{}}`, "invalid_topic", "p3", ""},
		{"invalid pattern", `{"op":"sub","id":"r3","sub":"s","pattern":"a.>.b"}`, "invalid_pattern", "r3", "s"},
		{"forbidden sub", `{"op":"sub","id":"r4","sub":"s","pattern":"secret.x"}`, "forbidden", "r4", "s"},
		{"forbidden pub", `{"op":"pub","id":"p4","topic":"secret.x","data":{}}`, "forbidden", "p4", ""},
		{"too large", `{"op":"pub","id":"p5","topic":"a","data":{"text":"` + huge + `"}}`, "too_large", "p5", ""},
		{"unknown subscription", `{"op":"unsub","id":"r5","sub":"nope"}`, "unknown_subscription", "r5", "nope"},
		{"internal", `{"op":"pub","id":"p6","topic":"panic","data":{}}`, "internal", "p6", ""},
	}
	authorize := func(_ any, _ Action, p string) error {
		switch {
		case p == "panic":
			panic("authorizer bug")
		case strings.HasPrefix(p, "secret"):
			return fmt.Errorf("no secrets")
		}
		return nil
	}
	s := newServer(t, nil, WithAuthorize(authorize), WithMaxMessageSize(1024), WithBadFrameBudget(1000, time.Hour))
	cl := s.dial(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cl.t = t
			cl.send(tt.frame)
			f := cl.read()
			if f.Op != "error" || f.Code != tt.code || f.ID != tt.id || f.Sub != tt.sub || f.Message == "" {
				t.Fatalf("got %+v, want code %s id %q sub %q", f, tt.code, tt.id, tt.sub)
			}
			cl.ping()
		})
	}
	cl.t = t
	st := s.br.Stats()
	for _, code := range []string{"bad_frame", "unknown_op", "invalid_topic", "invalid_pattern", "forbidden", "too_large", "unknown_subscription", "internal"} {
		if st.Rejected[code] == 0 {
			t.Errorf("Stats().Rejected[%s] = 0", code)
		}
	}
}

func TestBinaryFrameIsBadFrame(t *testing.T) {
	s := newServer(t, nil)
	cl := s.dial(t)
	if err := cl.c.WriteMessage(2, []byte{1, 2}); err != nil {
		t.Fatal(err)
	}
	if f := cl.read(); f.Code != "bad_frame" {
		t.Fatalf("got %+v", f)
	}
	cl.ping()
}

func TestSubscriptionLimits(t *testing.T) {
	s := newServer(t, nil, WithMaxSubscriptions(3))
	cl := s.dial(t)
	for i := range 3 {
		cl.sub(fmt.Sprint("s", i), fmt.Sprint("t", i), nil)
	}
	cl.send(`{"op":"sub","id":"r9","sub":"s9","pattern":"t9"}`)
	if f := cl.read(); f.Code != "too_many_subscriptions" || f.ID != "r9" || f.Sub != "s9" {
		t.Fatalf("4th sub: %+v", f)
	}
	cl.send(`{"op":"sub","id":"r1","sub":"s1","pattern":"t1"}`)
	if f := cl.read(); f.Code != "duplicate_subscription" || f.Sub != "s1" {
		t.Fatalf("duplicate: %+v", f)
	}
	cl.send(`{"op":"unsub","id":"u","sub":"s0"}`)
	cl.expect("unsubscribed")
	cl.sub("s9", "t9", nil) // room again
}

// TestPublishRateLimit runs in a bubble: the burst passes, the next
// publish is refused, and the rate refills it exactly.
func TestPublishRateLimit(t *testing.T) { synctest.Test(t, testPublishRateLimit) }

func testPublishRateLimit(t *testing.T) {
	s := newMemServer(t, nil, WithAuthorize(allowAll), WithPublishRate(2, 2), WithBadFrameBudget(100, time.Hour))
	cl := s.dial(t)
	pub := func(id, want string) {
		t.Helper()
		cl.send(fmt.Sprintf(`{"op":"pub","id":%q,"topic":"t","data":{}}`, id))
		f := cl.read()
		if f.ID != id || (want == "published" && f.Op != want) || (want != "published" && f.Code != want) {
			t.Fatalf("pub %s: %+v, want %s", id, f, want)
		}
	}
	pub("p0", "published")
	pub("p1", "published")
	pub("p2", "rate_limited")
	time.Sleep(500*time.Millisecond - time.Microsecond) // not quite one token
	pub("p3", "rate_limited")
	time.Sleep(time.Microsecond)
	pub("p4", "published")
	pub("p5", "rate_limited")
	if n := s.bus.Stats().Published; n != 3 {
		t.Fatalf("bus published %d, want 3", n)
	}
	cl.ping()
}

// TestPublishFloodIsAbuse: rate_limited answers alone never close a
// connection (a client flushing its offline queue); a flood beyond 10x the
// rate and burst spends the bad-frame budget.
func TestPublishFloodIsAbuse(t *testing.T) {
	s := newServer(t, nil, WithAuthorize(allowAll), WithPublishRate(0.001, 1), WithBadFrameBudget(2, time.Hour))
	cl := s.dial(t)
	for i := range 10 { // the flood limit is burst 10
		cl.send(fmt.Sprintf(`{"op":"pub","id":"p%d","topic":"t","data":{}}`, i))
	}
	cl.expect("published")
	for range 9 {
		if f := cl.read(); f.Code != "rate_limited" {
			t.Fatalf("got %+v", f)
		}
	}
	cl.ping()
	for i := range 3 { // beyond the flood limit: two strikes, then 4001
		cl.send(fmt.Sprintf(`{"op":"pub","id":"q%d","topic":"t","data":{}}`, i))
	}
	if code := cl.closeCode(); code != closeAbuse {
		t.Fatalf("close code %d, want 4001", code)
	}
}

// TestPublishUnavailableWhenBusIsFull runs in a bubble: a publish waits
// for room exactly WithPublishTimeout, then gets unavailable.
func TestPublishUnavailableWhenBusIsFull(t *testing.T) {
	synctest.Test(t, testPublishUnavailableWhenBusIsFull)
}

func testPublishUnavailableWhenBusIsFull(t *testing.T) {
	const timeout = 3 * time.Second
	b := bus.New[msg]()
	blocker, err := b.Subscribe("t", bus.WithBuffer(1)) // never read: Block policy fills
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Close()
	s := newMemServer(t, b, WithAuthorize(allowAll), WithPublishTimeout(timeout))
	cl := s.dial(t)
	cl.send(`{"op":"pub","id":"p1","topic":"t","data":{}}`)
	cl.expect("published")
	start := time.Now()
	cl.send(`{"op":"pub","id":"p2","topic":"t","data":{}}`)
	if f := cl.read(); f.Code != "unavailable" || f.ID != "p2" {
		t.Fatalf("got %+v", f)
	}
	if d := time.Since(start); d != timeout {
		t.Fatalf("unavailable after %v, want the publish timeout %v", d, timeout)
	}
	// The failed attempt is forgotten: a retry once there is room lands.
	<-blocker.C()
	cl.send(`{"op":"pub","id":"p2","topic":"t","data":{}}`)
	if f := cl.read(); f.Op != "published" || f.Seq != 2 {
		t.Fatalf("retry: %+v", f)
	}
}

func TestOversizedFrames(t *testing.T) {
	s := newServer(t, nil, WithMaxMessageSize(1000))
	cl := s.dial(t)
	big := fmt.Sprintf(`{"op":"ping","id":"big","pad":%q}`, strings.Repeat("x", 2000))
	cl.send(big)
	if f := cl.read(); f.Code != "too_large" || f.ID != "big" {
		t.Fatalf("got %+v", f)
	}
	cl.ping()
	cl.send(strings.Repeat("y", 4001)) // above the hard cap of 4x
	if code := cl.closeCode(); code != 1009 {
		t.Fatalf("close code %d, want 1009", code)
	}
}

// TestBadFrameBudget runs in a bubble: the budget refills with fake time,
// exactly, and the abuse counter is read once everything has settled.
func TestBadFrameBudget(t *testing.T) { synctest.Test(t, testBadFrameBudget) }

func testBadFrameBudget(t *testing.T) {
	s := newMemServer(t, nil, WithBadFrameBudget(3, time.Minute))
	cl := s.dial(t)
	bad := func() {
		t.Helper()
		cl.send(`nonsense`)
		if f := cl.read(); f.Code != "bad_frame" {
			t.Fatalf("got %+v", f)
		}
	}
	for range 3 {
		bad()
	}
	cl.ping() // three bad frames alone closed nothing
	// A third of the period gives one unit back; not quite another third,
	// nothing more.
	time.Sleep(20 * time.Second)
	bad()
	time.Sleep(20*time.Second - time.Millisecond)
	cl.send(`nonsense`)
	if code := cl.closeCode(); code != 4001 {
		t.Fatalf("close code %d, want 4001", code)
	}
	synctest.Wait()
	if n := s.br.Stats().AbuseDisconnects; n != 1 {
		t.Fatalf("AbuseDisconnects %d, want 1", n)
	}
}

func TestCodecErrorIsDeliveredNotDropped(t *testing.T) {
	s := newServer(t, nil, WithCodec(failingCodec{}))
	cl := s.dial(t)
	cl.sub("s", "t", nil)
	seq := s.publish("t", msg{Text: "bad"})
	ok := s.publish("t", msg{Text: "good"})
	evs := cl.events(2)
	if evs[0].Seq != seq || string(evs[0].Data) != "null" || !strings.Contains(evs[0].Error, "codec") {
		t.Fatalf("failed event %+v", evs[0])
	}
	if evs[1].Seq != ok || string(evs[1].Data) != `{"text":"good"}` || evs[1].Error != "" {
		t.Fatalf("good event %+v", evs[1])
	}
	if s.br.Stats().CodecErrors != 1 {
		t.Fatalf("stats %+v", s.br.Stats())
	}
}

// failingCodec fails on msg.Text "bad" and emits invalid JSON on "raw".
type failingCodec struct{}

func (failingCodec) Marshal(v any) ([]byte, error) {
	if m, ok := v.(msg); ok && m.Text == "bad" {
		return nil, fmt.Errorf("cannot encode bad")
	}
	return json.Marshal(v)
}

func (failingCodec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }
