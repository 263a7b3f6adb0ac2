package bus

import (
	"context"
	"fmt"
	"hash/maphash"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/whalesong/bus/internal/dedup"
)

// Event is one published event as subscribers and History see it.
type Event[T any] struct {
	Seq   uint64    // bus-wide, starts at 1, +1 per published event
	Topic string    // the topic it was published to
	Time  time.Time // when Publish accepted it (on a shared Log: when the log stored it)
	Data  T         // the published value, shared by every subscriber (see "Data is shared, not copied")

	// Skipped counts this subscription's events with Seq between the
	// previous event it received and this one that it lost (dropped or
	// superseded under its Policy). It is 0 in History results and in
	// replayed events.
	Skipped uint64
}

// Bus is an event bus for events of type T. Its methods are safe for
// concurrent use. Make one with New and end it with Close.
//
// Locks, in the order they are taken: the shards' mu in index order, then
// wide, then the leaf locks (feedMu, waitMu, retireMu; the dedup's own).
// A publish takes only the shard of its topic (and wide when a wildcard
// subscription matches it), so that publishers of topics in different
// shards do not wait for each other; everything that must see the whole
// bus at one instant (Subscribe, Subscription.Close, History, Replay, Page,
// Stats, Close) takes them all. Each lock's scope stays inside one function.
type Bus[T any] struct {
	epoch atomic.Pointer[string]
	ttl   time.Duration
	cfg   busConfig
	clock clock

	// seq is the Seq of the newest event numbered (applied, on a log).
	// Every publish, on any shard, writes it: it has a cache line of its
	// own, so that publishers on other cores do not also lose the fields
	// next to it that every publish reads (the clock, the shards).
	_   [64]byte
	seq atomic.Uint64
	_   [56]byte

	// shards partition the topics by hash: each holds the history, routes
	// and counters of its topics, guarded by its mu. One shard only when a
	// bus-wide rule (TTL, WithMaxRetained) or a shared Log orders
	// everything anyway.
	shards []shard[T]
	seed   maphash.Seed

	// wide orders the deliveries to wildcard subscriptions, which topics of
	// any shard can match: a publish that matches one takes wide after its
	// shard and numbers its event under it, so every wildcard subscription
	// gets events in Seq order. It guards those subscriptions' queues.
	wide sync.Mutex

	// Guarded by all the locks (taken by lockAll); read under any shard:
	tree    subjectTree[*Subscription[T]]
	subs    map[*Subscription[T]]struct{}
	literal map[string]int // subscriptions per literal pattern, for Stats.Topics
	closed  bool
	live    atomic.Int64 // subscriptions not ended

	feedMu sync.Mutex
	feeds  []*Subscription[T] // subscriptions the feeder tops up (guarded by feedMu)
	feeder bool               // the feeder goroutine runs (guarded by feedMu)

	waitMu   sync.Mutex
	waits    []seqWait     // WaitSeq callers (guarded by waitMu)
	waiting  atomic.Int32  // len(waits), read without the lock
	epochGen atomic.Uint64 // counts epoch changes, for WaitSeq

	retireMu sync.Mutex
	retired  []*Subscription[T] // ended under their guard alone, still in the tree (guarded by retireMu)
	retiring atomic.Int32       // len(retired), read without the lock

	dedupOnce sync.Once
	dedup     *dedup.Window // PublishID in-process, made on first use

	shared *shared[T] // the shared Log, nil in-process

	feedWake chan struct{}
	done     chan struct{} // closed by Close
	wg       sync.WaitGroup
}

// shard is one part of the bus: the topics whose hash falls in it.
type shard[T any] struct {
	mu      sync.Mutex
	hist    *history[T]          // guarded by mu
	routes  map[string]*route[T] // by topic, until the tree changes; guarded by mu
	recent  *route[T]            // the last route used: a hot topic skips the map
	matches []*Subscription[T]   // scratch for route
	counts  counts
	_       [64]byte // keeps shards apart in the cache
}

type counts struct {
	published, delivered, dropped, superseded uint64
}

// shardCount is the number of shards of a bus whose topics are independent.
const shardCount = 32

// New makes a Bus. In-process (without WithLog) it has a fresh random epoch
// and numbers its own events; with WithHistoryTTL it starts one goroutine
// that expires old events. With WithLog it follows the log on a goroutine of
// its own. Close waits for them.
func New[T any](opts ...Option) *Bus[T] {
	cfg := newBusConfig(opts)
	n := shardCount
	if cfg.ttl > 0 || cfg.maxRetained > 0 || cfg.log != nil {
		n = 1 // a bus-wide order: evicting the oldest, applying a log
	}
	b := &Bus[T]{
		ttl:      cfg.ttl,
		cfg:      cfg,
		shards:   make([]shard[T], n),
		subs:     make(map[*Subscription[T]]struct{}),
		literal:  make(map[string]int),
		feedWake: make(chan struct{}, 1),
		done:     make(chan struct{}),
		seed:     maphash.MakeSeed(),
	}
	for i := range b.shards {
		b.shards[i].hist = newHistory[T](cfg.history, cfg.ttl, cfg.maxRetained)
		b.shards[i].routes = make(map[string]*route[T])
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

// shardOf returns the shard that holds topic.
func (b *Bus[T]) shardOf(topic string) *shard[T] {
	if len(b.shards) == 1 {
		return &b.shards[0]
	}
	return &b.shards[maphash.String(b.seed, topic)%uint64(len(b.shards))]
}

// lockAll takes every lock a publish can hold, in the lock order.
func (b *Bus[T]) lockAll() {
	for i := range b.shards {
		b.shards[i].mu.Lock()
	}
	b.wide.Lock()
}

func (b *Bus[T]) unlockAll() {
	b.wide.Unlock()
	for i := len(b.shards) - 1; i >= 0; i-- {
		b.shards[i].mu.Unlock()
	}
}

// guardFor returns the lock that guards the queue of a subscription to
// pattern: the shard of its topic for a literal pattern (only that topic's
// publishers reach it), wide for a wildcard one, the one shard when there
// is only one.
func (b *Bus[T]) guardFor(pattern string) *sync.Mutex {
	switch {
	case len(b.shards) == 1:
		return &b.shards[0].mu
	case isLiteral(pattern):
		return &b.shardOf(pattern).mu
	}
	return &b.wide
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
	sh := b.shardOf(topic)
	var waited *Subscription[T] // the last subscriber this publish waited for
	for {
		now := b.clock.now() // outside the lock: clocks can be slow
		seq, full, queued, err := b.publishOnce(sh, topic, data, now, waited)
		if full == nil {
			return seq, err
		}
		err = b.waitRoom(ctx, full, queued)
		full.waiters.Add(-1)
		if err != nil {
			return 0, fmt.Errorf("publish to %s: %w", quoteClipped(topic), err)
		}
		waited = full
	}
}

// publishOnce commits the event, unless a matching Block subscriber is full:
// then it returns that subscriber, counted as waited for, and how many
// events its channel held when it was found full (see firstFull): read any
// later, a reader ranging over C may already have emptied the channel, and
// the publisher would wait for a shorter queue that never comes.
func (b *Bus[T]) publishOnce(sh *shard[T], topic string, data T, now time.Time, waited *Subscription[T]) (seq uint64, full *Subscription[T], queued int, err error) {
	sh.mu.Lock()
	if b.closed {
		sh.mu.Unlock()
		return 0, nil, 0, fmt.Errorf("%w: publish to %s", ErrClosed, quoteClipped(topic))
	}
	r, err := b.route(sh, topic)
	if err != nil {
		sh.mu.Unlock()
		return 0, nil, 0, err
	}
	if r.wide {
		b.wide.Lock()
	}
	var ev Event[T]
	if full, queued = firstFull(r.subs); full != nil {
		full.waiters.Add(1)
	} else {
		ev = Event[T]{Seq: b.seq.Add(1), Topic: topic, Time: now, Data: data}
		r.log = sh.hist.apply(r.log, &ev)
		b.commit(sh, &ev, r)
		if waited != nil && !waited.ended && !waited.full() {
			waited.passRoom() // the reader made room for more than this one
		}
	}
	if r.wide {
		b.wide.Unlock()
	}
	sh.mu.Unlock()
	if full != nil {
		return 0, full, queued, nil
	}
	b.afterCommit()
	return ev.Seq, nil, 0, nil
}

// afterCommit does, outside the locks, what a commit left: waking WaitSeq
// callers and removing subscriptions that ended under their guard.
func (b *Bus[T]) afterCommit() {
	if b.waiting.Load() > 0 {
		b.wakeWaits(nil)
	}
	if b.retiring.Load() > 0 {
		b.lockAll()
		b.reap()
		b.unlockAll()
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
	b.dedupOnce.Do(func() { b.dedup = dedup.New(b.cfg.dedupSize, b.cfg.dedupAge, ErrIDReused) })
	seq, _, err := b.dedup.Do(ctx, id, topic, func() (uint64, error) { return b.Publish(ctx, topic, data) })
	return seq, err
}

// maxRoutes bounds a shard's route cache; past it the cache starts over.
const maxRoutes = 4096

// route is where events of one topic go: the matching subscriptions
// (read-only, ordered so that wide ones are all at hand) and the topic's
// history, looked up once and cached.
type route[T any] struct {
	topic string
	subs  []*Subscription[T]
	wide  bool         // a wildcard subscription matches: take b.wide
	log   *topicLog[T] // nil until the first event, or once forgotten
}

// route returns the route of topic. A topic published before is answered
// from a cache that every change of the subject tree empties; a new one is
// checked against the grammar and looked up in the tree (which changes only
// under all the locks). Called under sh.mu.
func (b *Bus[T]) route(sh *shard[T], topic string) (*route[T], error) {
	if r := sh.recent; r != nil && r.topic == topic {
		return r, nil
	}
	if r, ok := sh.routes[topic]; ok {
		sh.recent = r
		return r, nil
	}
	if err := CheckTopic(topic); err != nil {
		return nil, err
	}
	sh.matches = b.tree.match(topic, sh.matches[:0])
	r := &route[T]{topic: strings.Clone(topic), subs: slices.Clone(sh.matches), log: sh.hist.lookup(topic)}
	clear(sh.matches)
	for _, s := range r.subs {
		r.wide = r.wide || s.guard == &b.wide
	}
	if len(sh.routes) >= maxRoutes {
		clear(sh.routes)
	}
	sh.routes[r.topic] = r
	sh.recent = r
	return r, nil
}

// forgetRoutes empties every route cache: the subject tree changed. Called
// under all the locks.
func (b *Bus[T]) forgetRoutes() {
	for i := range b.shards {
		sh := &b.shards[i]
		sh.recent = nil
		if len(sh.routes) > 0 {
			clear(sh.routes)
		}
	}
}

// firstFull returns the first matching Block subscriber without room, and
// the length of its channel then.
func firstFull[T any](subs []*Subscription[T]) (*Subscription[T], int) {
	for _, s := range subs {
		if s.ended || s.policy != Block || s.credit > 0 { // an ended one lingers until reaped
			continue
		}
		// The length first: the reader takes events without the lock, so
		// the channel only shrinks until the publisher looks again, and a
		// length read before roomy decides is at least the one it saw.
		n := len(s.ch)
		if !s.roomy() {
			return s, n
		}
	}
	return nil, 0
}

// commit queues a numbered and retained event to every matching
// subscription. Called under sh.mu (and wide when the route is wide); in
// process with room in every matching Block subscriber.
func (b *Bus[T]) commit(sh *shard[T], ev *Event[T], r *route[T]) {
	for _, s := range r.subs {
		if s.ended {
			continue
		}
		if s.plain() { // the common case, without the policies' bookkeeping
			s.send(ev)
			sh.counts.delivered++
			continue
		}
		out := s.deliver(ev)
		if out.queued {
			sh.counts.delivered++
		}
		sh.counts.dropped += out.dropped
		sh.counts.superseded += out.displaced
		switch {
		case out.slow:
			b.retire(s, ErrSlowConsumer)
		case out.feed, out.behind:
			b.needFeed(s)
		}
	}
	sh.counts.published++
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
	if err := CheckPattern(pattern); err != nil && !b.isClosed() {
		return nil, err
	}
	b.lockAll()
	defer b.unlockAll()
	if b.closed {
		return nil, fmt.Errorf("%w: subscribe to %s", ErrClosed, quoteClipped(pattern))
	}
	b.reap()
	plan := b.plan(pattern, cfg.from, time.Now())
	s := &Subscription[T]{
		bus:     b,
		guard:   b.guardFor(pattern),
		pattern: pattern,
		policy:  cfg.policy,
		buffer:  uint64(cfg.buffer),
		ch:      make(chan Event[T], cfg.buffer+plan.count),
		done:    make(chan struct{}),
		room:    make(chan struct{}, 1),
		last:    b.seq.Load(),
	}
	if lossyFront(cfg.policy) {
		s.tail = newTailQueue[T](cfg.policy == Conflate)
	}
	if after := cfg.from.after; b.shared != nil && cfg.from.kind == replayAfter && after > s.last {
		// A position seen on another bus of the log, which this one has not
		// reached yet: what it has not applied up to there, the subscriber
		// has already (see After).
		s.floor, s.last = after, after
	}
	first := plan.emit(0, func(ev *Event[T]) { s.ch <- *ev })
	s.recovered = plan.recovered(first)
	if !s.recovered {
		s.missAfter, s.missBefore = plan.missing()
	}
	b.shardOf(pattern).counts.delivered += uint64(plan.count)
	b.tree.insert(pattern, s)
	b.forgetRoutes()
	b.subs[s] = struct{}{}
	b.live.Add(1)
	if isLiteral(pattern) {
		b.literal[pattern]++
	}
	return s, nil
}

// isClosed reports whether Close was called.
func (b *Bus[T]) isClosed() bool {
	select {
	case <-b.done:
		return true
	default:
		return false
	}
}

// plan plans a replay over every shard's history. Called under all the
// locks.
func (b *Bus[T]) plan(pattern string, from replayFrom, now time.Time) replayPlan[T] {
	if len(b.shards) == 1 || isLiteral(pattern) {
		p := b.shardOf(pattern).hist.plan(pattern, from, now)
		if len(b.shards) > 1 && from.kind != replayNone {
			// The losses that count against every replay (with
			// WithHistory(0), every event) are each shard's own.
			for i := range b.shards {
				h := b.shards[i].hist
				p.lost.record(h.lost.seq, h.lost.time)
			}
		}
		return p
	}
	p := replayPlan[T]{from: from}
	if from.kind == replayNone {
		return p
	}
	for i := range b.shards {
		b.shards[i].hist.collect(&p, pattern, now)
	}
	p.finish()
	return p
}

// retire ends s with err under its guard alone: it stops taking events, its
// channel closes after what is queued (unless its owner closed it), and
// publishers waiting on it go on. It stays in the subject tree until reap.
func (b *Bus[T]) retire(s *Subscription[T], err error) {
	s.ended = true
	s.err.Store(&err)
	if err != ErrSubscriptionClosed {
		s.flushTail()
	}
	s.feed.Store(false)
	close(s.ch)
	close(s.done)
	b.live.Add(-1)
	b.retireMu.Lock()
	b.retired = append(b.retired, s)
	b.retiring.Store(int32(len(b.retired)))
	b.retireMu.Unlock()
}

// end ends s with err and removes it at once. Called under all the locks.
func (b *Bus[T]) end(s *Subscription[T], err error) {
	b.retire(s, err)
	b.reap()
}

// reap removes the subscriptions that ended from the tree and the maps.
// Called under all the locks.
func (b *Bus[T]) reap() {
	b.retireMu.Lock()
	dead := b.retired
	b.retired = nil
	b.retiring.Store(0)
	b.retireMu.Unlock()
	for _, s := range dead {
		b.tree.remove(s.pattern, s)
		delete(b.subs, s)
		if isLiteral(s.pattern) {
			if b.literal[s.pattern]--; b.literal[s.pattern] == 0 {
				delete(b.literal, s.pattern)
			}
		}
	}
	if len(dead) > 0 {
		b.forgetRoutes()
	}
}

// History returns the retained events matching pattern with Seq > after,
// oldest first, at most limit of them (limit <= 0: all).
func (b *Bus[T]) History(pattern string, after uint64, limit int) ([]Event[T], error) {
	if err := CheckPattern(pattern); err != nil && !b.isClosed() {
		return nil, err
	}
	b.lockAll()
	defer b.unlockAll()
	if b.closed {
		return nil, fmt.Errorf("%w: history of %s", ErrClosed, quoteClipped(pattern))
	}
	plan := b.plan(pattern, replayFrom{kind: replayAfter, after: after}, time.Now())
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
	if err := CheckPattern(pattern); err != nil && !b.isClosed() {
		return nil, false, err
	}
	b.lockAll()
	defer b.unlockAll()
	if b.closed {
		return nil, false, fmt.Errorf("%w: history of %s", ErrClosed, quoteClipped(pattern))
	}
	from := replayFrom{kind: replayBefore, before: before, last: max(limit, 1)}
	plan := b.plan(pattern, from, time.Now())
	events, _ = plan.events(0)
	return events, plan.more, nil
}

// A Replayed is what Subscribe with one replay option would replay right
// now, with what its Recovered and Missing would say, and the bus's Seq at
// that instant (live events after it would follow).
type Replayed[T any] struct {
	Events    []Event[T] // what would be replayed, oldest first
	Recovered bool       // what Subscription.Recovered would say
	// After and Before bound what is missing when Recovered is false (see
	// Subscription.Missing); both 0 otherwise.
	After, Before uint64
	Seq           uint64 // the bus's Seq at that instant
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
	if err := CheckPattern(pattern); err != nil && !b.isClosed() {
		return Replayed[T]{}, err
	}
	b.lockAll()
	defer b.unlockAll()
	if b.closed {
		return Replayed[T]{}, fmt.Errorf("%w: replay %s", ErrClosed, quoteClipped(pattern))
	}
	plan := b.plan(pattern, cfg.from, time.Now())
	evs, first := plan.events(0)
	r := Replayed[T]{Events: evs, Recovered: plan.recovered(first), Seq: b.seq.Load()}
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
func (b *Bus[T]) Seq() uint64 { return b.seq.Load() }

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
	b.lockAll()
	defer b.unlockAll()
	st := Stats{Subscribers: int(b.live.Load())}
	for i := range b.shards {
		sh := &b.shards[i]
		st.Published += sh.counts.published
		st.Delivered += sh.counts.delivered
		st.Dropped += sh.counts.dropped
		st.Superseded += sh.counts.superseded
		st.Topics += sh.hist.retainedTopics()
		st.Retained += sh.hist.held
	}
	for name := range b.literal {
		if t := b.shardOf(name).hist.topics[name]; t == nil || t.remembered {
			st.Topics++
		}
	}
	return st
}

// Close ends every subscription with ErrClosed (their queued events stay
// readable), wakes waiting publishers with ErrClosed and returns once the
// bus's own goroutines are gone. It is idempotent.
func (b *Bus[T]) Close() error {
	b.lockAll()
	if !b.closed {
		b.closed = true
		for s := range b.subs {
			if !s.ended {
				b.retire(s, ErrClosed)
			}
		}
		b.reap()
		close(b.done)
		if b.shared != nil {
			b.shared.cancel()
		}
	}
	b.unlockAll()
	b.wakeWaits(ErrClosed)
	b.wg.Wait()
	return nil
}

// expireLoop releases expired events, waking when the oldest one expires
// but at most every ttl/8 (and every millisecond), until Close. A bus with
// a TTL has one shard.
func (b *Bus[T]) expireLoop() {
	defer b.wg.Done()
	t := time.NewTimer(b.ttl)
	defer t.Stop()
	sh := &b.shards[0]
	for {
		select {
		case <-b.done:
			return
		case <-t.C:
		}
		sh.mu.Lock()
		now := time.Now()
		next := sh.hist.expire(now)
		sh.mu.Unlock()
		wait := b.ttl
		if !next.IsZero() {
			wait = next.Sub(now)
		}
		t.Reset(max(wait, b.ttl/8, time.Millisecond))
	}
}
