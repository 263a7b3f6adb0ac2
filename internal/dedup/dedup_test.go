package dedup

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
)

var errReused = errors.New("reused")

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestDedupConcurrentDuplicatesWaitForTheFirst(t *testing.T) {
	d := New(10, time.Minute, errReused)
	release := make(chan struct{})
	started := make(chan struct{})
	calls := 0
	publish := func() (uint64, error) {
		calls++
		close(started)
		<-release
		return 42, nil
	}
	var wg sync.WaitGroup
	results := make(chan uint64, 5)
	wg.Go(func() {
		seq, dup, err := d.Do(t.Context(), "id", "t", publish)
		if err != nil || dup {
			t.Errorf("first: %d %v %v", seq, dup, err)
		}
		results <- seq
	})
	<-started
	for range 4 {
		wg.Go(func() {
			seq, dup, err := d.Do(t.Context(), "id", "t", func() (uint64, error) { return 0, errors.New("published twice") })
			if err != nil || !dup {
				t.Errorf("duplicate: %d %v %v", seq, dup, err)
			}
			results <- seq
		})
	}
	close(release)
	wg.Wait()
	close(results)
	for seq := range results {
		if seq != 42 {
			t.Fatalf("seq %d, want 42", seq)
		}
	}
	if calls != 1 {
		t.Fatalf("%d publishes", calls)
	}
}

// TestDedupWindow runs in a bubble: the age bound is exact in fake time.
func TestDedupWindow(t *testing.T) { synctest.Test(t, testDedupWindow) }

func testDedupWindow(t *testing.T) {
	d := New(3, time.Minute, errReused)
	n := uint64(0)
	publish := func() (uint64, error) { n++; return n, nil }
	do := func(id string) (uint64, bool) {
		seq, dup, err := d.Do(context.Background(), id, "t", publish)
		if err != nil {
			t.Fatal(err)
		}
		return seq, dup
	}
	for i := range 3 {
		do(fmt.Sprint(i))
	}
	if seq, dup := do("0"); !dup || seq != 1 {
		t.Fatalf("retry within the window: %d %v", seq, dup)
	}
	do("3") // a 4th id: "0", the oldest, is forgotten (size 3)
	if _, dup := do("0"); dup {
		t.Fatal("the oldest id outlived the size bound")
	}
	time.Sleep(time.Minute - time.Nanosecond)
	if got := d.Remembered(); got != 3 {
		t.Fatalf("%d ids remembered just before the age bound, want 3", got)
	}
	time.Sleep(time.Nanosecond)
	if d.Remembered() != 0 {
		t.Fatalf("%d ids outlived the age bound", d.Remembered())
	}
	if _, dup := do("3"); dup {
		t.Fatal("an expired id was remembered")
	}
}

// TestDedupWindowOverTheWire: a client retry within WithDedupWindow's age
// gets the first seq from the bridge's window; past it, from the bus's own
// window (PublishID, here 30 seconds); once both ages have passed it is
// published again.
func TestDedupForgetsFailures(t *testing.T) {
	d := New(10, time.Minute, errReused)
	fail := errors.New("bus full")
	if _, _, err := d.Do(t.Context(), "id", "t", func() (uint64, error) { return 0, fail }); !errors.Is(err, fail) {
		t.Fatalf("got %v", err)
	}
	seq, dup, err := d.Do(t.Context(), "id", "t", func() (uint64, error) { return 7, nil })
	if seq != 7 || dup || err != nil {
		t.Fatalf("retry after failure: %d %v %v", seq, dup, err)
	}
	if _, _, err := d.Do(t.Context(), "id", "other", nil); !errors.Is(err, errReused) {
		t.Fatalf("other topic: %v", err)
	}
}

func TestDedupWaitEndsWithContext(t *testing.T) {
	d := New(10, time.Minute, errReused)
	release := make(chan struct{})
	started := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		_, _, _ = d.Do(t.Context(), "id", "t", func() (uint64, error) { close(started); <-release; return 1, nil })
	})
	<-started
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, _, err := d.Do(ctx, "id", "t", nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
	close(release)
	wg.Wait()
}
