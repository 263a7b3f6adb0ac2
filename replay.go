package bus

import (
	"sort"
	"time"
)

// history numbers events and keeps the newest ones of every topic for
// replay. It is the seam behind which sequencing and retention live: the Bus
// asks it to record each event it commits (getting its Seq and Time back),
// to plan a replay and to expire old events, and nothing else reaches into
// it, so that a shared log (NATS JetStream) can stand in its place when
// several processes share one sequence space. It is not safe for concurrent
// use; the Bus guards it.
type history[T any] struct {
	seq    uint64        // Seq of the newest event
	last   time.Time     // Time of the newest event
	max    int           // events kept per topic; 0 keeps none
	ttl    time.Duration // 0: no age limit
	topics map[string]*topicLog[T]
	held   int // events retained over all topics

	// lost records the newest loss of topics that were forgotten (all their
	// events expired) and, with max == 0, of every event. It counts against
	// every replay, whatever its pattern: that is the conservative case the
	// package doc names.
	lost loss
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
}

// topicLog is one topic's retained events, oldest first, and its newest loss.
type topicLog[T any] struct {
	ring      ring[T]
	lost      loss
	forgotten bool // dropped from the map: a route holding it must look again
}

func newHistory[T any](max int, ttl time.Duration) *history[T] {
	return &history[T]{max: max, ttl: ttl, topics: make(map[string]*topicLog[T])}
}

// record numbers a new event, stamps it with now (never earlier than the
// event before it, which Since and the TTL rely on), retains it and returns
// it. t is the topic's log as record returned it last time, or nil; the new
// one is returned for next time.
func (h *history[T]) record(t *topicLog[T], topic string, data T, now time.Time) (Event[T], *topicLog[T]) {
	if now.Before(h.last) {
		now = h.last
	}
	h.seq++
	h.last = now
	ev := Event[T]{Seq: h.seq, Topic: topic, Time: now, Data: data}
	return ev, h.append(t, ev)
}

// append retains ev in its topic's log, evicting the oldest event when it
// is full, and returns the log to pass next time (nil when nothing is
// retained).
func (h *history[T]) append(t *topicLog[T], ev Event[T]) *topicLog[T] {
	if h.max == 0 {
		h.lost.record(ev.Seq, ev.Time)
		return nil
	}
	if t == nil || t.forgotten {
		if t = h.topics[ev.Topic]; t == nil {
			t = &topicLog[T]{}
			h.topics[ev.Topic] = t
		}
	}
	if old, evicted := t.ring.push(ev, h.max); evicted {
		t.lost.record(old.Seq, old.Time)
		return t
	}
	h.held++
	return t
}

// expire drops the events older than the TTL and forgets topics left empty.
// It returns when the oldest event still retained expires (zero if none).
func (h *history[T]) expire(now time.Time) time.Time {
	var next time.Time
	for name, t := range h.topics {
		h.expireTopic(name, t, now)
		if t.ring.n > 0 {
			if at := t.ring.at(0).Time.Add(h.ttl); next.IsZero() || at.Before(next) {
				next = at
			}
		}
	}
	return next
}

func (h *history[T]) expireTopic(name string, t *topicLog[T], now time.Time) {
	if h.ttl <= 0 {
		return
	}
	for t.ring.n > 0 && now.Sub(t.ring.at(0).Time) >= h.ttl {
		old := t.ring.pop()
		t.lost.record(old.Seq, old.Time)
		h.held--
	}
	if t.ring.n == 0 {
		h.lost.record(t.lost.seq, t.lost.time)
		t.forgotten = true
		delete(h.topics, name)
	}
}

// A span is the part of one topic's ring that a replay takes: the events at
// positions next..end-1, oldest first.
type span[T any] struct {
	r         *ring[T]
	next, end int
}

// replayPlan is what a replay option selects: spans over the rings, how
// many events to emit, how many of the oldest to skip first (Last over
// several topics), and the newest loss among the matching topics.
type replayPlan[T any] struct {
	from  replayFrom
	spans []span[T]
	count int
	skip  int
	lost  loss
}

// plan selects the retained events matching pattern that from asks for. It
// copies nothing; emit copies straight to where the events go.
func (h *history[T]) plan(pattern string, from replayFrom, now time.Time) replayPlan[T] {
	p := replayPlan[T]{from: from}
	if from.kind == replayNone {
		return p
	}
	total := 0
	h.eachMatch(pattern, now, func(t *topicLog[T]) {
		p.lost.record(t.lost.seq, t.lost.time)
		if sp := t.ring.spanFrom(from); sp.end > sp.next {
			p.spans = append(p.spans, sp)
			total += sp.end - sp.next
		}
	})
	p.lost.record(h.lost.seq, h.lost.time) // after eachMatch: it may forget topics
	p.count = total
	if from.kind == replayLast && total > from.last {
		p.count, p.skip = from.last, total-from.last
	}
	return p
}

// emit hands the planned events to fn in increasing Seq, merging the spans
// of several topics, and returns whether the replay is complete.
func (p *replayPlan[T]) emit(fn func(*Event[T])) (recovered bool) {
	var first uint64
	skip := p.skip
	give := func(ev *Event[T]) {
		if skip > 0 {
			skip--
			return
		}
		if first == 0 {
			first = ev.Seq
		}
		fn(ev)
	}
	if len(p.spans) == 1 {
		sp := p.spans[0]
		for i := sp.next; i < sp.end; i++ {
			give(sp.r.at(i))
		}
	} else {
		mergeSpans(p.spans, give)
	}
	return p.recovered(first)
}

// mergeSpans gives the events of several spans in increasing Seq: a k-way
// merge over a min-heap of the spans by their next event's Seq, so a replay
// over many topics costs O(events * log topics) and no extra copy.
func mergeSpans[T any](spans []span[T], give func(*Event[T])) {
	h := spanHeap[T](spans)
	for i := len(h)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
	for len(h) > 0 {
		give(h[0].r.at(h[0].next))
		if h[0].next++; h[0].next == h[0].end {
			h[0] = h[len(h)-1]
			h = h[:len(h)-1]
		}
		h.down(0)
	}
}

// spanHeap is a min-heap of non-empty spans by the Seq of their next event.
type spanHeap[T any] []span[T]

func (h spanHeap[T]) head(i int) uint64 { return h[i].r.at(h[i].next).Seq }

func (h spanHeap[T]) down(i int) {
	for {
		least := i
		for _, c := range [2]int{2*i + 1, 2*i + 2} {
			if c < len(h) && h.head(c) < h.head(least) {
				least = c
			}
		}
		if least == i {
			return
		}
		h[i], h[least] = h[least], h[i]
		i = least
	}
}

// recovered applies the strict check: false if any lost event is one that
// the option asked for. first is the Seq of the oldest event emitted.
func (p *replayPlan[T]) recovered(first uint64) bool {
	lost, from := p.lost, p.from
	if lost.seq == 0 {
		return true
	}
	switch from.kind {
	case replayAfter:
		return lost.seq <= from.after
	case replaySince:
		return lost.time.Before(from.since)
	case replayLast:
		if from.last == 0 {
			return true
		}
		// Last(n) asks for the n newest matching events ever published: a
		// loss newer than the oldest of them, or any loss at all when fewer
		// than n are retained, is one of them.
		return p.count == from.last && lost.seq < first
	}
	return true
}

// events returns the planned events in a new slice, and recovered.
func (p *replayPlan[T]) events() ([]Event[T], bool) {
	out := make([]Event[T], 0, p.count)
	rec := p.emit(func(ev *Event[T]) { out = append(out, *ev) })
	if len(out) == 0 {
		out = nil
	}
	return out, rec
}

// eachMatch calls fn for every topic with retained events that matches
// pattern, after expiring its old events.
func (h *history[T]) eachMatch(pattern string, now time.Time, fn func(*topicLog[T])) {
	visit := func(name string, t *topicLog[T]) {
		h.expireTopic(name, t, now)
		if t.ring.n > 0 {
			fn(t)
		}
	}
	if isLiteral(pattern) {
		if t := h.topics[pattern]; t != nil {
			visit(pattern, t)
		}
		return
	}
	for name, t := range h.topics {
		if matchSubject(pattern, name) {
			visit(name, t)
		}
	}
}

func cmpSeq(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// ring is a FIFO of events that grows up to a cap and then overwrites its
// oldest event, so that a topic with few events costs little memory and a
// full one allocates nothing more.
type ring[T any] struct {
	buf  []Event[T]
	head int // index of the oldest event
	n    int
}

// push appends ev; at capacity events it evicts and returns the oldest one.
func (r *ring[T]) push(ev Event[T], capacity int) (old Event[T], evicted bool) {
	if r.n == len(r.buf) && r.n < capacity {
		r.grow(capacity)
	}
	if r.n == len(r.buf) {
		old = r.buf[r.head]
		r.buf[r.head] = ev
		r.head = (r.head + 1) % len(r.buf)
		return old, true
	}
	r.buf[(r.head+r.n)%len(r.buf)] = ev
	r.n++
	return old, false
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
	r.head = (r.head + 1) % len(r.buf)
	r.n--
	return ev
}

// at returns the i-th oldest event.
func (r *ring[T]) at(i int) *Event[T] {
	return &r.buf[(r.head+i)%len(r.buf)]
}

// spanFrom returns the span of events that from selects, oldest first. For
// Last it takes up to the newest n; the plan trims across topics.
func (r *ring[T]) spanFrom(from replayFrom) span[T] {
	first := 0
	switch from.kind {
	case replayAfter:
		first = sort.Search(r.n, func(i int) bool { return r.at(i).Seq > from.after })
	case replaySince:
		first = sort.Search(r.n, func(i int) bool { return !r.at(i).Time.Before(from.since) })
	case replayLast:
		first = max(r.n-from.last, 0)
	}
	return span[T]{r: r, next: first, end: r.n}
}
