package bridge

import bus "github.com/whalesong/bus"

// Batching: one events frame carries at most this many events, and stops
// growing past about this many bytes.
const (
	maxBatchEvents = 512
	maxBatchBytes  = 64 << 10
	replayEstimate = 128 // bytes per replayed event, for a replay not measured at all
)

// claim is one entry of the events frame being built: a shared event for
// subs, or replayed events (encoded now) for one sub. It stays within 64
// bytes (one cache line): n serves both kinds.
type claim struct {
	ev   *sharedEvent
	rep  func(b []byte, i int) []byte // appends the tail of replayed event i
	n    int                          // with rep: the events claimed; with ev: its skipped (conflate)
	sub  string
	more []string
}

// claimLocked takes the next frame's worth off the queue: one control frame,
// or a run of events (live and replayed) up to the batch limits. Entries of
// subscriptions closed meanwhile are skipped, so nothing follows an
// unsubscribed answer.
func (s *session[T]) claimLocked() (frame []byte, events int) {
	s.claims = s.claims[:0]
	size := 0
	for events < maxBatchEvents && size < maxBatchBytes {
		it := s.out.front()
		switch {
		case it == nil:
			return nil, events
		case it.ev != nil: // the common case first
			if c, ok := liveClaim(it); ok {
				s.claims = append(s.claims, c)
				events++
				size += len(it.ev.tail) + 16
			}
			s.out.pop()
		case it.frame != nil:
			if events > 0 {
				return nil, events
			}
			frame = it.frame
			s.out.pop()
			return frame, 0
		case it.rep != nil:
			n, bytes := s.claimReplay(it.rep, maxBatchEvents-events, maxBatchBytes-size)
			events += n
			size += bytes
		default:
			n, bytes := s.claimConflated(it.conf, maxBatchEvents-events, maxBatchBytes-size)
			events += n
			size += bytes
		}
	}
	return nil, events
}

func liveClaim[T any](it *item[T]) (claim, bool) {
	c := claim{ev: it.ev}
	if !it.sub.closed {
		c.sub = it.sub.id
	}
	for _, cs := range it.more {
		switch {
		case cs.closed:
		case c.sub == "":
			c.sub = cs.id
		default:
			c.more = append(c.more, cs.id)
		}
	}
	return c, c.sub != ""
}

// claimReplay claims up to limit events of the replay at the front of the
// queue, as many as room bytes hold by the size of its events encoded so
// far (at least one), and returns how many and their estimated bytes. The
// cursor leaves the queue once exhausted or when its subscription was
// closed.
func (s *session[T]) claimReplay(cur *replayCursor[T], limit, room int) (n, bytes int) {
	if cur.sub.closed {
		s.out.pop()
		return 0, 0
	}
	per := replayEstimate
	if cur.count > 0 {
		per = max(cur.encoded/cur.count, 1)
	}
	k := min(len(cur.events)-cur.next, limit, max(room/per, 1))
	evs := cur.events[cur.next : cur.next+k]
	br := s.br
	s.claims = append(s.claims, claim{
		sub: cur.sub.id,
		n:   k,
		rep: func(b []byte, i int) []byte {
			at := len(b)
			b = br.appendTail(b, evs[i])
			cur.encoded += len(b) - at
			cur.count++
			return b
		},
	})
	cur.next += k
	if cur.next == len(cur.events) {
		s.out.pop()
	}
	return k, k * per
}

// sampleReplay measures the encoding of a replay's first and last events
// (outside any lock: the Codec runs there), so that its first frame is
// sized like the rest. It returns the bytes and the number of events.
func (br *Bridge[T]) sampleReplay(evs []bus.Event[T]) (encoded, count int) {
	if len(evs) == 0 {
		return 0, 0
	}
	b := br.appendTail(getBuf(), evs[0])
	encoded, count = len(b), 1
	if len(evs) > 1 {
		b = br.appendTail(b[:0], evs[len(evs)-1])
		encoded, count = encoded+len(b), 2
	}
	putBuf(b)
	return encoded, count
}

// buildEvents encodes the claimed entries as one events frame, behind the
// headroom of its header. It runs outside mu, on the writer.
func (s *session[T]) buildEvents() []byte {
	b := append(newFrame(), eventsOpen...)
	n := 0
	for i := range s.claims {
		c := &s.claims[i]
		if c.ev != nil {
			if n > 0 {
				b = append(b, ',')
			}
			b = appendSubsHead(b, c.sub, c.more)
			if c.n > 0 {
				b = appendSkipped(b, c.n)
			}
			b = append(b, c.ev.tail...)
			n++
			continue
		}
		for j := range c.n {
			if n > 0 {
				b = append(b, ',')
			}
			b = appendSubsHead(b, c.sub, nil)
			b = c.rep(b, j)
			n++
		}
	}
	clear(s.claims)
	s.claims = shrink(s.claims, len(s.claims), &s.claimSlack)
	return append(b, eventsClose...)
}
