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
		from := Position{Epoch: b.Epoch(), Seq: b.seq.Load()}
		err := b.shared.log.Follow(ctx, from, b.apply)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			err = errors.New("bus: Log.Follow returned before its context ended")
		}
		b.lockAll()
		b.shared.err = err
		b.unlockAll()
		t.Reset(followPause)
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// apply is the bus's side of Log.Follow: it applies one record. A bus on a
// log has one shard, whose lock guards every subscription's queue, so apply
// holds it alone (the wide lock guards nothing then).
func (b *Bus[T]) apply(rec Record[T]) {
	b.applyLocked(rec)
	b.afterCommit()
}

func (b *Bus[T]) applyLocked(rec Record[T]) {
	b.shards[0].mu.Lock()
	defer b.shards[0].mu.Unlock()
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
	h := b.shards[0].hist
	if ev.Seq <= h.seq {
		return // handed over before: never twice
	}
	if sh.loading && sh.announced && ev.Seq > sh.startHead {
		// Follow hands over the log's backlog before anything newer, so
		// everything up to the first head has come: loading is over.
		b.applyMark(Record[T]{Epoch: rec.Epoch, Head: sh.startHead, Caught: true})
	}
	if ev.Seq > h.seq+1 {
		b.skipped(h.seq, ev.Seq, ev.Time)
	}
	r, err := b.route(&b.shards[0], ev.Topic)
	if err != nil || rec.Lost {
		if err == nil { // a topic of ours whose event cannot be delivered
			b.lostOn(ev, r)
		}
		h.seq = ev.Seq // a topic no pattern can match: nobody missed it
		b.seq.Store(ev.Seq)
		return
	}
	ev.Skipped = 0
	r.log = h.apply(r.log, &ev)
	b.seq.Store(ev.Seq)
	b.commit(&b.shards[0], &ev, r)
}

// applyMark applies a record without an event: the log's head, and with
// Caught, that every event up to Head was handed over (those not were
// deleted).
func (b *Bus[T]) applyMark(rec Record[T]) {
	sh := b.shared
	sh.head = max(sh.head, rec.Head)
	if !sh.announced {
		sh.announced, sh.startHead = true, rec.Head // the epoch is known now
	}
	if !rec.Caught {
		return
	}
	h := b.shards[0].hist
	if rec.Head > h.seq {
		b.skipped(h.seq, rec.Head+1, h.last)
		h.seq = rec.Head
		b.seq.Store(rec.Head)
	}
	if sh.loading {
		sh.loading = false
		h.loaded()
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
	h := b.shards[0].hist
	if b.shared.loading {
		h.loadHole(after, before, at)
		return
	}
	h.hole(after, before, at)
	b.retireAll(errMissed)
}

// retireAll ends every live subscription with err. Called under the one
// shard of a bus on a log.
func (b *Bus[T]) retireAll(err error) {
	for s := range b.subs {
		if !s.ended {
			b.retire(s, err)
		}
	}
	b.reap()
}

// lostOn counts ev, which the log holds but cannot hand over, as lost on
// its topic, and ends the subscriptions it would have reached.
func (b *Bus[T]) lostOn(ev Event[T], r *route[T]) {
	h := b.shards[0].hist
	if t := h.lookup(ev.Topic); t != nil {
		t.lost.record(ev.Seq, ev.Time)
	} else {
		h.lost.record(ev.Seq, ev.Time) // no record of the topic: bus-wide
	}
	for _, s := range r.subs {
		if !s.ended {
			b.retire(s, errMissed)
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
	b.lockAll()
	defer b.unlockAll()
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
	b.retireAll(errEpochChanged)
	b.epochGen.Add(1) // WaitSeq callers of the old epoch end
	b.shards[0].hist = newHistory[T](b.cfg.history, b.cfg.ttl, b.cfg.maxRetained)
	b.seq.Store(0)
	b.forgetRoutes()
	sh := b.shared
	sh.loading, sh.announced, sh.head, sh.startHead = true, false, 0, 0
}

// publishShared appends to the log, then waits (bounded) for this bus to
// apply the event, so that its own subscribers and History have it.
func (b *Bus[T]) publishShared(ctx context.Context, id, topic string, data T) (uint64, error) {
	if b.isClosed() {
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

// seqWait is a WaitSeq call waiting for the bus to reach seq, or a
// WaitEpoch call waiting for it to be in epoch want.
type seqWait struct {
	seq      uint64
	epoch    uint64     // epochGen when it started
	forEpoch bool       // WaitEpoch: it waits for want, across epoch changes
	want     string     // WaitEpoch: the epoch waited for
	ch       chan error // buffered 1
}

// met reports whether the bus is where w waits for it to be.
func (b *Bus[T]) met(w *seqWait) bool {
	if w.forEpoch {
		return b.Epoch() == w.want
	}
	return b.reached(w.seq)
}

// WaitSeq waits until the bus has reached seq (Seq() >= seq), ctx ends
// (ctx.Err()) or the bus closes (ErrClosed). On a shared Log a bus follows
// the log behind the process that published, and a client that saw seq on
// another bus can be served here once this one has it; there WaitSeq also
// waits until the bus has heard from the log (Epoch is set), so WaitSeq(ctx,
// 0) waits for that alone. An epoch change while waiting ends the wait with
// an error wrapping ErrSlowConsumer.
func (b *Bus[T]) WaitSeq(ctx context.Context, seq uint64) error {
	return b.wait(ctx, seqWait{seq: seq})
}

// WaitEpoch waits until the bus is in epoch (Epoch() == epoch), ctx ends
// (ctx.Err()) or the bus closes (ErrClosed): on a shared Log, a bus that
// has not yet followed the log into a new epoch that a client already saw
// elsewhere (see LogEpoch) can serve it once it has.
func (b *Bus[T]) WaitEpoch(ctx context.Context, epoch string) error {
	return b.wait(ctx, seqWait{forEpoch: true, want: epoch})
}

// LogEpoch returns the epoch the shared log is in now, asked of the log
// itself when it can tell (a Log with an Epoch(ctx) method, as natsbus's
// has): a bus may still be in the previous one for a moment after the log
// was recreated. In-process, and for a log that cannot tell, it is Epoch().
func (b *Bus[T]) LogEpoch(ctx context.Context) (string, error) {
	if b.shared != nil {
		if l, ok := b.shared.log.(interface {
			Epoch(context.Context) (string, error)
		}); ok {
			return l.Epoch(ctx)
		}
	}
	return b.Epoch(), nil
}

func (b *Bus[T]) wait(ctx context.Context, w seqWait) error {
	b.waitMu.Lock()
	if b.isClosed() {
		b.waitMu.Unlock()
		return ErrClosed
	}
	// Counted as waiting before the bus is looked at: an apply stores its
	// seq before it reads the count (afterCommit), so either it sees this
	// wait and wakes it (under waitMu, once it is queued), or the check
	// below sees its seq. Counted after, the wake-up could fall between.
	b.waiting.Add(1)
	w.epoch = b.epochGen.Load()
	if b.met(&w) {
		b.waiting.Add(-1)
		b.waitMu.Unlock()
		return nil
	}
	w.ch = make(chan error, 1)
	b.waits = append(b.waits, w)
	b.waitMu.Unlock()
	select {
	case err := <-w.ch:
		return err
	case <-ctx.Done():
		b.waitMu.Lock()
		for i, x := range b.waits {
			if x.ch == w.ch {
				b.waits = append(b.waits[:i], b.waits[i+1:]...)
				b.waiting.Add(-1)
				break
			}
		}
		b.waitMu.Unlock()
		select {
		case err := <-w.ch: // answered meanwhile
			return err
		default:
		}
		return ctx.Err()
	}
}

// reached reports whether the bus is at seq, and on a shared log has heard
// from it (knows its epoch).
func (b *Bus[T]) reached(seq uint64) bool {
	return b.seq.Load() >= seq && (b.shared == nil || b.Epoch() != "")
}

// wakeWaits answers the WaitSeq calls that are due: with err all of them,
// else those whose seq the bus reached (or whose epoch is over).
func (b *Bus[T]) wakeWaits(err error) {
	b.waitMu.Lock()
	defer b.waitMu.Unlock()
	gen := b.epochGen.Load()
	kept := b.waits[:0]
	for _, w := range b.waits {
		switch {
		case err != nil:
			w.ch <- err
		case w.epoch != gen && !w.forEpoch:
			w.ch <- errEpochChanged
		case b.met(&w):
			w.ch <- nil
		default:
			kept = append(kept, w)
			continue
		}
		b.waiting.Add(-1)
	}
	clear(b.waits[len(kept):])
	b.waits = kept
}

// refill queues, for a full Block subscription on a shared log, the events
// the history holds after the last one it got, as far as its buffer has
// room. It ends the subscription with ErrSlowConsumer when the history no
// longer holds them. It reports whether it queued any. Called under the one
// shard's lock (s.guard) of a bus on a log.
func (b *Bus[T]) refill(s *Subscription[T]) bool {
	s.credit = s.buffer - min(s.liveQueued(), s.buffer) // all the room there is now
	room := int(s.credit)
	if room == 0 {
		return false
	}
	sh := &b.shards[0]
	plan := sh.hist.plan(s.pattern, replayFrom{kind: replayAfter, after: s.last}, time.Now())
	if plan.lost.seq > s.last {
		b.retire(s, fmt.Errorf("%w: fell behind the history", ErrSlowConsumer))
		return false
	}
	n := plan.count
	plan.emit(room, func(ev *Event[T]) {
		s.send(ev)
		sh.counts.delivered++
	})
	if n <= room {
		s.behind = false
		s.feed.Store(false)
	}
	return n > 0
}
