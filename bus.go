package bus

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// Event is one published event as subscribers and History see it.
type Event[T any] struct {
	Seq   uint64    // bus-wide, starts at 1, +1 per published event
	Topic string    // the topic it was published to
	Time  time.Time // when Publish accepted it
	Data  T
}

// Bus is an in-process event bus for events of type T. Its methods are safe
// for concurrent use. Make one with New and end it with Close.
type Bus[T any] struct {
	epoch string
	ttl   time.Duration

	// mu orders everything: sequence numbers, history, the subject tree and
	// every subscription's queue. It is never held while user code runs or
	// while a publisher waits.
	mu      sync.Mutex
	hist    *history[T] // numbers and retains events: the seam
	tree    subjectTree[*Subscription[T]]
	subs    map[*Subscription[T]]struct{}
	literal map[string]int       // subscriptions per literal pattern, for Stats.Topics
	matches []*Subscription[T]   // scratch for route
	routes  map[string]*route[T] // by topic, until the tree changes
	clock   clock
	counts  counts
	closed  bool

	done chan struct{} // closed by Close
	wg   sync.WaitGroup
}

type counts struct {
	published, delivered, dropped uint64
}

// New makes a Bus with a fresh epoch. With WithHistoryTTL it starts one
// goroutine that expires old events; Close waits for it.
func New[T any](opts ...Option) *Bus[T] {
	cfg := newBusConfig(opts)
	b := &Bus[T]{
		epoch:   uuid.NewString(),
		ttl:     cfg.ttl,
		hist:    newHistory[T](cfg.history, cfg.ttl),
		subs:    make(map[*Subscription[T]]struct{}),
		literal: make(map[string]int),
		routes:  make(map[string]*route[T]),
		done:    make(chan struct{}),
	}
	if cfg.ttl > 0 && cfg.history > 0 {
		b.wg.Add(1)
		go b.expireLoop()
	}
	return b
}

// Publish gives data the next sequence number, retains it for replay and
// queues it to every matching subscription under its policy, then returns
// its Seq. It waits only while a matching Block subscriber is full, and then
// returns an error wrapping ctx.Err() if ctx ends first; a Publish that need
// not wait ignores ctx. On error no subscriber and no History ever sees the
// event, and Seq does not move.
func (b *Bus[T]) Publish(ctx context.Context, topic string, data T) (uint64, error) {
	var waited *Subscription[T] // the last subscriber this publish waited for
	for {
		now := b.clock.now() // outside the lock: clocks can be slow
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			return 0, fmt.Errorf("%w: publish to %s", ErrClosed, quoteClipped(topic))
		}
		r, err := b.route(topic)
		if err != nil {
			b.mu.Unlock()
			return 0, err
		}
		full := firstFull(r.subs)
		if full == nil {
			seq := b.commit(topic, data, now, r)
			if waited != nil && !waited.ended && !waited.full() {
				waited.passRoom() // the reader made room for more than this one
			}
			b.mu.Unlock()
			return seq, nil
		}
		queued := len(full.ch)
		full.waiters.Add(1)
		b.mu.Unlock()
		err = b.waitRoom(ctx, full, queued)
		full.waiters.Add(-1)
		if err != nil {
			return 0, fmt.Errorf("publish to %s: %w", quoteClipped(topic), err)
		}
		waited = full
	}
}

// maxRoutes bounds the route cache; past it the cache starts over.
const maxRoutes = 4096

// route is where events of one topic go: the matching subscriptions
// (read-only) and the topic's history, looked up once and cached.
type route[T any] struct {
	subs []*Subscription[T]
	log  *topicLog[T] // nil until the first event, or once forgotten
}

// route returns the route of topic. A topic published before is answered
// from a cache that every change of the subject tree empties; a new one is
// checked against the grammar and looked up in the tree. Called under b.mu.
func (b *Bus[T]) route(topic string) (*route[T], error) {
	if r, ok := b.routes[topic]; ok {
		return r, nil
	}
	if err := CheckTopic(topic); err != nil {
		return nil, err
	}
	b.matches = b.tree.match(topic, b.matches[:0])
	r := &route[T]{subs: slices.Clone(b.matches)}
	clear(b.matches)
	if len(b.routes) >= maxRoutes {
		clear(b.routes)
	}
	b.routes[strings.Clone(topic)] = r
	return r, nil
}

// forgetRoutes empties the route cache: the subject tree changed.
func (b *Bus[T]) forgetRoutes() {
	if len(b.routes) > 0 {
		clear(b.routes)
	}
}

func firstFull[T any](subs []*Subscription[T]) *Subscription[T] {
	for _, s := range subs {
		if s.full() {
			return s
		}
	}
	return nil
}

// commit makes the event real: the history numbers and retains it, then it
// is queued to every matching subscription. Called under b.mu with room in
// every matching Block subscriber.
func (b *Bus[T]) commit(topic string, data T, now time.Time, r *route[T]) uint64 {
	var ev Event[T]
	ev, r.log = b.hist.record(r.log, topic, data, now)
	for _, s := range r.subs {
		queued, dropped, slow := s.deliver(ev)
		if queued {
			b.counts.delivered++
		}
		b.counts.dropped += dropped
		if slow {
			b.end(s, ErrSlowConsumer)
		}
	}
	b.counts.published++
	return ev.Seq
}

// Spinning briefly before sleeping catches a reader that is draining right
// now; the sleeps back off so that a reader that is truly stuck costs little.
const (
	waitSpins    = 64
	waitFirstNap = 20 * time.Microsecond
	waitMaxNap   = time.Millisecond
)

// waitRoom waits until s may have room: its reader took an event (seen as a
// shorter queue than queued, or a wake-up from Next), s ended, the bus
// closed, or ctx ended. A reader ranging over C cannot signal, so the wait
// looks again after a short, growing nap.
func (b *Bus[T]) waitRoom(ctx context.Context, s *Subscription[T], queued int) error {
	for range waitSpins {
		if len(s.ch) < queued {
			return nil
		}
		runtime.Gosched()
	}
	nap := waitFirstNap
	// A timer of this wait's own: one shared by waits (a pool) would cross
	// testing/synctest bubbles, which the runtime forbids. Only a publisher
	// that has to wait pays for it.
	t := time.NewTimer(nap)
	defer t.Stop()
	for {
		select {
		case <-s.room:
			return nil
		case <-s.done:
			return nil
		case <-b.done:
			return ErrClosed
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		if len(s.ch) < queued {
			return nil
		}
		nap = min(2*nap, waitMaxNap)
		t.Reset(nap)
	}
}

// Subscribe starts a subscription to the topics matching pattern. With a
// replay option (After, Last, Since) the retained events it selects are
// queued first and the subscription goes live in the same instant, so that
// no event is missed or repeated between the two.
func (b *Bus[T]) Subscribe(pattern string, opts ...SubscribeOption) (*Subscription[T], error) {
	cfg := newSubConfig(opts)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, fmt.Errorf("%w: subscribe to %s", ErrClosed, quoteClipped(pattern))
	}
	if err := CheckPattern(pattern); err != nil {
		return nil, err
	}
	plan := b.hist.plan(pattern, cfg.from, time.Now())
	s := &Subscription[T]{
		bus:     b,
		pattern: pattern,
		policy:  cfg.policy,
		buffer:  uint64(cfg.buffer),
		ch:      make(chan Event[T], cfg.buffer+plan.count),
		done:    make(chan struct{}),
		room:    make(chan struct{}, 1),
	}
	s.recovered = plan.emit(func(ev *Event[T]) { s.ch <- *ev })
	b.counts.delivered += uint64(plan.count)
	b.tree.insert(pattern, s)
	b.forgetRoutes()
	b.subs[s] = struct{}{}
	if isLiteral(pattern) {
		b.literal[pattern]++
	}
	return s, nil
}

// end ends s with err: it stops matching, its channel closes after what is
// queued, and publishers waiting on it go on. Called under b.mu.
func (b *Bus[T]) end(s *Subscription[T], err error) {
	s.ended = true
	s.err.Store(&err)
	b.tree.remove(s.pattern, s)
	b.forgetRoutes()
	delete(b.subs, s)
	if isLiteral(s.pattern) {
		if b.literal[s.pattern]--; b.literal[s.pattern] == 0 {
			delete(b.literal, s.pattern)
		}
	}
	close(s.ch)
	close(s.done)
}

// History returns the retained events matching pattern with Seq > after,
// oldest first, at most limit of them (limit <= 0: all).
func (b *Bus[T]) History(pattern string, after uint64, limit int) ([]Event[T], error) {
	evs, _, err := b.Replay(pattern, After(after))
	if limit > 0 && len(evs) > limit {
		evs = evs[:limit:limit]
	}
	return evs, err
}

// Replay returns what Subscribe(pattern, opts...) would replay right now,
// oldest first, and what its Recovered would say, without subscribing. Only
// the replay option among opts matters.
func (b *Bus[T]) Replay(pattern string, opts ...SubscribeOption) (events []Event[T], recovered bool, err error) {
	cfg := newSubConfig(opts)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, false, fmt.Errorf("%w: replay %s", ErrClosed, quoteClipped(pattern))
	}
	if err := CheckPattern(pattern); err != nil {
		return nil, false, err
	}
	plan := b.hist.plan(pattern, cfg.from, time.Now())
	events, recovered = plan.events()
	return events, recovered, nil
}

// Done returns a channel that is closed when Close is called, for code
// that serves the bus (a bridge, a server) and must stop with it.
func (b *Bus[T]) Done() <-chan struct{} { return b.done }

// Seq returns the Seq of the newest published event, 0 before the first.
func (b *Bus[T]) Seq() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.hist.seq
}

// Epoch returns the random UUID made by New that names this bus's sequence
// space: a Seq means something only together with its epoch.
func (b *Bus[T]) Epoch() string { return b.epoch }

// Stats describes a Bus at one instant.
type Stats struct {
	// Published, Delivered and Dropped are totals since New. Delivered counts
	// events queued to subscribers, replayed ones included; Dropped counts
	// events lost to DropOldest and DropNewest.
	Published, Delivered, Dropped uint64
	// Subscribers counts live subscriptions; Topics, topics with retained
	// events or a subscription naming them literally; Retained, events held
	// for replay.
	Subscribers, Topics, Retained int
}

// Stats returns the bus's counters. It answers after Close too.
func (b *Bus[T]) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	topics := len(b.hist.topics)
	for name := range b.literal {
		if b.hist.topics[name] == nil {
			topics++
		}
	}
	return Stats{
		Published:   b.counts.published,
		Delivered:   b.counts.delivered,
		Dropped:     b.counts.dropped,
		Subscribers: len(b.subs),
		Topics:      topics,
		Retained:    b.hist.held,
	}
}

// Close ends every subscription with ErrClosed (their queued events stay
// readable), wakes waiting publishers with ErrClosed and returns once the
// bus's own goroutine is gone. It is idempotent.
func (b *Bus[T]) Close() error {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		for s := range b.subs {
			b.end(s, ErrClosed)
		}
		close(b.done)
	}
	b.mu.Unlock()
	b.wg.Wait()
	return nil
}

// expireLoop releases expired events, waking when the oldest one expires
// but at most every ttl/8 (and every millisecond), until Close.
func (b *Bus[T]) expireLoop() {
	defer b.wg.Done()
	t := time.NewTimer(b.ttl)
	defer t.Stop()
	for {
		select {
		case <-b.done:
			return
		case <-t.C:
		}
		b.mu.Lock()
		now := time.Now()
		next := b.hist.expire(now)
		b.mu.Unlock()
		wait := b.ttl
		if !next.IsZero() {
			wait = next.Sub(now)
		}
		t.Reset(max(wait, b.ttl/8, time.Millisecond))
	}
}
