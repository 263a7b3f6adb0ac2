package bus

import (
	"sort"
	"time"
)

// A span is the part of one topic's ring that a replay takes: the events at
// positions next..end-1, oldest first.
type span[T any] struct {
	r         *ring[T]
	next, end int
}

// replayPlan is what a replay option selects: spans over the rings (their
// events are the replay, merged in Seq order), how many events that is, and
// the newest loss that counts against it. It copies nothing; emit copies
// straight to where the events go.
type replayPlan[T any] struct {
	from  replayFrom
	spans []span[T]
	count int
	lost  loss
	more  bool // Page: older matching events are retained
}

// matching returns the retained topics that match pattern: one lookup for
// a literal pattern, a walk of the index (O(matching topics)) otherwise.
func (h *history[T]) matching(pattern string, out []*topicLog[T]) []*topicLog[T] {
	if isLiteral(pattern) {
		if t := h.topics[pattern]; t != nil {
			out = append(out, t)
		}
		return out
	}
	h.index.match(pattern, func(t *topicLog[T]) { out = append(out, t) })
	return out
}

// plan selects the retained events matching pattern that from asks for.
func (h *history[T]) plan(pattern string, from replayFrom, now time.Time) replayPlan[T] {
	p := replayPlan[T]{from: from}
	if from.kind == replayNone {
		return p
	}
	h.collect(&p, pattern, now)
	p.finish()
	return p
}

// collect adds to p the spans and losses of this history's topics matching
// pattern: plans over several histories (the shards of a bus) collect from
// each, then finish.
func (h *history[T]) collect(p *replayPlan[T], pattern string, now time.Time) {
	from := p.from
	h.expire(now)
	for _, t := range h.matching(pattern, nil) {
		// Latest asks only for newest events, retained unless the topic
		// was emptied (a remembered topic: see history.emptied).
		if from.kind != replayLatest || t.ring.n == 0 {
			p.lost.record(t.lost.seq, t.lost.time)
		}
		if sp := spanFor(&t.ring, from); sp.end > sp.next {
			p.spans = append(p.spans, sp)
		}
	}
	p.lost.record(h.lost.seq, h.lost.time)
	p.lost.record(h.loadLost.seq, h.loadLost.time)
}

// finish trims the collected spans to what the option takes over all of
// them and counts the events.
func (p *replayPlan[T]) finish() {
	from := p.from
	if (from.kind == replayLast || from.kind == replayBefore) && len(p.spans) > 1 {
		trimToNewest(p.spans, from.last)
	}
	for _, sp := range p.spans {
		p.more = p.more || (from.kind == replayBefore && sp.next > 0)
	}
	p.spans = dropEmpty(p.spans)
	for _, sp := range p.spans {
		p.count += sp.end - sp.next
	}
}

// spanFor returns the span of r that from selects. For Last it takes up to
// the newest n of this topic; trimToNewest cuts across topics.
func spanFor[T any](r *ring[T], from replayFrom) span[T] {
	first := 0
	switch from.kind {
	case replayAfter:
		first = r.firstAfter(from.after)
	case replaySince:
		first = sort.Search(r.n, func(i int) bool { return !r.at(i).Time.Before(from.since) })
	case replayLast:
		first = max(r.n-from.last, 0)
	case replayLatest:
		first = max(r.n-1, 0)
	case replayBefore:
		end := r.firstFrom(from.before)
		return span[T]{r: r, next: max(end-from.last, 0), end: end}
	}
	return span[T]{r: r, next: first, end: r.n}
}

// trimToNewest cuts spans so that together they hold only the n newest of
// their events: it finds the Seq of the n-th newest by walking the spans
// backwards through a max-heap (O(spans + n log spans)), then starts each
// span at that Seq.
func trimToNewest[T any](spans []span[T], n int) {
	total := 0
	for _, sp := range spans {
		total += sp.end - sp.next
	}
	if total <= n || n <= 0 {
		if n <= 0 {
			for i := range spans {
				spans[i].next = spans[i].end
			}
		}
		return
	}
	cut := nthNewest(spans, n)
	for i := range spans {
		sp := &spans[i]
		sp.next = max(sp.next, sp.r.firstFrom(cut))
	}
}

// nthNewest returns the Seq of the n-th newest event of the spans (there
// are at least n).
func nthNewest[T any](spans []span[T], n int) uint64 {
	h := make(backHeap[T], 0, len(spans))
	for _, sp := range spans {
		if sp.end > sp.next {
			h = append(h, backCursor[T]{r: sp.r, pos: sp.end - 1, stop: sp.next})
		}
	}
	for i := len(h)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
	var seq uint64
	for range n {
		c := &h[0]
		seq = c.r.at(c.pos).Seq
		if c.pos--; c.pos < c.stop {
			h[0] = h[len(h)-1]
			h = h[:len(h)-1]
		}
		if len(h) > 0 {
			h.down(0)
		}
	}
	return seq
}

func dropEmpty[T any](spans []span[T]) []span[T] {
	kept := spans[:0]
	for _, sp := range spans {
		if sp.end > sp.next {
			kept = append(kept, sp)
		}
	}
	return kept
}

// emit hands the planned events to fn in increasing Seq, at most limit of
// them (limit <= 0: all), merging the spans of several topics, and returns
// the Seq of the oldest one emitted (0 if none).
func (p *replayPlan[T]) emit(limit int, fn func(*Event[T])) (first uint64) {
	if limit <= 0 || limit > p.count {
		limit = p.count
	}
	if limit == 0 {
		return 0
	}
	n := 0
	give := func(ev *Event[T]) bool {
		if n == 0 {
			first = ev.Seq
		}
		fn(ev)
		n++
		return n < limit
	}
	if len(p.spans) == 1 {
		sp := p.spans[0]
		for i := sp.next; i < sp.end && give(sp.r.at(i)); i++ {
		}
		return first
	}
	mergeSpans(p.spans, give)
	return first
}

// mergeSpans gives the events of several spans in increasing Seq until
// give returns false: a k-way merge over a min-heap of the spans by their
// next event's Seq, so a replay over many topics costs O(events * log
// topics) and no extra copy. It consumes the spans.
func mergeSpans[T any](spans []span[T], give func(*Event[T]) bool) {
	h := spanHeap[T](spans)
	for i := len(h)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
	for len(h) > 0 {
		if !give(h[0].r.at(h[0].next)) {
			return
		}
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

// backHeap is a max-heap of cursors walking rings from their newest event
// backwards, by the Seq under the cursor.
type backHeap[T any] []backCursor[T]

type backCursor[T any] struct {
	r         *ring[T]
	pos, stop int
}

func (h backHeap[T]) head(i int) uint64 { return h[i].r.at(h[i].pos).Seq }

func (h backHeap[T]) down(i int) {
	for {
		most := i
		for _, c := range [2]int{2*i + 1, 2*i + 2} {
			if c < len(h) && h.head(c) > h.head(most) {
				most = c
			}
		}
		if most == i {
			return
		}
		h[i], h[most] = h[most], h[i]
		i = most
	}
}

// recovered applies the strict check: false if any lost event is one that
// the option asked for. first is the Seq of the oldest event replayed.
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
		return p.count >= from.last && lost.seq < first
	case replayLatest:
		// A retained topic's newest event is always retained; an emptied
		// one's is not (collected as its loss), and neither is a forgotten
		// topic's, which topics were forgotten being not known.
		return false
	}
	return true
}

// missing returns the range (after, before) outside which nothing the
// option asked for is lost, for a replay that is not recovered.
func (p *replayPlan[T]) missing() (after, before uint64) {
	if p.from.kind == replayAfter {
		after = p.from.after
	}
	return after, p.lost.seq + 1
}

// events returns the planned events in a new slice (at most limit, <= 0:
// all), and the Seq of the oldest.
func (p *replayPlan[T]) events(limit int) ([]Event[T], uint64) {
	n := p.count
	if limit > 0 && limit < n {
		n = limit
	}
	if n == 0 {
		return nil, 0
	}
	out := make([]Event[T], 0, n)
	first := p.emit(limit, func(ev *Event[T]) { out = append(out, *ev) })
	return out, first
}
