package bus_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	bus "github.com/whalesong/bus"
	"github.com/whalesong/bus/internal/memlog"
)

// These tests run the bus on an in-memory shared log (internal/memlog):
// several buses on one log behave like several processes on one stream.

const waitLong = 10 * time.Second

// node is a bus on its own view of a shared log.
type node struct {
	*bus.Bus[int]
	view *memlog.View[int]
}

func newNodes(t *testing.T, l *memlog.Log[int], n int, opts ...bus.Option) []node {
	t.Helper()
	nodes := make([]node, n)
	for i := range nodes {
		v := l.View()
		b := bus.New[int](append([]bus.Option{bus.WithLog[int](v)}, opts...)...)
		t.Cleanup(func() { b.Close() })
		nodes[i] = node{b, v}
	}
	for _, nd := range nodes {
		ready(t, nd.Bus, l.Head())
	}
	return nodes
}

func ready(t *testing.T, b *bus.Bus[int], seq uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	if err := b.WaitSeq(ctx, seq); err != nil {
		t.Fatalf("WaitSeq(%d): %v (Seq %d)", seq, err, b.Seq())
	}
}

func nextEv(t *testing.T, s *bus.Subscription[int]) bus.Event[int] {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	ev, err := s.Next(ctx)
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return ev
}

func endErr(t *testing.T, s *bus.Subscription[int]) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	for {
		if _, err := s.Next(ctx); err != nil {
			return err
		}
	}
}

func TestSharedOneSequenceSpace(t *testing.T) {
	l := memlog.New[int](0)
	nodes := newNodes(t, l, 3)
	const perPublisher = 300
	subs := make([]*bus.Subscription[int], len(nodes))
	for i, nd := range nodes {
		s, err := nd.Subscribe(">", bus.WithBuffer(4*perPublisher*len(nodes)))
		if err != nil {
			t.Fatal(err)
		}
		subs[i] = s
		if nd.Epoch() != l.Epoch() {
			t.Fatalf("node %d epoch %q, log %q", i, nd.Epoch(), l.Epoch())
		}
	}
	var wg sync.WaitGroup
	for i, nd := range nodes {
		for p := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := range perPublisher {
					seq, err := nd.Publish(context.Background(), fmt.Sprintf("t.%d.%d", i, p), k)
					if err != nil {
						t.Error(err)
						return
					}
					// Read your own write: this node has applied it.
					if nd.Seq() < seq {
						t.Errorf("node %d: Publish returned %d before applying it (Seq %d)", i, seq, nd.Seq())
					}
				}
			}()
		}
	}
	wg.Wait()
	total := perPublisher * 2 * len(nodes)
	var first []uint64
	for i, s := range subs {
		var got []uint64
		for range total {
			got = append(got, nextEv(t, s).Seq)
		}
		if !slices.IsSorted(got) || got[0] != 1 || got[total-1] != uint64(total) {
			t.Fatalf("node %d: not 1..%d in order: first %d last %d", i, total, got[0], got[total-1])
		}
		if first == nil {
			first = got
		} else if !slices.Equal(first, got) {
			t.Fatalf("node %d delivered another order", i)
		}
	}
}

func TestSharedResumeOnAnotherNode(t *testing.T) {
	l := memlog.New[int](0)
	nodes := newNodes(t, l, 2)
	a, c := nodes[0], nodes[1]
	for i := range 10 {
		if _, err := a.Publish(context.Background(), "room", i); err != nil {
			t.Fatal(err)
		}
	}
	ready(t, c.Bus, 10)
	s, err := c.Subscribe("room", bus.After(4))
	if err != nil {
		t.Fatal(err)
	}
	for want := uint64(5); want <= 10; want++ {
		if ev := nextEv(t, s); ev.Seq != want || ev.Data != int(want-1) {
			t.Fatalf("got %+v, want seq %d", ev, want)
		}
	}
	if !s.Recovered() {
		t.Fatal("resume on another node not recovered")
	}
}

func TestSharedUncertainPublishRetriedOnce(t *testing.T) {
	l := memlog.New[int](0)
	nodes := newNodes(t, l, 2)
	a, b := nodes[0], nodes[1]
	sub, err := b.Subscribe(">")
	if err != nil {
		t.Fatal(err)
	}
	l.LoseAcks(1)
	_, err = a.PublishID(context.Background(), "id-1", "x", 7)
	if !errors.Is(err, bus.ErrUncertain) {
		t.Fatalf("lost ack: err %v, want ErrUncertain", err)
	}
	seq1, err := a.PublishID(context.Background(), "id-1", "x", 7)
	if err != nil {
		t.Fatal(err)
	}
	seq2, err := b.PublishID(context.Background(), "id-1", "x", 7) // on another node
	if err != nil || seq2 != seq1 {
		t.Fatalf("retry on another node: %d, %v; want %d", seq2, err, seq1)
	}
	if _, err := a.Publish(context.Background(), "x", 8); err != nil {
		t.Fatal(err)
	}
	if ev := nextEv(t, sub); ev.Seq != seq1 || ev.Data != 7 {
		t.Fatalf("first event %+v", ev)
	}
	if ev := nextEv(t, sub); ev.Data != 8 {
		t.Fatalf("the retried publish landed twice: %+v", ev)
	}
	if n := len(l.Retained()); n != 2 {
		t.Fatalf("log holds %d events, want 2", n)
	}
}

func TestSharedDefiniteFailureIsAtomic(t *testing.T) {
	l := memlog.New[int](0)
	a := newNodes(t, l, 1)[0]
	l.FailAppends(1)
	if _, err := a.Publish(context.Background(), "x", 1); err == nil || errors.Is(err, bus.ErrUncertain) {
		t.Fatalf("refused append: err %v", err)
	}
	if a.Seq() != 0 || len(l.Retained()) != 0 {
		t.Fatal("a refused publish moved Seq or was stored")
	}
	if _, err := a.Publish(context.Background(), "bad topic", 1); !errors.Is(err, bus.ErrInvalidTopic) {
		t.Fatalf("bad topic: %v", err)
	}
}

// TestSharedMissedEventsEndSubscriptions: a node whose connection is down
// while a topic's old events are evicted cannot deliver them; it ends its
// subscriptions and its replays report the loss, while the others go on.
func TestSharedMissedEventsEndSubscriptions(t *testing.T) {
	l := memlog.New[int](2) // two events per topic
	nodes := newNodes(t, l, 2, bus.WithHistory(2))
	a, c := nodes[0], nodes[1]
	ctx := context.Background()
	if _, err := a.Publish(ctx, "hot", 0); err != nil {
		t.Fatal(err)
	}
	ready(t, c.Bus, 1)
	onA, _ := a.Subscribe(">", bus.WithBuffer(64))
	onC, _ := c.Subscribe(">", bus.WithBuffer(64))
	c.view.SetDown(true)
	for i := 1; i <= 5; i++ { // seqs 2..6 on "hot": 2, 3, 4 are evicted
		if _, err := a.Publish(ctx, "hot", i); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Publish(ctx, "quiet", 9); err != nil { // seq 7
		t.Fatal(err)
	}
	c.view.SetDown(false)
	ready(t, c.Bus, 7)
	if err := endErr(t, onC); !errors.Is(err, bus.ErrSlowConsumer) {
		t.Fatalf("node that missed events: subscription ended with %v, want ErrSlowConsumer", err)
	}
	for want := uint64(2); want <= 7; want++ {
		if ev := nextEv(t, onA); ev.Seq != want {
			t.Fatalf("other node: got %d, want %d", ev.Seq, want)
		}
	}
	s, _ := c.Subscribe("quiet", bus.After(1))
	if s.Recovered() {
		t.Fatal("replay across the missed events reported Recovered")
	}
	if after, before := s.Missing(); after != 1 || before < 5 || before > 8 {
		t.Fatalf("Missing = (%d, %d), want (1, 5..8)", after, before)
	}
	s, _ = c.Subscribe("quiet", bus.After(6))
	if !s.Recovered() {
		t.Fatal("replay after the missed events not recovered")
	}
	if got := len(mustHistory(t, c.Bus, ">")); got != 3 { // hot 5, 6 and quiet 7
		t.Fatalf("node c retains %d events, want 3", got)
	}
}

func mustHistory(t *testing.T, b *bus.Bus[int], pattern string) []bus.Event[int] {
	t.Helper()
	evs, err := b.History(pattern, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// TestSharedEpochChange: a recreated log is a new epoch on every node;
// their subscriptions end and they go on from its first event.
func TestSharedEpochChange(t *testing.T) {
	l := memlog.New[int](0)
	nodes := newNodes(t, l, 2)
	ctx := context.Background()
	if _, err := nodes[0].Publish(ctx, "x", 1); err != nil {
		t.Fatal(err)
	}
	old := nodes[0].Epoch()
	var subs []*bus.Subscription[int]
	for _, nd := range nodes {
		ready(t, nd.Bus, 1)
		s, _ := nd.Subscribe(">")
		subs = append(subs, s)
	}
	l.Recreate()
	for i, s := range subs {
		if err := endErr(t, s); !errors.Is(err, bus.ErrSlowConsumer) {
			t.Fatalf("node %d: ended with %v, want ErrSlowConsumer", i, err)
		}
	}
	seq, err := nodes[1].Publish(ctx, "y", 2)
	if err != nil || seq != 1 {
		t.Fatalf("first publish of the new epoch: %d, %v", seq, err)
	}
	for i, nd := range nodes {
		ready(t, nd.Bus, 1)
		if nd.Epoch() == old || nd.Epoch() != l.Epoch() {
			t.Fatalf("node %d epoch %q (old %q, log %q)", i, nd.Epoch(), old, l.Epoch())
		}
		if evs := mustHistory(t, nd.Bus, ">"); len(evs) != 1 || evs[0].Topic != "y" {
			t.Fatalf("node %d history of the new epoch: %+v", i, evs)
		}
	}
}

// TestSharedLateNodeLoadsHistory: a node started after events were
// published (and some evicted) loads what the log retains, and its
// Recovered stays honest about what it never saw.
func TestSharedLateNodeLoadsHistory(t *testing.T) {
	l := memlog.New[int](3)
	first := newNodes(t, l, 1, bus.WithHistory(3))[0]
	ctx := context.Background()
	for i := range 6 { // "full" gets 1..6, keeps 4..6
		if _, err := first.Publish(ctx, "full", i); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := first.Publish(ctx, "small", 6); err != nil { // seq 7
		t.Fatal(err)
	}
	late := newNodes(t, l, 1, bus.WithHistory(3))[0]
	if got, want := mustHistory(t, late.Bus, ">"), mustHistory(t, first.Bus, ">"); !slices.EqualFunc(got, want, sameEvent) {
		t.Fatalf("late node history %v, first node %v", got, want)
	}
	if late.Seq() != 7 || late.Epoch() != first.Epoch() {
		t.Fatalf("late node at %d in %q", late.Seq(), late.Epoch())
	}
	if s, _ := late.Subscribe("full", bus.After(0)); s.Recovered() {
		t.Fatal("a full topic's evicted events were reported recovered")
	}
	if s, _ := late.Subscribe("full", bus.After(3)); !s.Recovered() {
		t.Fatal("asking only for what is retained was not recovered")
	}
	if s, _ := late.Subscribe("small", bus.After(0)); !s.Recovered() {
		t.Fatal("a topic below its cap lost nothing, yet not recovered")
	}
}

func sameEvent(a, b bus.Event[int]) bool {
	return a.Seq == b.Seq && a.Topic == b.Topic && a.Data == b.Data && a.Time.Equal(b.Time)
}

// TestSharedIdleLogWithDeletedHead: a node that starts on a log whose
// newest events were deleted still learns where the log stands.
func TestSharedIdleLogWithDeletedHead(t *testing.T) {
	l := memlog.New[int](0)
	seed := newNodes(t, l, 1)[0]
	for i := range 3 {
		if _, err := seed.Publish(context.Background(), "x", i); err != nil {
			t.Fatal(err)
		}
	}
	l.Delete(3)
	l.Delete(2)
	late := newNodes(t, l, 1)[0] // waits for Seq 3
	if got := mustHistory(t, late.Bus, ">"); len(got) != 1 || got[0].Seq != 1 {
		t.Fatalf("history %+v", got)
	}
}

// TestSharedBlockIsRefilled: on a shared log publishers cannot wait for a
// full Block subscriber; it is refilled from the history as it reads, and
// ends with ErrSlowConsumer only once the history no longer holds what it
// has not read.
func TestSharedBlockIsRefilled(t *testing.T) {
	ctx := context.Background()
	for _, useC := range []bool{false, true} {
		t.Run(fmt.Sprintf("viaC=%v", useC), func(t *testing.T) {
			l := memlog.New[int](0)
			a := newNodes(t, l, 1, bus.WithHistory(100))[0]
			s, _ := a.Subscribe("t.>", bus.WithBuffer(2))
			for i := range 30 {
				if _, err := a.Publish(ctx, fmt.Sprintf("t.%d", i%3), i); err != nil {
					t.Fatal(err)
				}
			}
			for want := range 30 {
				var ev bus.Event[int]
				if useC {
					select {
					case ev = <-s.C():
					case <-time.After(waitLong):
						t.Fatalf("C gave nothing after %d", want)
					}
				} else {
					ev = nextEv(t, s)
				}
				if ev.Data != want || ev.Skipped != 0 {
					t.Fatalf("got %+v, want data %d", ev, want)
				}
			}
			if s.Dropped() != 0 || s.Err() != nil {
				t.Fatalf("Dropped %d, Err %v", s.Dropped(), s.Err())
			}
		})
	}
	t.Run("beyond history", func(t *testing.T) {
		l := memlog.New[int](0)
		a := newNodes(t, l, 1, bus.WithHistory(4))[0]
		s, _ := a.Subscribe("t", bus.WithBuffer(2))
		for i := range 10 {
			if _, err := a.Publish(ctx, "t", i); err != nil {
				t.Fatal(err)
			}
		}
		got := 0
		err := func() error {
			for {
				ev, err := s.Next(ctx)
				if err != nil {
					return err
				}
				if ev.Data != got {
					t.Fatalf("got %d, want %d", ev.Data, got)
				}
				got++
			}
		}()
		if !errors.Is(err, bus.ErrSlowConsumer) || got != 2 {
			t.Fatalf("read %d, then %v; want 2, then ErrSlowConsumer", got, err)
		}
	})
}

func TestSharedWaitSeqAndClose(t *testing.T) {
	l := memlog.New[int](0)
	nodes := newNodes(t, l, 2)
	a, c := nodes[0], nodes[1]
	c.view.SetDown(true)
	seq, err := a.Publish(context.Background(), "x", 1)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := c.WaitSeq(short, seq); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitSeq on a node that is down: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- c.WaitSeq(context.Background(), seq) }()
	c.view.SetDown(false)
	if err := <-done; err != nil {
		t.Fatalf("WaitSeq after the node is back: %v", err)
	}
	if got := c.Seq(); got < seq { // it returned before the node had the event
		t.Fatalf("WaitSeq(%d) returned with the node at seq %d", seq, got)
	}
	// Close ends a publish whose append cannot finish, and every wait.
	c.view.SetDown(true)
	waiting := make(chan error, 1)
	go func() { waiting <- c.WaitSeq(context.Background(), seq+100) }()
	if _, err := c.Publish(context.Background(), "x", 2); err == nil {
		t.Fatal("publish through a view that is down succeeded")
	}
	c.Close()
	if err := <-waiting; !errors.Is(err, bus.ErrClosed) {
		t.Fatalf("WaitSeq after Close: %v", err)
	}
	if _, err := c.Publish(context.Background(), "x", 3); !errors.Is(err, bus.ErrClosed) {
		t.Fatalf("Publish after Close: %v", err)
	}
}

// TestSharedWaitEpochAndLogEpoch: a node whose follower has not yet seen
// the log recreated is still in the old epoch; LogEpoch asks the log and
// names the new one, WaitEpoch returns once the node is in it, and ends
// with ctx or Close otherwise. A bus that is not shared answers Epoch().
func TestSharedWaitEpochAndLogEpoch(t *testing.T) {
	l := memlog.New[int](0)
	nodes := newNodes(t, l, 1)
	c := nodes[0]
	old := c.Epoch()
	c.view.Stall(true)
	l.Recreate()
	now, err := c.LogEpoch(context.Background())
	if err != nil || now == old || now != l.Epoch() {
		t.Fatalf("LogEpoch = %q, %v; want the log's new %q (old %q)", now, err, l.Epoch(), old)
	}
	if c.Epoch() != old {
		t.Fatalf("Epoch() = %q while stalled, want the old %q", c.Epoch(), old)
	}
	short, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := c.WaitEpoch(short, now); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitEpoch while stalled: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- c.WaitEpoch(context.Background(), now) }()
	c.view.Stall(false)
	if err := <-done; err != nil || c.Epoch() != now {
		t.Fatalf("WaitEpoch = %v, Epoch() = %q; want nil in %q", err, c.Epoch(), now)
	}
	if err := c.WaitEpoch(context.Background(), now); err != nil {
		t.Fatalf("WaitEpoch in that epoch already: %v", err)
	}
	c.view.SetDown(true)
	if _, err := c.LogEpoch(context.Background()); !errors.Is(err, memlog.ErrDown) {
		t.Fatalf("LogEpoch through a view that is down: %v", err)
	}
	waiting := make(chan error, 1)
	go func() { waiting <- c.WaitEpoch(context.Background(), "never") }()
	c.Close()
	if err := <-waiting; !errors.Is(err, bus.ErrClosed) {
		t.Fatalf("WaitEpoch after Close: %v", err)
	}

	plain := bus.New[int]()
	defer plain.Close()
	if e, err := plain.LogEpoch(context.Background()); err != nil || e != plain.Epoch() {
		t.Fatalf("LogEpoch in process = %q, %v; want %q", e, err, plain.Epoch())
	}
	// No bus is ever in the epoch "": WaitEpoch waits for it as for any
	// other it is not in, rather than taking it for a WaitSeq.
	for _, b := range []*bus.Bus[int]{plain, newNodes(t, l, 1)[0].Bus} {
		short, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		err := b.WaitEpoch(short, "")
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("WaitEpoch(\"\") = %v, want the ctx's end", err)
		}
	}
}

// TestSharedWaitSeqRacesTheApply: a WaitSeq that starts while the
// follower applies its seq must not miss the wake-up. It once counted
// itself as waiting only after it had looked at the bus, so an apply in
// between woke nobody, and every Publish on a shared log that lost this
// race waited out its 5 s bound (seen as 5 s stalls in natsbus's
// benchmark). Each wait here has 2 s, far more than an apply takes.
func TestSharedWaitSeqRacesTheApply(t *testing.T) {
	l := memlog.New[int](0)
	c := newNodes(t, l, 1)[0]
	n := 20_000
	if testing.Short() {
		n = 2_000
	}
	for i := range n {
		seq, err := l.Append(context.Background(), "", "x", i)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err = c.WaitSeq(ctx, seq)
		cancel()
		if err != nil {
			t.Fatalf("WaitSeq(%d) after %d rounds: %v (the bus is at %d)", seq, i, err, c.Seq())
		}
	}
}

// TestSharedLostEvent: an event the log holds but cannot hand over (it
// does not decode) ends the subscriptions it would have reached and counts
// as lost on its topic only.
func TestSharedLostEvent(t *testing.T) {
	l := memlog.New[int](0)
	a := newNodes(t, l, 1)[0]
	ctx := context.Background()
	for _, topic := range []string{"a", "b"} {
		if _, err := a.Publish(ctx, topic, 1); err != nil {
			t.Fatal(err)
		}
	}
	onA, _ := a.Subscribe("a")
	onB, _ := a.Subscribe("b")
	seq := l.Poison("a")
	if _, err := a.Publish(ctx, "b", 2); err != nil {
		t.Fatal(err)
	}
	if err := endErr(t, onA); !errors.Is(err, bus.ErrSlowConsumer) {
		t.Fatalf("subscription of the lost event's topic: %v, want ErrSlowConsumer", err)
	}
	if ev := nextEv(t, onB); ev.Data != 2 || onB.Err() != nil {
		t.Fatalf("other topic: %+v, %v", ev, onB.Err())
	}
	if s, _ := a.Subscribe("a", bus.After(seq-1)); s.Recovered() {
		t.Fatal("a replay asking for the lost event reported recovered")
	}
	if s, _ := a.Subscribe("b", bus.After(0)); !s.Recovered() {
		t.Fatal("a replay of another topic reported the loss")
	}
}

// brokenLog is a log whose Follow always gives up at once.
type brokenLog struct{ *memlog.Log[int] }

func (brokenLog) Follow(context.Context, bus.Position, func(bus.Record[int])) error {
	return errors.New("no route to the log")
}

func TestSharedHealth(t *testing.T) {
	if err := bus.New[int]().Health(); err != nil {
		t.Fatalf("in-process Health: %v", err)
	}
	good := newNodes(t, memlog.New[int](0), 1)[0]
	if err := good.Health(); err != nil {
		t.Fatalf("a following bus: %v", err)
	}
	b := bus.New[int](bus.WithLog[int](brokenLog{memlog.New[int](0)}))
	defer b.Close()
	deadline := time.Now().Add(waitLong)
	for b.Health() == nil && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond) // nothing signals a Follow that gave up
	}
	if err := b.Health(); err == nil || !strings.Contains(err.Error(), "no route") {
		t.Fatalf("Health of a bus whose log gives up: %v", err)
	}
}

// TestSharedAfterAheadOfNode: a subscriber that saw seq x on one node and
// resumes with After(x) on a node that has not applied x yet gets nothing
// twice, neither from the replay nor live as the node catches up, and then
// every event after x, in order, under every policy (Block with a buffer of
// one event also falls behind and refills from the history).
func TestSharedAfterAheadOfNode(t *testing.T) {
	for _, pol := range []bus.Policy{bus.Block, bus.DropNewest, bus.DropOldest, bus.Conflate, bus.Disconnect} {
		t.Run(fmt.Sprint(pol), func(t *testing.T) {
			l := memlog.New[int](0)
			nodes := newNodes(t, l, 2)
			a, c := nodes[0], nodes[1]
			for i := range 3 {
				publishOn(t, a.Bus, "x", i)
			}
			ready(t, c.Bus, 3)
			c.view.Stall(true)
			var x uint64
			for i := range 5 {
				x = publishOn(t, a.Bus, "x", i)
			}
			if c.Seq() >= x {
				t.Fatalf("the stalled node is at %d, not behind %d", c.Seq(), x)
			}
			buf := 1
			if pol != bus.Block {
				buf = 64 // the lossy policies must not lose here
			}
			s, err := c.Subscribe("x", bus.After(x), bus.WithPolicy(pol), bus.WithBuffer(buf))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if !s.Recovered() {
				t.Fatalf("After(%d) ahead of the node: Recovered false", x)
			}
			c.view.Stall(false)
			want := []uint64{publishOn(t, a.Bus, "x", 8), publishOn(t, a.Bus, "x", 9)}
			for _, w := range want {
				if ev := nextEv(t, s); ev.Seq != w {
					t.Fatalf("After(%d): got seq %d, want %d (nothing up to %d again)", x, ev.Seq, w, x)
				}
			}
		})
	}
}

func publishOn(t *testing.T, b *bus.Bus[int], topic string, v int) uint64 {
	t.Helper()
	seq, err := b.Publish(context.Background(), topic, v)
	if err != nil {
		t.Fatal(err)
	}
	return seq
}
