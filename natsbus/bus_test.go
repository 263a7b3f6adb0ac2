package natsbus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/whalesong/bus"
	"go.uber.org/goleak"
)

// These tests hold the six guarantees of the natsbus section of API.md,
// on buses made by New against an embedded server.

// newBus makes a bus on nc within waitLimit; the caller closes it.
func newBus(t testing.TB, nc *nats.Conn, opts ...Option) *bus.Bus[int] {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	b, err := New[int](ctx, nc, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return b
}

// noLeaks checks, after everything else the test set up was cleaned up
// (servers shut down, connections closed), that no goroutine is left but
// those nats-server itself leaves: call it first.
func noLeaks(t *testing.T) {
	opts := append([]goleak.Option{goleak.IgnoreCurrent()}, serverLeftovers...)
	t.Cleanup(func() { goleak.VerifyNone(t, opts...) })
}

// conns connects n times to url; every connection has made a request, so
// that nats.go's own goroutines exist before noLeaks is taken.
func conns(t *testing.T, url string, n int, opts ...Option) []*nats.Conn {
	t.Helper()
	out := make([]*nats.Conn, n)
	for i := range out {
		out[i] = connect(t, url)
		_ = testLog[int](t, out[i], opts...) // makes or checks the stream
	}
	return out
}

func next(t testing.TB, s *bus.Subscription[int]) bus.Event[int] {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	ev, err := s.Next(ctx)
	if err != nil {
		t.Fatalf("Next: %v (Seq so far: %d)", err, s.Dropped())
	}
	return ev
}

func ended(t testing.TB, s *bus.Subscription[int]) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	for {
		if _, err := s.Next(ctx); err != nil {
			return err
		}
	}
}

func waitBusSeq(t testing.TB, b *bus.Bus[int], seq uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := b.WaitSeq(ctx, seq); err != nil {
		t.Fatalf("WaitSeq(%d): %v (Seq %d)", seq, err, b.Seq())
	}
}

func history(t testing.TB, b *bus.Bus[int]) []bus.Event[int] {
	t.Helper()
	h, err := b.History(">", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func sameEvents(a, b []bus.Event[int]) bool {
	return slices.EqualFunc(a, b, func(x, y bus.Event[int]) bool {
		return x.Seq == y.Seq && x.Topic == y.Topic && x.Data == y.Data && x.Time.Equal(y.Time)
	})
}

// Guarantee 1: three buses on one stream, concurrent publishers on each:
// every subscription on every bus gets every event once, in the same
// strictly increasing order, with one Epoch.
func TestGuarantee1OneSequenceSpace(t *testing.T) {
	noLeaks(t)
	s, _ := single(t)
	cs := conns(t, s.URL(), 3)
	const perBus = 100
	buses := make([]*bus.Bus[int], 3)
	subs := make([]*bus.Subscription[int], 3)
	for i := range buses {
		buses[i] = newBus(t, cs[i])
		defer buses[i].Close()
		var err error
		if subs[i], err = buses[i].Subscribe(">", bus.WithBuffer(3*perBus)); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for i, b := range buses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range perBus {
				if _, err := b.Publish(context.Background(), fmt.Sprintf("n%d.t%d", i, j%4), i*perBus+j); err != nil {
					t.Errorf("publish: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	var first []bus.Event[int]
	for i, sub := range subs {
		var got []bus.Event[int]
		for range 3 * perBus {
			got = append(got, next(t, sub))
		}
		for k, ev := range got {
			if ev.Seq != uint64(k+1) {
				t.Fatalf("bus %d: event %d has seq %d", i, k, ev.Seq)
			}
		}
		if i == 0 {
			first = got
		} else if !sameEvents(first, got) {
			t.Fatalf("bus %d saw another order than bus 0", i)
		}
		if buses[i].Epoch() != buses[0].Epoch() || buses[i].Epoch() == "" {
			t.Fatalf("epochs %q and %q", buses[i].Epoch(), buses[0].Epoch())
		}
	}
	for i, b := range buses {
		if !sameEvents(history(t, b), first) {
			t.Fatalf("bus %d: History differs", i)
		}
	}
}

// Guarantee 2: replay works on a node that started after the events were
// published, as on the node that published them, and Recovered is honest.
func TestGuarantee2ReplayOnAnotherNode(t *testing.T) {
	noLeaks(t)
	s, _ := single(t)
	cs := conns(t, s.URL(), 2, WithHistory(10))
	a := newBus(t, cs[0], WithHistory(10))
	defer a.Close()
	for i := range 30 {
		topic := "quiet"
		if i%3 != 0 {
			topic = "busy"
		}
		if _, err := a.Publish(context.Background(), topic, i); err != nil {
			t.Fatal(err)
		}
	}
	c := newBus(t, cs[1], WithHistory(10)) // started after all of it
	defer c.Close()
	if !sameEvents(history(t, a), history(t, c)) || c.Seq() != 30 || c.Epoch() != a.Epoch() {
		t.Fatalf("History or Seq differ: %d vs %d", c.Seq(), a.Seq())
	}
	for _, b := range []*bus.Bus[int]{a, c} {
		sub, err := b.Subscribe("quiet", bus.After(0))
		if err != nil {
			t.Fatal(err)
		}
		if !sub.Recovered() {
			t.Fatal("quiet kept all 10 of its events: Recovered should be true")
		}
		for i := range 10 {
			if ev := next(t, sub); ev.Data != 3*i {
				t.Fatalf("quiet replay %d: %d", i, ev.Data)
			}
		}
		sub.Close()
		lost, err := b.Subscribe("busy", bus.After(0))
		if err != nil {
			t.Fatal(err)
		}
		if lost.Recovered() {
			t.Fatal("busy lost 10 of its 20: Recovered should be false")
		}
		lost.Close()
	}
	sub, err := c.Subscribe(">", bus.After(25))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	for q := uint64(26); q <= 30; q++ {
		if ev := next(t, sub); ev.Seq != q {
			t.Fatalf("After(25) on the other node: seq %d, want %d", ev.Seq, q)
		}
	}
	seq, err := a.Publish(context.Background(), "quiet", 99)
	if err != nil {
		t.Fatal(err)
	}
	if ev := next(t, sub); ev.Seq != seq || !sub.Recovered() {
		t.Fatalf("live after replay: %+v, recovered %v", ev, sub.Recovered())
	}
}

// A position ahead of a node: a subscriber that saw seq x on one node and
// subscribes with After(x) on a node that has not applied x gets nothing up
// to x again as the node catches up, then every event after x.
func TestAfterAheadOfLaggingNode(t *testing.T) {
	noLeaks(t)
	s, _ := single(t)
	a := newBus(t, connect(t, s.URL()))
	defer a.Close()
	link := natstestProxy(t, s.URL())
	b := newBus(t, connect(t, link.URL()))
	defer b.Close()
	for i := range 3 {
		if _, err := a.Publish(context.Background(), "t", i); err != nil {
			t.Fatal(err)
		}
	}
	waitBusSeq(t, b, 3)
	link.Pause() // b hears of nothing more until Resume
	var x uint64
	for i := range 3 {
		q, err := a.Publish(context.Background(), "t", 3+i)
		if err != nil {
			t.Fatal(err)
		}
		x = q
	}
	sub, err := b.Subscribe("t", bus.After(x))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if b.Seq() >= x || !sub.Recovered() {
		t.Fatalf("node at %d (want behind %d), Recovered %v (want true)", b.Seq(), x, sub.Recovered())
	}
	link.Resume()
	want, err := a.Publish(context.Background(), "t", 6)
	if err != nil {
		t.Fatal(err)
	}
	if ev := next(t, sub); ev.Seq != want {
		t.Fatalf("After(%d) on a lagging node: first event seq %d, want %d", x, ev.Seq, want)
	}
}

// Guarantee 3: a restarted NATS server (same store) keeps the epoch and
// the history, and the subscriptions go on with nothing lost or twice; a
// restarted bus node gets the same epoch and History.
func TestGuarantee3RestartsKeepTheEpoch(t *testing.T) {
	noLeaks(t)
	s, _ := single(t)
	cs := conns(t, s.URL(), 3)
	a, b := newBus(t, cs[0]), newBus(t, cs[1])
	defer a.Close()
	defer b.Close()
	sub, err := b.Subscribe(">")
	if err != nil {
		t.Fatal(err)
	}
	epoch := a.Epoch()
	publishIDs(t, a, 0, 20)
	s.Restart()
	publishIDs(t, a, 20, 40)
	for q := uint64(1); q <= 40; q++ {
		if ev := next(t, sub); ev.Seq != q || ev.Data != int(q)-1 {
			t.Fatalf("after the NATS restart: %+v, want seq %d", ev, q)
		}
	}
	waitBusSeq(t, a, 40)
	if a.Epoch() != epoch || b.Epoch() != epoch {
		t.Fatalf("epochs %s %s, want %s", a.Epoch(), b.Epoch(), epoch)
	}
	b.Close()
	again := newBus(t, cs[2])
	defer again.Close()
	if again.Epoch() != epoch || !sameEvents(history(t, again), history(t, a)) {
		t.Fatal("a restarted node has another epoch or history")
	}
}

// Guarantee 4 across an eviction and a restart: JetStream rebuilds its
// dedup window after a restart from the messages it still stores, so an id
// whose event the history evicted would be stored again; the id ledger
// answers it with its first seq, and still refuses it for another topic.
func TestPublishIDAfterEvictionAndRestart(t *testing.T) {
	noLeaks(t)
	s, nc := single(t)
	b := newBus(t, connect(t, s.URL()), WithHistory(1))
	defer b.Close()
	first, err := b.PublishID(context.Background(), "id-1", "t", 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Publish(context.Background(), "t", 2); err != nil { // evicts the first
		t.Fatal(err)
	}
	s.Restart()
	var again uint64
	deadline := time.Now().Add(waitLimit)
	for { // the connection comes back meanwhile: retry as a caller would
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		again, err = b.PublishID(ctx, "id-1", "t", 1)
		cancel()
		if err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil || again != first {
		t.Fatalf("retry of id-1 after an eviction and a restart: seq %d, %v; want the first, %d", again, err, first)
	}
	if last := streamState(t, nc, defaultStream).State.LastSeq; last != 2 {
		t.Fatalf("the stream's last seq is %d, want 2: the retry was stored again", last)
	}
	if _, err := b.PublishID(context.Background(), "id-1", "u", 1); !errors.Is(err, bus.ErrIDReused) {
		t.Fatalf("id-1 on another topic after its event was evicted: %v, want ErrIDReused", err)
	}
}

// An id used before the stream was deleted and recreated is a new id in
// the new epoch: never answered with the old epoch's seq (even by a bus
// that has not followed the stream into the new epoch yet), and recorded
// again there, so that its retry after an eviction and a restart is not
// stored twice either.
func TestPublishIDAcrossARecreatedStream(t *testing.T) {
	noLeaks(t)
	s, nc := single(t)
	a := newBus(t, connect(t, s.URL()), WithHistory(1))
	defer a.Close()
	for i := range 3 {
		if _, err := a.Publish(context.Background(), "u", i); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.PublishID(context.Background(), "id-old", "t", 1); err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteStream(context.Background(), defaultStream); err != nil {
		t.Fatal(err)
	}
	b := newBus(t, connect(t, s.URL()), WithHistory(1)) // recreates it: a new epoch
	defer b.Close()
	seq := publishID(t, a, "id-old", "t", 1) // a may still be in the old epoch
	if st := streamState(t, nc, defaultStream).State; st.Msgs != 1 || st.LastSeq != seq {
		t.Fatalf("id-old in the new epoch answered seq %d with the stream at %+v: not stored there", seq, st)
	}
	if _, err := b.Publish(context.Background(), "t", 2); err != nil { // evicts it
		t.Fatal(err)
	}
	s.Restart()
	if again := publishID(t, b, "id-old", "t", 1); again != seq {
		t.Fatalf("retry of id-old after an eviction and a restart: seq %d, want %d", again, seq)
	}
	if last := streamState(t, connect(t, s.URL()), defaultStream).State.LastSeq; last != seq+1 {
		t.Fatalf("the stream's last seq is %d, want %d: the retry was stored again", last, seq+1)
	}
}

// publishID publishes with id, retrying until it is stored, and returns
// its seq.
func publishID(t testing.TB, b *bus.Bus[int], id, topic string, v int) uint64 {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		seq, err := b.PublishID(ctx, id, topic, v)
		cancel()
		if err == nil {
			return seq
		}
		if time.Now().After(deadline) {
			t.Fatalf("PublishID(%s): %v", id, err)
		}
	}
}

// publishIDs publishes events from..to-1 with ids, retrying each until it
// is stored (the outcome of a publish cut by an outage may be uncertain).
func publishIDs(t testing.TB, b *bus.Bus[int], from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		deadline := time.Now().Add(waitLimit)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err := b.PublishID(ctx, fmt.Sprintf("ev-%d", i), "t", i)
			cancel()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("event %d: %v", i, err)
			}
		}
	}
}

// Guarantee 3, the other half: a deleted and recreated stream is a new
// epoch; running buses end their subscriptions with ErrSlowConsumer and go
// on in it.
func TestGuarantee3RecreatedStreamIsANewEpoch(t *testing.T) {
	noLeaks(t)
	s, _ := single(t)
	cs := conns(t, s.URL(), 3)
	a, b := newBus(t, cs[0]), newBus(t, cs[1])
	defer a.Close()
	defer b.Close()
	publishIDs(t, a, 0, 10)
	waitBusSeq(t, b, 10)
	old := a.Epoch()
	if e, err := a.LogEpoch(context.Background()); err != nil || e != old {
		t.Fatalf("LogEpoch = %q, %v; want the bus's %q", e, err, old)
	}
	subA, _ := a.Subscribe(">")
	subB, _ := b.Subscribe(">", bus.After(0))
	js, _ := jetstream.New(cs[2])
	if err := js.DeleteStream(context.Background(), defaultStream); err != nil {
		t.Fatal(err)
	}
	if _, err := a.LogEpoch(context.Background()); !errors.Is(err, ErrStream) {
		t.Fatalf("LogEpoch with no stream: %v, want ErrStream", err)
	}
	c := newBus(t, cs[2]) // recreates it
	defer c.Close()
	if c.Epoch() == old {
		t.Fatal("the recreated stream has the old epoch")
	}
	// The stream tells its new epoch at once, whether or not a running
	// bus has followed it there yet; WaitEpoch waits until it has.
	if e, err := a.LogEpoch(context.Background()); err != nil || e != c.Epoch() {
		t.Fatalf("LogEpoch after the recreation = %q, %v; want %q", e, err, c.Epoch())
	}
	wctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.WaitEpoch(wctx, c.Epoch()); err != nil || b.Epoch() != c.Epoch() {
		t.Fatalf("WaitEpoch = %v, epoch %q; want %q", err, b.Epoch(), c.Epoch())
	}
	for _, sub := range []*bus.Subscription[int]{subA, subB} {
		if err := ended(t, sub); !errors.Is(err, bus.ErrSlowConsumer) {
			t.Fatalf("a subscription of the old epoch ended with %v", err)
		}
	}
	seq, err := c.Publish(context.Background(), "t", 1)
	if err != nil || seq != 1 {
		t.Fatalf("first publish of the new epoch: %d %v", seq, err)
	}
	for _, x := range []*bus.Bus[int]{a, b} {
		waitBusSeq(t, x, 1)
		if x.Epoch() != c.Epoch() || len(history(t, x)) != 1 {
			t.Fatalf("a running bus: epoch %s (want %s), %d events", x.Epoch(), c.Epoch(), len(history(t, x)))
		}
	}
}

// Guarantee 4: Publish returns once stored; PublishID with one id on two
// nodes, also at once, is one event; another topic under a used id is
// refused; an unknown outcome says so and a retry stores nothing twice.
func TestGuarantee4Publish(t *testing.T) {
	noLeaks(t)
	s, _ := single(t)
	cs := conns(t, s.URL(), 2)
	p := natstestProxy(t, s.URL())
	pc := conns(t, p.URL(), 1)[0]
	a, b, pb := newBus(t, cs[0]), newBus(t, cs[1]), newBus(t, pc)
	defer a.Close()
	defer b.Close()
	defer pb.Close()
	sub, _ := b.Subscribe(">")
	seq, err := a.PublishID(context.Background(), "x", "t", 1)
	if err != nil || a.Seq() < seq {
		t.Fatalf("publish: %d %v; Seq %d (read your own write)", seq, err, a.Seq())
	}
	again, err := b.PublishID(context.Background(), "x", "t", 1)
	if err != nil || again != seq {
		t.Fatalf("the same id on another node: %d %v, want %d", again, err, seq)
	}
	if _, err := b.PublishID(context.Background(), "x", "other", 1); !errors.Is(err, bus.ErrIDReused) {
		t.Fatalf("the id on another topic: %v", err)
	}
	var wg sync.WaitGroup
	got := make([]uint64, 10)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			node := []*bus.Bus[int]{a, b}[i%2]
			got[i], _ = node.PublishID(context.Background(), "y", "t", 2)
		}()
	}
	wg.Wait()
	for _, g := range got {
		if g != got[0] || g == 0 {
			t.Fatalf("concurrent PublishID of one id: %v", got)
		}
	}
	p.Pause()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, err = pb.PublishID(ctx, "z", "t", 3)
	cancel()
	if !errors.Is(err, bus.ErrUncertain) && !errors.Is(err, ErrNotStored) { // not stored: the id ledger could not be read
		t.Fatalf("publish over a stalled network: %v, want ErrUncertain or ErrNotStored", err)
	}
	p.Resume()
	z, err := pb.PublishID(context.Background(), "z", "t", 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []uint64{seq, got[0], z} {
		if ev := next(t, sub); ev.Seq != want {
			t.Fatalf("subscriber got seq %d, want %d", ev.Seq, want)
		}
	}
	waitBusSeq(t, a, z)
	if n := len(history(t, a)); n != 3 {
		t.Fatalf("History holds %d events, want 3", n)
	}
}

// Guarantee 5: while NATS is unreachable Publish fails within its ctx and
// subscriptions stay open; back, the node resumes after the last event it
// applied. A node that missed events beyond retention ends its
// subscriptions, and its replays from before the loss report Recovered false.
func TestGuarantee5Outages(t *testing.T) {
	noLeaks(t)
	s, _ := single(t)
	cs := conns(t, s.URL(), 1, WithHistory(5))
	p := natstestProxy(t, s.URL())
	pc := conns(t, p.URL(), 1, WithHistory(5))[0]
	a, b := newBus(t, cs[0], WithHistory(5)), newBus(t, pc, WithHistory(5))
	defer a.Close()
	defer b.Close()
	subB, _ := b.Subscribe(">")
	subA, _ := a.Subscribe(">")
	publishIDs(t, a, 0, 3)
	waitBusSeq(t, b, 3)
	p.Down()
	waitFor(t, "the node to see NATS gone", func() bool { return !pc.IsConnected() })
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	start := time.Now()
	_, err := b.Publish(ctx, "cold", 1)
	cancel()
	if !errors.Is(err, ErrNotStored) || time.Since(start) > time.Second {
		t.Fatalf("publish while unreachable: %v after %v", err, time.Since(start))
	}
	publishIDs(t, a, 3, 6) // within retention: 3 more on "t"
	if subB.Err() != nil {
		t.Fatalf("the subscription ended during the outage: %v", subB.Err())
	}
	p.Up()
	for q := uint64(1); q <= 6; q++ {
		if ev := next(t, subB); ev.Seq != q {
			t.Fatalf("after the outage: seq %d, want %d", ev.Seq, q)
		}
	}
	p.Down()
	publishIDs(t, a, 6, 20) // beyond retention: "t" keeps 15..20 of them... only 5
	p.Up()
	if err := ended(t, subB); !errors.Is(err, bus.ErrSlowConsumer) {
		t.Fatalf("a node that missed events: its subscription ended with %v", err)
	}
	waitBusSeq(t, b, 20)
	replay, err := b.Subscribe(">", bus.After(6))
	if err != nil {
		t.Fatal(err)
	}
	if replay.Recovered() {
		t.Fatal("a replay across the loss reports Recovered")
	}
	replay.Close()
	for q := uint64(1); q <= 20; q++ {
		if ev := next(t, subA); ev.Seq != q {
			t.Fatalf("the node that stayed: seq %d, want %d", ev.Seq, q)
		}
	}
	if subA.Err() != nil {
		t.Fatal("the node that stayed connected lost its subscription")
	}
}

// Guarantee 6, Block: a full Block subscriber on one node does not slow
// publishers on another (or its own: Publish waits for the stream only).
func TestGuarantee6BlockDoesNotSlowRemotePublishers(t *testing.T) {
	noLeaks(t)
	s, _ := single(t)
	cs := conns(t, s.URL(), 2)
	a, b := newBus(t, cs[0]), newBus(t, cs[1])
	defer a.Close()
	defer b.Close()
	stuck, _ := b.Subscribe(">", bus.WithBuffer(1), bus.WithPolicy(bus.Block))
	defer stuck.Close()
	for i := range 50 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := a.Publish(ctx, "t", i)
		cancel()
		if err != nil {
			t.Fatalf("publish %d with a full Block subscriber elsewhere: %v", i, err)
		}
	}
	waitBusSeq(t, b, 50)
}
