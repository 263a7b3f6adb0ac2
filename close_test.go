package bus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestBusCloseEndsSubscriptionsAfterQueuedEvents(t *testing.T) {
	b := New[int]()
	viaC := mustSubscribe(t, b, "a")
	viaNext := mustSubscribe(t, b, "a")
	mustPublish(t, b, "a", 1)
	mustPublish(t, b, "a", 2)
	select {
	case <-b.Done():
		t.Fatal("Done closed before Close")
	default:
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	<-b.Done()
	var got []uint64
	for ev := range viaC.C() {
		got = append(got, ev.Seq)
	}
	if !slices.Equal(got, []uint64{1, 2}) || !errors.Is(viaC.Err(), ErrClosed) {
		t.Fatalf("C gave %v then Err %v", got, viaC.Err())
	}
	for want := uint64(1); want <= 2; want++ {
		if ev, err := viaNext.Next(context.Background()); err != nil || ev.Seq != want {
			t.Fatalf("Next = %+v, %v; want seq %d", ev, err, want)
		}
	}
	if _, err := viaNext.Next(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Next after drain = %v, want ErrClosed", err)
	}
}

func TestAfterBusClose(t *testing.T) {
	b := New[int](WithHistoryTTL(time.Hour))
	mustPublish(t, b, "a", 1)
	epoch := b.Epoch()
	b.Close()
	if err := b.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	if _, err := b.Publish(context.Background(), "a", 2); !errors.Is(err, ErrClosed) {
		t.Errorf("Publish = %v", err)
	}
	// Closed wins over bad input, for every method alike.
	if _, err := b.Publish(context.Background(), "a..b", 2); !errors.Is(err, ErrClosed) {
		t.Errorf("Publish(bad topic) after Close = %v", err)
	}
	if _, err := b.Subscribe("a.>.b"); !errors.Is(err, ErrClosed) {
		t.Errorf("Subscribe(bad pattern) after Close = %v", err)
	}
	if _, err := b.History("a.>.b", 0, 0); !errors.Is(err, ErrClosed) {
		t.Errorf("History(bad pattern) after Close = %v", err)
	}
	if _, err := b.Subscribe("a"); !errors.Is(err, ErrClosed) {
		t.Errorf("Subscribe = %v", err)
	}
	if _, err := b.History("a", 0, 0); !errors.Is(err, ErrClosed) {
		t.Errorf("History = %v", err)
	}
	if _, _, err := b.Replay("a", After(0)); !errors.Is(err, ErrClosed) {
		t.Errorf("Replay = %v", err)
	}
	if b.Seq() != 1 || b.Epoch() != epoch || b.Stats().Published != 1 {
		t.Errorf("Seq %d Epoch %q Stats %+v after Close", b.Seq(), b.Epoch(), b.Stats())
	}
}

func TestBusCloseWakesBlockedPublishers(t *testing.T) {
	b := New[int]()
	mustSubscribe(t, b, "a", WithBuffer(1))
	mustPublish(t, b, "a", 1)
	errs := make(chan error, 3)
	for range 3 {
		go func() {
			_, err := b.Publish(context.Background(), "a", 2)
			errs <- err
		}()
	}
	waitFor(t, func() bool {
		b.lockAll()
		defer b.unlockAll()
		for s := range b.subs {
			return s.waiters.Load() == 3
		}
		return false
	})
	b.Close()
	for range 3 {
		if err := <-errs; !errors.Is(err, ErrClosed) {
			t.Fatalf("blocked Publish after Close = %v", err)
		}
	}
	if b.Seq() != 1 {
		t.Fatalf("Seq = %d", b.Seq())
	}
}

func TestSubscriptionClose(t *testing.T) {
	b := newBus[int](t)
	s := mustSubscribe(t, b, "a")
	mustPublish(t, b, "a", 1)
	for range 2 {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for range s.C() { // closes promptly; what was queued may come first
	}
	if !errors.Is(s.Err(), ErrSubscriptionClosed) {
		t.Fatalf("Err = %v", s.Err())
	}
	if _, err := s.Next(context.Background()); !errors.Is(err, ErrSubscriptionClosed) {
		t.Fatalf("Next = %v", err)
	}
	mustPublish(t, b, "a", 2) // nobody left to wait for
	if st := b.Stats(); st.Subscribers != 0 || st.Delivered != 1 {
		t.Fatalf("Stats = %+v", st)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	live := mustSubscribe(t, b, "a")
	if _, err := live.Next(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Next with a done ctx = %v", err)
	}
}

// TestCloseRaces runs publishers (some blocked on full Block subscribers),
// replaying subscribers and closers against a Bus.Close. Nothing may panic,
// deadlock or leak a goroutine (goleak checks at the end), every publish
// either succeeds or fails with ErrClosed, and every subscription ends.
func TestCloseRaces(t *testing.T) {
	for round := range 20 {
		b := New[int](WithHistory(16))
		var wg sync.WaitGroup
		stop := make(chan struct{})
		var subsMu sync.Mutex
		var subs []*Subscription[int]
		for p := range 4 {
			wg.Go(func() {
				for i := 0; ; i++ {
					_, err := b.Publish(context.Background(), fmt.Sprintf("r.%d", i%4), i)
					if errors.Is(err, ErrClosed) {
						return
					}
					if err != nil {
						t.Errorf("publisher %d: %v", p, err)
						return
					}
				}
			})
		}
		for j := range 4 {
			wg.Go(func() {
				for i := 0; ; i++ {
					policy := Policy(i % 4)
					s, err := b.Subscribe([]string{">", "r.*", "r.1"}[i%3], After(uint64(i)), WithBuffer(2), WithPolicy(policy))
					if errors.Is(err, ErrClosed) {
						return
					}
					subsMu.Lock()
					subs = append(subs, s)
					subsMu.Unlock()
					if j%2 == 0 {
						s.Close()
					} else {
						drain(s)
					}
					select {
					case <-stop:
						return
					default:
					}
				}
			})
		}
		time.Sleep(time.Duration(round%5) * time.Millisecond) // vary where Close lands
		b.Close()
		close(stop)
		wg.Wait()
		for _, s := range subs {
			if s.Err() == nil {
				t.Fatalf("round %d: a subscription outlived Bus.Close", round)
			}
			for range s.C() { // must be closed: this returns
			}
		}
	}
}

// TestSubscriptionCloseNeverDeadlocksWithPublish closes blocking
// subscriptions while publishers wait on them, over and over.
func TestSubscriptionCloseNeverDeadlocksWithPublish(t *testing.T) {
	b := newBus[int](t)
	var wg sync.WaitGroup
	done := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				if _, err := b.Publish(context.Background(), "x", 1); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for range 500 {
		s := mustSubscribe(t, b, "x", WithBuffer(1))
		s.Close()
	}
	close(done)
	wg.Wait()
}
