package bridge

import (
	"context"
	"errors"
	"fmt"
	"slices"

	bus "github.com/whalesong/bus"
	"golang.org/x/time/rate"
)

// handle runs one client frame, on the connection's read loop.
func (s *session[T]) handle(data []byte) {
	s.br.stats.framesIn.Add(1)
	if s.chores.Load() != 0 {
		s.doChores()
	}
	if int64(len(data)) > s.br.cfg.maxMessageSize {
		s.reject(newProtoError(codeTooLarge, salvageIDs(data), "frame of %d bytes exceeds %d", len(data), s.br.cfg.maxMessageSize))
		return
	}
	f, pe := decodeFrame(data)
	if pe == nil {
		switch f.Op {
		case "sub":
			pe = s.subscribe(f)
		case "unsub":
			pe = s.unsubscribe(f)
		case "pub":
			pe = s.publish(f)
		case "history":
			pe = s.history(f)
		case "ping":
			s.send(appendPong(newFrame(), f.ID))
		}
	}
	if pe != nil {
		s.reject(pe)
	}
	if s.chores.Load() != 0 { // Reauthorize met the sub this frame made
		s.doChores()
	}
}

// handleBinary answers a binary frame, which the protocol does not use.
func (s *session[T]) handleBinary([]byte) {
	s.br.stats.framesIn.Add(1)
	if s.chores.Load() != 0 {
		s.doChores()
	}
	s.reject(newProtoError(codeBadFrame, nil, "binary frames are not part of the protocol"))
}

// reject answers with an error frame; codes that smell of abuse spend the
// bad-frame budget, and a spent budget closes the connection with 4001.
func (s *session[T]) reject(pe *protoError) {
	s.br.stats.rejected[pe.code].Add(1)
	s.logReject(pe)
	s.send(appendError(newFrame(), pe))
	if !pe.strike {
		return
	}
	if s.badLim == nil {
		cfg := &s.br.cfg
		s.badLim = rate.NewLimiter(perSecond(float64(cfg.badFrames)/cfg.badFramePeriod.Seconds()), cfg.badFrames)
	}
	if s.badLim.Allow() {
		return
	}
	s.end(endAbuse)
}

// subscribe attaches a client subscription to the shared fanout of its
// pattern, holding live events, then queues the ack, the replay and the held
// events in that order, skipping every seq at or below the last one queued.
func (s *session[T]) subscribe(f *clientFrame) *protoError {
	br := s.br
	if err := bus.CheckPattern(f.Pattern); err != nil {
		return newProtoError(codeInvalidPattern, f, "%v", err)
	}
	if pe := br.cfg.authorizeFrame(s.ident, Subscribe, f.Pattern, f); pe != nil {
		return pe
	}
	s.mu.Lock()
	_, dup := s.subs[f.Sub]
	n := len(s.subs)
	s.mu.Unlock()
	switch {
	case dup:
		return newProtoError(codeDuplicateSubscription, f, "subscription %q exists", f.Sub)
	case n >= br.cfg.maxSubs:
		return newProtoError(codeTooManySubscriptions, f, "at most %d subscriptions per connection", br.cfg.maxSubs)
	}
	if f.After != nil {
		// On a shared log this node may be behind the position (another
		// node served it): wait for it rather than answer it as lost.
		if done, pe := s.awaitFor(f, f.After.Epoch, *f.After.Seq); done {
			return pe
		}
	}
	a, pe := s.attachment(f)
	if pe != nil {
		return pe
	}
	cs := &clientSub[T]{id: f.Sub, att: a, pending: true}
	if f.Conflate {
		cs.conf = newConflation()
	}
	s.mu.Lock()
	a.subs = append(a.subs, cs)
	if s.subs == nil {
		s.subs = make(map[string]*clientSub[T])
	}
	s.subs[f.Sub] = cs
	s.mu.Unlock()
	br.stats.subscriptions.Add(1)

	// Every event with a seq above s0 reaches cs through the fanout: the bus
	// had committed nothing newer when Seq was read, and the fanout had
	// started to deliver nothing newer when cs joined it.
	epoch := br.bus.Epoch()
	s0 := max(br.bus.Seq(), a.fan.lastSeen.Load())
	st, err := s.replay(f, epoch, s0)
	if err != nil {
		s.dropSub(cs)
		return busError(f, err)
	}
	if br.bus.Epoch() != epoch {
		// The shared log was recreated meanwhile: the fanout ends too, and
		// the client resumes in the new epoch.
		s.dropSub(cs)
		s.end(endResumeNeeded)
		return nil
	}
	s.goLive(f, cs, epoch, &st)
	return nil
}

// attachment returns the session's attachment to the fanout of f.Pattern,
// starting one if needed. A fanout lost meanwhile (see fanout.lost) takes
// no attachment: a new one is acquired, a few times at most.
func (s *session[T]) attachment(f *clientFrame) (*attachment[T], *protoError) {
	if a := s.atts[f.Pattern]; a != nil {
		return a, nil
	}
	for range maxAcquire {
		fan, err := s.br.acquire(f.Pattern)
		if err != nil {
			return nil, busError(f, err)
		}
		a := &attachment[T]{sess: s, fan: fan}
		if !fan.attach(a) {
			s.br.release(fan)
			continue
		}
		if s.atts == nil {
			s.atts = make(map[string]*attachment[T]) // idle connections hold no map
		}
		s.atts[f.Pattern] = a
		return a, nil
	}
	return nil, newProtoError(codeUnavailable, f, "subscribe to %q: the bus keeps ending its subscriptions; retry later", clip(f.Pattern))
}

// maxAcquire bounds the fanouts a subscribe tries when they are lost as it
// attaches.
const maxAcquire = 3

// goLive queues the ack, then the replay, then the live events held since
// cs joined the fanout, and makes cs live, all under one lock so that no
// live event can slip in between.
func (s *session[T]) goLive(f *clientFrame, cs *clientSub[T], epoch string, start *subStart[T]) {
	start.events = trimThrough(start.events, start.from)
	ack := appendSubscribed(newFrame(), f.ID, f.Sub, epoch, start)
	cur := &replayCursor[T]{sub: cs, events: start.events}
	cur.encoded, cur.count = s.br.sampleReplay(start.events)
	s.mu.Lock()
	st := s.goLiveLocked(cs, ack, start.from, cur)
	s.mu.Unlock()
	s.act(st)
}

func (s *session[T]) goLiveLocked(cs *clientSub[T], ack []byte, from uint64, cur *replayCursor[T]) step {
	if s.dead {
		return step{}
	}
	cs.lastSent = from
	s.out.push(item[T]{frame: ack})
	if evs := cur.events; len(evs) > 0 {
		s.out.push(item[T]{rep: cur})
		cs.lastSent = evs[len(evs)-1].Seq
	}
	for _, se := range s.out.release(cs) {
		if se.seq <= cs.lastSent {
			continue
		}
		if cs.conf != nil {
			s.br.stats.superseded.Add(s.out.conflate(cs, se))
		} else {
			s.out.push(item[T]{ev: se, sub: cs})
		}
		cs.lastSent = se.seq
	}
	cs.pending = false
	return s.nextLocked()
}

func (s *session[T]) unsubscribe(f *clientFrame) *protoError {
	s.mu.Lock()
	cs := s.subs[f.Sub]
	if cs == nil {
		s.mu.Unlock()
		return newProtoError(codeUnknownSubscription, f, "no subscription %q", f.Sub)
	}
	emptied := s.removeSubLocked(cs)
	s.mu.Unlock()
	s.send(appendUnsubscribed(newFrame(), f.ID, f.Sub))
	if emptied {
		s.detach(cs.att)
	}
	return nil
}

// dropSub undoes a subscription that could not be completed.
func (s *session[T]) dropSub(cs *clientSub[T]) {
	s.mu.Lock()
	emptied := s.removeSubLocked(cs)
	s.mu.Unlock()
	if emptied {
		s.detach(cs.att)
	}
}

// removeSubLocked closes cs, so that its queued entries are skipped, and
// reports whether its attachment has no subscription left.
func (s *session[T]) removeSubLocked(cs *clientSub[T]) bool {
	cs.closed = true
	delete(s.subs, cs.id)
	s.out.release(cs)
	s.out.dropConflated(cs)
	a := cs.att
	a.subs = slices.DeleteFunc(a.subs, func(x *clientSub[T]) bool { return x == cs })
	s.br.stats.subscriptions.Add(-1)
	return len(a.subs) == 0
}

// detach leaves a fanout; the last session to leave closes it.
func (s *session[T]) detach(a *attachment[T]) {
	delete(s.atts, a.fan.pattern)
	a.fan.detach(a)
	s.br.release(a.fan)
}

// busIDPrefix is put before a client's publish id on the bus (PublishID),
// so that a browser cannot choose the id of a server-side publisher.
const busIDPrefix = "bridge:"

// publish checks, rate-limits and deduplicates a client publish, passes it
// through the publish hook, then publishes it and answers with its seq.
// The hook and the bus run inside the dedup window's first attempt, once
// per id; the bus deduplicates by id too (across nodes, on a shared log).
func (s *session[T]) publish(f *clientFrame) *protoError {
	br := s.br
	if err := bus.CheckTopic(f.Topic); err != nil {
		return newProtoError(codeInvalidTopic, f, "%v", err)
	}
	if pe := br.cfg.authorizeFrame(s.ident, Publish, f.Topic, f); pe != nil {
		return pe
	}
	if s.pubLim == nil {
		cfg := &br.cfg
		s.pubLim = rate.NewLimiter(perSecond(cfg.pubRate), cfg.pubBurst)
		s.floodLim = rate.NewLimiter(perSecond(floodFactor*cfg.pubRate), floodFactor*cfg.pubBurst)
	}
	flood := !s.floodLim.Allow()
	if !s.pubLim.Allow() {
		pe := newProtoError(codeRateLimited, f, "at most %g publishes per second (burst %d)", br.cfg.pubRate, br.cfg.pubBurst)
		pe.strike = flood
		return pe
	}
	var v T
	if err := br.unmarshal(f.Data, &v); err != nil {
		return newProtoError(codeBadFrame, f, "pub: data: %v", err)
	}
	ctx, cancel := context.WithTimeout(br.ctx, br.cfg.publishTimeout)
	defer cancel()
	seq, dup, err := br.dedup.Do(ctx, f.ID, f.Topic, func() (uint64, error) {
		out, err := br.runHook(s.ident, f.Topic, v)
		if err != nil {
			return 0, err
		}
		return br.bus.PublishID(ctx, busIDPrefix+f.ID, f.Topic, out)
	})
	if err != nil {
		return publishError(f, err)
	}
	if dup {
		br.stats.deduplicated.Add(1)
	} else {
		br.stats.published.Add(1)
	}
	s.send(appendPublished(newFrame(), f.ID, seq))
	return nil
}

// unmarshal decodes client data with the Codec; a missing data is null, a
// panicking Codec an error.
func (br *Bridge[T]) unmarshal(data []byte, v *T) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("codec panicked: %v", r)
		}
	}()
	if len(data) == 0 {
		data = []byte("null")
	}
	return br.cfg.codec.Unmarshal(data, v)
}

// perSecond is a limiter's rate: r (>= 0, not NaN) events per second, or
// no limit when r overflows to +Inf (rate.Inf is a finite number, and the
// limiter's arithmetic on +Inf relies on NaN comparisons).
func perSecond(r float64) rate.Limit {
	if r >= float64(rate.Inf) {
		return rate.Inf
	}
	return rate.Limit(r)
}

// publishError maps why a publish failed to its code: the hook's refusal
// is forbidden with its text, its panic internal; the rest is the bus's.
func publishError(f *clientFrame, err error) *protoError {
	var hr *hookRefusal
	switch {
	case errors.As(err, &hr):
		msg := hr.Error()
		if msg == "" {
			msg = "publish refused"
		}
		return newProtoError(codeForbidden, f, "%s", msg)
	case errors.Is(err, errHookPanicked):
		return newProtoError(codeInternal, f, "%v", err)
	}
	return busError(f, err)
}

// busError maps an error of the bus (or of waiting for it) to its code.
func busError(f *clientFrame, err error) *protoError {
	switch {
	case errors.Is(err, bus.ErrInvalidTopic):
		return newProtoError(codeInvalidTopic, f, "%v", err)
	case errors.Is(err, bus.ErrInvalidPattern):
		return newProtoError(codeInvalidPattern, f, "%v", err)
	case errors.Is(err, bus.ErrIDReused):
		return newProtoError(codeBadFrame, f, "pub: id %q: %v", f.ID, err)
	case errors.Is(err, bus.ErrClosed), errors.Is(err, bus.ErrUncertain),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return newProtoError(codeUnavailable, f, "%v", err)
	}
	return newProtoError(codeInternal, f, "%v", err)
}
