package bridge

import (
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
// queue (its outbox), which the session's own writer drains onto the socket
// (see writer.go): whatever queued up while it wrote leaves as one batched
// frame. The queue is bounded by the backlog limit: past it the session is
// cut off with 4000.
//
// Goroutines: melody's read loop (ServeHTTP's goroutine) runs every client
// request and alone touches the fields marked "read loop"; fanout goroutines
// call deliver; the writer, while it runs, writes (and calls failed when a
// write fails); Close and the bus watch call end and drop; the expiry
// goroutine calls end; Kick and Reauthorize, on their caller's goroutine,
// call kick and revoke (which hands attachments it empties to the read
// loop: see reap). The rest is guarded by mu.
//
// Locks. The bridge has seven: Bridge.mu (the registry of sessions),
// Bridge.fanMu (the fanouts by pattern), fanout.mu (one fanout's
// attachments, and whether it was lost), session.mu, wire.mu (one write on
// the socket), dedup.mu and expiries.mu (the expiry heap).
// Each is taken and released inside one function, and no function holds
// one while taking another: there is no order between them because none
// nests in another. Bridge.fanMu alone is held while calling into the bus
// (Subscribe and Subscription.Close of a fanout), whose own locks nest
// inside it. No lock but wire.mu is held while writing to the socket, and
// none while calling melody, user code (WithAuthenticate, WithAuthorize,
// WithPublishHook, WithExpiry, the WithLogger handler, the match functions
// of Kick and Reauthorize, the Codec) or anything that waits on the bus or
// a client. So a function that must start the writer or report a cut-off
// once mu is released decides under mu (itself, or in a part named
// ...Locked that returns a step) and acts on that step after unlocking.
type session[T any] struct {
	br    *Bridge[T]
	ms    *melody.Session // set by connected, before any other goroutine sees the session
	wire  *wire           // the hijacked socket: set by the handshake, before connected
	id    string
	ident any
	exp   expiryEntry // its place in the bridge's expiry heap (see expiry.go)

	// read loop
	atts     map[string]*attachment[T] // by pattern
	pubLim   *rate.Limiter             // made on first publish
	floodLim *rate.Limiter             // floodFactor times pubLim: beyond it a publish spends the bad-frame budget
	badLim   *rate.Limiter             // made on first bad frame
	log      *connLog                  // WithLogger only: see logging.go

	// the writer's: claimed under mu by claimLocked, then encoded outside
	// it by buildEvents, while writing keeps other writers from starting
	claims     []claim
	claimSlack int // drains in a row that used under a quarter of claims

	writer sync.WaitGroup // the writer goroutine, while it runs (Add under mu, while not dead)

	mu          sync.Mutex
	dead        bool                     // mu: closing or closed; nothing more is queued
	gone        farewell                 // mu: how the connection ended, for the log (logging.go)
	subs        map[string]*clientSub[T] // mu: by client sub id
	out         outbox[T]                // mu: the queue and its backlog
	writing     bool                     // mu: the writer runs
	hello       []byte                   // mu: the hello, until the writer takes it: always the first frame
	closing     ending                   // mu: the close frame the writer sends next (then none)
	closeReason string                   // mu, until dead (then fixed): the reason of that close frame

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

// newFrame returns a pooled buffer to build a frame's payload in, behind
// the headroom its header is written into when it leaves (frameHead): every
// frame the writer sends is built with it, so none is copied to be sent.
func newFrame() []byte { return append(getBuf(), zeroHead[:]...) }

func putBuf(b []byte) {
	if cap(b) <= 4*maxBatchBytes {
		framePool.Put(&b)
	}
}

// step is what a session does once mu is released, as decided under it:
// start the writer, or count and log the cut-off of the one call that
// ended the session (the writer, started too, sends its close frame). The
// zero step does nothing.
type step struct {
	start bool
	end   ending
}

// none reports whether st does nothing (the common case, checked before
// calling act on the delivery path).
func (st *step) none() bool { return !st.start && st.end == noEnd }

// act carries out st. Called without mu.
func (s *session[T]) act(st step) {
	if st.end != noEnd {
		s.ended(st.end)
	}
	if st.start {
		go s.flush()
	}
}

// ended counts and logs the cut-offs among the ways a session ends.
func (s *session[T]) ended(e ending) {
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
}

// dieLocked marks the session dead and releases everything it queued. Only
// the call that kills it gets a step with e (noEnd: none, the connection is
// ending anyway), and has the writer send e's close frame, so a session
// sends at most one, after the frame being written if any, and nothing
// after it.
func (s *session[T]) dieLocked(e ending) step { return s.dieWithLocked(e, e.reason()) }

// dieWithLocked is dieLocked with the close frame's reason (Kick's own).
func (s *session[T]) dieWithLocked(e ending, reason string) step {
	if s.dead {
		return step{}
	}
	s.dead = true
	s.out.discard(s.subs)
	s.gone.server(e)
	s.closing, s.closeReason = e, reason
	st := s.startLocked()
	st.end = e
	return st
}

// nextLocked cuts the session off if its backlog is over the limit, or
// else starts the writer if it is not running.
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

// drop closes the socket under melody: its read loop ends at once, and a
// write that blocks fails.
func (s *session[T]) drop() {
	if s.wire != nil {
		_ = s.wire.closeNow()
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
	s.greet(appendHello(newFrame(), s.id, br.bus.Epoch(), br.bus.Seq()))
	e, drop := br.join(s)
	s.wake() // the hello leaves once the session is live: Kick, Close and the rest find it
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
	_ = s.wire.closeNow() // the read loop is over: so is the connection (see wire.Close)
	s.mu.Lock()
	st := s.dieLocked(noEnd) // starts no writer but to send a hello not yet taken
	n := len(s.subs)
	for _, cs := range s.subs {
		cs.closed = true
	}
	s.subs = nil
	s.mu.Unlock()
	s.act(st)
	s.writer.Wait() // the socket is closed: a write in progress fails at once
	br := s.br
	br.leave(s)
	s.left()
	for _, a := range s.atts {
		s.detach(a)
	}
	br.stats.subscriptions.Add(-int64(n))
	br.stats.clients.Add(-1)
}

// greet sets hello, which the writer sends first, before anything queued
// and before a close frame, however soon the session ends. It is written
// once the writer starts: by wake, or by the first frame queued.
func (s *session[T]) greet(hello []byte) {
	s.mu.Lock()
	s.hello = hello
	s.mu.Unlock()
}

// helloTaken reports whether the writer has started, or taken the hello.
func (s *session[T]) helloTaken() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writing || s.hello == nil
}

// wake starts the writer if there is something to write.
func (s *session[T]) wake() {
	s.mu.Lock()
	st := s.startLocked()
	s.mu.Unlock()
	s.act(st)
}

// send queues a control frame and starts the writer if it is not running.
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
// An idle session's writer is started; events that find it running leave
// together in its next frame.
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
		if st.none() { // else the cut-off
			st = s.startLocked() // nothing when the writer runs: it takes them
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

// failed is melody's report of a read error (or of a failed ping), or the
// writer's of a failed write: the connection is ending, so nothing more is
// queued.
func (s *session[T]) failed(err error) {
	s.mu.Lock()
	st := s.dieLocked(noEnd)
	s.gone.failed(err)
	s.mu.Unlock()
	s.act(st)
}
