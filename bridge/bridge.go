package bridge

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/olahol/melody"
	bus "github.com/whalesong/bus"
	"github.com/whalesong/bus/internal/dedup"
	"golang.org/x/time/rate"
)

// sessionKey is the melody session key holding our *session.
const sessionKey = "whalesong.session"

// melodyBuffer is melody's per-session output channel, which carries one
// message at most: the session's close frame. The bridge writes every other
// frame itself (writer.go), and melody's write loop otherwise only pings.
const melodyBuffer = 1

// Bridge serves the events of a bus.Bus to WebSocket clients and lets them
// publish, over the protocol of PROTOCOL.md. Mount it as an http.Handler;
// end it with Close. Its methods are safe for concurrent use.
//
// Its locks (mu, fanMu) and those of its fanouts, sessions and dedup window
// follow the rule written once at the session type.
type Bridge[T any] struct {
	bus   *bus.Bus[T]
	cfg   config
	m     *melody.Melody
	dedup *dedup.Window
	stats counters
	hook  func(identity any, topic string, data T) (T, error) // WithPublishHook, checked by New

	expiries *expiries[T]   // WithExpiry only
	expWG    sync.WaitGroup // its goroutine
	refusals refusalLog     // WithLogger: the budget of refused-request lines

	ctx    context.Context // ends with Close: bounds waiting publishes
	cancel context.CancelFunc

	// mu guards the registry of live sessions and the states that stop it
	// from growing. Close, the bus watch, Kick and Reauthorize act on the
	// sessions it holds; a session joins it in its connect handler or,
	// finding it closed, closes itself. Both sides decide under mu, so no
	// session escapes a closing in any interleaving.
	mu       sync.Mutex
	closed   bool                     // Close has begun
	busDown  bool                     // the bus closed
	dropping bool                     // Close's write timeout passed: sockets are dropped
	sessions map[*session[T]]struct{} // joined and not yet disconnected
	conns    sync.WaitGroup           // ServeHTTP calls that passed the closed check

	fanMu sync.Mutex
	fans  map[string]*fanout[T] // fanMu
	fanWG sync.WaitGroup        // fanout goroutines

	watchWG sync.WaitGroup // the bus watch

	onClosing func() // tests only: runs once Close has closed the registry

	closeOnce sync.Once
}

// New makes a Bridge serving b. It does not own b: Close leaves it open. If
// b is closed, every client is closed with going-away (1001) and new
// requests are answered 503. It panics if a WithPublishHook's data type is
// not T.
func New[T any](b *bus.Bus[T], opts ...Option) *Bridge[T] {
	br := &Bridge[T]{
		bus:      b,
		cfg:      newConfig(opts),
		fans:     make(map[string]*fanout[T]),
		sessions: make(map[*session[T]]struct{}),
	}
	br.hook = publishHookOf[T](br.cfg.publishHook)
	br.refusals.lim = rate.NewLimiter(logRate, logBurst)
	br.ctx, br.cancel = context.WithCancel(context.Background())
	br.dedup = dedup.New(br.cfg.dedupSize, br.cfg.dedupAge, bus.ErrIDReused)
	br.m = br.newMelody()
	br.watchBus()
	if br.cfg.expiry != nil {
		br.expiries = newExpiries[T]()
		br.expWG.Go(func() { br.expiries.run(br.ctx) })
	}
	return br
}

func (br *Bridge[T]) newMelody() *melody.Melody {
	m := melody.New()
	m.Config.MaxMessageSize = br.cfg.maxMessageSize * hardCapFactor
	m.Config.MessageBufferSize = melodyBuffer
	m.Config.WriteWait = br.cfg.writeTimeout
	m.Upgrader.CheckOrigin = func(*http.Request) bool { return true } // ServeHTTP checked it
	m.Upgrader.WriteBufferPool = &sync.Pool{}                         // idle connections hold no write buffer
	m.Upgrader.ReadBufferSize = 0                                     // reads go through the HTTP server's reader, which the connection holds anyway
	m.HandleConnect(func(ms *melody.Session) { sessionOf[T](ms).connected(ms) })
	m.HandleDisconnect(func(ms *melody.Session) { sessionOf[T](ms).disconnected() })
	m.HandleMessage(func(ms *melody.Session, msg []byte) { onSideStack(func() { sessionOf[T](ms).handle(msg) }) })
	m.HandleMessageBinary(func(ms *melody.Session, msg []byte) { onSideStack(func() { sessionOf[T](ms).handleBinary(msg) }) })
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
		br.busDown = true
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
	br.mu.Lock()
	first := !br.busDown
	br.busDown = true
	live := br.liveLocked()
	br.mu.Unlock()
	if !first {
		return
	}
	for _, s := range live {
		s.end(endBusClosed)
	}
}

// liveLocked returns the registered sessions. Called with mu held.
func (br *Bridge[T]) liveLocked() []*session[T] {
	live := make([]*session[T], 0, len(br.sessions))
	for s := range br.sessions {
		live = append(live, s)
	}
	return live
}

// hijacker is the ResponseWriter melody upgrades: it hands gorilla the
// socket it takes over wrapped in the session's wire, which the session's
// writer shares with gorilla (see wire.go), and through which Close can
// drop a client that does not take its close frame in time.
type hijacker[T any] struct {
	http.ResponseWriter
	s *session[T]
}

func (h hijacker[T]) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	var (
		c   net.Conn
		rw  *bufio.ReadWriter
		err error
	)
	// Directly when it can: one frame less on the handshake's stack, which
	// must stay within the 4 KB the read loop keeps (see onSideStack).
	if hj, ok := h.ResponseWriter.(http.Hijacker); ok {
		c, rw, err = hj.Hijack()
	} else { // a wrapper that only Unwraps
		c, rw, err = http.NewResponseController(h.ResponseWriter).Hijack()
	}
	if err != nil {
		return c, rw, err
	}
	h.s.wire = &wire{Conn: c}
	// Gorilla writes its 101 response through the writer's buffer. The
	// server's is 4 KB that the connection's goroutine keeps for as long as
	// the session lasts: hand gorilla a small one instead, dropped once the
	// response is out, so that the server's is never touched (an idle
	// connection's pages stay unresident).
	rw = bufio.NewReadWriter(rw.Reader, bufio.NewWriterSize(h.s.wire, handshakeBuffer))
	return h.s.wire, rw, nil
}

// handshakeBuffer holds the 101 response without the extra headers a
// middleware may have set (gorilla grows it for those).
const handshakeBuffer = 256

// Unwrap lets http.ResponseController reach the server's writer.
func (h hijacker[T]) Unwrap() http.ResponseWriter { return h.ResponseWriter }

// enter admits a request unless the bridge or its bus is closed; Close
// waits for every request admitted.
func (br *Bridge[T]) enter() bool {
	br.mu.Lock()
	defer br.mu.Unlock()
	if br.closed || br.busDown {
		return false
	}
	br.conns.Add(1)
	return true
}

// join registers s as live and returns noEnd, unless the bridge is closing
// or its bus has closed: then it returns how s must end itself, and whether
// Close has stopped waiting for close frames (drop the socket too).
func (br *Bridge[T]) join(s *session[T]) (e ending, drop bool) {
	if h := joinHook.Load(); h != nil {
		(*h)(s.helloTaken())
	}
	br.mu.Lock()
	defer br.mu.Unlock()
	switch {
	case br.closed:
		return endGoingAway, br.dropping
	case br.busDown:
		return endBusClosed, false
	}
	br.sessions[s] = struct{}{}
	return noEnd, false
}

// joinHook, set by tests only, is told as a session joins the registry
// whether its hello was already taken for writing: it must not be, or a
// client could have its hello before Kick and Close can find it.
var joinHook atomic.Pointer[func(helloTaken bool)]

// leave unregisters s.
func (br *Bridge[T]) leave(s *session[T]) {
	br.mu.Lock()
	defer br.mu.Unlock()
	delete(br.sessions, s)
}

// Close sends going-away (1001) to every client and returns once every
// goroutine of the bridge is gone and melody's hub has stopped (its
// goroutine returns right after: melody offers nothing to wait on for
// that last step). It does not
// close the bus. After Close, ServeHTTP answers 503; a request still in
// WithAuthenticate is waited for, and closed with 1001 if it succeeds.
// Close returns within the write timeout (WithWriteTimeout), plus the time
// such WithAuthenticate calls take: a client whose socket has not taken its
// close frame by then is dropped. It is idempotent and works with
// http.Server.Shutdown, which leaves upgraded connections alone: call both.
func (br *Bridge[T]) Close() error {
	br.closeOnce.Do(br.shutdown)
	return nil
}

func (br *Bridge[T]) shutdown() {
	br.mu.Lock()
	br.closed = true
	live := br.liveLocked()
	br.mu.Unlock()
	if br.onClosing != nil {
		br.onClosing()
	}
	br.cancel()
	for _, s := range live {
		s.end(endGoingAway)
	}
	br.waitConns()
	// No session is left in melody, so its hub can stop without racing a
	// session that unregisters (melody would block that one forever).
	_ = br.m.Close()
	br.waitHub()
	br.watchWG.Wait() // br.cancel ended it
	br.expWG.Wait()   // and it
	br.fanWG.Wait()
}

// waitHub waits until melody's hub goroutine has handled Close: melody's
// Close only hands it the exit message, and offers nothing to wait on but
// IsClosed, which turns true under the hub's lock as its last step (the
// goroutine returns right after releasing it).
func (br *Bridge[T]) waitHub() {
	for !br.m.IsClosed() {
		runtime.Gosched()
	}
}

// waitConns waits for every admitted request to end. Once the write
// timeout has passed it drops the sockets of the sessions still open (and
// of any that join later), which ends them at once.
func (br *Bridge[T]) waitConns() {
	done := make(chan struct{})
	go func() { // waited for below, on both paths
		br.conns.Wait()
		close(done)
	}()
	t := time.NewTimer(br.cfg.writeTimeout)
	defer t.Stop()
	select {
	case <-done:
		return
	case <-t.C:
	}
	br.mu.Lock()
	br.dropping = true
	live := br.liveLocked()
	br.mu.Unlock()
	for _, s := range live {
		s.drop()
	}
	<-done
}

// Clients returns the number of open client connections.
func (br *Bridge[T]) Clients() int { return int(br.stats.clients.Load()) }
