package bridge

import (
	"strings"
	"unicode/utf8"
)

// maxCloseReason is the most a close frame's reason can carry: a control
// frame's payload is at most 125 bytes, two of them the code (RFC 6455).
const maxCloseReason = 123

// Kick closes every connection whose identity match accepts with close
// code 4003 and reason (made valid UTF-8 and clipped to the 123 bytes a
// close frame carries), and returns how many it closed. The client does not
// reconnect by itself: the JS client emits "error" with code kicked and the
// reason, and goes to state "closed" until reconnect() is called.
//
// match runs once per open connection, on the caller's goroutine, with no
// lock of the bridge held; a nil match closes none. A connection still
// being authenticated when Kick runs is not among them: to keep a user out,
// make WithAuthenticate refuse them first, then Kick. Kick is safe to call
// at any time, concurrently with anything, Close included (then it closes
// nothing).
func (br *Bridge[T]) Kick(match func(identity any) bool, reason string) int {
	if match == nil {
		return 0
	}
	reason = closeReason(reason)
	n := 0
	for _, s := range br.live() {
		if match(s.ident) && s.kick(reason) {
			n++
		}
	}
	return n
}

// kick closes the connection with 4003 and reason, unless it is already
// ending; it reports whether this call closed it.
func (s *session[T]) kick(reason string) bool {
	s.mu.Lock()
	st := s.dieWithLocked(endKicked, reason)
	s.mu.Unlock()
	if st.end == noEnd {
		return false
	}
	s.br.stats.kicked.Add(1)
	s.logKicked(reason)
	s.act(st)
	return true
}

// live returns the sessions of the registry now.
func (br *Bridge[T]) live() []*session[T] {
	br.mu.Lock()
	defer br.mu.Unlock()
	return br.liveLocked()
}

// closeReason makes s fit a close frame: valid UTF-8 (RFC 6455 requires
// it; a browser fails the connection otherwise), at most maxCloseReason
// bytes, cut at a character boundary.
func closeReason(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= maxCloseReason {
		return s
	}
	i := maxCloseReason
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}
