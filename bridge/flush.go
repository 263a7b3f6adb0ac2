package bridge

// Batching: one events frame carries at most this many events, and stops
// growing past about this many bytes.
const (
	maxBatchEvents = 512
	maxBatchBytes  = 64 << 10
	replayEstimate = 128 // bytes assumed per replayed event not yet encoded
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
			n := s.claimReplay(it.rep, maxBatchEvents-events)
			events += n
			size += n * replayEstimate
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
// queue; the cursor leaves the queue once exhausted or when its
// subscription was closed.
func (s *session[T]) claimReplay(cur *replayCursor[T], limit int) int {
	if cur.sub.closed {
		s.out.pop()
		return 0
	}
	k := min(len(cur.events)-cur.next, limit)
	evs := cur.events[cur.next : cur.next+k]
	br := s.br
	s.claims = append(s.claims, claim{
		sub: cur.sub.id,
		n:   k,
		rep: func(b []byte, i int) []byte { return br.appendTail(b, evs[i]) },
	})
	cur.next += k
	if cur.next == len(cur.events) {
		s.out.pop()
	}
	return k
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
