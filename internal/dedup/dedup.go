// Package dedup is the publish-id window that Bus.PublishID and the
// bridge share: it remembers the outcome of recent publishes by id, so that
// a retry is published once and answered with the same seq.
package dedup

import (
	"context"
	"sync"
	"time"
)

// Window remembers the outcome of recent publishes by their id, so that a
// retry (after a timeout, a reconnect, on any connection) is published once
// and answered with the same seq. It holds at most size ids, each for at most
// age; a duplicate that arrives while the first attempt is still running
// waits for it. A failed attempt is forgotten so that a retry tries again.
type Window struct {
	size   int
	age    time.Duration
	reused error

	mu    sync.Mutex
	byID  map[string]*entry
	order []*entry // oldest first, from head
	head  int
}

type entry struct {
	id, topic string
	at        time.Time
	done      chan struct{} // closed once seq and err are set
	seq       uint64
	err       error
}

// New makes a window of at most size ids, each kept at most age; reused is
// the error Do returns for an id seen before with another topic.
func New(size int, age time.Duration, reused error) *Window {
	return &Window{size: size, age: age, reused: reused, byID: make(map[string]*entry)}
}

// Do runs publish once per id within the window. It returns the seq, whether
// the answer came from an earlier attempt, and the error. Waiting for a
// concurrent first attempt ends with ctx.
func (d *Window) Do(ctx context.Context, id, topic string, publish func() (uint64, error)) (uint64, bool, error) {
	d.mu.Lock()
	now := time.Now()
	d.evictLocked(now, 0)
	if e := d.byID[id]; e != nil {
		d.mu.Unlock()
		if e.topic != topic {
			return 0, true, d.reused
		}
		select {
		case <-e.done:
			return e.seq, true, e.err
		case <-ctx.Done():
			return 0, true, ctx.Err()
		}
	}
	d.evictLocked(now, 1)
	e := &entry{id: id, topic: topic, at: now, done: make(chan struct{})}
	d.byID[id] = e
	d.order = append(d.order, e)
	d.mu.Unlock()

	seq, err := publish()

	d.mu.Lock()
	e.seq, e.err = seq, err
	if err != nil && d.byID[id] == e {
		delete(d.byID, id)
	}
	d.mu.Unlock()
	close(e.done)
	return seq, false, err
}

// evictLocked forgets ids older than age, and the oldest ones until room
// more fit within size.
func (d *Window) evictLocked(now time.Time, room int) {
	for d.head < len(d.order) {
		e := d.order[d.head]
		if d.len()+room <= d.size && now.Sub(e.at) < d.age {
			break
		}
		if d.byID[e.id] == e {
			delete(d.byID, e.id)
		}
		d.order[d.head] = nil
		d.head++
	}
	if d.head > 0 && d.head >= len(d.order)/2 {
		n := copy(d.order, d.order[d.head:])
		clear(d.order[n:])
		d.order = d.order[:n]
		d.head = 0
	}
}

// len is the number of ids in the order queue (failed ones included until
// they reach its head).
func (d *Window) len() int { return len(d.order) - d.head }

// Remembered returns how many ids the window holds.
func (d *Window) Remembered() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.evictLocked(time.Now(), 0)
	return len(d.byID)
}
