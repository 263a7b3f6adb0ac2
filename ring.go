package bus

import "sort"

// ring is a FIFO of events that grows up to a cap and then overwrites its
// oldest event, so that a topic with few events costs little memory and a
// full one allocates nothing more.
type ring[T any] struct {
	buf  []Event[T]
	head int // index of the oldest event
	n    int
}

// push appends a copy of ev; at capacity events it evicts the oldest one and
// returns its Seq and Time.
func (r *ring[T]) push(ev *Event[T], capacity int) (old loss, evicted bool) {
	if r.n == len(r.buf) && r.n < capacity {
		r.grow(capacity)
	}
	if r.n == len(r.buf) {
		slot := &r.buf[r.head]
		old = loss{seq: slot.Seq, time: slot.Time}
		*slot = *ev
		if r.head++; r.head == len(r.buf) {
			r.head = 0
		}
		return old, true
	}
	r.buf[r.index(r.n)] = *ev
	r.n++
	return old, false
}

// index is the buffer index of the i-th oldest event (i < len(buf)).
func (r *ring[T]) index(i int) int {
	if i += r.head; i >= len(r.buf) {
		i -= len(r.buf)
	}
	return i
}

func (r *ring[T]) grow(capacity int) {
	size := min(max(2*len(r.buf), 8), capacity)
	buf := make([]Event[T], size)
	for i := range r.n {
		buf[i] = *r.at(i)
	}
	r.buf, r.head = buf, 0
}

// pop removes and returns the oldest event.
func (r *ring[T]) pop() Event[T] {
	ev := r.buf[r.head]
	r.buf[r.head] = Event[T]{} // let the data be collected
	if r.head++; r.head == len(r.buf) {
		r.head = 0
	}
	r.n--
	return ev
}

// at returns the i-th oldest event.
func (r *ring[T]) at(i int) *Event[T] {
	return &r.buf[r.index(i)]
}

// newest returns the newest event; the ring must not be empty.
func (r *ring[T]) newest() *Event[T] { return r.at(r.n - 1) }

// firstAfter returns the position of the oldest event with Seq > seq (n if
// none).
func (r *ring[T]) firstAfter(seq uint64) int {
	return sort.Search(r.n, func(i int) bool { return r.at(i).Seq > seq })
}

// firstFrom returns the position of the oldest event with Seq >= seq.
func (r *ring[T]) firstFrom(seq uint64) int {
	return sort.Search(r.n, func(i int) bool { return r.at(i).Seq >= seq })
}
