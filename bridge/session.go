package bridge

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"

	"github.com/olahol/melody"
	"golang.org/x/time/rate"
)

// Close codes of PROTOCOL.md.
const (
	closeGoingAway    = 1001
	closeTooBig       = 1009
	closeTryLater     = 1013
	closeResumeNeeded = 4000
	closeAbuse        = 4001
	closeExpired      = 4002
	closeKicked       = 4003
)

// ending is why the server ends a connection: the close code and reason it
// sends (PROTOCOL.md, "Close codes").
type ending uint8

const (
	noEnd           ending = iota // no close frame: the connection is ending by itself
	endGoingAway                  // Bridge.Close
	endBusClosed                  // the bus closed
	endResumeNeeded               // the backlog passed WithMaxBacklog
	endAbuse                      // the bad-frame budget is spent
	endExpired                    // the identity's WithExpiry time came
	endKicked                     // Bridge.Kick (which sends its own reason)
	endTryLater                   // a bus on a shared log could not reach the client's position in time
	endTooBig                     // a frame above the hard cap: gorilla sent 1009 itself (never passed to dieLocked)
)

func (e ending) code() int {
	switch e {
	case endGoingAway, endBusClosed:
		return closeGoingAway
	case endResumeNeeded:
		return closeResumeNeeded
	case endAbuse:
		return closeAbuse
	case endExpired:
		return closeExpired
	case endKicked:
		return closeKicked
	case endTooBig:
		return closeTooBig
	case endTryLater:
		return closeTryLater
	}
	return 0
}

func (e ending) reason() string {
	return [...]string{"", "going away", "bus closed", "resume needed", "too many bad frames",
		"credentials expired", "kicked", "behind the shared log, try again later", "message too big"}[e]
}

// session is one client connection. Its output goes through one ordered
// queue (its outbox); at most one frame of it is inside melody at any time
// (inflight), so melody's own buffer never fills and never drops silently,
// and whatever queues up meanwhile leaves as one batched frame. The queue is
// bounded by the backlog limit: past it the session is cut off with 4000.
//
// Goroutines: melody's read loop (ServeHTTP's goroutine) runs every client
// request and alone touches the fields marked "read loop"; fanout goroutines
// call deliver; melody's write loop calls sent and failed; Close and the bus
// watch call end and drop; the expiry goroutine calls end; Kick and
// Reauthorize, on their caller's goroutine, call kick and revoke (which
// hands attachments it empties to the read loop: see reap). The rest is
// guarded by mu.
//
// Locks. The bridge has six: Bridge.mu (the registry of sessions),
// Bridge.fanMu (the fanouts by pattern), fanout.mu (one fanout's
// attachments, and whether it was lost), session.mu, dedup.mu and
// expiries.mu (the expiry heap).
// Each is taken and released inside one function, and no function holds
// one while taking another: there is no order between them because none
// nests in another. Bridge.fanMu alone is held while calling into the bus
// (Subscribe and Subscription.Close of a fanout), whose own locks nest
// inside it. No lock is held while calling melody (its Write and
// CloseWithMsg may call back into failed at once), user code
// (WithAuthenticate, WithAuthorize, WithPublishHook, WithExpiry, the
// WithLogger handler, the match functions of Kick and Reauthorize, the
// Codec) or anything that waits on the bus or a client. So a function that
// must write or close once mu is released decides under mu (itself, or in
// a part named ...Locked that returns a step) and acts on that step after
// unlocking.
type session[T any] struct {
	br    *Bridge[T]
	ms    *melody.Session // set by connected, before any other goroutine sees the session
	raw   net.Conn        // the hijacked socket: Close drops it past the write timeout
	id    string
	ident any
	exp   expiryEntry // its place in the bridge's expiry heap (see expiry.go)

	// read loop
	atts     map[string]*attachment[T] // by pattern
	pubLim   *rate.Limiter             // made on first publish
	floodLim *rate.Limiter             // floodFactor times pubLim: beyond it a publish spends the bad-frame budget
	badLim   *rate.Limiter             // made on first bad frame
	log      *connLog                  // WithLogger only: see logging.go

	// the one flush in flight: written under mu by startLocked, then read
	// and reset outside it by buildEvents while inflight holds the others off
	claims     []claim
	claimSlack int // drains in a row that used under a quarter of claims

	mu             sync.Mutex
	dead           bool                     // mu: closing or closed; nothing more is queued
	gone           farewell                 // mu: how the connection ended, for the log (logging.go)
	subs           map[string]*clientSub[T] // mu: by client sub id
	out            outbox[T]                // mu: the queue and its backlog
	inflight       bool                     // mu: a frame of ours is in melody
	inflightEvents int                      // mu: events in that frame
	inflightShared bool                     // mu: that frame is shared with other sessions: not pooled

	// chores is work that Reauthorize hands to the read loop (choreReap,
	// choreRecheck: see reauthorize.go), done at its next frame.
	chores atomic.Uint32
}

// clientSub is one client subscription. All fields but id and att are
// guarded by the session's mu; held belongs to the session's outbox.
type clientSub[T any] struct {
	id       string
	att      *attachment[T]
	closed   bool
	pending  bool           // replay not yet queued: live events are held
	held     []*sharedEvent // live events that arrived while pending (outbox.hold, release)
	lastSent uint64         // newest seq queued for it: never queue one <= it
	conf     *conflation    // made with conflate: its queued live events (the outbox's)
}

var framePool = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

func getBuf() []byte { return (*framePool.Get().(*[]byte))[:0] }

func putBuf(b []byte) {
	if cap(b) <= 4*maxBatchBytes {
		framePool.Put(&b)
	}
}

// step is what a session does once mu is released, as decided under it:
// write a frame (building the events frame of the claims first, if build),
// or send the close frame of the one call that ended the session. The zero
// step does nothing.
type step struct {
	frame []byte
	build bool
	end   ending
}

// none reports whether st does nothing (the common case, checked before
// calling act on the delivery path).
func (st *step) none() bool { return st.end == noEnd && !st.build && st.frame == nil }

// act carries out st. Called without mu.
func (s *session[T]) act(st step) {
	switch {
	case st.end != noEnd:
		s.closeFrame(st.end)
	case st.build || st.frame != nil:
		s.write(st)
	}
}

// closeFrame sends e's close frame, counting cut-offs.
func (s *session[T]) closeFrame(e ending) {
	switch e {
	case endResumeNeeded:
		s.br.stats.slowDisconnects.Add(1)
		s.logCutOff(e)
	case endAbuse:
		s.br.stats.abuseDisconnects.Add(1)
		s.logCutOff(e)
	case endExpired:
		s.br.stats.expired.Add(1)
	}
	_ = s.ms.CloseWithMsg(melody.FormatCloseMessage(e.code(), e.reason()))
}

// write hands the step's frame to melody, building it first if asked.
func (s *session[T]) write(st step) {
	frame := st.frame
	if st.build {
		frame = s.buildEvents()
	}
	if s.ms.Write(frame) != nil { // the connection is closing
		s.failed(melody.ErrSessionClosed)
	}
}

// dieLocked marks the session dead and releases everything it queued. Only
// the call that kills it gets a step that sends e's close frame (noEnd:
// none, the connection is ending anyway), so a session sends at most one:
// melody's buffer of 8 must never drop the one that ends the stream.
func (s *session[T]) dieLocked(e ending) step {
	if s.dead {
		return step{}
	}
	s.dead = true
	s.out.discard(s.subs)
	s.gone.server(e)
	return step{end: e}
}

// nextLocked cuts the session off if its backlog is over the limit, or
// else starts a write if none is in flight.
func (s *session[T]) nextLocked() step {
	if s.out.over(s.br.cfg.maxBacklog) {
		return s.cutLocked()
	}
	return s.startLocked()
}

// cutLocked cuts off a client that fell behind: its queue is released now
// and it is closed with 4000 "resume needed".
func (s *session[T]) cutLocked() step {
	return s.dieLocked(endResumeNeeded)
}

// end closes the connection as e says unless it is already ending, and
// reports whether this call sent the close frame.
func (s *session[T]) end(e ending) bool {
	s.mu.Lock()
	st := s.dieLocked(e)
	s.mu.Unlock()
	s.act(st)
	return st.end != noEnd
}

// drop closes the socket under melody: both of its loops end at once.
func (s *session[T]) drop() {
	if s.raw != nil {
		_ = s.raw.Close()
	}
}

// connected runs when melody has registered the connection: hello first,
// then the session joins the bridge's registry, or closes at once if the
// bridge or the bus is closing.
func (s *session[T]) connected(ms *melody.Session) {
	s.ms = ms
	br := s.br
	br.stats.clients.Add(1)
	if e := s.awaitEpoch(); e != noEnd { // a shared log not heard from yet
		s.end(e)
		return
	}
	s.send(appendHello(getBuf(), s.id, br.bus.Epoch(), br.bus.Seq()))
	e, drop := br.join(s)
	if e == noEnd {
		s.joined()
		return
	}
	s.end(e)
	if drop {
		s.drop()
	}
}

// disconnected runs once the connection is gone: the session leaves the
// registry and every fanout, and its queue is released.
func (s *session[T]) disconnected() {
	s.mu.Lock()
	s.dieLocked(noEnd)
	n := len(s.subs)
	for _, cs := range s.subs {
		cs.closed = true
	}
	s.subs = nil
	s.mu.Unlock()
	br := s.br
	br.leave(s)
	s.left()
	for _, a := range s.atts {
		s.detach(a)
	}
	br.stats.subscriptions.Add(-int64(n))
	br.stats.clients.Add(-1)
}

// send queues a control frame and starts a write if none is in flight.
func (s *session[T]) send(frame []byte) {
	s.mu.Lock()
	st := s.sendLocked(frame)
	s.mu.Unlock()
	s.act(st)
}

func (s *session[T]) sendLocked(frame []byte) step {
	if s.dead {
		return step{}
	}
	s.out.push(item[T]{frame: frame})
	return s.nextLocked()
}

// deliver is the fanout's hand-off of shared events, in seq order, to the
// subscriptions of attachment a: one event, or the several that were
// waiting in the fanout's bus subscription, under one lock. It never waits
// for the client: it queues (or conflates, for a subscription made with
// conflate), or holds an event for a subscription whose replay is being
// prepared, or cuts the session off when its backlog is over the limit.
// An idle session gets a lone event written at once; several events, or
// events that find a write in flight, leave together in the next frame.
func (s *session[T]) deliver(a *attachment[T], ses ...*sharedEvent) {
	var st step
	var superseded uint64
	s.mu.Lock()
	if !s.dead { // decided here rather than in a deliverLocked (the recipients aside): this is the hot path
		for _, se := range ses {
			var r recipients[T]
			s.recipientsLocked(a, se, &r)
			first, conf, n := r.first, r.conf, r.n
			superseded += r.superseded
			switch {
			case s.out.over(s.br.cfg.maxBacklog):
				st = s.cutLocked()
			case n == 1 && len(ses) == 1 && !s.inflight && s.out.empty():
				// Idle: write at once, sharing the frame with the other idle
				// clients whose subscription has the same id.
				if first == nil {
					first = conf
				}
				frame, shared := se.frameFor(first.id)
				s.inflight, s.inflightEvents, s.inflightShared = true, 1, shared
				st = step{frame: frame}
			case n > 0:
				if conf != nil {
					superseded += s.out.conflate(conf, se)
				}
				if first != nil {
					s.out.push(item[T]{ev: se, sub: first, more: r.more})
				}
			}
			if s.dead {
				break
			}
		}
		if st.none() { // else the lone event's write, or the cut-off
			st = s.startLocked() // nothing when a write is in flight: sent takes it
		}
	}
	s.mu.Unlock()
	if superseded > 0 {
		s.br.stats.superseded.Add(superseded)
	}
	if !st.none() {
		s.act(st)
	}
}

// recipients are the subscriptions of an attachment that take one event.
type recipients[T any] struct {
	first, conf *clientSub[T]   // the first plain and the first conflating one
	more        []*clientSub[T] // the other plain ones
	n           int             // all of them
	superseded  uint64          // events the other conflating ones dropped for it
}

// recipientsLocked sorts the subscriptions of a for se: it holds se for
// those whose replay is pending, skips those that had it, conflates it
// into every conflating one but the first, and fills r with the others
// (through a pointer: returning r by value cost 15% in
// BenchmarkSessionQueue).
func (s *session[T]) recipientsLocked(a *attachment[T], se *sharedEvent, r *recipients[T]) {
	for _, cs := range a.subs {
		switch {
		case cs.pending:
			s.out.hold(cs, se)
			continue
		case se.seq <= cs.lastSent:
			continue
		}
		cs.lastSent = se.seq
		r.n++
		switch {
		case cs.conf == nil && r.first == nil:
			r.first = cs
		case cs.conf == nil:
			r.more = append(r.more, cs)
		case r.conf == nil:
			r.conf = cs
		default:
			r.superseded += s.out.conflate(cs, se)
		}
	}
}

// failed is melody's report of a read or write error, or of a write it
// dropped: the connection is ending (a frame it dropped would break the
// stream, so that case is a cut-off too), so nothing more is queued.
func (s *session[T]) failed(err error) {
	s.mu.Lock()
	var st step
	if errors.Is(err, melody.ErrMessageBufferFull) {
		st = s.cutLocked() // cannot happen while at most one frame is in flight
	} else {
		st = s.dieLocked(noEnd)
	}
	s.gone.failed(err)
	s.mu.Unlock()
	s.act(st)
}

// sent is melody's report that the in-flight frame was written: whatever
// queued meanwhile goes next, as one frame.
func (s *session[T]) sent(frame []byte) {
	s.mu.Lock()
	events, shared := s.inflightEvents, s.inflightShared
	s.inflight, s.inflightEvents, s.inflightShared = false, 0, false
	if !shared {
		putBuf(frame) // a shared frame may still be written to other clients
	}
	st := s.startLocked()
	s.mu.Unlock()
	stats := &s.br.stats
	stats.framesOut.Add(1)
	stats.eventsOut.Add(uint64(events))
	s.act(st)
}
