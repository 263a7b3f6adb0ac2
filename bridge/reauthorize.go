package bridge

// Reauthorize runs WithAuthorize again for every live subscription of the
// connections whose identity match accepts, as a new subscribe of its
// pattern, and ends those it now refuses; it returns how many it ended.
// The client gets an error frame with the subscription's sub and no id,
// code forbidden (internal if the authorizer panicked), and no event of
// that subscription after it; the connection and its other subscriptions go
// on. The JS client emits "error" with code forbidden and the pattern.
//
// Call it after the change is visible to WithAuthorize (a user left a
// team, a role was revoked). match and WithAuthorize run on the caller's
// goroutine, with no lock of the bridge held. A subscription whose
// subscribe is still being answered when Reauthorize looks at its
// connection (its WithAuthorize call may have run before the change) is
// checked again by the connection's read loop as soon as it is answered,
// and ended the same way if refused; it is not counted in the result. A
// nil match checks none. Reauthorize is safe to call at any time,
// concurrently with anything, Close included.
func (br *Bridge[T]) Reauthorize(match func(identity any) bool) int {
	if match == nil {
		return 0
	}
	n := 0
	for _, s := range br.live() {
		if match(s.ident) {
			n += s.reauthorize()
		}
	}
	return n
}

// reauthorize checks the session's live subscriptions and ends the
// refused ones.
func (s *session[T]) reauthorize() int {
	n := 0
	for _, cs := range s.liveSubs() {
		pattern := cs.att.fan.pattern
		f := &clientFrame{Op: "sub", Sub: cs.id} // names the sub, no request
		if pe := s.br.cfg.authorizeFrame(s.ident, Subscribe, pattern, f); pe != nil && s.revoke(cs, pe) {
			s.logRevoked(cs.id, pattern, pe)
			n++
		}
	}
	return n
}

// The chores Reauthorize hands to a session's read loop.
const (
	choreReap    = 1 << iota // an attachment lost its last subscription: detach it
	choreRecheck             // a subscription was being answered: check it once it is
)

// liveSubs returns the session's subscriptions that are answered and live.
// A subscription still being answered (pending) is left to the read loop,
// which answers it: the chore is set under mu, so the read loop, which
// makes it live under mu too, sees the chore once it has.
func (s *session[T]) liveSubs() []*clientSub[T] {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead {
		return nil
	}
	out := make([]*clientSub[T], 0, len(s.subs))
	for _, cs := range s.subs {
		if cs.pending {
			s.chores.Or(choreRecheck)
			continue
		}
		out = append(out, cs)
	}
	return out
}

// doChores does what Reauthorize handed over. Read loop only.
func (s *session[T]) doChores() {
	if s.chores.And(^uint32(choreRecheck))&choreRecheck != 0 {
		s.reauthorize() // may hand over a reap, or (still pending) a recheck
	}
	if s.chores.And(^uint32(choreReap))&choreReap != 0 {
		s.reap()
	}
}

// revoke ends cs with the error pe, unless the client unsubscribed it (or
// the connection ended) meanwhile; it reports whether it did. Under one
// lock cs leaves its attachment, so that no event is queued for it any
// more, its queued entries are skipped, and the error frame is queued:
// nothing of cs follows the error. Detaching an attachment left empty
// touches the read loop's map of attachments, so it is handed over: the
// read loop reaps it at the connection's next frame (the JS client pings
// every 25 s), or at its end. Until then the fanout delivers to no
// subscription of this session.
func (s *session[T]) revoke(cs *clientSub[T], pe *protoError) bool {
	frame := appendError(newFrame(), pe)
	s.mu.Lock()
	if s.dead || cs.closed || s.subs[cs.id] != cs {
		s.mu.Unlock()
		putBuf(frame)
		return false
	}
	emptied := s.removeSubLocked(cs)
	st := s.sendLocked(frame)
	s.mu.Unlock()
	if emptied {
		s.chores.Or(choreReap)
	}
	s.br.stats.rejected[pe.code].Add(1)
	s.br.stats.revoked.Add(1)
	s.act(st)
	return true
}

// reap detaches the attachments that Reauthorize left without a
// subscription. Read loop only: it alone changes atts, and it alone adds
// subscriptions, so an attachment found empty stays empty.
func (s *session[T]) reap() {
	var empty []*attachment[T]
	s.mu.Lock()
	for _, a := range s.atts {
		if len(a.subs) == 0 {
			empty = append(empty, a)
		}
	}
	s.mu.Unlock()
	for _, a := range empty {
		s.detach(a)
	}
}
