package bus

import (
	"context"
	"sync"
	"sync/atomic"
)

// Policy chooses what Publish does for a subscription whose buffer is full.
type Policy int

const (
	// Block makes Publish wait, bounded by its ctx, until every matching
	// Block subscriber has room. A goroutine that publishes, from its own
	// receive loop, to a topic that the same Block subscription matches can
	// wait on itself: give such loops another policy or a bounded ctx. On a
	// shared Log publishers may be in other processes and cannot wait: a
	// full Block subscriber is refilled from the history as it reads (see
	// the package doc).
	Block Policy = iota
	// DropOldest discards the oldest queued live event to make room (never
	// a replayed one: those do not count against the buffer). Counted in
	// Dropped and in the Skipped of the next event received.
	DropOldest
	// DropNewest does not queue the new event for this subscriber. Counted
	// in Dropped and in the Skipped of the next event received.
	DropNewest
	// Disconnect ends the subscription with ErrSlowConsumer. The owner can
	// resubscribe with After(last seen Seq) to get what it missed.
	Disconnect
	// Conflate removes a queued live event of the new event's topic (its
	// oldest) and queues the new one at the back, so that Seq order holds;
	// counted in Superseded. With none of that topic queued, the oldest
	// queued live event is dropped (counted in Dropped). Both count in the
	// Skipped of the next event received. A slow reader of state topics
	// sees the newest state of each.
	Conflate
)

// String returns the policy's name.
func (p Policy) String() string {
	switch p {
	case Block:
		return "Block"
	case DropOldest:
		return "DropOldest"
	case DropNewest:
		return "DropNewest"
	case Disconnect:
		return "Disconnect"
	case Conflate:
		return "Conflate"
	}
	return "Policy(?)"
}

// Subscription receives the events whose topic matches its pattern, in
// strictly increasing Seq. Its methods are safe for concurrent use.
type Subscription[T any] struct {
	bus        *Bus[T]
	guard      *sync.Mutex // guards the queue: its topic's shard, or the bus's wide lock
	pattern    string
	policy     Policy
	buffer     uint64 // live events that may wait unread
	recovered  bool
	missAfter  uint64 // Missing, when not recovered
	missBefore uint64

	// ch holds the queued events the reader can take: replayed ones first,
	// then live ones. Its capacity is buffer + the number replayed, so a send
	// never blocks. Only the Bus sends and closes, under its lock.
	ch chan Event[T]

	// Guarded by guard:
	tail     *tailQueue[T] // DropOldest, Conflate: live events not yet in ch
	liveSent uint64        // live events ever sent to ch
	skip     uint64        // losses to report in the next event queued (DropNewest)
	last     uint64        // Seq of the newest event queued
	floor    uint64        // shared log: live events up to it are the subscriber's already (see Subscribe)
	behind   bool          // Block on a shared log: new events wait in the history
	feeding  bool          // on the bus's feed list
	ended    bool
	// credit, without a tail: how many live events can still be sent
	// before the channel's length must be read again (see roomy).
	credit uint64

	feed       atomic.Bool   // the tail or the history holds events for ch: Next tops up
	done       chan struct{} // closed when the subscription ends
	err        atomic.Pointer[error]
	dropped    atomic.Uint64
	superseded atomic.Uint64

	// waiters counts publishers waiting for room; Next wakes one through room.
	waiters atomic.Int32
	room    chan struct{}
}

// lossyFront reports whether p drops queued events from the front, which
// needs the tail queue.
func lossyFront(p Policy) bool { return p == DropOldest || p == Conflate }

// C returns the channel the events arrive on. It is closed when the
// subscription ends; Err then says why. Events queued before an end by
// Bus.Close or Disconnect are still received first.
func (s *Subscription[T]) C() <-chan Event[T] { return s.ch }

// Next returns the next event; once the subscription has ended and its queue
// is drained, the reason it ended (see Err); or ctx.Err() if ctx ends first.
func (s *Subscription[T]) Next(ctx context.Context) (Event[T], error) {
	for {
		if s.feed.Load() { // events wait outside the channel: top it up first
			select {
			case ev, ok := <-s.ch:
				return s.received(ev, ok)
			default:
			}
			if s.bus.feedOne(s) {
				continue
			}
		}
		done := ctx.Done()
		if done == nil { // a ctx that never ends: a plain receive is cheaper
			ev, ok := <-s.ch
			return s.received(ev, ok)
		}
		select {
		case ev, ok := <-s.ch:
			return s.received(ev, ok)
		default:
		}
		select {
		case ev, ok := <-s.ch:
			return s.received(ev, ok)
		case <-done:
			return Event[T]{}, ctx.Err()
		}
	}
}

func (s *Subscription[T]) received(ev Event[T], ok bool) (Event[T], error) {
	if !ok {
		return Event[T]{}, s.Err()
	}
	s.passRoom()
	return ev, nil
}

// passRoom wakes one publisher waiting for room, if any: the reader calls it
// after taking an event, and a woken publisher that still finds room after
// its own event calls it in turn, so that a reader that took several events
// wakes as many publishers, one at a time.
func (s *Subscription[T]) passRoom() {
	if s.waiters.Load() > 0 {
		select {
		case s.room <- struct{}{}:
		default:
		}
	}
}

// Close ends the subscription with ErrSubscriptionClosed and closes C.
// Events still queued may be discarded. A Publish waiting only for this
// subscription goes on. Close is idempotent and never blocks on a publisher.
func (s *Subscription[T]) Close() error {
	b := s.bus
	b.lockAll()
	defer b.unlockAll()
	if !s.ended {
		b.end(s, ErrSubscriptionClosed)
	}
	return nil
}

// Err returns nil while the subscription is live, then why it ended:
// ErrClosed, ErrSubscriptionClosed or ErrSlowConsumer.
func (s *Subscription[T]) Err() error {
	if p := s.err.Load(); p != nil {
		return *p
	}
	return nil
}

// Recovered reports whether every event the replay option asked for was
// still retained when the subscription started. It is true without a replay
// option.
func (s *Subscription[T]) Recovered() bool { return s.recovered }

// Missing says which events the replay could not give when Recovered is
// false: only matching events with after < Seq < before can be missing, none
// outside that range. after is at least the position the option asked from
// (the seq of After; 0 for the others) and before at most Seq()+1 at
// subscribe time. It returns (0, 0) when Recovered is true.
func (s *Subscription[T]) Missing() (after, before uint64) {
	return s.missAfter, s.missBefore
}

// Dropped returns how many events this subscriber lost to DropOldest,
// DropNewest and, when nothing of the topic was queued, Conflate.
func (s *Subscription[T]) Dropped() uint64 { return s.dropped.Load() }

// Superseded returns how many queued events Conflate replaced with a newer
// event of the same topic.
func (s *Subscription[T]) Superseded() uint64 { return s.superseded.Load() }

// Pending returns how many events are queued for this subscription and not
// yet read (replayed ones included): its lag.
func (s *Subscription[T]) Pending() int {
	s.guard.Lock()
	defer s.guard.Unlock()
	n := len(s.ch)
	if s.tail != nil {
		n += s.tail.n
	}
	return n
}

// Pattern returns the pattern the subscription was made with.
func (s *Subscription[T]) Pattern() string { return s.pattern }

// liveQueued returns how many live events wait unread. The channel is FIFO
// and replayed events went in first, so the unread ones in it are the newest
// len(ch) sent, of which at most liveSent are live. Called under s.guard.
func (s *Subscription[T]) liveQueued() uint64 {
	n := min(uint64(len(s.ch)), s.liveSent)
	if s.tail != nil {
		n += uint64(s.tail.n)
	}
	return n
}

// full reports whether a Block subscriber has no room. Called under s.guard.
func (s *Subscription[T]) full() bool {
	return s.policy == Block && !s.roomy()
}

// roomy reports whether a live event can be queued within the buffer, for a
// subscription without a tail. The reader takes events without the lock, so
// the room only grows between two looks at the channel: what was free at
// the last look, less what was sent since (credit), is free now. Only when
// that runs out is the channel's length read again, so that a publish does
// not touch the cache line the reader is working on for every event.
// Called under s.guard.
func (s *Subscription[T]) roomy() bool {
	if s.credit == 0 {
		s.credit = s.buffer - min(s.liveQueued(), s.buffer)
	}
	return s.credit > 0
}

// outcome is what delivering one event to one subscription did.
type outcome struct {
	queued             bool
	dropped, displaced uint64 // displaced: superseded by Conflate
	slow               bool   // Disconnect: the subscription must end
	behind             bool   // Block on a shared log: the history must refill it
	feed               bool   // the tail holds events the reader cannot reach alone
}

// deliver queues a live event under the subscriber's policy. Called under
// s.guard, with room in a Block subscriber unless the bus is on a shared log.
func (s *Subscription[T]) deliver(ev *Event[T]) outcome {
	if s.floor > 0 {
		if ev.Seq <= s.floor {
			return outcome{}
		}
		s.floor = 0
	}
	if s.tail != nil {
		return s.deliverFront(*ev)
	}
	if s.behind {
		return outcome{} // it waits in the history, refilled in order
	}
	if !s.roomy() {
		switch s.policy {
		case DropNewest:
			s.skip++
			s.dropped.Add(1)
			return outcome{dropped: 1}
		case Disconnect:
			return outcome{slow: true}
		case Block: // only on a shared log: publishers did not wait
			s.behind = true
			return outcome{behind: true}
		}
	}
	if s.skip > 0 {
		e := *ev
		e.Skipped, s.skip = s.skip, 0
		s.send(&e)
		return outcome{queued: true}
	}
	s.send(ev)
	return outcome{queued: true}
}

// plain reports whether the next live event goes straight into the channel
// with nothing to decide: no tail, not behind, no loss to report, and room
// known. deliver does the same in that case. Called under s.guard.
func (s *Subscription[T]) plain() bool {
	return s.tail == nil && !s.behind && s.skip == 0 && s.credit > 0 && s.floor == 0
}

// send puts a live event into the channel, which has room for it (roomy
// said so).
func (s *Subscription[T]) send(ev *Event[T]) {
	s.ch <- *ev
	s.liveSent++
	if s.credit > 0 { // it is, roomy said so; tested so that a slip cannot wrap it around
		s.credit--
	}
	s.last = ev.Seq
}

// deliverFront queues a live event for DropOldest or Conflate. At most one
// live event is in the channel (then the only event there): it can still be
// taken back whole, and the events behind it stay changeable in the tail.
func (s *Subscription[T]) deliverFront(ev Event[T]) outcome {
	var out outcome
	if s.liveQueued() >= s.buffer {
		out = s.makeRoom(&ev)
	}
	out.queued = true
	s.last = ev.Seq
	if s.tail.n == 0 && len(s.ch) == 0 {
		s.tail.sentTopic = ev.Topic
		s.ch <- ev
		s.liveSent++
		return out
	}
	s.tail.push(ev)
	s.topUp()
	out.feed = s.tail.n > 0
	return out
}

// makeRoom removes one queued live event for the new event ev: under
// Conflate the oldest of ev's topic, else (or with none of it queued) the
// oldest. Its Skipped, plus itself, go to the event queued after it.
func (s *Subscription[T]) makeRoom(ev *Event[T]) outcome {
	if s.policy == Conflate {
		if v, next, ok := s.takeOldestOf(ev); ok {
			next.Skipped += v.Skipped + 1
			s.superseded.Add(1)
			return outcome{displaced: 1}
		}
		if s.liveQueued() < s.buffer {
			return outcome{} // the reader took one meanwhile: there is room
		}
	}
	v, next, ok := s.takeOldest(ev)
	if !ok {
		return outcome{} // the reader took one meanwhile: there is room
	}
	next.Skipped += v.Skipped + 1
	s.dropped.Add(1)
	return outcome{dropped: 1}
}

// inChannel reports whether a live event is in the channel. Called under
// s.guard; for DropOldest and Conflate only.
func (s *Subscription[T]) inChannel() bool { return min(uint64(len(s.ch)), s.liveSent) > 0 }

// steal takes the live event in the channel back, unless the reader took it
// first.
func (s *Subscription[T]) steal() (Event[T], bool) {
	select {
	case v := <-s.ch:
		return v, true
	default:
		return Event[T]{}, false
	}
}

// takeOldest removes the oldest queued live event and returns it with the
// event now after it (the tail's oldest, or ev).
func (s *Subscription[T]) takeOldest(ev *Event[T]) (Event[T], *Event[T], bool) {
	if s.inChannel() {
		if v, ok := s.steal(); ok {
			return v, s.successor(ev), true
		}
		return Event[T]{}, nil, false
	}
	if s.tail.n == 0 {
		return Event[T]{}, nil, false
	}
	v := s.tail.pop()
	return v, s.successor(ev), true
}

// takeOldestOf removes the oldest queued live event of ev's topic, if any.
func (s *Subscription[T]) takeOldestOf(ev *Event[T]) (Event[T], *Event[T], bool) {
	if s.inChannel() && s.chTopic() == ev.Topic {
		if v, ok := s.steal(); ok {
			return v, s.successor(ev), true
		}
		return Event[T]{}, nil, false // taken by the reader: room now
	}
	i := s.tail.oldestOf(ev.Topic)
	if i == none {
		return Event[T]{}, nil, false
	}
	next := s.tail.after(i)
	if next == nil {
		next = ev
	}
	return s.tail.remove(i), next, true
}

// chTopic is the topic of the live event in the channel: the tail's last
// popped one, remembered when it was sent.
func (s *Subscription[T]) chTopic() string { return s.tail.sentTopic }

// successor is the event after the queue's front: the tail's oldest, or ev.
func (s *Subscription[T]) successor(ev *Event[T]) *Event[T] {
	if s.tail.n > 0 {
		return s.tail.front()
	}
	return ev
}

// topUp moves the tail's oldest event into the channel once the reader has
// emptied it. Called under s.guard. It reports whether it moved one.
func (s *Subscription[T]) topUp() bool {
	if s.tail.n == 0 || len(s.ch) > 0 {
		return false
	}
	ev := s.tail.pop()
	s.tail.sentTopic = ev.Topic
	s.ch <- ev
	s.liveSent++
	return true
}

// flushTail moves every event of the tail into the channel (it has room for
// all of them): the subscription is ending and what it queued stays
// readable. Called under s.guard.
func (s *Subscription[T]) flushTail() {
	for s.tail != nil && s.tail.n > 0 {
		s.ch <- s.tail.pop()
	}
}
