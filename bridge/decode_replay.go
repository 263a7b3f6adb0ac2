package bridge

import (
	"math"
	"time"
	"unicode/utf8"

	bus "github.com/whalesong/bus"
)

// The limit of a history request (PROTOCOL.md, "history").
const (
	defaultPageLimit = 50
	maxPageLimit     = 1000
)

// intent is a replay option that a sub frame can fall back to when its
// resume cannot be complete: exactly one of last, latest and since.
type intent struct {
	last   *int64
	latest bool
	since  *time.Time
}

// wireFallback is a sub frame's "fallback" as encoding/json reads it.
type wireFallback struct {
	Last   *int64 `json:"last"`
	Latest *bool  `json:"latest"`
	Since  text   `json:"since"`
}

// option returns the bus replay option the intent stands for.
func (in *intent) option() bus.SubscribeOption {
	switch {
	case in.latest:
		return bus.Latest()
	case in.last != nil:
		return bus.Last(clampLast(*in.last))
	default:
		return bus.Since(*in.since)
	}
}

// clampLast turns a wire "last" (>= 0, checked) into the bus's int: a last
// larger than anything a bus can retain replays everything retained.
func clampLast(n int64) int { return int(min(n, math.MaxInt32)) }

// checkFallback reads a sub frame's fallback: only with after, and exactly
// one of {"last":n} (n >= 0), {"latest":true} and {"since":"<RFC 3339>"}.
func checkFallback(f *clientFrame, w *wireFallback) *protoError {
	if w == nil {
		return nil
	}
	if f.After == nil {
		return newProtoError(codeBadFrame, f, "sub: fallback needs after (it applies when a resume cannot be complete)")
	}
	in := &intent{latest: w.Latest != nil && *w.Latest}
	n := 0
	if in.latest {
		n++
	}
	if w.Last != nil {
		n++
		if *w.Last < 0 {
			return newProtoError(codeBadFrame, f, "sub: fallback.last must be >= 0")
		}
		in.last = w.Last
	}
	switch {
	case w.Since.notString || (w.Since.set && !utf8.ValidString(w.Since.s)):
		return newProtoError(codeBadFrame, f, "sub: fallback.since must be a string of UTF-8")
	case w.Since.set:
		n++
		t, err := time.Parse(time.RFC3339Nano, w.Since.s)
		if err != nil {
			return newProtoError(codeBadFrame, f, "sub: fallback.since must be an RFC 3339 time, not %q", clip(w.Since.s))
		}
		in.since = &t
	}
	if n != 1 {
		return newProtoError(codeBadFrame, f, `sub: fallback must be one of {"last":n}, {"latest":true}, {"since":"<time>"}`)
	}
	f.Fallback = in
	return nil
}

// checkHistory reads a history frame: an id, before (a seq >= 1) and limit
// (1 to maxPageLimit, default defaultPageLimit), both optional. The pattern
// is checked by the op itself, with the bus grammar.
func checkHistory(f *clientFrame, w *wireFrame) *protoError {
	if pe := checkIDs(f, false); pe != nil {
		return pe
	}
	if w.Before != nil {
		if *w.Before == 0 {
			return newProtoError(codeBadFrame, f, "history: before must be a seq >= 1")
		}
		f.Before = *w.Before
	}
	f.Limit = defaultPageLimit
	if w.Limit != nil {
		if *w.Limit < 1 || *w.Limit > maxPageLimit {
			return newProtoError(codeBadFrame, f, "history: limit must be 1 to %d, not %d", maxPageLimit, *w.Limit)
		}
		f.Limit = int(*w.Limit)
	}
	return nil
}
