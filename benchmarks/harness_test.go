package benchmarks

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// payload is the event every library carries: small and pointer-free.
type payload struct {
	ID    int64
	Price float64
	Qty   int32
	Side  uint8
}

const (
	// buffer is every library's per-subscriber queue where it has one.
	buffer = 256
	// stopID marks the sentinel that ends a receiver whose count is not
	// known in advance (the parallel benchmark).
	stopID = -1
	// waitLimit bounds how long a benchmark waits for its receivers, so
	// that a library that loses events fails instead of hanging.
	waitLimit = 2 * time.Minute
)

func payloadFor(i int) payload { return payload{ID: int64(i), Price: 9.5, Qty: 3, Side: 1} }

// system is one library under test, set up for one benchmark run.
type system interface {
	// subscribe starts a subscription to pattern whose events go to r, on
	// the library's own delivery path (a goroutine or a callback).
	subscribe(b *testing.B, pattern string, r *receiver)
	// idle adds a subscription to topic that is never published to.
	idle(b *testing.B, topic string)
	// publisher returns a function that publishes to topic.
	publisher(b *testing.B, topic string) func(payload)
	// close releases everything, leaving no goroutine behind.
	close()
}

// impl names a library and what it cannot do.
type impl struct {
	name string
	new  func(b *testing.B) system
	// unordered: the library does not promise per-subscriber order, so
	// receivers only count.
	unordered bool
	// lacks maps a scenario to why the library cannot run it.
	lacks map[string]string
}

// receiver counts what one subscription got and says when it is done:
// after want events, or at the sentinel when want < 0.
type receiver struct {
	want, got int
	ordered   bool
	last      int64
	set       *receivers
	once      sync.Once
}

// take records p and reports whether the receiver is done.
func (r *receiver) take(p payload) bool {
	if r.want < 0 {
		if p.ID == stopID {
			r.finish(nil)
			return true
		}
		return false
	}
	if r.ordered && r.got > 0 && p.ID <= r.last {
		r.finish(fmt.Errorf("id %d after %d", p.ID, r.last))
		return true
	}
	r.last = p.ID
	r.got++
	if r.got == r.want {
		r.finish(nil)
		return true
	}
	return false
}

func (r *receiver) finish(err error) {
	r.once.Do(func() {
		if err != nil {
			r.set.fail(err)
		}
		r.set.wg.Done()
	})
}

// receivers is every receiver of one benchmark run.
type receivers struct {
	ordered bool
	wg      sync.WaitGroup
	mu      sync.Mutex
	err     error
	all     []*receiver
}

func newReceivers(ordered bool) *receivers { return &receivers{ordered: ordered} }

// add returns a receiver that expects want events (want < 0: a sentinel).
func (rs *receivers) add(want int) *receiver {
	rs.wg.Add(1)
	r := &receiver{want: want, ordered: rs.ordered, set: rs}
	rs.all = append(rs.all, r)
	return r
}

func (rs *receivers) fail(err error) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.err == nil {
		rs.err = err
	}
}

// wait returns once every receiver is done; it fails b if one failed or if
// they are not done within waitLimit.
func (rs *receivers) wait(b *testing.B) {
	b.Helper()
	done := make(chan struct{})
	go func() {
		rs.wg.Wait()
		close(done)
	}()
	t := time.NewTimer(waitLimit)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		b.Fatalf("receivers not done after %v", waitLimit)
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.err != nil {
		b.Fatal(rs.err)
	}
}

// runFanout publishes b.N events round-robin to topics, each matching every
// pattern, after adding unrelated idle subscriptions.
func runFanout(b *testing.B, im impl, patterns, topics []string, unrelated int) {
	sys := im.new(b)
	defer sys.close()
	for i := range unrelated {
		sys.idle(b, fmt.Sprintf("orders.eu.other%d", i))
	}
	rs := newReceivers(!im.unordered)
	for _, p := range patterns {
		sys.subscribe(b, p, rs.add(b.N))
	}
	pubs := make([]func(payload), len(topics))
	for i, t := range topics {
		pubs[i] = sys.publisher(b, t)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		pubs[i%len(pubs)](payloadFor(i))
	}
	rs.wait(b)
	b.StopTimer() // close is not part of the measure
}

// runParallel has every b.RunParallel goroutine publish to its own topic,
// received by its own subscription, and ends them with a sentinel each.
func runParallel(b *testing.B, im impl, topics []string) {
	sys := im.new(b)
	defer sys.close()
	rs := newReceivers(false)
	pubs := make(chan func(payload), len(topics))
	all := make([]func(payload), len(topics))
	for i, t := range topics {
		sys.subscribe(b, t, rs.add(-1))
		all[i] = sys.publisher(b, t)
		pubs <- all[i]
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		pub := <-pubs // one topic per goroutine: RunParallel starts len(topics)
		for i := 0; pb.Next(); i++ {
			pub(payloadFor(i))
		}
	})
	for _, pub := range all {
		pub(payload{ID: stopID})
	}
	rs.wait(b)
	b.StopTimer()
}
