package bus

import (
	"context"
	"sync/atomic"
)

// Policy chooses what Publish does for a subscription whose buffer is full.
type Policy int

const (
	// Block makes Publish wait, bounded by its ctx, until every matching
	// Block subscriber has room. A goroutine that publishes, from its own
	// receive loop, to a topic that the same Block subscription matches can
	// wait on itself: give such loops another policy or a bounded ctx.
	Block Policy = iota
	// DropOldest discards the oldest queued event to make room. Counted in
	// Dropped.
	DropOldest
	// DropNewest does not queue the new event for this subscriber. Counted
	// in Dropped.
	DropNewest
	// Disconnect ends the subscription with ErrSlowConsumer. The owner can
	// resubscribe with After(last seen Seq) to get what it missed.
	Disconnect
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
	}
	return "Policy(?)"
}

// Subscription receives the events whose topic matches its pattern, in
// strictly increasing Seq. Its methods are safe for concurrent use.
type Subscription[T any] struct {
	bus       *Bus[T]
	pattern   string
	policy    Policy
	buffer    uint64 // live events that may wait unread
	recovered bool

	// ch is the queue itself: replayed events first, then live ones. Its
	// capacity is buffer + the number replayed, so a send never blocks. Only
	// the Bus sends and closes, under its lock.
	ch chan Event[T]

	liveSent uint64        // live events ever sent to ch; guarded by bus.mu
	ended    bool          // guarded by bus.mu
	done     chan struct{} // closed when the subscription ends
	err      atomic.Pointer[error]
	dropped  atomic.Uint64

	// waiters counts publishers waiting for room; Next wakes one through room.
	waiters atomic.Int32
	room    chan struct{}
}

// C returns the channel the events arrive on. It is closed when the
// subscription ends; Err then says why. Events queued before an end by
// Bus.Close or Disconnect are still received first.
func (s *Subscription[T]) C() <-chan Event[T] { return s.ch }

// Next returns the next event; once the subscription has ended and its queue
// is drained, the reason it ended (see Err); or ctx.Err() if ctx ends first.
func (s *Subscription[T]) Next(ctx context.Context) (Event[T], error) {
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
	b.mu.Lock()
	defer b.mu.Unlock()
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

// Dropped returns how many events this subscriber lost to DropOldest or
// DropNewest.
func (s *Subscription[T]) Dropped() uint64 { return s.dropped.Load() }

// Pattern returns the pattern the subscription was made with.
func (s *Subscription[T]) Pattern() string { return s.pattern }

// liveQueued returns how many live events wait unread. The channel is FIFO
// and replayed events went in first, so the unread ones are the newest
// len(ch) sent, of which at most liveSent are live. Called under bus.mu.
func (s *Subscription[T]) liveQueued() uint64 {
	return min(uint64(len(s.ch)), s.liveSent)
}

// full reports whether a Block subscriber has no room. Called under bus.mu.
func (s *Subscription[T]) full() bool {
	return s.policy == Block && s.liveQueued() >= s.buffer
}

// deliver queues a live event under the subscriber's policy. It returns
// whether the event was queued and how many events were dropped. A
// Disconnect subscriber that is full reports slow. Called under bus.mu.
func (s *Subscription[T]) deliver(ev Event[T]) (queued bool, dropped uint64, slow bool) {
	if s.liveQueued() >= s.buffer {
		switch s.policy {
		case DropNewest:
			s.dropped.Add(1)
			return false, 1, false
		case Disconnect:
			return false, 0, true
		case DropOldest:
			dropped = s.dropOldest()
		}
	}
	select {
	case s.ch <- ev:
		s.liveSent++
		return true, dropped, false
	default: // cannot happen: the capacity covers replay + buffer
		s.dropped.Add(1)
		return false, dropped + 1, false
	}
}

// dropOldest discards queued events from the front until a live one fits.
// Replayed events still unread are older than any live event, so they go
// first.
func (s *Subscription[T]) dropOldest() (n uint64) {
	for s.liveQueued() >= s.buffer && len(s.ch) > 0 {
		select {
		case <-s.ch:
			n++
		default: // the reader emptied it meanwhile
		}
	}
	s.dropped.Add(n)
	return n
}
