package bridge

import (
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"
)

// protocolVersion is the v of the hello frame.
const protocolVersion = 1

// maxIDLen bounds client-chosen request and subscription ids.
const maxIDLen = 64

// code is a machine-readable error code of an error frame (PROTOCOL.md).
type code uint8

const (
	codeBadFrame code = iota
	codeUnknownOp
	codeInvalidTopic
	codeInvalidPattern
	codeForbidden
	codeRateLimited
	codeTooLarge
	codeTooManySubscriptions
	codeDuplicateSubscription
	codeUnknownSubscription
	codeUnavailable
	codeInternal
	numCodes
)

var codeNames = [numCodes]string{
	codeBadFrame:              "bad_frame",
	codeUnknownOp:             "unknown_op",
	codeInvalidTopic:          "invalid_topic",
	codeInvalidPattern:        "invalid_pattern",
	codeForbidden:             "forbidden",
	codeRateLimited:           "rate_limited",
	codeTooLarge:              "too_large",
	codeTooManySubscriptions:  "too_many_subscriptions",
	codeDuplicateSubscription: "duplicate_subscription",
	codeUnknownSubscription:   "unknown_subscription",
	codeUnavailable:           "unavailable",
	codeInternal:              "internal",
}

func (c code) String() string { return codeNames[c] }

// strike reports whether the code spends the connection's bad-frame budget.
// rate_limited does only when the client publishes far above its rate (see
// session.publish): a client flushing its offline queue is not abusive.
func (c code) strike() bool {
	switch c {
	case codeBadFrame, codeUnknownOp, codeTooLarge:
		return true
	}
	return false
}

// protoError is a refusal on the wire: an error frame answering request id
// (and subscription sub, for sub and unsub).
type protoError struct {
	code    code
	id, sub string
	msg     string
	strike  bool // spends the bad-frame budget
}

func (e *protoError) Error() string { return e.code.String() + ": " + e.msg }

func newProtoError(c code, f *clientFrame, format string, args ...any) *protoError {
	e := &protoError{code: c, msg: fmt.Sprintf(format, args...), strike: c.strike()}
	if f != nil {
		e.id = f.ID
		if f.Op == "sub" || f.Op == "unsub" {
			e.sub = f.Sub
		}
	}
	return e
}

// clip shortens client text echoed in a message.
func clip(s string) string {
	if len(s) <= 64 {
		return s
	}
	for i := 64; i > 0; i-- {
		if utf8.RuneStart(s[i]) {
			return s[:i] + "..."
		}
	}
	return "..."
}

// ---- server frames: built by hand into pooled buffers ----

func appendHello(b []byte, session, epoch string, seq uint64) []byte {
	b = append(b, `{"op":"hello","v":`...)
	b = strconv.AppendInt(b, protocolVersion, 10)
	b = append(b, `,"session":`...)
	b = appendString(b, session)
	b = append(b, `,"epoch":`...)
	b = appendString(b, epoch)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	return append(b, '}')
}

func appendUnsubscribed(b []byte, id, sub string) []byte {
	b = append(b, `{"op":"unsubscribed","id":`...)
	b = appendString(b, id)
	b = append(b, `,"sub":`...)
	b = appendString(b, sub)
	return append(b, '}')
}

func appendPublished(b []byte, id string, seq uint64) []byte {
	b = append(b, `{"op":"published","id":`...)
	b = appendString(b, id)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	return append(b, '}')
}

func appendPong(b []byte, id string) []byte {
	b = append(b, `{"op":"pong","id":`...)
	b = appendString(b, id)
	return append(b, '}')
}

func appendError(b []byte, e *protoError) []byte {
	b = append(b, `{"op":"error"`...)
	if e.id != "" {
		b = append(b, `,"id":`...)
		b = appendString(b, e.id)
	}
	if e.sub != "" {
		b = append(b, `,"sub":`...)
		b = appendString(b, e.sub)
	}
	b = append(b, `,"code":`...)
	b = appendString(b, e.code.String())
	b = append(b, `,"message":`...)
	b = appendString(b, e.msg)
	return append(b, '}')
}

// Events frames: eventsOpen, then per event `{"subs":[...],` + tail, joined
// by commas, then eventsClose. The tail is built once per event and shared.
const (
	eventsOpen  = `{"op":"events","events":[`
	eventsClose = `]}`
)

// appendEventTail appends `"topic":..,"seq":..,"time":..,"data":..}`; data
// must be valid JSON, or nil with a non-empty encErr.
func appendEventTail(b []byte, topic string, seq uint64, t time.Time, data []byte, encErr string) []byte {
	b = append(b, `"topic":`...)
	b = appendString(b, topic)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, `,"time":"`...)
	b = t.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","data":`...)
	if encErr != "" {
		b = append(b, `null,"error":`...)
		b = appendString(b, encErr)
		return append(b, '}')
	}
	b = append(b, data...)
	return append(b, '}')
}

// appendSubsHead appends `{"subs":["a","b"],`.
func appendSubsHead(b []byte, first string, more []string) []byte {
	b = append(b, `{"subs":[`...)
	b = appendString(b, first)
	for _, s := range more {
		b = append(b, ',')
		b = appendString(b, s)
	}
	return append(b, "],"...)
}

// appendSkipped appends `"skipped":n,` (after a subs head).
func appendSkipped(b []byte, n int) []byte {
	b = append(b, `"skipped":`...)
	b = strconv.AppendInt(b, int64(n), 10)
	return append(b, ',')
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD;
// control characters are escaped; nothing else is.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
