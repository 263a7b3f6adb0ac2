package bridge

import (
	"context"
	"errors"
	"strconv"
	"time"

	bus "github.com/whalesong/bus"
)

// resumeWait bounds how long a request waits for a bus on a shared log that
// is behind the position it names (another node served it); past it the
// connection is closed with 1013 (PROTOCOL.md, "subscribed").
const resumeWait = 2 * time.Second

// The reasons of a subscribed answer with recovered false.
const (
	reasonReset   = "reset"   // another sequence space (epoch), or a position it never reached
	reasonEvicted = "evicted" // the history no longer reaches back far enough
)

// subStart is where a new subscription starts, as its subscribed answer says
// (PROTOCOL.md, "subscribed"): every matching event with seq > from,
// replayed ones first. When recovered is false, reason says why and only
// matching events with missAfter < seq < missBefore can be missing.
type subStart[T any] struct {
	from                  uint64
	recovered             bool
	reason                string
	missAfter, missBefore uint64
	events                []bus.Event[T] // the replay: seq > from, increasing
}

// until is the seq of the last replayed event, 0 when none.
func (st *subStart[T]) until() uint64 {
	if len(st.events) == 0 {
		return 0
	}
	return st.events[len(st.events)-1].Seq
}

// replay asks the bus for what the sub frame selects and says where the
// subscription starts. epoch is the bus's epoch and s0 a seq such that every
// matching event after it reaches the subscription live (see subscribe).
func (s *session[T]) replay(f *clientFrame, epoch string, s0 uint64) (subStart[T], error) {
	switch {
	case f.After == nil && f.Last == nil && f.Since == nil && !f.Latest:
		return subStart[T]{from: s0, recovered: true}, nil // live only
	case f.After == nil:
		return s.replayOption(f, f.own().option(), s0)
	case f.After.Epoch != "" && f.After.Epoch != epoch:
		return s.replayReset(f, s0)
	case *f.After.Seq > s0:
		// A position this epoch never reached (a bus on a shared log that is
		// behind has waited for it before): nothing of it can be served.
		return subStart[T]{from: s0, reason: reasonReset, missAfter: *f.After.Seq, missBefore: s0 + 1}, nil
	}
	return s.replayAfter(f, s0)
}

// own returns the replay option of a sub frame without after.
func (f *clientFrame) own() *intent {
	switch {
	case f.Latest:
		return &intent{latest: true}
	case f.Last != nil:
		return &intent{last: f.Last}
	}
	return &intent{since: &f.since}
}

// replayOption replays what opt (last, since, latest, or After(0): all)
// selects: from is the seq before the first replayed event, or s0 when none
// is.
func (s *session[T]) replayOption(f *clientFrame, opt bus.SubscribeOption, s0 uint64) (subStart[T], error) {
	r, err := s.br.bus.ReplayDetail(f.Pattern, opt)
	if err != nil {
		return subStart[T]{}, err
	}
	st := subStart[T]{from: s0, recovered: r.Recovered, events: r.Events}
	if len(r.Events) > 0 {
		st.from = r.Events[0].Seq - 1
	}
	if !r.Recovered {
		st.reason, st.missAfter, st.missBefore = reasonEvicted, r.After, r.Before
	}
	return st, nil
}

// replayReset serves a position of another epoch: the fallback, or
// everything retained. What came after the position in the old epoch, and
// before the first event delivered in this one, may be missing.
func (s *session[T]) replayReset(f *clientFrame, s0 uint64) (subStart[T], error) {
	opt := bus.After(0)
	if f.Fallback != nil {
		opt = f.Fallback.option()
	}
	st, err := s.replayOption(f, opt, s0)
	st.recovered, st.reason = false, reasonReset
	st.missAfter, st.missBefore = *f.After.Seq, st.from+1
	return st, err
}

// replayAfter resumes after a position of this epoch. When the resume
// cannot be complete and the frame has a fallback, the fallback's replay
// (without what the client saw already) is served instead; what it leaves
// out between the position and from counts as missing too.
func (s *session[T]) replayAfter(f *clientFrame, s0 uint64) (subStart[T], error) {
	after := *f.After.Seq
	r, err := s.br.bus.ReplayDetail(f.Pattern, bus.After(after))
	if err != nil {
		return subStart[T]{}, err
	}
	if r.Recovered {
		return subStart[T]{from: after, recovered: true, events: r.Events}, nil
	}
	if f.Fallback == nil {
		return subStart[T]{from: after, reason: reasonEvicted, missAfter: r.After, missBefore: r.Before, events: r.Events}, nil
	}
	st, err := s.replayOption(f, f.Fallback.option(), s0)
	if err != nil {
		return subStart[T]{}, err
	}
	st.from = max(st.from, after)
	st.events = trimThrough(st.events, st.from)
	st.recovered, st.reason = false, reasonEvicted
	st.missAfter, st.missBefore = after, max(r.Before, st.from+1)
	return st, nil
}

// trimThrough drops the events with seq <= seq from the front of evs.
func trimThrough[T any](evs []bus.Event[T], seq uint64) []bus.Event[T] {
	for len(evs) > 0 && evs[0].Seq <= seq {
		evs = evs[1:]
	}
	return evs
}

// awaited is the outcome of waiting for a bus on a shared log to reach a
// client's position.
type awaited uint8

const (
	reached  awaited = iota // go on: the bus has it, or it never will in this epoch
	tooLate                 // not in time: close with 1013
	stopping                // the bridge is closing: answer nothing
	busGone                 // the bus closed
)

// awaitSeq waits, on a bus served by a shared log, until the bus has
// reached seq in epoch ("" = the current one), at most resumeWait. A bus
// that is not shared has nothing to wait for. A client from another epoch
// may have seen a log this node has not followed into yet (the stream was
// recreated a moment ago): the node asks the log, and when it is behind,
// first waits to be in the log's epoch, so that it never answers from a
// stream that is gone.
func (s *session[T]) awaitSeq(epoch string, seq uint64) awaited {
	b := s.br.bus
	if !b.Shared() || (epoch == b.Epoch() || epoch == "") && seq <= b.Seq() {
		return reached
	}
	ctx, cancel := context.WithTimeout(s.br.ctx, resumeWait)
	defer cancel()
	if epoch != "" && epoch != b.Epoch() {
		if a := s.catchUpEpoch(ctx); a != reached || epoch != b.Epoch() {
			return a // or reached in another epoch: answered as a reset
		}
	}
	return s.awaited(b.WaitSeq(ctx, seq))
}

// awaitFor is awaitSeq for frame f: done reports that f's handling ends
// here, the connection closing with 1013 (too late), the bridge stopping,
// or with pe to answer (the bus is closed).
func (s *session[T]) awaitFor(f *clientFrame, epoch string, seq uint64) (done bool, pe *protoError) {
	switch s.awaitSeq(epoch, seq) {
	case tooLate:
		s.end(endTryLater)
		return true, nil
	case stopping:
		return true, nil
	case busGone:
		return true, busError(f, bus.ErrClosed)
	}
	return false, nil
}

// catchUpEpoch waits until the bus is in the epoch its log is in now.
func (s *session[T]) catchUpEpoch(ctx context.Context) awaited {
	b := s.br.bus
	now, err := b.LogEpoch(ctx)
	if err == nil && now != b.Epoch() {
		err = b.WaitEpoch(ctx, now)
	}
	if err != nil && !errors.Is(err, bus.ErrClosed) && s.br.ctx.Err() == nil {
		return tooLate // cannot tell which stream the client saw: try later
	}
	return s.awaited(err)
}

// awaited says how a wait of the bus ended.
func (s *session[T]) awaited(err error) awaited {
	switch {
	case err == nil, errors.Is(err, bus.ErrSlowConsumer): // reached, or a new epoch: answered as a reset
		return reached
	case errors.Is(err, bus.ErrClosed):
		return busGone
	case s.br.ctx.Err() != nil:
		return stopping
	}
	return tooLate
}

// awaitEpoch waits, on a bus served by a shared log that has not heard from
// the log yet, until it knows its epoch, so that hello names it; noEnd once
// it does, else how the connection must end.
func (s *session[T]) awaitEpoch() ending {
	b := s.br.bus
	if !b.Shared() || b.Epoch() != "" {
		return noEnd
	}
	ctx, cancel := context.WithTimeout(s.br.ctx, resumeWait)
	defer cancel()
	err := b.WaitSeq(ctx, 0)
	switch {
	case err == nil:
		return noEnd
	case errors.Is(err, bus.ErrClosed):
		return endBusClosed
	case s.br.ctx.Err() != nil:
		return endGoingAway
	}
	return endTryLater
}

// appendSubscribed appends the subscribed answer of PROTOCOL.md.
func appendSubscribed[T any](b []byte, id, sub, epoch string, st *subStart[T]) []byte {
	b = append(b, `{"op":"subscribed","id":`...)
	b = appendString(b, id)
	b = append(b, `,"sub":`...)
	b = appendString(b, sub)
	b = append(b, `,"epoch":`...)
	b = appendString(b, epoch)
	b = append(b, `,"recovered":`...)
	b = strconv.AppendBool(b, st.recovered)
	if !st.recovered {
		b = append(b, `,"reason":`...)
		b = appendString(b, st.reason)
		b = append(b, `,"missing":{"after":`...)
		b = strconv.AppendUint(b, st.missAfter, 10)
		b = append(b, `,"before":`...)
		b = strconv.AppendUint(b, st.missBefore, 10)
		b = append(b, '}')
	}
	b = append(b, `,"from":`...)
	b = strconv.AppendUint(b, st.from, 10)
	b = append(b, `,"replayed":`...)
	b = strconv.AppendInt(b, int64(len(st.events)), 10)
	b = append(b, `,"until":`...)
	b = strconv.AppendUint(b, st.until(), 10)
	return append(b, '}')
}
