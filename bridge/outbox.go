package bridge

import bus "github.com/whalesong/bus"

// outbox is a session's ordered output: control frames, live events and
// replays waiting to be claimed into the next frame, and the live events
// held for subscriptions whose replay is being prepared. It alone counts
// the backlog, the number that the 4000 cut-off compares with
// WithMaxBacklog: every entry queued but a replay (one per control frame,
// one per live event whatever the number of its subscriptions), plus every
// event held. Only its methods change the queue, the count and
// clientSub.held. It is guarded by the session's mu.
//
// A subscription made with conflate queues its live events in its own
// conflation instead (see conflate.go), with one token here that drains it
// when claimed; those events are counted apart, in conflated: they do not
// push the backlog over its limit, and are bounded by the topics instead
// (one each), the connection being cut off as well only when its
// conflations together hold more than WithMaxBacklog events.
type outbox[T any] struct {
	items     []item[T] // from head
	head      int
	peak      int // most entries queued since the queue was last empty
	slack     int // drains in a row that used under a quarter of the array
	backlog   int
	conflated int // events held by the conflations of the session's subs
}

// item is one entry of the output queue: a control frame, a live event for
// some subscriptions, a replay to be encoded lazily as it leaves, or the
// token of a conflating subscription's queue.
type item[T any] struct {
	frame []byte
	ev    *sharedEvent
	sub   *clientSub[T]
	more  []*clientSub[T]
	rep   *replayCursor[T]
	conf  *clientSub[T]
}

// counted reports whether the entry counts toward the backlog: replays and
// conflation tokens do not.
func (it *item[T]) counted() bool { return it.rep == nil && it.conf == nil }

type replayCursor[T any] struct {
	sub    *clientSub[T]
	events []bus.Event[T] // immutable
	next   int

	// the writer's: the bytes and the number of its events encoded so
	// far, from which claimReplay estimates how many fit in a frame
	encoded, count int
}

// push queues it at the back.
func (q *outbox[T]) push(it item[T]) {
	if it.counted() {
		q.backlog++
	}
	q.items = append(q.items, it)
	q.peak = max(q.peak, len(q.items)-q.head)
}

// front returns the oldest entry, nil when the queue is empty. The caller
// may advance a replay cursor in place; pop removes the entry.
func (q *outbox[T]) front() *item[T] {
	if q.head == len(q.items) {
		return nil
	}
	return &q.items[q.head]
}

// empty reports whether nothing is queued (held events aside).
func (q *outbox[T]) empty() bool { return q.head == len(q.items) }

// pop removes the oldest entry.
func (q *outbox[T]) pop() {
	if q.items[q.head].counted() {
		q.backlog--
	}
	q.items[q.head] = item[T]{}
	q.head++
	switch {
	case q.head == len(q.items):
		// Drained. Keep the array while it fits recent use; once a burst
		// is over (the array is far larger than the last run needed), an
		// idle session gives it back.
		q.items = shrink(q.items, q.peak, &q.slack)
		q.head, q.peak = 0, 0
	case q.head >= 64 && q.head >= len(q.items)/2:
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
}

// hold keeps se for cs until its replay is queued (see release).
func (q *outbox[T]) hold(cs *clientSub[T], se *sharedEvent) {
	cs.held = append(cs.held, se)
	q.backlog++
}

// release returns the events held for cs and stops counting them; the
// caller queues those it still wants.
func (q *outbox[T]) release(cs *clientSub[T]) []*sharedEvent {
	held := cs.held
	cs.held = nil
	q.backlog -= len(held)
	return held
}

// over reports whether the backlog, or what the conflations hold, is past
// limit.
func (q *outbox[T]) over(limit int) bool { return q.backlog > limit || q.conflated > limit }

// discard drops everything queued, held and conflated (the session is
// ending).
func (q *outbox[T]) discard(subs map[string]*clientSub[T]) {
	for _, cs := range subs {
		q.release(cs)
		q.dropConflated(cs)
	}
	*q = outbox[T]{}
}

// shrink empties buf for reuse, or drops it once several uses in a row
// needed under a quarter of it: a burst grows a session's arrays, and an
// idle session gives them back, while steady traffic keeps reusing them.
func shrink[E any](buf []E, used int, slack *int) []E {
	if cap(buf) <= 64 || used*4 >= cap(buf) {
		*slack = 0
		return buf[:0]
	}
	if *slack++; *slack < 8 {
		return buf[:0]
	}
	*slack = 0
	return nil
}
