package bridge

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/google/uuid"
	"github.com/olahol/melody"
	bus "github.com/whalesong/bus"
)

// sessionKey is the melody session key holding our *session.
const sessionKey = "whalesong.session"

// melodyBuffer is melody's per-session output channel. The bridge keeps at
// most one frame of its own in it, plus close frames, so it never fills and
// melody never drops a message.
const melodyBuffer = 8

// Bridge serves the events of a bus.Bus to WebSocket clients and lets them
// publish, over the protocol of PROTOCOL.md. Mount it as an http.Handler;
// end it with Close. Its methods are safe for concurrent use.
type Bridge[T any] struct {
	bus   *bus.Bus[T]
	cfg   config
	m     *melody.Melody
	dedup *dedup
	stats counters

	ctx    context.Context // ends with Close: bounds waiting publishes
	cancel context.CancelFunc

	mu      sync.Mutex
	cond    *sync.Cond // signalled when pending reaches 0
	closed  bool
	pending int            // requests in ServeHTTP not yet registered with melody
	conns   sync.WaitGroup // ServeHTTP calls that passed the closed check

	fanMu sync.Mutex
	fans  map[string]*fanout[T]
	fanWG sync.WaitGroup

	busDown  atomic.Bool
	downOnce sync.Once
	watchWG  sync.WaitGroup

	closeOnce sync.Once
}

// New makes a Bridge serving b. It does not own b: Close leaves it open. If
// b is closed, every client is closed with going-away (1001) and new
// requests are answered 503.
func New[T any](b *bus.Bus[T], opts ...Option) *Bridge[T] {
	br := &Bridge[T]{
		bus:  b,
		cfg:  newConfig(opts),
		fans: make(map[string]*fanout[T]),
	}
	br.cond = sync.NewCond(&br.mu)
	br.ctx, br.cancel = context.WithCancel(context.Background())
	br.dedup = newDedup(br.cfg.dedupSize, br.cfg.dedupAge)
	br.m = br.newMelody()
	br.watchBus()
	return br
}

func (br *Bridge[T]) newMelody() *melody.Melody {
	m := melody.New()
	m.Config.MaxMessageSize = br.cfg.maxMessageSize * hardCapFactor
	m.Config.MessageBufferSize = melodyBuffer
	m.Config.WriteWait = br.cfg.writeTimeout
	m.Upgrader.CheckOrigin = func(*http.Request) bool { return true } // ServeHTTP checked it
	m.Upgrader.WriteBufferPool = &sync.Pool{}                         // idle connections hold no write buffer
	m.HandleConnect(func(ms *melody.Session) { sessionOf[T](ms).connected(ms) })
	m.HandleDisconnect(func(ms *melody.Session) { sessionOf[T](ms).disconnected() })
	m.HandleMessage(func(ms *melody.Session, msg []byte) { sessionOf[T](ms).handle(msg) })
	m.HandleMessageBinary(func(ms *melody.Session, msg []byte) { sessionOf[T](ms).handleBinary(msg) })
	m.HandleSentMessage(func(ms *melody.Session, msg []byte) { sessionOf[T](ms).sent(msg) })
	m.HandleError(func(ms *melody.Session, err error) { sessionOf[T](ms).failed(err) })
	return m
}

func sessionOf[T any](ms *melody.Session) *session[T] {
	return ms.Keys[sessionKey].(*session[T])
}

// watchBus closes every client with going-away when the bus closes; its
// goroutine ends with the bus or with Close.
func (br *Bridge[T]) watchBus() {
	select {
	case <-br.bus.Done():
		br.busDown.Store(true)
		return
	default:
	}
	br.watchWG.Add(1)
	go func() {
		defer br.watchWG.Done()
		select {
		case <-br.bus.Done():
			br.busClosed()
		case <-br.ctx.Done():
		}
	}()
}

// busClosed closes every client with going-away, once.
func (br *Bridge[T]) busClosed() {
	br.downOnce.Do(func() {
		br.busDown.Store(true)
		br.closeSessions(closeGoingAway, "bus closed")
	})
}

func (br *Bridge[T]) closeSessions(code int, reason string) {
	sessions, err := br.m.Sessions()
	if err != nil {
		return
	}
	msg := melody.FormatCloseMessage(code, reason)
	for _, ms := range sessions {
		_ = ms.CloseWithMsg(msg)
	}
}

// ServeHTTP is the WebSocket endpoint. Before upgrading it answers 503 once
// the bridge or its bus is closed, 403 to a disallowed Origin and 401 when
// WithAuthenticate fails; then the connection lives until either side
// closes it.
func (br *Bridge[T]) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !br.enter() {
		http.Error(w, "whalesong bridge closed", http.StatusServiceUnavailable)
		return
	}
	defer br.conns.Done()
	s := &session[T]{br: br, id: uuid.NewString()}
	defer func() {
		if !s.registered {
			br.registered()
		}
	}()
	if !br.cfg.originAllowed(r) {
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return
	}
	if br.cfg.authenticate != nil {
		ident, err := br.cfg.authenticate(r)
		if err != nil {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		s.ident = ident
	}
	_ = br.m.HandleRequestWithKeys(w, r, map[string]any{sessionKey: s}) // the upgrader answers a bad handshake
}

// enter admits a request unless closed, counting it as pending until melody
// has registered it: Close waits for that before closing sessions, so that
// none escapes it.
func (br *Bridge[T]) enter() bool {
	br.mu.Lock()
	defer br.mu.Unlock()
	if br.closed || br.busDown.Load() {
		return false
	}
	br.pending++
	br.conns.Add(1)
	return true
}

// registered ends a request's pending state.
func (br *Bridge[T]) registered() {
	br.mu.Lock()
	defer br.mu.Unlock()
	if br.pending--; br.pending == 0 {
		br.cond.Broadcast()
	}
}

// connected runs when melody has registered the connection: hello first.
func (s *session[T]) connected(ms *melody.Session) {
	s.ms = ms
	s.registered = true
	br := s.br
	br.registered()
	br.stats.clients.Add(1)
	s.send(appendHello(getBuf(), s.id, br.bus.Epoch(), br.bus.Seq()))
	if br.busDown.Load() {
		s.closeWith(closeGoingAway, "bus closed")
	}
}

// disconnected runs once the connection is gone: the session leaves every
// fanout and its queue is released.
func (s *session[T]) disconnected() {
	s.mu.Lock()
	s.dieLocked()
	n := len(s.subs)
	for _, cs := range s.subs {
		cs.closed = true
	}
	s.subs = nil
	s.mu.Unlock()
	for _, a := range s.atts {
		s.detach(a)
	}
	br := s.br
	br.stats.subscriptions.Add(-int64(n))
	br.stats.clients.Add(-1)
}

// Close sends going-away (1001) to every client and returns once every
// goroutine of the bridge (and of melody under it) is gone. A client whose
// socket does not take the close frame is dropped after the write timeout.
// It does not close the bus. After Close, ServeHTTP answers 503; requests
// still in WithAuthenticate are waited for. It is idempotent and works with
// http.Server.Shutdown, which leaves upgraded connections alone: call both.
func (br *Bridge[T]) Close() error {
	br.closeOnce.Do(br.shutdown)
	return nil
}

func (br *Bridge[T]) shutdown() {
	br.mu.Lock()
	br.closed = true
	for br.pending > 0 {
		br.cond.Wait()
	}
	br.mu.Unlock()
	br.cancel()
	br.closeSessions(closeGoingAway, "going away")
	br.conns.Wait()
	// No session is left in melody, so its hub can stop without racing a
	// session that unregisters (melody would block that one forever).
	_ = br.m.Close()
	br.watchWG.Wait() // br.cancel ended it
	br.fanWG.Wait()
}

// Clients returns the number of open client connections.
func (br *Bridge[T]) Clients() int { return int(br.stats.clients.Load()) }
