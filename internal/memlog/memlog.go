// Package memlog is an in-memory bus.Log for tests: several buses on one
// Log behave like several processes sharing a stream, with the faults a
// real one has (an outage of one follower, lost acks, deleted events, a
// recreated stream) injected on demand. It keeps every event it was given
// (deleted ones as holes), so it is for tests, not for production.
package memlog

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	bus "github.com/whalesong/bus"
)

// ErrDown is what Append returns while the log is down.
var ErrDown = errors.New("memlog: down")

// Log is a shared, ordered log in memory. Its zero value is not usable; make
// one with New.
type Log[T any] struct {
	perTopic int // events kept per topic (like MaxMsgsPerSubject); 0: all

	mu      sync.Mutex
	epoch   string
	entries []entry[T] // Seq i+1 at index i
	ids     map[string]uint64
	changed chan struct{} // closed and replaced on every change
	down    bool          // Append fails and followers see nothing
	loseAck int           // the next appends store but answer ErrUncertain
	failAt  int           // the next appends fail without storing
	clock   func() time.Time
}

type entry[T any] struct {
	ev      bus.Event[T]
	id      string
	deleted bool
	lost    bool // stored, but its data cannot be used (handed over as Lost)
}

// New makes a log that keeps the newest perTopic events of each topic (0:
// all of them).
func New[T any](perTopic int) *Log[T] {
	return &Log[T]{
		perTopic: perTopic,
		epoch:    uuid.NewString(),
		ids:      make(map[string]uint64),
		changed:  make(chan struct{}),
		clock:    time.Now,
	}
}

// Epoch returns the log's current epoch.
func (l *Log[T]) Epoch() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.epoch
}

// Head returns the Seq of the newest event appended in this epoch.
func (l *Log[T]) Head() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return uint64(len(l.entries))
}

// Append stores an event (see bus.Log).
func (l *Log[T]) Append(ctx context.Context, id, topic string, data T) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.down:
		return 0, ErrDown
	case l.failAt > 0:
		l.failAt--
		return 0, errors.New("memlog: refused")
	}
	if id == "" {
		id = "gen." + uuid.NewString()
	} else if seq, ok := l.ids[id]; ok {
		return seq, nil
	}
	seq := uint64(len(l.entries) + 1)
	ev := bus.Event[T]{Seq: seq, Topic: topic, Time: l.clock(), Data: data}
	l.entries = append(l.entries, entry[T]{ev: ev, id: id})
	l.ids[id] = seq
	l.trim(topic)
	l.notify()
	if l.loseAck > 0 {
		l.loseAck--
		return 0, fmt.Errorf("memlog: ack lost: %w", bus.ErrUncertain)
	}
	return seq, nil
}

// trim deletes the oldest events of topic beyond perTopic.
func (l *Log[T]) trim(topic string) {
	if l.perTopic <= 0 {
		return
	}
	n := 0
	for i := len(l.entries) - 1; i >= 0; i-- {
		e := &l.entries[i]
		if e.deleted || e.ev.Topic != topic {
			continue
		}
		if n++; n > l.perTopic {
			e.deleted = true
		}
	}
}

func (l *Log[T]) notify() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// Follow hands the log's records to apply (see bus.Log). While the log is
// down it hands nothing; when it is back it starts again with a mark, as a
// follower that reconnected does.
func (l *Log[T]) Follow(ctx context.Context, from bus.Position, apply func(bus.Record[T])) error {
	return l.follow(ctx, from, apply, nil)
}

func (l *Log[T]) follow(ctx context.Context, from bus.Position, apply func(bus.Record[T]), v *View[T]) error {
	cursor, epoch := from.Seq, from.Epoch
	for {
		var vchanged chan struct{}
		vdown := false
		if v != nil {
			_, vdown, vchanged = v.state()
		}
		l.mu.Lock()
		down, changed := l.down || vdown, l.changed
		var recs []bus.Record[T]
		if !down {
			if epoch != l.epoch {
				epoch, cursor = l.epoch, 0
			}
			head := uint64(len(l.entries))
			recs = append(recs, bus.Record[T]{Epoch: epoch, Head: head})
			for _, e := range l.entries[min(cursor, head):] {
				if !e.deleted {
					recs = append(recs, bus.Record[T]{Epoch: epoch, Event: e.ev, Lost: e.lost})
				}
			}
			recs = append(recs, bus.Record[T]{Epoch: epoch, Head: head, Caught: true})
			cursor = head
		}
		l.mu.Unlock()
		for _, r := range recs {
			apply(r)
		}
		select {
		case <-changed:
		case <-vchanged:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// A View is the log as one process sees it: it can lose its connection
// alone (SetDown), while other views go on.
type View[T any] struct {
	l       *Log[T]
	mu      sync.Mutex
	down    bool // guarded by mu
	stalled bool // guarded by mu
	changed chan struct{}
}

// View returns a new view of the log; give each bus its own.
func (l *Log[T]) View() *View[T] { return &View[T]{l: l, changed: make(chan struct{})} }

// state says whether the view is down, whether its follower hands
// nothing (down or stalled), and what changes when either does.
func (v *View[T]) state() (down, blind bool, changed chan struct{}) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.down, v.down || v.stalled, v.changed
}

// SetDown cuts this view off (true: its appends fail, its follower sees
// nothing) or connects it again.
func (v *View[T]) SetDown(down bool) { v.change(func() { v.down = down }) }

// Stall makes this view's follower hand nothing (true), as a follower
// whose consumer lags does, while its appends and Epoch still reach the
// log; false lets it catch up.
func (v *View[T]) Stall(stalled bool) { v.change(func() { v.stalled = stalled }) }

// change applies set under mu and tells the view's follower.
func (v *View[T]) change(set func()) {
	v.mu.Lock()
	defer v.mu.Unlock()
	set()
	close(v.changed)
	v.changed = make(chan struct{})
}

// Epoch asks the log for its epoch now, as natsbus's log asks the stream
// (bus.LogEpoch): ErrDown while the view is down.
func (v *View[T]) Epoch(ctx context.Context) (string, error) {
	if down, _, _ := v.state(); down {
		return "", ErrDown
	}
	return v.l.Epoch(), nil
}

// Append stores an event through this view (see bus.Log).
func (v *View[T]) Append(ctx context.Context, id, topic string, data T) (uint64, error) {
	if down, _, _ := v.state(); down {
		return 0, ErrDown
	}
	return v.l.Append(ctx, id, topic, data)
}

// Follow hands the log's records to apply as this view sees them.
func (v *View[T]) Follow(ctx context.Context, from bus.Position, apply func(bus.Record[T])) error {
	return v.l.follow(ctx, from, apply, v)
}

// SetDown takes the log down (true: appends fail, followers see nothing)
// or brings it back.
func (l *Log[T]) SetDown(down bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.down = down
	l.notify()
}

// LoseAcks makes the next n appends store their event but answer with an
// error wrapping bus.ErrUncertain, as when an ack is lost.
func (l *Log[T]) LoseAcks(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.loseAck = n
}

// FailAppends makes the next n appends fail without storing anything.
func (l *Log[T]) FailAppends(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failAt = n
}

// Poison stores an event on topic whose data cannot be used, as one a
// codec cannot decode: followers get it as a Lost record.
func (l *Log[T]) Poison(topic string) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	seq := uint64(len(l.entries) + 1)
	l.entries = append(l.entries, entry[T]{ev: bus.Event[T]{Seq: seq, Topic: topic, Time: l.clock()}, lost: true})
	l.notify()
	return seq
}

// Delete deletes the event at seq, leaving a hole.
func (l *Log[T]) Delete(seq uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if seq >= 1 && seq <= uint64(len(l.entries)) {
		l.entries[seq-1].deleted = true
	}
	l.notify()
}

// Recreate starts a new epoch with nothing in it, as a deleted and
// recreated stream.
func (l *Log[T]) Recreate() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.epoch = uuid.NewString()
	l.entries = nil
	l.ids = make(map[string]uint64)
	l.notify()
}

// Retained returns the events the log still holds, oldest first.
func (l *Log[T]) Retained() []bus.Event[T] {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []bus.Event[T]
	for _, e := range l.entries {
		if !e.deleted {
			out = append(out, e.ev)
		}
	}
	return out
}
