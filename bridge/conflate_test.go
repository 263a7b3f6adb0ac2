package bridge

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	bus "github.com/whalesong/bus"
)

// queueRig is a session without a socket, for the queue's arithmetic: a
// frame is always in flight, so deliveries queue until drain claims the
// next frame and builds it (as BenchmarkSessionQueue does).
type queueRig struct {
	t   testing.TB
	br  *Bridge[msg]
	s   *session[msg]
	a   *attachment[msg]
	seq uint64
}

func newQueueRig(t testing.TB, subs ...*clientSub[msg]) *queueRig {
	bs := bus.New[msg]()
	t.Cleanup(func() { bs.Close() })
	br := New(bs, WithMaxBacklog(1<<30))
	t.Cleanup(func() { br.Close() })
	s := &session[msg]{br: br, subs: map[string]*clientSub[msg]{}}
	a := &attachment[msg]{sess: s}
	for _, cs := range subs {
		cs.att = a
		s.subs[cs.id] = cs
		a.subs = append(a.subs, cs)
	}
	s.writing = true
	return &queueRig{t: t, br: br, s: s, a: a}
}

func conflating(id string) *clientSub[msg] { return &clientSub[msg]{id: id, conf: newConflation()} }

// publish delivers the next event on topic.
func (r *queueRig) publish(topic string) uint64 {
	r.seq++
	r.s.deliver(r.a, r.br.encodeEvent(bus.Event[msg]{Topic: topic, Seq: r.seq, Time: time.Unix(0, 0)}, nil))
	return r.seq
}

// drain claims and builds frames until the queue is empty, and returns
// their entries.
func (r *queueRig) drain() []entry {
	r.t.Helper()
	var out []entry
	for {
		r.s.mu.Lock()
		r.s.writing = false
		control, n := r.s.claimLocked()
		r.s.writing = true
		r.s.mu.Unlock()
		if control != nil {
			r.t.Fatalf("control frame %s in the queue", control)
		}
		if n == 0 {
			return out
		}
		b := r.s.buildEvents()[headroom:]
		var f frame
		if err := json.Unmarshal(b, &f); err != nil {
			r.t.Fatalf("frame %s: %v", b, err)
		}
		putBuf(b)
		out = append(out, f.Events...)
	}
}

// TestConflationModel drives a session whose frame is always in flight with
// random events over a few topics, draining now and then, against a model:
// a conflating subscription gets, per drain, exactly the newest event of
// each topic delivered since the previous one, in seq order, each with the
// count of its events superseded since the one before (so every event is
// delivered or counted exactly once); it holds at most one event per topic;
// a plain subscription on the same pattern gets every event, in entries of
// its own.
func TestConflationModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 2026))
	c1, plain, c2 := conflating("c1"), &clientSub[msg]{id: "p"}, conflating("c2")
	r := newQueueRig(t, c1, plain, c2)
	const topics = 7
	var all []uint64
	got := map[string][]entry{}
	var total uint64
	for round := range 300 {
		newest := map[string]uint64{}
		for range rng.IntN(60) {
			topic := fmt.Sprint("t", rng.IntN(topics))
			seq := r.publish(topic)
			newest[topic] = seq
			all = append(all, seq)
		}
		if n := r.s.out.conflated; n > 2*topics {
			t.Fatalf("round %d: %d conflated events queued for 2 subscriptions over %d topics", round, n, topics)
		}
		var want []uint64
		for _, seq := range newest {
			want = append(want, seq)
		}
		slices.Sort(want)
		perSub := map[string][]uint64{}
		for _, e := range r.drain() {
			if len(e.Subs) != 1 {
				t.Fatalf("entry %+v lists several subs: conflating ones have entries of their own", e)
			}
			perSub[e.Subs[0]] = append(perSub[e.Subs[0]], e.Seq)
			got[e.Subs[0]] = append(got[e.Subs[0]], e)
		}
		for _, id := range []string{"c1", "c2"} {
			if !slices.Equal(perSub[id], want) {
				t.Fatalf("round %d: %s got %v, want the newest per topic %v", round, id, perSub[id], want)
			}
		}
		total += uint64(len(want))
	}
	for _, id := range []string{"c1", "c2"} {
		prev := uint64(0)
		for _, e := range got[id] {
			if e.Skipped != e.Seq-prev-1 {
				t.Fatalf("%s: event %d after %d says skipped %d, want %d", id, e.Seq, prev, e.Skipped, e.Seq-prev-1)
			}
			prev = e.Seq
		}
	}
	var plainSeqs []uint64
	for _, e := range got["p"] {
		if e.Skipped != 0 {
			t.Fatalf("plain entry %+v has skipped", e)
		}
		plainSeqs = append(plainSeqs, e.Seq)
	}
	if !slices.Equal(plainSeqs, all) {
		t.Fatalf("the plain subscription got %d events, want all %d in order", len(plainSeqs), len(all))
	}
	if st := r.br.Stats(); st.Superseded != 2*(uint64(len(all))-total) {
		t.Fatalf("Stats().Superseded = %d, want %d", st.Superseded, 2*(uint64(len(all))-total))
	}
	if r.s.out.conflated != 0 || r.s.out.backlog != 0 {
		t.Fatalf("after the drains: conflated %d, backlog %d", r.s.out.conflated, r.s.out.backlog)
	}
}

// TestConflationSkippedGoesToTheNextEvent: the count of a superseded event
// goes to the one queued after it, of whatever topic, which is the one the
// client gets next: of a1 b2 a3 a4 c5 b6, a3 supersedes a1 (b2 counts it),
// a4 a3 (a4 counts it), b6 b2 (whose count goes on to a4).
func TestConflationSkippedGoesToTheNextEvent(t *testing.T) {
	r := newQueueRig(t, conflating("c"))
	for _, topic := range []string{"a", "b", "a", "a", "c", "b"} { // 1..6
		r.publish(topic)
	}
	var got []string
	for _, e := range r.drain() {
		got = append(got, fmt.Sprintf("%s%d/%d", e.Topic, e.Seq, e.Skipped))
	}
	if want := []string{"a4/3", "c5/0", "b6/0"}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// TestConflationAllocatesNothing: once its arena holds the topics in use,
// queueing, superseding and claiming the events of a conflating
// subscription allocates nothing (building the frame is the same as for
// any other: a pooled buffer).
func TestConflationAllocatesNothing(t *testing.T) {
	r := newQueueRig(t, conflating("c"))
	var events [64]*sharedEvent
	for i := range events {
		events[i] = r.br.encodeEvent(bus.Event[msg]{Topic: fmt.Sprint("t", i%8), Seq: uint64(i + 1), Time: time.Now()}, nil)
	}
	cycle := func() {
		n := r.s.queueAndClaim(events[:])
		clear(r.s.claims)
		r.s.claims = r.s.claims[:0]
		if n != 8 {
			t.Fatalf("claimed %d events of 8 topics", n)
		}
	}
	cycle()
	if n := testing.AllocsPerRun(100, cycle); n != 0 {
		t.Fatalf("%v allocations per cycle of 64 events", n)
	}
}

// queueAndClaim delivers events behind the frame in flight, then claims
// the next frame, and returns the events claimed.
func (s *session[T]) queueAndClaim(events []*sharedEvent) int {
	var a *attachment[T]
	for _, cs := range s.subs {
		cs.lastSent = 0
		a = cs.att
	}
	for _, se := range events {
		s.deliver(a, se)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writing = false
	_, n := s.claimLocked()
	s.writing = true
	return n
}

// TestConflatedClientIsNotCutOff: a client that reads nothing while a
// conflating subscription gets far more events than WithMaxBacklog holds
// keeps only the newest per topic and is never cut off; when it reads
// again it gets them in one frame, counting everything superseded.
func TestConflatedClientIsNotCutOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newMemServer(t, nil, WithMaxBacklog(8))
		cl := s.dial(t)
		cl.sub("c", "px.*", map[string]any{"conflate": true})
		s.ws.Last().Stall()
		first := s.publish("px.a", msg{}) // in flight
		synctest.Wait()
		newest := map[string]uint64{}
		const n = 1000
		for i := range n {
			topic := fmt.Sprint("px.", "abcde"[i%5:i%5+1])
			newest[topic] = s.publish(topic, msg{N: i})
		}
		synctest.Wait()
		st := s.br.Stats()
		if st.SlowDisconnects != 0 || st.Superseded != n-5 {
			t.Fatalf("stats %+v: want no cut-off and %d superseded", st, n-5)
		}
		s.ws.Last().Unstall()
		if evs := cl.events(1); len(evs) != 1 || evs[0].Seq != first || evs[0].Skipped != 0 {
			t.Fatalf("in flight: %+v", evs)
		}
		evs := cl.events(5)
		prev := first
		for _, e := range evs {
			if e.Seq != newest[e.Topic] || e.Seq <= prev || e.Skipped != e.Seq-prev-1 || !slices.Equal(e.Subs, []string{"c"}) {
				t.Fatalf("entry %+v after %d; want the newest of its topic (%d), skipped %d", e, prev, newest[e.Topic], e.Seq-prev-1)
			}
			prev = e.Seq
		}
		cl.ping()
	})
}

// TestFarBehindOnPlainSubscriptionIsCutOff: conflated events do not count
// toward the backlog, but a plain subscription on the same connection
// does: past WithMaxBacklog of those the client is cut off with 4000.
func TestFarBehindOnPlainSubscriptionIsCutOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const limit = 8
		s := newMemServer(t, nil, WithMaxBacklog(limit))
		cl := s.dial(t)
		cl.sub("c", "px.*", map[string]any{"conflate": true})
		cl.sub("p", "plain", nil)
		s.ws.Last().Stall()
		s.publish("px.a", msg{}) // in flight
		synctest.Wait()
		for i := range 500 {
			s.publish(fmt.Sprint("px.", "abc"[i%3:i%3+1]), msg{})
		}
		synctest.Wait()
		if n := s.br.Stats().SlowDisconnects; n != 0 {
			t.Fatalf("cut off by conflated events alone")
		}
		cut := 0
		for i := 1; cut == 0 && i < 100; i++ {
			s.publish("plain", msg{N: i})
			synctest.Wait()
			if s.br.Stats().SlowDisconnects > 0 {
				cut = i
			}
		}
		// The conflation's token does not count: the event that finds
		// more than limit plain events queued cuts it off.
		if cut != limit+2 {
			t.Fatalf("cut off by plain event %d, want %d", cut, limit+2)
		}
		s.ws.Last().Unstall()
		if got := cl.shape(2); !slices.Equal(got, []string{"events:1", "close:4000"}) {
			t.Fatalf("the client got %v, want the event in flight, then 4000", got)
		}
	})
}

// TestConflationIsBoundedByTopics: conflated events are held one per
// topic; a connection whose conflating subscriptions hold more topics than
// WithMaxBacklog is cut off like any slow client.
func TestConflationIsBoundedByTopics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const limit = 8
		s := newMemServer(t, nil, WithMaxBacklog(limit))
		cl := s.dial(t)
		cl.sub("c", "t.*", map[string]any{"conflate": true})
		s.ws.Last().Stall()
		s.publish("t.first", msg{}) // in flight
		synctest.Wait()
		cut := 0
		for i := 1; cut == 0 && i < 100; i++ {
			s.publish(fmt.Sprint("t.", i), msg{})
			synctest.Wait()
			if s.br.Stats().SlowDisconnects > 0 {
				cut = i
			}
		}
		// The event that finds more than limit topics conflated.
		if cut != limit+2 {
			t.Fatalf("cut off by topic %d, want %d", cut, limit+2)
		}
		s.ws.Last().Unstall()
		if got := cl.shape(2); !slices.Equal(got, []string{"events:1", "close:4000"}) {
			t.Fatalf("the client got %v", got)
		}
	})
}

// TestConflateReplaysInFullThenConflates: a conflating subscription's
// replay is not conflated (it is what the client asked for); the live
// events queued behind it are.
func TestConflateReplaysInFullThenConflates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newMemServer(t, bus.New[msg](bus.WithHistory(100)))
		for range 10 {
			s.publish("px.a", msg{})
		}
		cl := s.dial(t)
		cl.sub("x", "x", nil)
		s.ws.Last().Stall()
		s.publish("x", msg{}) // in flight
		synctest.Wait()
		cl.send(`{"op":"sub","id":"r","sub":"c","pattern":"px.*","after":{"seq":0},"conflate":true}`)
		synctest.Wait()
		var last uint64
		for range 20 {
			last = s.publish("px.a", msg{})
		}
		synctest.Wait()
		s.ws.Last().Unstall()
		cl.events(1)
		ack := cl.expect("subscribed")
		if *ack.Replayed != 10 || *ack.Until != 10 {
			t.Fatalf("ack %+v", ack)
		}
		evs := cl.events(11)
		for i, e := range evs[:10] {
			if e.Seq != uint64(i+1) || e.Skipped != 0 {
				t.Fatalf("replayed %+v", e)
			}
		}
		if e := evs[10]; e.Seq != last || e.Skipped != 19 {
			t.Fatalf("live after the replay %+v, want %d with skipped 19", e, last)
		}
	})
}

// TestUnsubscribeDropsConflated: nothing of a conflating subscription
// follows its unsubscribed answer, and its queue is released.
func TestUnsubscribeDropsConflated(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newMemServer(t, nil)
		cl := s.dial(t)
		cl.sub("c", "px.*", map[string]any{"conflate": true})
		cl.sub("p", "px.*", nil)
		s.ws.Last().Stall()
		for i := range 50 {
			s.publish(fmt.Sprint("px.", i%5), msg{})
		}
		cl.send(`{"op":"unsub","id":"u","sub":"c"}`)
		synctest.Wait()
		s.br.mu.Lock()
		sess := s.br.liveLocked()[0]
		s.br.mu.Unlock()
		sess.mu.Lock()
		conflated := sess.out.conflated
		sess.mu.Unlock()
		if conflated != 0 {
			t.Fatalf("%d conflated events kept after unsub", conflated)
		}
		s.ws.Last().Unstall()
		for {
			f := cl.read()
			if f.Op == "unsubscribed" {
				break
			}
		}
		s.publish("px.0", msg{Text: "after"})
		for _, e := range cl.events(1) {
			if slices.Contains(e.Subs, "c") {
				t.Fatalf("event %+v for c after unsubscribed", e)
			}
		}
	})
}
