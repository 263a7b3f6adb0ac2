package bus

import (
	"runtime"
	"slices"
	"time"
)

// The feeder tops up subscriptions whose next events wait outside their
// channel: the tail of a DropOldest or Conflate subscription (its channel
// holds one live event at a time) and, on a shared Log, a full Block
// subscription refilled from the history. A reader that uses Next tops up
// by itself; one that ranges over C cannot signal, so one goroutine per bus,
// started the first time a subscription needs it and ended by Close, looks
// after them: at once while readers keep taking events, then after naps
// that grow to a millisecond.

// needFeed puts s on the feed list. Called under s.guard.
func (b *Bus[T]) needFeed(s *Subscription[T]) {
	s.feed.Store(true)
	if s.feeding || s.ended {
		return
	}
	s.feeding = true
	b.feedMu.Lock()
	b.feeds = append(b.feeds, s)
	start := !b.feeder && !b.closed
	b.feeder = b.feeder || start
	b.feedMu.Unlock()
	if start {
		b.wg.Add(1)
		go b.feedLoop()
	}
	select {
	case b.feedWake <- struct{}{}:
	default:
	}
}

// feedOne tops s up for Next; it reports whether an event moved to C.
func (b *Bus[T]) feedOne(s *Subscription[T]) bool {
	s.guard.Lock()
	defer s.guard.Unlock()
	return b.topUpLocked(s)
}

// topUpLocked moves what waits for s toward its channel, and clears s.feed
// once nothing does. Called under s.guard.
func (b *Bus[T]) topUpLocked(s *Subscription[T]) bool {
	if s.ended {
		return false
	}
	moved := false
	switch {
	case s.tail != nil:
		moved = s.topUp()
		if s.tail.n == 0 {
			s.feed.Store(false)
		}
	case s.behind:
		moved = b.refill(s)
	default:
		s.feed.Store(false)
	}
	return moved
}

// feedRound tops up every subscription on the feed list, dropping those
// that need it no more.
func (b *Bus[T]) feedRound() (moved, idle bool) {
	b.feedMu.Lock()
	list := slices.Clone(b.feeds)
	b.feedMu.Unlock()
	var gone []*Subscription[T]
	for _, s := range list {
		s.guard.Lock()
		if b.topUpLocked(s) {
			moved = true
		}
		if !s.feed.Load() || s.ended {
			s.feeding = false
			gone = append(gone, s)
		}
		s.guard.Unlock()
	}
	b.feedMu.Lock()
	defer b.feedMu.Unlock()
	if len(gone) > 0 {
		b.feeds = slices.DeleteFunc(b.feeds, func(s *Subscription[T]) bool { return slices.Contains(gone, s) })
	}
	return moved, len(b.feeds) == 0
}

func (b *Bus[T]) feedLoop() {
	defer b.wg.Done()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	nap, spins := waitFirstNap, 0
	for {
		moved, idle := b.feedRound()
		switch {
		case idle:
			nap, spins = waitFirstNap, 0
			select {
			case <-b.feedWake:
				continue
			case <-b.done:
				return
			}
		case moved && spins < waitSpins:
			spins++
			runtime.Gosched() // a reader that keeps taking events gets the next at once
			continue
		case moved:
			nap, spins = waitFirstNap, 0
		default:
			nap, spins = min(2*nap, waitMaxNap), 0
		}
		t.Reset(nap)
		select {
		case <-t.C:
		case <-b.feedWake:
			t.Stop() // since Go 1.23 a stopped timer delivers nothing stale
		case <-b.done:
			return
		}
	}
}
