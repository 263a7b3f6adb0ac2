package bus

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
)

// A publisher knows a lower bound of the room left in a subscription
// without a tail (its credit: the room it saw at its last look at the
// channel, less what it sent since) and reads the channel's length again
// only when that runs out (see roomy). These tests hold the decisions taken
// that way to the exact count of live events queued, with reads between
// publishes, replayed events ahead of the live ones, and readers racing the
// publishers.

// queuedEvent is what the model expects to read next.
type queuedEvent struct {
	seq     uint64
	skipped uint64
	live    bool
}

// TestRoomAgainstModel drives Block, DropNewest and Disconnect with random
// publishes and reads, with and without a replay, on a literal and on a
// wildcard pattern (their queues have different guards), and checks every
// decision against a model: a Block publish with an ended ctx succeeds
// exactly when a live event fits in the buffer, DropNewest drops and
// Disconnect ends exactly when none does, and every event read (Seq,
// Skipped) and Pending are the model's.
func TestRoomAgainstModel(t *testing.T) {
	for _, policy := range []Policy{Block, DropNewest, Disconnect} {
		for _, replayed := range []int{0, 3} {
			for _, pattern := range []string{"r.x", "r.*"} {
				t.Run(fmt.Sprintf("%v/replayed=%d/%s", policy, replayed, pattern), func(t *testing.T) {
					for seed := range uint64(25) {
						within(t, 20*time.Second, func() error {
							return roomModelRun(policy, replayed, pattern, seed)
						})
					}
				})
			}
		}
	}
}

// within runs f and fails t with its error, or when it has not returned
// after limit: a send into a channel that the publisher wrongly believed
// to have room blocks for ever (under the shard lock), and the test must
// fail rather than hang.
func within(t *testing.T, limit time.Duration, f func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	timer := time.NewTimer(limit)
	defer timer.Stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-timer.C:
		t.Fatalf("not done after %v: a publish or a read is stuck", limit)
	}
}

func roomModelRun(policy Policy, replayed int, pattern string, seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, uint64(policy)))
	b := New[int]()
	defer b.Close()
	ctx := context.Background()
	for i := range replayed {
		if _, err := b.Publish(ctx, "r.x", i); err != nil {
			return err
		}
	}
	buffer := 1 + rng.IntN(4)
	opts := []SubscribeOption{WithBuffer(buffer), WithPolicy(policy)}
	var queue []queuedEvent
	if replayed > 0 {
		opts = append(opts, After(0))
		for i := range replayed {
			queue = append(queue, queuedEvent{seq: uint64(i + 1)})
		}
	}
	s, err := b.Subscribe(pattern, opts...)
	if err != nil {
		return err
	}
	ended, cancel := context.WithCancel(ctx)
	cancel() // a Block publish that must wait fails at once; one that need not ignores it
	var live int
	var skip, dropped uint64
	for step := range 300 {
		where := fmt.Sprintf("seed %d, buffer %d, step %d", seed, buffer, step)
		if rng.IntN(5) < 3 {
			full := live >= buffer
			seq, err := b.Publish(ended, "r.x", step)
			switch {
			case policy == Block && full:
				if !errors.Is(err, context.Canceled) {
					return fmt.Errorf("%s: publish into a full Block subscription: seq %d, err %v; want context.Canceled", where, seq, err)
				}
				continue
			case err != nil:
				return fmt.Errorf("%s: publish: %w (full: %v)", where, err, full)
			case !full:
				queue = append(queue, queuedEvent{seq: seq, skipped: skip, live: true})
				live, skip = live+1, 0
			case policy == DropNewest:
				skip, dropped = skip+1, dropped+1
			case policy == Disconnect:
				return checkEnded(s, queue, where)
			}
		} else {
			for range rng.IntN(len(queue) + 1) {
				if err := readExpected(s, queue[0], rng.IntN(2) == 0, where); err != nil {
					return err
				}
				if queue[0].live {
					live--
				}
				queue = queue[1:]
			}
		}
		if s.Err() != nil {
			return fmt.Errorf("%s: ended with %v while the model has room", where, s.Err())
		}
		if s.Dropped() != dropped || s.Pending() != len(queue) {
			return fmt.Errorf("%s: Dropped %d, Pending %d; want %d, %d", where, s.Dropped(), s.Pending(), dropped, len(queue))
		}
	}
	return nil
}

// readExpected reads one event, through C or Next, and compares it with
// want.
func readExpected(s *Subscription[int], want queuedEvent, viaC bool, where string) error {
	var ev Event[int]
	if viaC {
		select {
		case got, ok := <-s.C():
			if !ok {
				return fmt.Errorf("%s: C closed (%v), want seq %d", where, s.Err(), want.seq)
			}
			ev = got
		default:
			return fmt.Errorf("%s: C empty, want seq %d", where, want.seq)
		}
	} else {
		got, err := s.Next(context.Background())
		if err != nil {
			return fmt.Errorf("%s: Next: %w, want seq %d", where, err, want.seq)
		}
		ev = got
	}
	if ev.Seq != want.seq || ev.Skipped != want.skipped {
		return fmt.Errorf("%s: read seq %d skipped %d, want seq %d skipped %d", where, ev.Seq, ev.Skipped, want.seq, want.skipped)
	}
	return nil
}

// checkEnded checks a subscription that Disconnect ended: what it queued
// is still read, then ErrSlowConsumer.
func checkEnded(s *Subscription[int], queue []queuedEvent, where string) error {
	if !errors.Is(s.Err(), ErrSlowConsumer) {
		return fmt.Errorf("%s: a publish into a full Disconnect subscription left Err %v", where, s.Err())
	}
	for _, want := range queue {
		if err := readExpected(s, want, false, where); err != nil {
			return err
		}
	}
	if _, err := s.Next(context.Background()); !errors.Is(err, ErrSlowConsumer) {
		return fmt.Errorf("%s: Next after the queue: %v, want ErrSlowConsumer", where, err)
	}
	return nil
}

// TestRoomUnderConcurrentReaders races publishers against readers that
// drain small buffers at their own pace, through Next and through C, on
// literal and wildcard patterns, with replayed events ahead of the live
// ones: every Block reader gets every matching event once and in order,
// every DropNewest reader accounts for each one (read, or dropped and
// reported in Skipped), and a Disconnect reader gets an unbroken run from
// the start.
func TestRoomUnderConcurrentReaders(t *testing.T) {
	b := newBus[int](t)
	const retained = 5
	for i := range retained {
		mustPublish(t, b, fmt.Sprintf("c.%d", i%2), i)
	}
	type reader struct {
		s      *Subscription[int]
		viaC   bool
		got    []uint64
		skips  uint64
		replay bool
	}
	var readers []*reader
	for i, p := range []Policy{Block, DropNewest, Disconnect} {
		for j, pattern := range []string{"c.0", "c.*"} {
			for k := range 2 {
				opts := []SubscribeOption{WithPolicy(p), WithBuffer(1 + (i+j+k)%3)}
				if k == 1 {
					opts = append(opts, After(0))
				}
				readers = append(readers, &reader{s: mustSubscribe(t, b, pattern, opts...), viaC: (i+j+k)%2 == 0, replay: k == 1})
			}
		}
	}
	var readWG sync.WaitGroup
	for i, r := range readers {
		readWG.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(i), 3))
			for {
				var ev Event[int]
				if r.viaC {
					got, ok := <-r.s.C()
					if !ok {
						return
					}
					ev = got
				} else {
					got, err := r.s.Next(context.Background())
					if err != nil {
						return
					}
					ev = got
				}
				r.got = append(r.got, ev.Seq)
				r.skips += ev.Skipped
				if rng.IntN(4) == 0 {
					runtime.Gosched() // a reader sometimes behind, sometimes waiting
				}
			}
		})
	}
	const publishers, each = 2, 2000
	var pubWG sync.WaitGroup
	var mu sync.Mutex
	published := map[string][]uint64{}
	for p := range publishers {
		pubWG.Go(func() {
			topic := fmt.Sprintf("c.%d", p)
			for i := range each {
				seq := mustPublish(t, b, topic, i)
				mu.Lock()
				published[topic] = append(published[topic], seq)
				mu.Unlock()
			}
		})
	}
	pubWG.Wait()
	b.Close()
	readWG.Wait()
	retainedOf := func(pattern string) []uint64 {
		var out []uint64
		for i := range retained {
			if matchSubject(pattern, fmt.Sprintf("c.%d", i%2)) {
				out = append(out, uint64(i+1))
			}
		}
		return out
	}
	for i, r := range readers {
		var want []uint64
		if r.replay {
			want = retainedOf(r.s.Pattern())
		}
		var live []uint64
		for topic, seqs := range published {
			if matchSubject(r.s.Pattern(), topic) {
				live = append(live, seqs...)
			}
		}
		slices.Sort(live)
		want = append(want, live...)
		name := fmt.Sprintf("reader %d (%v, %s, replay %v, viaC %v)", i, r.s.policy, r.s.Pattern(), r.replay, r.viaC)
		if !slices.IsSorted(r.got) || len(slices.Compact(slices.Clone(r.got))) != len(r.got) {
			t.Errorf("%s: not strictly increasing", name)
		}
		switch r.s.policy {
		case Block:
			if !slices.Equal(r.got, want) {
				t.Errorf("%s: got %d events, want all %d", name, len(r.got), len(want))
			}
		case DropNewest:
			pending := r.s.pendingSkip()
			if uint64(len(r.got))+r.s.Dropped() != uint64(len(want)) || r.skips+pending != r.s.Dropped() {
				t.Errorf("%s: read %d + dropped %d != %d; skipped %d + pending %d != dropped", name, len(r.got), r.s.Dropped(), len(want), r.skips, pending)
			}
		case Disconnect:
			if !slices.Equal(r.got, want[:min(len(r.got), len(want))]) || len(r.got) > len(want) {
				t.Errorf("%s: not an unbroken run from the start", name)
			}
		}
	}
}
