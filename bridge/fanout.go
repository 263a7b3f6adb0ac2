package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"

	bus "github.com/whalesong/bus"
)

// sharedEvent is one bus event encoded once for every client: the tail of
// an events-frame entry, `"topic":..,"seq":..,"time":..,"data":..}`. Each
// session only prefixes its own subscription ids.
type sharedEvent struct {
	seq   uint64
	topic string // the key of a conflation
	tail  []byte
}

// fanout is the one bus subscription that all sessions subscribing to the
// same pattern share. Its goroutine reads the bus, encodes each event once
// and hands it to every attached session, never waiting on any of them:
// delivering is appending to a session's bounded queue under that session's
// lock. It is refcounted by attachments (one per session that uses the
// pattern) and closed by the last one to leave.
type fanout[T any] struct {
	br      *Bridge[T]
	pattern string
	sub     *bus.Subscription[T]
	refs    int // guarded by br.fanMu

	mu   sync.Mutex     // serialises changes of atts
	atts attachments[T] // read without lock (see attachments)
	dead bool           // mu: its bus subscription was lost; nothing attaches any more

	// lastSeen is the seq of the newest event the goroutine has started to
	// deliver. A subscription attached after it was read still gets every
	// event with a greater seq (see session.subscribe).
	lastSeen atomic.Uint64
}

// attachment ties one session to one fanout; subs are that session's client
// subscriptions on the pattern, guarded by the session's lock.
type attachment[T any] struct {
	sess *session[T]
	fan  *fanout[T]
	subs []*clientSub[T]
	gone atomic.Bool // detached: the fanout skips it (see attachments)
}

// acquire returns the fanout of pattern, starting it (one bus subscription,
// one goroutine) if none runs, and counts one more user.
func (br *Bridge[T]) acquire(pattern string) (*fanout[T], error) {
	br.fanMu.Lock()
	defer br.fanMu.Unlock()
	if f := br.fans[pattern]; f != nil {
		f.refs++
		return f, nil
	}
	sub, err := br.bus.Subscribe(pattern, bus.WithBuffer(fanoutBuffer))
	if err != nil {
		return nil, err
	}
	f := &fanout[T]{br: br, pattern: pattern, sub: sub, refs: 1}
	br.fans[pattern] = f
	br.fanWG.Add(1)
	go f.run()
	return f, nil
}

// release drops one user of f; the last one closes its bus subscription,
// which ends its goroutine (Bridge.Close waits for it).
func (br *Bridge[T]) release(f *fanout[T]) {
	br.fanMu.Lock()
	defer br.fanMu.Unlock()
	if f.refs--; f.refs > 0 {
		return
	}
	if br.fans[f.pattern] == f { // a lost one was replaced already
		delete(br.fans, f.pattern)
	}
	_ = f.sub.Close()
}

// attach adds a, unless the fanout was lost (see lost): then it reports
// false and the caller acquires a new one.
func (f *fanout[T]) attach(a *attachment[T]) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dead {
		return false
	}
	f.atts.add(a)
	return true
}

// detach removes a: from its return, the fanout's next event skips it (one
// being handed out meanwhile may still reach it, which its session
// ignores: the subscriptions it held are closed).
func (f *fanout[T]) detach(a *attachment[T]) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.atts.remove(a)
}

// run reads the bus subscription until it ends. A bus that closed closes
// every session of the bridge with going-away; a subscription the bus ended
// as slow (on a shared log: this node missed events of the log, or the log
// was recreated) is lost (see lost).
//
// Events that are already waiting when it reads (it fell behind the
// publishers) are taken together, up to maxFanBatch, and handed to each
// session at once: one lock per session rather than one per event. Nothing
// waits for more: a lone event goes on at once.
func (f *fanout[T]) run() {
	defer f.br.fanWG.Done()
	batch := make([]*sharedEvent, 0, maxFanBatch)
	for {
		ev, err := f.sub.Next(context.Background())
		for err == nil {
			batch = append(batch, f.br.encodeEvent(ev, nil))
			if len(batch) == maxFanBatch {
				break
			}
			ev, err = f.sub.Next(noWait) // only what is already there
		}
		if len(batch) > 0 {
			f.deliver(batch)
			clear(batch)
			batch = batch[:0]
		}
		switch {
		case err == nil, errors.Is(err, context.Canceled): // noWait found nothing more
		case errors.Is(err, bus.ErrClosed):
			f.br.busClosed()
			return
		case errors.Is(err, bus.ErrSlowConsumer):
			f.lost()
			return
		default:
			return
		}
	}
}

// deliver hands batch to every attached session.
func (f *fanout[T]) deliver(batch []*sharedEvent) {
	f.lastSeen.Store(batch[len(batch)-1].seq)
	for _, a := range f.atts.load() {
		if !a.gone.Load() {
			a.sess.deliver(a, batch...)
		}
	}
}

// maxFanBatch bounds the events a fanout hands to its sessions at once.
const maxFanBatch = 64

// noWait is an ended context: Next with it returns an event already
// queued, or context.Canceled at once.
var noWait = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// lost retires a fanout whose bus subscription ended with ErrSlowConsumer:
// the events it did not get cannot be told apart from those it did, so
// every session attached to it is cut off with 4000 and resumes from its
// last seq, where the bus says honestly what is missing (or that the epoch
// is new). New subscriptions of the pattern get a new fanout.
func (f *fanout[T]) lost() {
	br := f.br
	br.fanMu.Lock()
	if br.fans[f.pattern] == f {
		delete(br.fans, f.pattern)
	}
	br.fanMu.Unlock()
	f.mu.Lock()
	f.dead = true
	atts := f.atts.load()
	f.mu.Unlock()
	for _, a := range atts {
		if !a.gone.Load() {
			a.sess.end(endResumeNeeded)
		}
	}
}

// encodeEvent builds the shared tail of ev once: the Codec runs once per
// event, whatever the number of clients. It appends to buf.
func (br *Bridge[T]) encodeEvent(ev bus.Event[T], buf []byte) *sharedEvent {
	return &sharedEvent{seq: ev.Seq, topic: ev.Topic, tail: br.appendTail(buf, ev)}
}

// appendTail appends the events-frame entry tail of ev. A Codec that fails,
// panics or produces invalid JSON yields "data":null and an "error" string,
// so that the client's seq accounting stays exact and nothing is dropped
// silently.
func (br *Bridge[T]) appendTail(b []byte, ev bus.Event[T]) []byte {
	data, encErr := br.marshal(ev.Data)
	if encErr != "" {
		br.stats.codecErrors.Add(1)
	}
	return appendEventTail(b, ev.Topic, ev.Seq, ev.Time, data, encErr)
}

func (br *Bridge[T]) marshal(v T) (data []byte, encErr string) {
	defer func() {
		if r := recover(); r != nil {
			data, encErr = nil, "codec panicked"
		}
	}()
	data, err := br.cfg.codec.Marshal(v)
	switch {
	case err != nil:
		return nil, "codec: " + err.Error()
	case br.cfg.customCodec && !json.Valid(data):
		return nil, "codec: output is not JSON"
	}
	return data, ""
}
