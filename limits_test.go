package bus

import (
	"context"
	"errors"
	"math"
	"os"
	"os/exec"
	"testing"
	"testing/synctest"
	"time"
)

// TestAbsurdOptions: every numeric option, at its extremes, gives a working
// bus and subscription (clamped as documented), never a panic.
func TestAbsurdOptions(t *testing.T) {
	ctx := context.Background()
	huge, err := New[int]().Subscribe("a", WithBuffer(math.MaxInt))
	if err != nil || cap(huge.ch) != MaxBuffer {
		t.Fatalf("WithBuffer(MaxInt): %v, room for %d events, x", err, 0)
	}
	huge.bus.Close()
	for _, history := range []int{math.MinInt, -1, 0, 1, math.MaxInt} {
		for _, ttl := range []time.Duration{math.MinInt64, -1, 0, math.MaxInt64} {
			b := New[int](WithHistory(history), WithHistoryTTL(ttl))
			subs := make([]*Subscription[int], 0, 8)
			for _, opts := range [][]SubscribeOption{
				{WithBuffer(1 << 12)},
				{WithBuffer(math.MinInt), WithPolicy(DropNewest)},
				{WithBuffer(0), Last(math.MaxInt), WithPolicy(DropOldest)},
				{Last(math.MinInt)},
				{After(math.MaxUint64)},
				{Since(time.Time{})},
				{Since(time.Unix(1<<62, 0))},
				{WithPolicy(Policy(-7)), WithBuffer(1 << 12)},
			} {
				s, err := b.Subscribe(">", opts...)
				if err != nil {
					t.Fatalf("history %d ttl %v: Subscribe: %v", history, ttl, err)
				}
				subs = append(subs, s)
			}
			for i := range 3 {
				tctx, cancel := context.WithTimeout(ctx, time.Second)
				_, err := b.Publish(tctx, "a.b", i)
				cancel()
				if err != nil && !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("history %d ttl %v: Publish: %v", history, ttl, err)
				}
			}
			for _, limit := range []int{math.MinInt, 0, math.MaxInt} {
				if _, err := b.History(">", 0, limit); err != nil {
					t.Fatal(err)
				}
			}
			b.Close()
		}
	}
}

// TestSynctestBubbles runs a Publish that waits for a full Block subscriber
// inside a testing/synctest bubble and one outside it, in both orders, in
// child processes: the runtime kills a process that lets a timer cross a
// bubble, so a failure here cannot be caught in-process.
func TestSynctestBubbles(t *testing.T) {
	if os.Getenv("WHALESONG_SYNCTEST_ORDER") != "" {
		t.Skip("inside the child")
	}
	for _, order := range []string{"inside-first", "outside-first"} {
		t.Run(order, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestSynctestChild$", "-test.count=1", "-test.v")
			cmd.Env = append(os.Environ(), "WHALESONG_SYNCTEST_ORDER="+order)
			done := make(chan struct{})
			var out []byte
			var err error
			go func() {
				defer close(done)
				out, err = cmd.CombinedOutput()
			}()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				_ = cmd.Process.Kill()
				<-done
				t.Fatalf("child hung:\n%s", out)
			}
			if err != nil {
				t.Fatalf("child failed: %v\n%s", err, out)
			}
		})
	}
}

func TestSynctestChild(t *testing.T) {
	order := os.Getenv("WHALESONG_SYNCTEST_ORDER")
	if order == "" {
		t.Skip("run by TestSynctestBubbles")
	}
	inside := func() {
		synctest.Test(t, func(t *testing.T) { waitingPublish(t) })
	}
	outside := func() { waitingPublish(t) }
	if order == "inside-first" {
		inside()
		outside()
	} else {
		outside()
		inside()
	}
}

// waitingPublish makes a Publish wait for a full Block subscriber whose
// reader takes an event only after a while, and checks that it goes on.
func waitingPublish(t *testing.T) {
	b := New[int]()
	defer b.Close()
	s, err := b.Subscribe("a", WithBuffer(1))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := b.Publish(ctx, "a", 1); err != nil {
		t.Fatal(err)
	}
	read := make(chan error, 1)
	go func() {
		time.Sleep(5 * time.Millisecond) // the publisher must nap, on a timer, meanwhile
		ev := <-s.C()                    // a C reader: only the naps notice it
		if ev.Seq != 1 {
			read <- errors.New("wrong first event")
			return
		}
		read <- nil
	}()
	if _, err := b.Publish(ctx, "a", 2); err != nil {
		t.Fatal(err)
	}
	if err := <-read; err != nil {
		t.Fatal(err)
	}
}
