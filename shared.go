package bus

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// shared is the state of a bus that follows a shared Log. Guarded by the
// bus's mu except where noted.
type shared[T any] struct {
	log    Log[T]
	ctx    context.Context // ends with Close; set once by follow
	cancel context.CancelFunc

	loading   bool   // catching up to the head of the epoch's first mark
	announced bool   // a mark of this epoch was applied
	startHead uint64 // the Head of the epoch's first mark
	head      uint64 // the newest Head the log announced
	err       error  // why Follow last returned early; nil while it runs
}

// followPause is how long the bus waits before calling Follow again after
// it returned early with an error.
const followPause = time.Second

// applyWait bounds how long Publish on a shared log waits for this bus to
// apply the event it stored (read your own write), whatever its ctx.
const applyWait = 5 * time.Second

// errEpochChanged ends the subscriptions, and the WaitSeq calls, of an
// epoch that the log replaced.
var errEpochChanged = fmt.Errorf("%w: the log was recreated (a new epoch)", ErrSlowConsumer)

// errMissed ends the subscriptions of a bus that missed events of the log.
var errMissed = fmt.Errorf("%w: events of the shared log were missed", ErrSlowConsumer)

// follow starts the goroutine that applies the log's records.
func (b *Bus[T]) follow(l Log[T]) {
	ctx, cancel := context.WithCancel(context.Background())
	b.shared = &shared[T]{log: l, ctx: ctx, cancel: cancel, loading: true}
	b.wg.Add(1)
	go b.followLoop(ctx)
}

// followLoop calls Follow until Close, again after a pause when it returns
// early, from the last record applied.
func (b *Bus[T]) followLoop(ctx context.Context) {
	defer b.wg.Done()
	t := time.NewTimer(followPause)
	t.Stop()
	defer t.Stop()
	for {
		b.mu.Lock()
		from := Position{Epoch: b.Epoch(), Seq: b.hist.seq}
		b.mu.Unlock()
		err := b.shared.log.Follow(ctx, from, b.apply)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			err = errors.New("bus: Log.Follow returned before its context ended")
		}
		b.mu.Lock()
		b.shared.err = err
		b.mu.Unlock()
		t.Reset(followPause)
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// apply is the bus's side of Log.Follow: it applies one record.
func (b *Bus[T]) apply(rec Record[T]) {
	b.mu.Lock()
	defer b.mu.Unlock()
	sh := b.shared
	if b.closed {
		return
	}
	sh.err = nil
	if rec.Epoch != b.Epoch() {
		b.newEpoch(rec.Epoch)
	}
	if rec.Event.Seq == 0 {
		b.applyMark(rec)
		return
	}
	ev := rec.Event
	if ev.Seq <= b.hist.seq {
		return // handed over before: never twice
	}
	if sh.loading && sh.announced && ev.Seq > sh.startHead {
		// Follow hands over the log's backlog before anything newer, so
		// everything up to the first head has come: loading is over.
		b.applyMark(Record[T]{Epoch: rec.Epoch, Head: sh.startHead, Caught: true})
	}
	if ev.Seq > b.hist.seq+1 {
		b.skipped(b.hist.seq, ev.Seq, ev.Time)
	}
	r, err := b.route(ev.Topic)
	if err != nil || rec.Lost {
		if err == nil { // a topic of ours whose event cannot be delivered
			b.lostOn(ev, r)
		}
		b.hist.seq = ev.Seq // a topic no pattern can match: nobody missed it
		b.wakeWaits(nil)
		return
	}
	ev.Skipped = 0
	ev, r.log = b.hist.apply(r.log, ev)
	b.commit(ev, r)
}

// applyMark applies a record without an event: the log's head, and with
// Caught, that every event up to Head was handed over (those not were
// deleted).
func (b *Bus[T]) applyMark(rec Record[T]) {
	sh := b.shared
	sh.head = max(sh.head, rec.Head)
	if !sh.announced {
		sh.announced, sh.startHead = true, rec.Head
		b.wakeWaits(nil) // the epoch is known now
	}
	if !rec.Caught {
		return
	}
	if rec.Head > b.hist.seq {
		b.skipped(b.hist.seq, rec.Head+1, b.hist.last)
		b.hist.seq = rec.Head
		b.wakeWaits(nil)
	}
	if sh.loading {
		sh.loading = false
		b.hist.loaded()
	}
}

// skipped accounts for the Seqs after..before (exclusive) that the log
// skipped. While loading they are history the log evicted before this bus
// ran; after that, events this bus missed: every subscription ends, since
// any of them may have matched.
func (b *Bus[T]) skipped(after, before uint64, at time.Time) {
	if before <= after+1 {
		return
	}
	if b.shared.loading {
		b.hist.loadHole(after, before, at)
		return
	}
	b.hist.hole(after, before, at)
	for s := range b.subs {
		b.end(s, errMissed)
	}
}

// lostOn counts ev, which the log holds but cannot hand over, as lost on
// its topic, and ends the subscriptions it would have reached.
func (b *Bus[T]) lostOn(ev Event[T], r *route[T]) {
	if t := b.hist.lookup(ev.Topic); t != nil {
		t.lost.record(ev.Seq, ev.Time)
	} else {
		b.hist.lost.record(ev.Seq, ev.Time) // no record of the topic: bus-wide
	}
	for _, s := range r.subs {
		if !s.ended {
			b.end(s, errMissed)
		}
	}
}

// Health reports whether the bus is serving: always nil in-process; on a
// shared Log, nil while it follows the log, else the error Log.Follow last
// gave up with (the bus calls it again by itself), for a /health endpoint.
func (b *Bus[T]) Health() error {
	if b.shared == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.shared.err; err != nil {
		return fmt.Errorf("bus: following the shared log: %w", err)
	}
	return nil
}

// newEpoch starts over in the log's new epoch: the subscriptions and
// waiters of the old one end, its history is dropped.
func (b *Bus[T]) newEpoch(epoch string) {
	old := b.Epoch()
	b.epoch.Store(&epoch)
	if old == "" {
		return
	}
	for s := range b.subs {
		b.end(s, errEpochChanged)
	}
	b.wakeWaits(errEpochChanged)
	b.hist = newHistory[T](b.cfg.history, b.cfg.ttl, b.cfg.maxRetained)
	b.forgetRoutes()
	sh := b.shared
	sh.loading, sh.announced, sh.head, sh.startHead = true, false, 0, 0
}

// publishShared appends to the log, then waits (bounded) for this bus to
// apply the event, so that its own subscribers and History have it.
func (b *Bus[T]) publishShared(ctx context.Context, id, topic string, data T) (uint64, error) {
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return 0, fmt.Errorf("%w: publish to %s", ErrClosed, quoteClipped(topic))
	}
	if err := CheckTopic(topic); err != nil {
		return 0, err
	}
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(b.shared.ctx, cancel) // Close ends the append
	defer stop()
	seq, err := b.shared.log.Append(actx, id, topic, data)
	if err != nil {
		select {
		case <-b.done:
			return 0, fmt.Errorf("%w: publish to %s: %w", ErrClosed, quoteClipped(topic), err)
		default:
		}
		return 0, fmt.Errorf("publish to %s: %w", quoteClipped(topic), err)
	}
	wctx, wcancel := context.WithTimeout(ctx, applyWait)
	defer wcancel()
	_ = b.WaitSeq(wctx, seq) // the event is stored: its seq is the answer either way
	return seq, nil
}

// seqWait is a WaitSeq call waiting for the bus to reach seq.
type seqWait struct {
	seq uint64
	ch  chan error // buffered 1
}

// WaitSeq waits until the bus has reached seq (Seq() >= seq), ctx ends
// (ctx.Err()) or the bus closes (ErrClosed). On a shared Log a bus follows
// the log behind the process that published, and a client that saw seq on
// another bus can be served here once this one has it; there WaitSeq also
// waits until the bus has heard from the log (Epoch is set), so WaitSeq(ctx,
// 0) waits for that alone. An epoch change while waiting ends the wait with
// an error wrapping ErrSlowConsumer.
func (b *Bus[T]) WaitSeq(ctx context.Context, seq uint64) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	if b.reached(seq) {
		b.mu.Unlock()
		return nil
	}
	w := seqWait{seq: seq, ch: make(chan error, 1)}
	b.waits = append(b.waits, w)
	b.mu.Unlock()
	select {
	case err := <-w.ch:
		return err
	case <-ctx.Done():
		b.mu.Lock()
		for i, x := range b.waits {
			if x.ch == w.ch {
				b.waits = append(b.waits[:i], b.waits[i+1:]...)
				break
			}
		}
		b.mu.Unlock()
		select {
		case err := <-w.ch: // answered meanwhile
			return err
		default:
		}
		return ctx.Err()
	}
}

// reached reports whether the bus is at seq, and on a shared log has heard
// from it (knows its epoch). Called under b.mu.
func (b *Bus[T]) reached(seq uint64) bool {
	return b.hist.seq >= seq && (b.shared == nil || b.Epoch() != "")
}

// wakeWaits answers the WaitSeq calls that are due: with err all of them,
// else those whose seq the bus reached. Called under b.mu.
func (b *Bus[T]) wakeWaits(err error) {
	kept := b.waits[:0]
	for _, w := range b.waits {
		if err != nil || b.reached(w.seq) {
			w.ch <- err
			continue
		}
		kept = append(kept, w)
	}
	clear(b.waits[len(kept):])
	b.waits = kept
}

// refill queues, for a full Block subscription on a shared log, the events
// the history holds after the last one it got, as far as its buffer has
// room. It ends the subscription with ErrSlowConsumer when the history no
// longer holds them. It reports whether it queued any. Called under b.mu.
func (b *Bus[T]) refill(s *Subscription[T]) bool {
	room := int(s.buffer - min(s.liveQueued(), s.buffer))
	if room == 0 {
		return false
	}
	plan := b.hist.plan(s.pattern, replayFrom{kind: replayAfter, after: s.last}, time.Now())
	if plan.lost.seq > s.last {
		b.end(s, fmt.Errorf("%w: fell behind the history", ErrSlowConsumer))
		return false
	}
	n := plan.count
	plan.emit(room, func(ev *Event[T]) {
		e := *ev
		s.send(e)
		b.counts.delivered++
	})
	if n <= room {
		s.behind = false
		s.feed.Store(false)
	}
	return n > 0
}
