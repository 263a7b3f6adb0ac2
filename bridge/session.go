package bridge

import (
	"errors"
	"net"
	"sync"

	"github.com/olahol/melody"
	bus "github.com/whalesong/bus"
	"golang.org/x/time/rate"
)

// Batching: one events frame carries at most this many events, and stops
// growing past about this many bytes.
const (
	maxBatchEvents = 512
	maxBatchBytes  = 64 << 10
	replayEstimate = 128 // bytes assumed per replayed event not yet encoded
)

// Close codes of PROTOCOL.md.
const (
	closeGoingAway    = 1001
	closeResumeNeeded = 4000
	closeAbuse        = 4001
)

// session is one client connection. Its output goes through one ordered
// queue; at most one frame of it is inside melody at any time (inflight), so
// melody's own buffer never fills and never drops silently, and whatever
// queues up meanwhile leaves as one batched frame. The queue is bounded by
// the backlog limit: past it the session is cut off with 4000.
//
// Goroutines: melody's read loop (ServeHTTP's goroutine) runs every client
// request and owns atts, pubLim and badLim; fanout goroutines call deliver;
// melody's write loop calls sent. Everything else is guarded by mu, which is
// never held while calling the bus or user code.
type session[T any] struct {
	br    *Bridge[T]
	ms    *melody.Session
	raw   net.Conn // the hijacked socket: Close drops it past the write timeout
	id    string
	ident any

	atts   map[string]*attachment[T] // by pattern; read loop only
	pubLim *rate.Limiter             // made on first publish; read loop only
	// floodLim allows floodFactor times pubLim: publishing beyond it spends
	// the bad-frame budget. Read loop only.
	floodLim *rate.Limiter
	badLim   *rate.Limiter // made on first bad frame; read loop only

	mu             sync.Mutex
	dead           bool                     // closing or closed: nothing more is queued
	subs           map[string]*clientSub[T] // by client sub id
	queue          []item[T]                // from head
	head           int
	peak           int // most entries queued since the queue was last empty
	slack          int // drains in a row that used under a quarter of the queue
	claimSlack     int // the same for claims
	backlog        int // frames and live events queued or held, not yet claimed
	inflight       bool
	inflightEvents int
	inflightShared bool    // the frame in flight is shared with other sessions: not pooled
	claims         []claim // scratch of the one flush in flight
}

// clientSub is one client subscription. All fields but id and att are
// guarded by the session's mu.
type clientSub[T any] struct {
	id       string
	att      *attachment[T]
	closed   bool
	pending  bool           // replay not yet queued: live events are held
	held     []*sharedEvent // live events that arrived while pending
	lastSent uint64         // newest seq queued for it: never queue one <= it
}

// item is one entry of the output queue: a control frame, a live event for
// some subscriptions, or a replay to be encoded lazily as it leaves.
type item[T any] struct {
	frame []byte
	ev    *sharedEvent
	sub   *clientSub[T]
	more  []*clientSub[T]
	rep   *replayCursor[T]
}

type replayCursor[T any] struct {
	sub    *clientSub[T]
	events []bus.Event[T] // immutable
	next   int
}

// claim is one entry of the events frame being built: a shared event for
// subs, or replayed events (encoded now) for one sub.
type claim struct {
	ev   *sharedEvent
	rep  func(b []byte, i int) []byte // appends the tail of replayed event i
	nrep int
	sub  string
	more []string
}

var framePool = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

func getBuf() []byte { return (*framePool.Get().(*[]byte))[:0] }

func putBuf(b []byte) {
	if cap(b) <= 4*maxBatchBytes {
		framePool.Put(&b)
	}
}

// ---- queue (under mu) ----

func (s *session[T]) push(it item[T]) {
	if it.rep == nil {
		s.backlog++
	}
	s.queue = append(s.queue, it)
	s.peak = max(s.peak, len(s.queue)-s.head)
}

func (s *session[T]) pop() {
	if s.queue[s.head].rep == nil {
		s.backlog--
	}
	s.queue[s.head] = item[T]{}
	s.head++
	switch {
	case s.head == len(s.queue):
		// Drained. Keep the array while it fits recent use; once a burst
		// is over (the array is far larger than the last run needed), an
		// idle session gives it back.
		s.queue = shrink(s.queue, s.peak, &s.slack)
		s.head, s.peak = 0, 0
	case s.head >= 64 && s.head >= len(s.queue)/2:
		n := copy(s.queue, s.queue[s.head:])
		clear(s.queue[n:])
		s.queue, s.head = s.queue[:n], 0
	}
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

// send queues a control frame and starts a write if none is in flight.
func (s *session[T]) send(frame []byte) {
	s.mu.Lock()
	if s.dead {
		s.mu.Unlock()
		return
	}
	s.push(item[T]{frame: frame})
	if s.backlog > s.br.cfg.maxBacklog {
		s.cutUnlock()
		return
	}
	s.kickUnlock()
}

// deliver is the fanout's hand-off of one shared event to the subscriptions
// of attachment a. It never waits for the client: it queues, or holds the
// event for a subscription whose replay is being prepared, or cuts the
// session off when its backlog is over the limit.
func (s *session[T]) deliver(a *attachment[T], se *sharedEvent) {
	s.mu.Lock()
	if s.dead {
		s.mu.Unlock()
		return
	}
	var first *clientSub[T]
	var more []*clientSub[T]
	for _, cs := range a.subs {
		switch {
		case cs.pending:
			cs.held = append(cs.held, se)
			s.backlog++
		case se.seq > cs.lastSent:
			cs.lastSent = se.seq
			if first == nil {
				first = cs
			} else {
				more = append(more, cs)
			}
		}
	}
	if s.backlog > s.br.cfg.maxBacklog {
		s.cutUnlock()
		return
	}
	if first != nil && more == nil && !s.inflight && s.head == len(s.queue) {
		// Idle: write at once, sharing the frame with the other idle
		// clients whose subscription has the same id.
		frame, shared := se.frameFor(first.id)
		s.inflight, s.inflightEvents, s.inflightShared = true, 1, shared
		s.mu.Unlock()
		if s.ms.Write(frame) != nil {
			s.failed(melody.ErrSessionClosed)
		}
		return
	}
	if first != nil {
		s.push(item[T]{ev: se, sub: first, more: more})
	}
	s.kickUnlock()
}

// cutUnlock cuts off a client that fell behind: its queue is released now
// and it is closed with 4000 "resume needed". Called with mu held; unlocks.
func (s *session[T]) cutUnlock() {
	s.dieLocked()
	s.mu.Unlock()
	s.br.stats.slowDisconnects.Add(1)
	s.closeWith(closeResumeNeeded, "resume needed")
}

// dieLocked marks the session dead and releases everything it queued.
func (s *session[T]) dieLocked() {
	s.dead = true
	s.queue, s.head, s.backlog = nil, 0, 0
	for _, cs := range s.subs {
		cs.held = nil
	}
}

func (s *session[T]) closeWith(code int, reason string) {
	_ = s.ms.CloseWithMsg(melody.FormatCloseMessage(code, reason))
}

// end closes the connection with code unless it is already ending: only
// the call that marks the session dead sends a close frame, so a session
// sends at most one (melody's buffer of 8 must never drop the one that
// ends the connection).
// It reports whether this call sent it.
func (s *session[T]) end(code int, reason string) bool {
	s.mu.Lock()
	first := !s.dead
	s.dieLocked()
	s.mu.Unlock()
	if first {
		s.closeWith(code, reason)
	}
	return first
}

// drop closes the socket under melody: both of its loops end at once.
func (s *session[T]) drop() {
	if s.raw != nil {
		_ = s.raw.Close()
	}
}

// kickUnlock starts writing the head of the queue unless a frame is already
// in flight. Called with mu held; unlocks. The frame is built outside the
// lock: the in-flight flag keeps flushes one at a time.
func (s *session[T]) kickUnlock() {
	if s.inflight || s.dead {
		s.mu.Unlock()
		return
	}
	frame, events := s.claimLocked()
	if frame == nil && events == 0 {
		s.mu.Unlock()
		return
	}
	s.inflight, s.inflightEvents = true, events
	s.mu.Unlock()
	if frame == nil {
		frame = s.buildEvents()
	}
	if s.ms.Write(frame) != nil { // the connection is closing
		s.failed(melody.ErrSessionClosed)
	}
}

// failed is melody's report of a read or write error, or of a write it
// dropped: the connection is ending (a frame it dropped would break the
// stream, so that case is a cut-off too), so nothing more is queued.
func (s *session[T]) failed(err error) {
	s.mu.Lock()
	if s.dead {
		s.mu.Unlock()
		return
	}
	if errors.Is(err, melody.ErrMessageBufferFull) {
		s.cutUnlock() // cannot happen while at most one frame is in flight
		return
	}
	s.dieLocked()
	s.mu.Unlock()
}

// sent is melody's report that the in-flight frame was written: whatever
// queued meanwhile goes next, as one frame.
func (s *session[T]) sent(frame []byte) {
	s.mu.Lock()
	events, shared := s.inflightEvents, s.inflightShared
	s.inflight, s.inflightEvents, s.inflightShared = false, 0, false
	st := &s.br.stats
	st.framesOut.Add(1)
	st.eventsOut.Add(uint64(events))
	if !shared {
		putBuf(frame) // a shared frame may still be written to other clients
	}
	s.kickUnlock()
}

// claimLocked takes the next frame's worth off the queue: one control frame,
// or a run of events (live and replayed) up to the batch limits. Entries of
// subscriptions closed meanwhile are skipped, so nothing follows an
// unsubscribed answer.
func (s *session[T]) claimLocked() (frame []byte, events int) {
	s.claims = s.claims[:0]
	size := 0
	for s.head < len(s.queue) && events < maxBatchEvents && size < maxBatchBytes {
		it := &s.queue[s.head]
		switch {
		case it.frame != nil:
			if events > 0 {
				return nil, events
			}
			frame = it.frame
			s.pop()
			return frame, 0
		case it.rep != nil:
			n := s.claimReplay(it.rep, maxBatchEvents-events)
			events += n
			size += n * replayEstimate
		default:
			if c, ok := liveClaim(it); ok {
				s.claims = append(s.claims, c)
				events++
				size += len(it.ev.tail) + 16
			}
			s.pop()
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

// claimReplay claims up to limit events of a replay; the cursor leaves the
// queue once exhausted or when its subscription was closed.
func (s *session[T]) claimReplay(cur *replayCursor[T], limit int) int {
	if cur.sub.closed {
		s.pop()
		return 0
	}
	k := min(len(cur.events)-cur.next, limit)
	evs := cur.events[cur.next : cur.next+k]
	br := s.br
	s.claims = append(s.claims, claim{
		sub:  cur.sub.id,
		nrep: k,
		rep:  func(b []byte, i int) []byte { return br.appendTail(b, evs[i]) },
	})
	cur.next += k
	if cur.next == len(cur.events) {
		s.pop()
	}
	return k
}

// buildEvents encodes the claimed entries as one events frame.
func (s *session[T]) buildEvents() []byte {
	b := append(getBuf(), eventsOpen...)
	n := 0
	for i := range s.claims {
		c := &s.claims[i]
		if c.ev != nil {
			if n > 0 {
				b = append(b, ',')
			}
			b = appendSubsHead(b, c.sub, c.more)
			b = append(b, c.ev.tail...)
			n++
			continue
		}
		for j := range c.nrep {
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
