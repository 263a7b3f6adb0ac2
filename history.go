package bus

import (
	"slices"
	"time"
)

// history numbers events and keeps the newest ones of every topic for
// replay: the in-memory side of the Log seam. In-process it numbers and
// stamps every event (record); on a shared Log the log numbers them and the
// history only retains what the log hands over (apply), in the same way on
// every node. The Bus reaches it only through its methods. It is not safe
// for concurrent use; the Bus guards it.
type history[T any] struct {
	seq  uint64    // Seq of the newest event
	last time.Time // Time of the newest event
	max  int       // events kept per topic; 0 keeps none
	ttl  time.Duration
	cap  int // events kept over all topics; 0: no cap

	topics map[string]*topicLog[T] // topics with retained events
	index  topicIndex[T]           // the same, by token, for wildcard patterns
	held   int                     // events retained over all topics

	// order lists retained events oldest first, over all topics, for the
	// TTL and the bus-wide cap; kept only when one of them is set.
	order orderQueue[T]

	// lost records the newest loss of topics that were forgotten (all their
	// events expired or evicted by the bus-wide cap), of holes in a shared
	// log, and with max == 0 of every event. It counts against every replay,
	// whatever its pattern: the conservative case the package doc names.
	lost loss

	// emptied lists, oldest first, the topics that the bus-wide cap (without
	// a TTL) emptied and that are still remembered, with their losses, so
	// that Recovered stays exact per topic: at most cap of them (emptiedN),
	// the oldest forgotten past that. An entry whose topic got events again
	// (and perhaps was emptied again since, with a later entry) is stale.
	emptied    []emptiedEntry[T]
	emptiedN   int
	emptyStamp uint64 // numbers the entries

	// loadLost is the newest Seq a shared log skipped while this history was
	// loading it: counted bus-wide, like lost, until loading ends and the
	// skipped events are attributed to the topics that can have lost them.
	loadLost loss
}

// loss is the newest event that is no longer retained: its Seq and Time.
type loss struct {
	seq  uint64
	time time.Time
}

func (l *loss) record(seq uint64, t time.Time) {
	if seq > l.seq {
		l.seq, l.time = seq, t
	}
	if t.After(l.time) {
		l.time = t // a loss is never older than a newer loss's time
	}
}

// topicLog is one topic's retained events, oldest first, and its newest loss.
type topicLog[T any] struct {
	name       string
	ring       ring[T]
	lost       loss
	node       *indexNode[T] // where the index holds it
	forgotten  bool          // dropped from the map: a route holding it must look again
	remembered bool          // empty, kept for its loss (see history.emptied)
	emptiedAt  uint64        // the stamp of its entry in history.emptied, while remembered
}

// emptiedEntry is one topic the cap emptied, as history.emptied lists it.
type emptiedEntry[T any] struct {
	t     *topicLog[T]
	stamp uint64
}

// current reports whether the entry is its topic's, still remembered.
func (e emptiedEntry[T]) current() bool { return e.t.remembered && e.t.emptiedAt == e.stamp }

func newHistory[T any](max int, ttl time.Duration, capacity int) *history[T] {
	return &history[T]{max: max, ttl: ttl, cap: capacity, topics: make(map[string]*topicLog[T])}
}

// tracksOrder reports whether retained events are listed bus-wide.
func (h *history[T]) tracksOrder() bool { return h.ttl > 0 || h.cap > 0 }

// apply retains a new event, numbered by the bus or by a shared log: its
// Seq becomes the newest, and its Time is raised, in place, to that of the
// event before it in this history if it is earlier (Since and the TTL rely
// on Time never going back). t is the topic's log as apply returned it last
// time, or nil; the new one is returned for next time. ev is read and
// changed in place: an event is 80 bytes or more, and a publish would
// otherwise copy it at every step.
func (h *history[T]) apply(t *topicLog[T], ev *Event[T]) *topicLog[T] {
	if ev.Time.Before(h.last) {
		ev.Time = h.last
	}
	h.seq, h.last = ev.Seq, ev.Time
	return h.append(t, ev)
}

// append retains ev in its topic's log, evicting the oldest event when it
// is full, and returns the log to pass next time (nil when nothing is
// retained).
func (h *history[T]) append(t *topicLog[T], ev *Event[T]) *topicLog[T] {
	if h.max == 0 {
		h.lost.record(ev.Seq, ev.Time)
		return nil
	}
	if t == nil || t.forgotten {
		t = h.topic(ev.Topic)
	}
	if t.remembered { // events again: no longer one of the emptied
		t.remembered = false
		h.emptiedN--
	}
	if old, evicted := t.ring.push(ev, h.max); evicted {
		t.lost.record(old.seq, old.time)
	} else {
		h.held++
	}
	if h.tracksOrder() {
		h.order.push(ev.Seq, t)
		h.order.compact(h.held)
		if h.cap > 0 {
			h.evictOver()
		}
	}
	return t
}

// topic returns the log of a topic, making it if needed.
func (h *history[T]) topic(name string) *topicLog[T] {
	if t := h.topics[name]; t != nil {
		return t
	}
	t := &topicLog[T]{name: name}
	h.topics[name] = t
	h.index.insert(t)
	return t
}

// lookup returns the log of a topic with retained events, or nil.
func (h *history[T]) lookup(name string) *topicLog[T] { return h.topics[name] }

// evictOver evicts the oldest events bus-wide while more than cap are held.
func (h *history[T]) evictOver() {
	for h.held > h.cap {
		t := h.order.popLive()
		if t == nil {
			return
		}
		h.dropOldest(t)
	}
}

// dropOldest evicts t's oldest event and forgets t once it is empty.
func (h *history[T]) dropOldest(t *topicLog[T]) {
	old := t.ring.pop()
	t.lost.record(old.Seq, old.Time)
	h.held--
	switch {
	case t.ring.n > 0:
	case h.cap > 0 && h.ttl == 0:
		h.remember(t)
	default:
		h.forget(t)
	}
}

// remember keeps a topic that the bus-wide cap emptied, without its
// events' memory, so that its loss stays its own; past cap such topics the
// oldest is forgotten.
func (h *history[T]) remember(t *topicLog[T]) {
	t.ring = ring[T]{}
	h.emptyStamp++
	t.remembered, t.emptiedAt = true, h.emptyStamp
	h.emptiedN++
	h.emptied = append(h.emptied, emptiedEntry[T]{t, h.emptyStamp})
	for h.emptiedN > h.cap {
		old := h.emptied[0]
		h.emptied[0] = emptiedEntry[T]{}
		h.emptied = h.emptied[1:]
		if old.current() {
			old.t.remembered = false
			h.emptiedN--
			h.forget(old.t)
		}
	}
	if len(h.emptied) > 2*h.emptiedN+64 { // mostly stale: compact
		h.emptied = slices.DeleteFunc(h.emptied, func(e emptiedEntry[T]) bool { return !e.current() })
	}
}

// retainedTopics counts the topics with retained events.
func (h *history[T]) retainedTopics() int { return len(h.topics) - h.emptiedN }

// forget drops an empty topic; its newest loss now counts bus-wide.
func (h *history[T]) forget(t *topicLog[T]) {
	h.lost.record(t.lost.seq, t.lost.time)
	t.forgotten = true
	delete(h.topics, t.name)
	h.index.remove(t)
}

// expire drops the events older than the TTL, oldest first, and forgets
// topics left empty. It returns when the oldest event still retained
// expires (zero if none).
func (h *history[T]) expire(now time.Time) time.Time {
	if h.ttl <= 0 {
		return time.Time{}
	}
	for {
		t := h.order.peekLive()
		if t == nil {
			return time.Time{}
		}
		at := t.ring.at(0).Time.Add(h.ttl)
		if now.Before(at) {
			return at
		}
		h.order.popLive()
		h.dropOldest(t)
	}
}

// hole records that the Seqs after..before (exclusive) of a shared log are
// gone without this history having seen them; at is the Time of the event
// that came after them. They may have been of any topic, so the loss counts
// bus-wide.
func (h *history[T]) hole(after, before uint64, at time.Time) {
	if before > after+1 {
		h.lost.record(before-1, at)
	}
}

// loadHole records Seqs that a shared log skipped while loading: until
// loading ends they count against every replay.
func (h *history[T]) loadHole(after, before uint64, at time.Time) {
	if before > after+1 {
		h.loadLost.record(before-1, at)
	}
}

// loaded ends loading. With only the per-topic cap evicting (no TTL, no
// bus-wide cap), an event the log skipped can only have gone from a topic
// that holds max events now: such a topic may have lost everything before
// its oldest retained event, and no other topic lost anything, so the
// skipped Seqs stop counting bus-wide. Otherwise they keep doing so.
func (h *history[T]) loaded() {
	if h.loadLost.seq == 0 {
		return
	}
	if h.ttl > 0 || h.cap > 0 {
		h.lost.record(h.loadLost.seq, h.loadLost.time)
	} else {
		h.holesBehindFullTopics()
	}
	h.loadLost = loss{}
}

// holesBehindFullTopics marks, for every topic at its cap, everything
// before its oldest retained event as lost.
func (h *history[T]) holesBehindFullTopics() {
	for _, t := range h.topics {
		if t.ring.n == h.max {
			first := t.ring.at(0)
			t.lost.record(first.Seq-1, first.Time)
		}
	}
}

// orderQueue lists retained events bus-wide, oldest first, by Seq and
// topic. Entries whose event a topic has already evicted (by its own cap)
// stay until they reach the front or a compaction drops them.
type orderQueue[T any] struct {
	q    []orderEntry[T]
	head int
}

type orderEntry[T any] struct {
	seq uint64
	t   *topicLog[T]
}

func (o *orderQueue[T]) push(seq uint64, t *topicLog[T]) {
	o.q = append(o.q, orderEntry[T]{seq, t})
	if live := o.len(); live > 64 && o.head > live {
		o.compactFront()
	}
}

func (o *orderQueue[T]) len() int { return len(o.q) - o.head }

// live reports whether e's event is still retained: rings evict only from
// the front, so it is if it is not older than its topic's oldest.
func (e *orderEntry[T]) live() bool {
	t := e.t
	return !t.forgotten && t.ring.n > 0 && t.ring.at(0).Seq <= e.seq
}

// peekLive returns the topic of the oldest retained event, skipping stale
// entries, or nil.
func (o *orderQueue[T]) peekLive() *topicLog[T] {
	for o.head < len(o.q) {
		if e := &o.q[o.head]; e.live() {
			return e.t
		}
		o.q[o.head] = orderEntry[T]{}
		o.head++
	}
	o.q, o.head = o.q[:0], 0
	return nil
}

// popLive removes the oldest live entry and returns its topic, or nil.
func (o *orderQueue[T]) popLive() *topicLog[T] {
	t := o.peekLive()
	if t != nil {
		o.q[o.head] = orderEntry[T]{}
		o.head++
	}
	return t
}

// compactFront moves the entries after head to the front of the array.
func (o *orderQueue[T]) compactFront() {
	n := copy(o.q, o.q[o.head:])
	clear(o.q[n:])
	o.q, o.head = o.q[:n], 0
}

// compact drops stale entries when they outnumber the events retained, so
// that the queue stays proportional to what is held.
func (o *orderQueue[T]) compact(held int) {
	if o.len() <= 2*held+64 {
		return
	}
	kept := o.q[:0]
	for _, e := range o.q[o.head:] {
		if e.live() {
			kept = append(kept, e)
		}
	}
	clear(o.q[len(kept):])
	o.q, o.head = kept, 0
}
