package bus

import (
	"runtime"
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

// needFeed puts s on the feed list. Called under b.mu.
func (b *Bus[T]) needFeed(s *Subscription[T]) {
	s.feed.Store(true)
	if s.feeding || s.ended {
		return
	}
	s.feeding = true
	b.feeds = append(b.feeds, s)
	if !b.feeder {
		b.feeder = true
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
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.topUpLocked(s)
}

// topUpLocked moves what waits for s toward its channel, and clears s.feed
// once nothing does. Called under b.mu.
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
// that need it no more. Called under b.mu.
func (b *Bus[T]) feedRound() (moved, idle bool) {
	kept := b.feeds[:0]
	for _, s := range b.feeds {
		if b.topUpLocked(s) {
			moved = true
		}
		if s.feed.Load() && !s.ended {
			kept = append(kept, s)
		} else {
			s.feeding = false
		}
	}
	clear(b.feeds[len(kept):])
	b.feeds = kept
	return moved, len(kept) == 0
}

func (b *Bus[T]) feedLoop() {
	defer b.wg.Done()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	nap, spins := waitFirstNap, 0
	for {
		b.mu.Lock()
		moved, idle := b.feedRound()
		b.mu.Unlock()
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
