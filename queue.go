package bus

// tailQueue holds the live events of a DropOldest or Conflate subscription
// that are not yet in its channel. Events in a channel cannot be changed or
// taken out of the middle, and these two policies need both: to drop the
// oldest queued event they must add its count to the Skipped of the event
// after it, and Conflate removes the oldest queued event of a topic from
// wherever it is. So such a subscription keeps at most one live event in its
// channel and the rest here, in a doubly linked list over a slot arena, with
// each topic's events threaded oldest first for Conflate: every operation is
// O(1) and allocates nothing once the arena has grown to the buffer.
// It is not safe for concurrent use; the Bus guards it.
type tailQueue[T any] struct {
	slots       []tailSlot[T]
	free        int32 // first free slot, or -1
	first, last int32 // the oldest and newest queued, or -1
	n           int

	// Conflate only: each topic's thread, by topic, as an index into an
	// arena of threads that every slot also names, so that taking an event
	// out needs no lookup by topic (unless its thread ends).
	threads map[string]int32
	arena   []thread
	freeTh  int32 // first free thread (linked through first), or -1

	// sentTopic is the topic of the live event last sent to the channel:
	// of the event there, if one is.
	sentTopic string
}

type tailSlot[T any] struct {
	ev         Event[T]
	prev, next int32 // the queue, oldest to newest
	same       int32 // the next newer queued event of the same topic
	th         int32 // its topic's thread (Conflate)
}

// thread is the first and last slot of one topic's queued events.
type thread struct{ first, last int32 }

const none int32 = -1

func newTailQueue[T any](conflate bool) *tailQueue[T] {
	q := &tailQueue[T]{free: none, first: none, last: none, freeTh: none}
	if conflate {
		q.threads = make(map[string]int32)
	}
	return q
}

// push queues ev as the newest.
func (q *tailQueue[T]) push(ev Event[T]) {
	i := q.alloc()
	q.slots[i] = tailSlot[T]{ev: ev, prev: q.last, next: none, same: none}
	if q.last != none {
		q.slots[q.last].next = i
	} else {
		q.first = i
	}
	q.last = i
	q.n++
	if q.threads != nil {
		t, ok := q.threads[ev.Topic]
		if ok {
			q.slots[q.arena[t].last].same = i
			q.arena[t].last = i
		} else {
			t = q.newThread(i)
			q.threads[ev.Topic] = t
		}
		q.slots[i].th = t
	}
}

// newThread starts a topic's thread at slot i.
func (q *tailQueue[T]) newThread(i int32) int32 {
	if t := q.freeTh; t != none {
		q.freeTh = q.arena[t].first
		q.arena[t] = thread{i, i}
		return t
	}
	q.arena = append(q.arena, thread{i, i})
	return int32(len(q.arena) - 1)
}

func (q *tailQueue[T]) alloc() int32 {
	if q.free != none {
		i := q.free
		q.free = q.slots[i].next
		return i
	}
	q.slots = append(q.slots, tailSlot[T]{})
	return int32(len(q.slots) - 1)
}

// front returns the oldest queued event; the queue must not be empty.
func (q *tailQueue[T]) front() *Event[T] { return &q.slots[q.first].ev }

// pop removes and returns the oldest queued event.
func (q *tailQueue[T]) pop() Event[T] { return q.remove(q.first) }

// oldestOf returns the slot of the oldest queued event of topic, or none.
func (q *tailQueue[T]) oldestOf(topic string) int32 {
	if t, ok := q.threads[topic]; ok {
		return q.arena[t].first
	}
	return none
}

// remove takes slot i, which must be the oldest queued event of its topic
// (true of the queue's oldest and of oldestOf), out of the queue.
func (q *tailQueue[T]) remove(i int32) Event[T] {
	s := &q.slots[i]
	ev := s.ev
	if s.prev != none {
		q.slots[s.prev].next = s.next
	} else {
		q.first = s.next
	}
	if s.next != none {
		q.slots[s.next].prev = s.prev
	} else {
		q.last = s.prev
	}
	if q.threads != nil {
		if t := s.th; s.same == none { // the topic's last queued event
			delete(q.threads, ev.Topic)
			q.arena[t] = thread{first: q.freeTh}
			q.freeTh = t
		} else {
			q.arena[t].first = s.same
		}
	}
	*s = tailSlot[T]{next: q.free}
	q.free = i
	q.n--
	return ev
}

// after returns the event queued right after slot i, or nil.
func (q *tailQueue[T]) after(i int32) *Event[T] {
	if j := q.slots[i].next; j != none {
		return &q.slots[j].ev
	}
	return nil
}
