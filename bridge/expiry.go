package bridge

import (
	"container/heap"
	"context"
	"math"
	"sync"
	"time"
)

// expiries closes connections at their identity's WithExpiry time. It is
// one min-heap of sessions for the whole bridge, served by one goroutine
// and one timer set to the earliest deadline, rather than a timer per
// connection: a connection in the heap costs its 8-byte slot and the
// 16-byte expiryEntry every session carries (a runtime timer, about 100
// bytes, and its closure would cost several times that; issue 10 counts
// idle-connection memory), and there is one goroutine for Close to wait
// for instead of a callback per connection that could race it.
// Adding and removing cost O(log n) under mu, which nothing else nests in.
type expiries[T any] struct {
	mu   sync.Mutex
	heap expiryHeap[T] // mu
	wake chan struct{} // a new earliest deadline (capacity 1)
	due  []*session[T] // the goroutine's: sessions popped, to close after unlocking
}

// expiryEntry is a session's place in the heap: its deadline (Unix
// nanoseconds; 0: none), fixed before any other goroutine sees the session,
// and its index in the heap plus one (0: not in it), guarded by
// expiries.mu.
type expiryEntry struct {
	at  int64
	pos int
}

func newExpiries[T any]() *expiries[T] {
	return &expiries[T]{wake: make(chan struct{}, 1)}
}

// add puts s in the heap; the goroutine re-arms its timer if s is due first.
func (x *expiries[T]) add(s *session[T]) {
	x.mu.Lock()
	defer x.mu.Unlock()
	heap.Push(&x.heap, s)
	if s.exp.pos == 1 {
		select {
		case x.wake <- struct{}{}:
		default: // a wake is pending already
		}
	}
}

// remove takes s out of the heap if it is still in it.
func (x *expiries[T]) remove(s *session[T]) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if s.exp.pos > 0 {
		heap.Remove(&x.heap, s.exp.pos-1)
	}
}

// len is the number of sessions in the heap.
func (x *expiries[T]) len() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.heap)
}

// popDue takes every session whose deadline is at or before now out of the
// heap, into x.due, and returns the next deadline (0: the heap is empty).
func (x *expiries[T]) popDue(now int64) (next int64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for len(x.heap) > 0 {
		s := x.heap[0]
		if s.exp.at > now {
			return s.exp.at
		}
		heap.Pop(&x.heap)
		x.due = append(x.due, s)
	}
	return 0
}

// run closes each session when its time comes, until ctx ends (Close).
// Bridge.Close waits for it.
func (x *expiries[T]) run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next := x.popDue(time.Now().UnixNano())
		for i, s := range x.due {
			s.end(endExpired)
			x.due[i] = nil
		}
		x.due = x.due[:0]
		var fire <-chan time.Time // nil: nothing to wait for but a wake
		if next != 0 {
			timer.Reset(time.Duration(next - time.Now().UnixNano()))
			fire = timer.C
		}
		select {
		case <-fire:
		case <-x.wake:
		case <-ctx.Done():
			return
		}
	}
}

// expiresAt asks WithExpiry about ident: its deadline in Unix nanoseconds
// (0: never), and whether it has passed already.
func (br *Bridge[T]) expiresAt(ident any) (at int64, past bool) {
	if br.cfg.expiry == nil {
		return 0, false
	}
	t := br.cfg.expiry(ident)
	if t.IsZero() || t.After(maxExpiry) {
		return 0, false // never, or beyond what Unix nanoseconds hold
	}
	if !t.After(time.Now()) {
		return 0, true
	}
	return t.UnixNano(), false
}

// maxExpiry is the latest deadline kept; a later one counts as never.
var maxExpiry = time.Unix(0, math.MaxInt64)

// expiryHeap orders sessions by deadline; each knows its index.
type expiryHeap[T any] []*session[T]

func (h expiryHeap[T]) Len() int           { return len(h) }
func (h expiryHeap[T]) Less(i, j int) bool { return h[i].exp.at < h[j].exp.at }
func (h expiryHeap[T]) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].exp.pos, h[j].exp.pos = i+1, j+1
}

func (h *expiryHeap[T]) Push(v any) {
	s := v.(*session[T])
	*h = append(*h, s)
	s.exp.pos = len(*h)
}

func (h *expiryHeap[T]) Pop() any {
	old := *h
	n := len(old) - 1
	s := old[n]
	old[n] = nil
	*h = old[:n]
	if cap(old) > 64 && n < cap(old)/4 { // a crowd left: give the array back
		*h = append(make(expiryHeap[T], 0, 2*n), old[:n]...)
	}
	s.exp.pos = 0
	return s
}
