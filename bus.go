package bus

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// Event is one published event as subscribers and History see it.
type Event[T any] struct {
	Seq   uint64    // bus-wide, starts at 1, +1 per published event
	Topic string    // the topic it was published to
	Time  time.Time // when Publish accepted it (on a shared Log: when the log stored it)
	Data  T

	// Skipped counts this subscription's events with Seq between the
	// previous event it received and this one that it lost (dropped or
	// superseded under its Policy). It is 0 in History results and in
	// replayed events.
	Skipped uint64
}

// Bus is an event bus for events of type T. Its methods are safe for
// concurrent use. Make one with New and end it with Close.
type Bus[T any] struct {
	epoch atomic.Pointer[string]
	ttl   time.Duration
	cfg   busConfig

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
	recent  *route[T]            // the last route used: a hot topic skips the map
	clock   clock
	counts  counts
	closed  bool
	feeds   []*Subscription[T] // subscriptions the feeder tops up (guarded by mu)
	feeder  bool               // the feeder goroutine runs
	waits   []seqWait          // WaitSeq callers (guarded by mu)
	dedup   *dedup             // PublishID in-process, made on first use (guarded by mu)

	shared *shared[T] // the shared Log, nil in-process

	feedWake chan struct{}
	done     chan struct{} // closed by Close
	wg       sync.WaitGroup
}

type counts struct {
	published, delivered, dropped, superseded uint64
}

// New makes a Bus. In-process (without WithLog) it has a fresh random epoch
// and numbers its own events; with WithHistoryTTL it starts one goroutine
// that expires old events. With WithLog it follows the log on a goroutine of
// its own. Close waits for them.
func New[T any](opts ...Option) *Bus[T] {
	cfg := newBusConfig(opts)
	b := &Bus[T]{
		ttl:      cfg.ttl,
		cfg:      cfg,
		hist:     newHistory[T](cfg.history, cfg.ttl, cfg.maxRetained),
		subs:     make(map[*Subscription[T]]struct{}),
		literal:  make(map[string]int),
		routes:   make(map[string]*route[T]),
		feedWake: make(chan struct{}, 1),
		done:     make(chan struct{}),
	}
	epoch := ""
	if cfg.log == nil {
		epoch = uuid.NewString()
	}
	b.epoch.Store(&epoch)
	if cfg.ttl > 0 && cfg.history > 0 {
		b.wg.Add(1)
		go b.expireLoop()
	}
	if cfg.log != nil {
		l, ok := cfg.log.(Log[T])
		if !ok {
			panic(fmt.Sprintf("bus: WithLog got a %T, not a Log of this bus's type", cfg.log))
		}
		b.follow(l)
	}
	return b
}

// Publish gives data the next sequence number, retains it for replay and
// queues it to every matching subscription under its policy, then returns
// its Seq. It waits only while a matching Block subscriber is full, and then
// returns an error wrapping ctx.Err() if ctx ends first; a Publish that need
// not wait ignores ctx. On error no subscriber and no History ever sees the
// event, and Seq does not move. On a shared Log it returns once the log has
// stored the event (see the package doc).
func (b *Bus[T]) Publish(ctx context.Context, topic string, data T) (uint64, error) {
	if b.shared != nil {
		return b.publishShared(ctx, "", topic, data)
	}
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
			var ev Event[T]
			ev, r.log = b.hist.record(r.log, topic, data, now)
			b.commit(ev, r)
			if waited != nil && !waited.ended && !waited.full() {
				waited.passRoom() // the reader made room for more than this one
			}
			b.mu.Unlock()
			return ev.Seq, nil
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

// PublishID publishes like Publish, once per id: a PublishID repeated with
// the same id within the deduplication window (WithDedupWindow in-process;
// the log's own on a shared Log, across processes) publishes nothing and
// returns the first one's Seq. The same id with another topic is refused
// with ErrIDReused. On a shared Log an error wrapping ErrUncertain means the
// event may have been stored: retry with the same id to know.
func (b *Bus[T]) PublishID(ctx context.Context, id, topic string, data T) (uint64, error) {
	if id == "" {
		return b.Publish(ctx, topic, data)
	}
	if b.shared != nil {
		return b.publishShared(ctx, id, topic, data)
	}
	b.mu.Lock()
	if b.dedup == nil {
		b.dedup = newDedup(b.cfg.dedupSize, b.cfg.dedupAge)
	}
	d := b.dedup
	b.mu.Unlock()
	seq, _, err := d.do(ctx, id, topic, func() (uint64, error) { return b.Publish(ctx, topic, data) })
	return seq, err
}

// maxRoutes bounds the route cache; past it the cache starts over.
const maxRoutes = 4096

// route is where events of one topic go: the matching subscriptions
// (read-only) and the topic's history, looked up once and cached.
type route[T any] struct {
	topic string
	subs  []*Subscription[T]
	log   *topicLog[T] // nil until the first event, or once forgotten
}

// route returns the route of topic. A topic published before is answered
// from a cache that every change of the subject tree empties; a new one is
// checked against the grammar and looked up in the tree. Called under b.mu.
func (b *Bus[T]) route(topic string) (*route[T], error) {
	if r := b.recent; r != nil && r.topic == topic {
		return r, nil
	}
	if r, ok := b.routes[topic]; ok {
		b.recent = r
		return r, nil
	}
	if err := CheckTopic(topic); err != nil {
		return nil, err
	}
	b.matches = b.tree.match(topic, b.matches[:0])
	r := &route[T]{topic: strings.Clone(topic), subs: slices.Clone(b.matches), log: b.hist.lookup(topic)}
	clear(b.matches)
	if len(b.routes) >= maxRoutes {
		clear(b.routes)
	}
	b.routes[r.topic] = r
	b.recent = r
	return r, nil
}

// forgetRoutes empties the route cache: the subject tree changed.
func (b *Bus[T]) forgetRoutes() {
	b.recent = nil
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

// commit queues a numbered and retained event to every matching
// subscription. Called under b.mu; in-process with room in every matching
// Block subscriber.
func (b *Bus[T]) commit(ev Event[T], r *route[T]) {
	for _, s := range r.subs {
		out := s.deliver(ev)
		if out.queued {
			b.counts.delivered++
		}
		b.counts.dropped += out.dropped
		b.counts.superseded += out.displaced
		switch {
		case out.slow:
			b.end(s, ErrSlowConsumer)
		case out.feed, out.behind:
			b.needFeed(s)
		}
	}
	b.counts.published++
	if len(b.waits) > 0 {
		b.wakeWaits(nil)
	}
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
// replay option (After, Last, Since, Latest) the retained events it selects
// are queued first and the subscription goes live in the same instant, so
// that no event is missed or repeated between the two.
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
		last:    b.hist.seq,
	}
	if lossyFront(cfg.policy) {
		s.tail = newTailQueue[T](cfg.policy == Conflate)
	}
	first := plan.emit(0, func(ev *Event[T]) { s.ch <- *ev })
	s.recovered = plan.recovered(first)
	if !s.recovered {
		s.missAfter, s.missBefore = plan.missing()
	}
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
// queued (unless its owner closed it), and publishers waiting on it go on.
// Called under b.mu.
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
	if err != ErrSubscriptionClosed {
		s.flushTail()
	}
	s.feed.Store(false)
	close(s.ch)
	close(s.done)
}

// History returns the retained events matching pattern with Seq > after,
// oldest first, at most limit of them (limit <= 0: all).
func (b *Bus[T]) History(pattern string, after uint64, limit int) ([]Event[T], error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, fmt.Errorf("%w: history of %s", ErrClosed, quoteClipped(pattern))
	}
	if err := CheckPattern(pattern); err != nil {
		return nil, err
	}
	plan := b.hist.plan(pattern, replayFrom{kind: replayAfter, after: after}, time.Now())
	evs, _ := plan.events(limit)
	return evs, nil
}

// Page returns a page of older history: the newest limit (at most; limit < 1
// counts as 1) retained events matching pattern with Seq < before, oldest
// first, and whether older matching events are retained. before 0 means
// past the newest, so a first page ends with the newest matching event.
// It costs O(matching topics + limit * log topics).
func (b *Bus[T]) Page(pattern string, before uint64, limit int) (events []Event[T], more bool, err error) {
	if before == 0 {
		before = ^uint64(0)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, false, fmt.Errorf("%w: history of %s", ErrClosed, quoteClipped(pattern))
	}
	if err := CheckPattern(pattern); err != nil {
		return nil, false, err
	}
	from := replayFrom{kind: replayBefore, before: before, last: max(limit, 1)}
	plan := b.hist.plan(pattern, from, time.Now())
	events, _ = plan.events(0)
	return events, plan.more, nil
}

// A Replayed is what Subscribe with one replay option would replay right
// now, with what its Recovered and Missing would say, and the bus's Seq at
// that instant (live events after it would follow).
type Replayed[T any] struct {
	Events    []Event[T]
	Recovered bool
	// After and Before bound what is missing when Recovered is false (see
	// Subscription.Missing); both 0 otherwise.
	After, Before uint64
	Seq           uint64
}

// Replay returns what Subscribe(pattern, opts...) would replay right now,
// oldest first, and what its Recovered would say, without subscribing. Only
// the replay option among opts matters.
func (b *Bus[T]) Replay(pattern string, opts ...SubscribeOption) (events []Event[T], recovered bool, err error) {
	r, err := b.ReplayDetail(pattern, opts...)
	return r.Events, r.Recovered, err
}

// ReplayDetail is Replay with the missing range and the Seq it was taken at,
// for code that serves replays itself (the bridge does).
func (b *Bus[T]) ReplayDetail(pattern string, opts ...SubscribeOption) (Replayed[T], error) {
	cfg := newSubConfig(opts)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return Replayed[T]{}, fmt.Errorf("%w: replay %s", ErrClosed, quoteClipped(pattern))
	}
	if err := CheckPattern(pattern); err != nil {
		return Replayed[T]{}, err
	}
	plan := b.hist.plan(pattern, cfg.from, time.Now())
	evs, first := plan.events(0)
	r := Replayed[T]{Events: evs, Recovered: plan.recovered(first), Seq: b.hist.seq}
	if !r.Recovered {
		r.After, r.Before = plan.missing()
	}
	return r, nil
}

// Done returns a channel that is closed when Close is called, for code
// that serves the bus (a bridge, a server) and must stop with it.
func (b *Bus[T]) Done() <-chan struct{} { return b.done }

// Seq returns the Seq of the newest published event, 0 before the first. On
// a shared Log: of the newest event this bus has applied.
func (b *Bus[T]) Seq() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.hist.seq
}

// Epoch returns the UUID that names this bus's sequence space: a Seq means
// something only together with its epoch. In-process it is made by New at
// random; on a shared Log it names the log's incarnation, the same on every
// bus of that log ("" until the log has answered).
func (b *Bus[T]) Epoch() string { return *b.epoch.Load() }

// Shared reports whether a shared Log numbers this bus's events (WithLog).
func (b *Bus[T]) Shared() bool { return b.shared != nil }

// Stats describes a Bus at one instant.
type Stats struct {
	// Published, Delivered, Dropped and Superseded are totals since New.
	// Delivered counts events queued to subscribers, replayed ones included;
	// Dropped counts events lost to DropOldest, DropNewest and Conflate,
	// Superseded events that Conflate replaced. On a shared Log, Published
	// counts the events this bus applied, from any process.
	Published, Delivered, Dropped, Superseded uint64
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
		Superseded:  b.counts.superseded,
		Subscribers: len(b.subs),
		Topics:      topics,
		Retained:    b.hist.held,
	}
}

// Close ends every subscription with ErrClosed (their queued events stay
// readable), wakes waiting publishers with ErrClosed and returns once the
// bus's own goroutines are gone. It is idempotent.
func (b *Bus[T]) Close() error {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		for s := range b.subs {
			b.end(s, ErrClosed)
		}
		b.wakeWaits(ErrClosed)
		close(b.done)
		if b.shared != nil {
			b.shared.cancel()
		}
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
