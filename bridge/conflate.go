package bridge

// conflation holds the queued live events of one subscription made with
// "conflate":true while its client is behind: at most one per topic (the
// newest), in seq order, each with the number of this subscription's events
// that were superseded between the previous one queued and it (its
// skipped). A new event of a topic already queued removes that entry, adds
// its skipped plus one to the entry that came after it (or to the new
// event, when it was the last), and goes at the back, so seq order holds and
// every superseded event is counted exactly once, on the next one the client
// gets. It is a doubly linked list over a slot arena with a map by topic:
// every operation is O(1) and allocates nothing once the arena and the map
// have grown to the topics in use. The map may name slots that left the
// queue (pop does not delete: holds tells), and is cleared whenever the
// queue empties, so it holds at most the topics queued since then. It is guarded by the session's mu and
// changed only through the outbox (outbox.conflate, claimConflated, and the
// outbox's discards).
type conflation struct {
	slots       []confSlot
	free        int32 // first free slot, or none
	first, last int32 // oldest and newest queued, or none
	n           int
	byTopic     map[string]int32

	// queued says that the outbox holds this subscription's token: an entry
	// that, once at the front, drains this queue into the next frame.
	queued bool
}

type confSlot struct {
	ev         *sharedEvent
	skipped    int
	prev, next int32
}

const none int32 = -1

func newConflation() *conflation {
	return &conflation{free: none, first: none, last: none, byTopic: make(map[string]int32)}
}

// push queues se as the newest and reports whether it superseded a queued
// event of its topic (which then left the queue).
func (c *conflation) push(se *sharedEvent) (superseded bool) {
	var carry int
	if i, ok := c.byTopic[se.topic]; ok && c.holds(i, se.topic) {
		superseded = true
		carry = c.slots[i].skipped + 1
		if j := c.slots[i].next; j != none {
			c.slots[j].skipped += carry
			carry = 0
		}
		c.remove(i)
	}
	i := c.alloc()
	c.slots[i] = confSlot{ev: se, skipped: carry, prev: c.last, next: none}
	if c.last != none {
		c.slots[c.last].next = i
	} else {
		c.first = i
	}
	c.last = i
	c.byTopic[se.topic] = i
	c.n++
	return superseded
}

// holds reports whether slot i is queued with an event of topic.
func (c *conflation) holds(i int32, topic string) bool {
	ev := c.slots[i].ev
	return ev != nil && ev.topic == topic
}

func (c *conflation) alloc() int32 {
	if c.free != none {
		i := c.free
		c.free = c.slots[i].next
		return i
	}
	c.slots = append(c.slots, confSlot{})
	return int32(len(c.slots) - 1)
}

// pop removes the oldest queued event and returns it with its skipped; the
// queue must not be empty.
func (c *conflation) pop() (*sharedEvent, int) {
	i := c.first
	se, skipped := c.slots[i].ev, c.slots[i].skipped
	c.remove(i)
	if c.n == 0 {
		clear(c.byTopic)
	}
	return se, skipped
}

// remove unlinks slot i and frees it; byTopic may still name it.
func (c *conflation) remove(i int32) {
	s := &c.slots[i]
	if s.prev != none {
		c.slots[s.prev].next = s.next
	} else {
		c.first = s.next
	}
	if s.next != none {
		c.slots[s.next].prev = s.prev
	} else {
		c.last = s.prev
	}
	*s = confSlot{next: c.free}
	c.free = i
	c.n--
}

// clear empties the queue (the subscription or the session is ending) and
// returns how many events it held.
func (c *conflation) clear() int {
	n := c.n
	c.slots, c.free, c.first, c.last, c.n = nil, none, none, none, 0
	clear(c.byTopic)
	c.queued = false
	return n
}

// conflate queues se for cs, which conflates: into its conflation, with a
// token in the queue unless one is there already. The conflated events do
// not count toward the backlog; they are bounded by the topics (at most
// one each) and counted in conflated. It returns how many events se
// superseded (0 or 1).
func (q *outbox[T]) conflate(cs *clientSub[T], se *sharedEvent) uint64 {
	c := cs.conf
	if c.push(se) {
		return 1
	}
	q.conflated++
	if !c.queued {
		c.queued = true
		q.push(item[T]{conf: cs})
	}
	return 0
}

// dropConflated releases what cs has conflated (cs is closing); its token
// stays queued and is skipped when claimed.
func (q *outbox[T]) dropConflated(cs *clientSub[T]) {
	if cs.conf != nil {
		q.conflated -= cs.conf.clear()
	}
}

// claimConflated claims cs's conflated events, at most limit of them and
// about maxBytes, into the frame being built; its token leaves the queue
// once they are all claimed or cs is closed. It returns the events claimed
// and their size.
func (s *session[T]) claimConflated(cs *clientSub[T], limit, maxBytes int) (events, size int) {
	c := cs.conf
	if cs.closed || c.n == 0 {
		c.queued = false
		s.out.pop()
		return 0, 0
	}
	for events < limit && size < maxBytes && c.n > 0 {
		se, skipped := c.pop()
		s.out.conflated--
		s.claims = append(s.claims, claim{ev: se, sub: cs.id, n: skipped})
		events++
		size += len(se.tail) + 32
	}
	if c.n == 0 {
		c.queued = false
		s.out.pop()
	}
	return events, size
}
