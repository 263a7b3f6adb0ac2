package bridge

import (
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"testing"
)

// TestAttachmentsAgainstModel adds and removes attachments at random, with
// readers walking the list all along (under -race, a write to a slot that
// a reader may read fails the test), and checks after every change that
// the entries not gone are the model's, in the order they were added, each
// once.
func TestAttachmentsAgainstModel(t *testing.T) {
	var l attachments[msg]
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range 2 {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				for _, a := range l.load() {
					if a == nil {
						t.Error("a nil attachment in the list")
						return
					}
					_ = a.gone.Load()
				}
			}
		})
	}
	defer func() { close(stop); readers.Wait() }()
	rng := rand.New(rand.NewPCG(1, 2))
	var model []*attachment[msg]
	var mu sync.Mutex // stands for fanout.mu
	for step := range 4000 {
		mu.Lock()
		if len(model) == 0 || rng.IntN(3) > 0 {
			a := &attachment[msg]{}
			l.add(a)
			model = append(model, a)
		} else {
			i := rng.IntN(len(model))
			l.remove(model[i])
			l.remove(model[i]) // twice: a no-op
			model = slices.Delete(model, i, i+1)
		}
		var live []*attachment[msg]
		for _, a := range l.load() {
			if !a.gone.Load() {
				live = append(live, a)
			}
		}
		mu.Unlock()
		if !slices.Equal(live, model) {
			t.Fatalf("step %d: %d live entries, want the model's %d", step, len(live), len(model))
		}
		if n := len(l.load()); n > 2*len(model)+1 {
			t.Fatalf("step %d: the list holds %d entries for %d live", step, n, len(model))
		}
	}
}

// TestAttachmentsCostLinear: n sessions attaching to one pattern and
// leaving allocate O(n) in all (copying the list on every change made it
// O(n²): gigabytes for these n).
func TestAttachmentsCostLinear(t *testing.T) {
	const n = 20000
	all := make([]*attachment[msg], n)
	for i := range all {
		all[i] = &attachment[msg]{}
	}
	var l attachments[msg]
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for _, a := range all {
		l.add(a)
	}
	for _, i := range rand.New(rand.NewPCG(3, 4)).Perm(n) {
		l.remove(all[i])
	}
	runtime.ReadMemStats(&after)
	if len(l.load()) > 1 {
		t.Fatalf("%d entries left", len(l.load()))
	}
	// Doubling and compacting: under 4 pointers per attachment in all, plus
	// a 24-byte slice header per change.
	if got, limit := after.TotalAlloc-before.TotalAlloc, uint64(n*(4*8+2*24+16)); got > limit {
		t.Errorf("%d attaches and detaches allocated %d B, want at most %d", n, got, limit)
	}
}
