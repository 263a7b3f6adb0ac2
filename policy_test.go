package bus

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestPolicyOverflow(t *testing.T) {
	tests := []struct {
		policy  Policy
		want    []uint64 // what the reader finds after 5 publishes into a buffer of 2
		dropped uint64
		err     error // Err once drained
	}{
		{DropOldest, []uint64{4, 5}, 3, nil},
		{DropNewest, []uint64{1, 2}, 3, nil},
		{Disconnect, []uint64{1, 2}, 0, ErrSlowConsumer},
	}
	for _, tt := range tests {
		t.Run(tt.policy.String(), func(t *testing.T) {
			b := newBus[int](t)
			s := mustSubscribe(t, b, "a", WithBuffer(2), WithPolicy(tt.policy))
			for i := range 5 {
				mustPublish(t, b, "a", i) // never waits: only Block waits
			}
			if got := seqs(drain(s)); !slices.Equal(got, tt.want) {
				t.Fatalf("queued %v, want %v", got, tt.want)
			}
			if s.Dropped() != tt.dropped || b.Stats().Dropped != tt.dropped {
				t.Fatalf("Dropped %d, Stats.Dropped %d, want %d", s.Dropped(), b.Stats().Dropped, tt.dropped)
			}
			if !errors.Is(s.Err(), tt.err) || (tt.err == nil) != (s.Err() == nil) {
				t.Fatalf("Err = %v, want %v", s.Err(), tt.err)
			}
			if tt.err != nil {
				if _, err := s.Next(context.Background()); !errors.Is(err, tt.err) {
					t.Fatalf("Next after end = %v, want %v", err, tt.err)
				}
			}
		})
	}
}

// TestDisconnectThenResume checks the documented way back from
// ErrSlowConsumer: resubscribe with After(last seen).
func TestDisconnectThenResume(t *testing.T) {
	b := newBus[int](t)
	s := mustSubscribe(t, b, "a.>", WithBuffer(1), WithPolicy(Disconnect))
	mustPublish(t, b, "a.x", 1)
	mustPublish(t, b, "a.y", 2) // ends s
	mustPublish(t, b, "a.x", 3)
	ev := next(t, s)
	if _, err := s.Next(context.Background()); !errors.Is(err, ErrSlowConsumer) {
		t.Fatalf("Next = %v, want ErrSlowConsumer", err)
	}
	again := mustSubscribe(t, b, "a.>", After(ev.Seq))
	if got := seqs(drain(again)); !slices.Equal(got, []uint64{2, 3}) || !again.Recovered() {
		t.Fatalf("resumed with %v (recovered %v), want [2 3]", got, again.Recovered())
	}
}

func TestBlockWaitsForReader(t *testing.T) {
	for _, reader := range []string{"Next", "C"} {
		t.Run(reader, func(t *testing.T) {
			b := newBus[int](t)
			s := mustSubscribe(t, b, "a", WithBuffer(2))
			mustPublish(t, b, "a", 1)
			mustPublish(t, b, "a", 2)
			done := make(chan uint64)
			go func() { done <- mustPublish(t, b, "a", 3) }()
			select {
			case <-done:
				t.Fatal("Publish into a full Block subscriber did not wait")
			case <-time.After(20 * time.Millisecond): // proving a negative needs a delay
			}
			if reader == "Next" {
				next(t, s)
			} else {
				<-s.C()
			}
			if seq := <-done; seq != 3 {
				t.Fatalf("waiting publish got seq %d", seq)
			}
			if got := seqs(drain(s)); !slices.Equal(got, []uint64{2, 3}) {
				t.Fatalf("queued %v", got)
			}
		})
	}
}

// TestBlockTimeoutIsAtomic checks guarantee 4: a Publish that gives up
// leaves no trace: no subscriber, no History, no Seq.
func TestBlockTimeoutIsAtomic(t *testing.T) {
	b := newBus[int](t)
	full := mustSubscribe(t, b, "a", WithBuffer(1))
	other := mustSubscribe(t, b, ">", WithPolicy(DropNewest))
	mustPublish(t, b, "a", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := b.Publish(ctx, "a", 2); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Publish = %v, want DeadlineExceeded", err)
	}
	if b.Seq() != 1 || b.Stats().Published != 1 {
		t.Fatalf("Seq moved to %d", b.Seq())
	}
	if h, _ := b.History(">", 0, 0); len(h) != 1 {
		t.Fatalf("History holds %v", seqs(h))
	}
	if got := seqs(drain(other)); !slices.Equal(got, []uint64{1}) {
		t.Fatalf("other subscriber saw %v", got)
	}
	if got := seqs(drain(full)); !slices.Equal(got, []uint64{1}) {
		t.Fatalf("full subscriber saw %v", got)
	}
	// The next publish takes seq 2: no number was burnt.
	if seq := mustPublish(t, b, "a", 3); seq != 2 {
		t.Fatalf("next seq %d, want 2", seq)
	}
}

func TestPublishThatNeedNotWaitIgnoresCtx(t *testing.T) {
	b := newBus[int](t)
	s := mustSubscribe(t, b, "a")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.Publish(ctx, "a", 1); err != nil {
		t.Fatalf("Publish with a done ctx and room = %v", err)
	}
	if ev := next(t, s); ev.Data != 1 {
		t.Fatalf("got %+v", ev)
	}
}

func TestBlockedPublishGoesOnWhenSubscriptionCloses(t *testing.T) {
	b := newBus[int](t)
	s := mustSubscribe(t, b, "a", WithBuffer(1))
	mustPublish(t, b, "a", 1)
	done := make(chan error)
	go func() {
		_, err := b.Publish(context.Background(), "a", 2)
		done <- err
	}()
	waitFor(t, func() bool { return s.waiters.Load() == 1 })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Publish after the only blocker closed = %v", err)
	}
	if !errors.Is(s.Err(), ErrSubscriptionClosed) {
		t.Fatalf("Err = %v", s.Err())
	}
}

// TestPublishFromOwnReceiveLoop checks that a handler may publish to topics
// its own subscription matches under every policy but Block without ever
// deadlocking, whatever the buffer.
func TestPublishFromOwnReceiveLoop(t *testing.T) {
	for _, p := range []Policy{DropOldest, DropNewest, Disconnect} {
		t.Run(p.String(), func(t *testing.T) {
			b := newBus[int](t)
			s := mustSubscribe(t, b, "loop", WithBuffer(1), WithPolicy(p))
			mustPublish(t, b, "loop", 0)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for i := range 100 {
				ev, err := s.Next(ctx)
				if err != nil {
					if p == Disconnect && errors.Is(err, ErrSlowConsumer) {
						return
					}
					t.Fatalf("Next after %d: %v", i, err)
				}
				// Two publishes per event read: the buffer of 1 overflows.
				for range 2 {
					if _, err := b.Publish(ctx, "loop", ev.Data+1); err != nil {
						t.Fatalf("Publish from the receive loop: %v", err)
					}
				}
			}
		})
	}
}

// TestBlockSelfWaitIsBoundedByCtx documents the one deadlock the design
// leaves: a Block reader publishing into itself waits until its ctx ends.
func TestBlockSelfWaitIsBoundedByCtx(t *testing.T) {
	b := newBus[int](t)
	s := mustSubscribe(t, b, "loop", WithBuffer(1))
	mustPublish(t, b, "loop", 0)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := b.Publish(ctx, "loop", 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("self-publish into a full Block subscription = %v", err)
	}
	next(t, s)
}

// TestSlowSubscriberDoesNotStallOthers: a stuck DropNewest subscriber costs
// a publisher nothing, and a stuck Block subscriber stalls only publishers
// of topics it matches.
func TestSlowSubscriberDoesNotStallOthers(t *testing.T) {
	b := newBus[int](t)
	mustSubscribe(t, b, "slow.>", WithBuffer(1), WithPolicy(DropNewest))
	mustSubscribe(t, b, "blocked", WithBuffer(1))
	mustPublish(t, b, "blocked", 0)
	fast := mustSubscribe(t, b, ">", WithBuffer(10_000))
	for i := range 1000 {
		mustPublish(t, b, "slow.x", i)
	}
	if n := len(drain(fast)); n != 1000 {
		t.Fatalf("fast subscriber got %d events, want 1000", n)
	}
}

func TestBufferBelowOneMeansOne(t *testing.T) {
	b := newBus[int](t)
	s := mustSubscribe(t, b, "a", WithBuffer(0), WithPolicy(DropNewest))
	mustPublish(t, b, "a", 1)
	mustPublish(t, b, "a", 2)
	if got := seqs(drain(s)); !slices.Equal(got, []uint64{1}) || s.Dropped() != 1 {
		t.Fatalf("queued %v dropped %d", got, s.Dropped())
	}
}

// waitFor polls cond until it holds: for states nothing signals (a
// publisher parked inside Publish).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestPolicyProperties is a stress test of every policy at once: several
// publishers, readers of every policy at different speeds. Each reader must
// see strictly increasing Seq; Block readers see every matching event;
// drop-policy readers account for every event as read or dropped; a
// Disconnect reader sees an unbroken run of the matching events.
func TestPolicyProperties(t *testing.T) {
	b := New[int](WithHistory(0))
	const publishers, perPublisher = 4, 300
	type reader struct {
		s    *Subscription[int]
		got  []uint64
		slow bool
	}
	var readers []*reader
	for i, p := range []Policy{Block, DropOldest, DropNewest, Disconnect, Block, DropOldest, DropNewest, Disconnect} {
		pattern := []string{">", "p.*.even"}[i%2]
		readers = append(readers, &reader{s: mustSubscribe(t, b, pattern, WithBuffer(4), WithPolicy(p)), slow: i >= 4})
	}
	var readWG sync.WaitGroup
	for _, r := range readers {
		readWG.Go(func() {
			for ev := range r.s.C() {
				r.got = append(r.got, ev.Seq)
				if r.slow {
					time.Sleep(10 * time.Microsecond) // a reader slower than the publishers
				}
			}
		})
	}
	var mu sync.Mutex
	var published []Event[int]
	var pubWG sync.WaitGroup
	for p := range publishers {
		pubWG.Go(func() {
			for i := range perPublisher {
				topic := fmt.Sprintf("p.%d.%s", p, []string{"even", "odd"}[i%2])
				seq := mustPublish(t, b, topic, i)
				mu.Lock()
				published = append(published, Event[int]{Seq: seq, Topic: topic})
				mu.Unlock()
			}
		})
	}
	pubWG.Wait()
	b.Close()
	readWG.Wait()
	slices.SortFunc(published, func(a, b Event[int]) int { return cmp.Compare(a.Seq, b.Seq) })
	for i, r := range readers {
		var want []uint64
		for _, ev := range published {
			if matchSubject(r.s.Pattern(), ev.Topic) {
				want = append(want, ev.Seq)
			}
		}
		if !slices.IsSorted(r.got) || len(slices.Compact(slices.Clone(r.got))) != len(r.got) {
			t.Errorf("reader %d (%v): not strictly increasing", i, r.s.policy)
		}
		switch r.s.policy {
		case Block:
			if !slices.Equal(r.got, want) {
				t.Errorf("reader %d (Block): got %d events, want all %d", i, len(r.got), len(want))
			}
		case DropOldest, DropNewest:
			if uint64(len(r.got))+r.s.Dropped() != uint64(len(want)) {
				t.Errorf("reader %d (%v): read %d + dropped %d != %d published", i, r.s.policy, len(r.got), r.s.Dropped(), len(want))
			}
		case Disconnect:
			if len(r.got) > 0 && !slices.Equal(r.got, want[:len(r.got)]) {
				t.Errorf("reader %d (Disconnect): not an unbroken run from the start", i)
			}
		}
	}
}

// TestReaderWakesWaitingPublisher checks the signal path, which the
// publisher's fallback naps would otherwise hide: a Next that takes an
// event while a publisher waits leaves it a wake-up, and none when nobody
// waits. Then, as a liveness check, two publishers waiting on one full
// subscription both get through when a C reader frees two places.
func TestReaderWakesWaitingPublisher(t *testing.T) {
	b := newBus[int](t)
	s := mustSubscribe(t, b, "a", WithBuffer(3))
	for i := range 3 {
		mustPublish(t, b, "a", i)
	}
	s.waiters.Add(1) // as a waiting publisher does
	next(t, s)
	if len(s.room) != 1 {
		t.Fatal("Next did not leave a wake-up for the waiting publisher")
	}
	<-s.room
	s.waiters.Add(-1)
	next(t, s) // now two free places, nobody waiting: no wake-up
	if len(s.room) != 0 {
		t.Fatal("Next left a wake-up with nobody waiting")
	}

	full := mustSubscribe(t, b, "w", WithBuffer(2))
	mustPublish(t, b, "w", 0)
	mustPublish(t, b, "w", 0)
	done := make(chan struct{}, 2)
	for range 2 {
		go func() { mustPublish(t, b, "w", 1); done <- struct{}{} }()
	}
	waitFor(t, func() bool { return full.waiters.Load() == 2 })
	<-full.C()
	<-full.C()
	<-done
	<-done
	if got := len(drain(full)); got != 2 {
		t.Fatalf("queued %d, want 2", got)
	}
}

// TestBlockRangeReaderNeverStrandsAPublisher: a reader ranging over C
// cannot wake a waiting publisher, which looks at the channel's length
// instead. A publisher that read that length after the reader had emptied
// the channel waited for a shorter queue forever (found by a benchmark
// that hung): with a buffer of 1 every publish races the reader, and each
// must get through long before its generous deadline.
func TestBlockRangeReaderNeverStrandsAPublisher(t *testing.T) {
	b := newBus[int](t)
	s := mustSubscribe(t, b, "a", WithBuffer(1))
	n := 200_000
	if testing.Short() {
		n = 20_000
	}
	read := make(chan int)
	go func() {
		got := 0
		for range s.C() {
			if got++; got == n {
				break
			}
		}
		read <- got
	}()
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := b.Publish(ctx, "a", i)
		cancel()
		if err != nil {
			t.Fatalf("publish %d of %d: %v (queued %d)", i, n, err, len(s.ch))
		}
	}
	if got := <-read; got != n {
		t.Fatalf("read %d, want %d", got, n)
	}
}
