package natsbus

import "strings"

// delivery is what a JetStream consumer says about one message it delivered,
// in the message's reply subject.
type delivery struct {
	stream   uint64 // the stream sequence: the event's Seq
	consumer uint64 // the consumer's own delivery count, 1, 2, 3…
	time     int64  // the store time, Unix nanoseconds
	pending  uint64 // messages still to deliver after this one
}

// parseDelivery reads a reply subject of the form
//
//	$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<time>.<pending>
//	$JS.ACK.<domain>.<hash>.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<time>.<pending>[.<token>]
//
// (9 tokens, or 11 or 12 from newer servers). ok is false for anything
// else, including numbers that do not fit.
func parseDelivery(reply string) (d delivery, ok bool) {
	rest, found := strings.CutPrefix(reply, "$JS.ACK.")
	if !found {
		return d, false
	}
	var tok [10]string
	n, more := 0, true
	for more && n < len(tok) {
		tok[n], rest, more = strings.Cut(rest, ".")
		n++
	}
	if more {
		return d, false // more than 12 tokens
	}
	var nums []string
	switch n {
	case 7: // v1: stream, consumer, delivered, sseq, cseq, time, pending
		nums = tok[3:7]
	case 9, 10: // v2: domain, hash, stream, consumer, delivered, sseq, cseq, time, pending[, token]
		nums = tok[5:9]
	default:
		return d, false
	}
	var vals [4]uint64
	for i, s := range nums {
		v, good := parseUint(s)
		if !good {
			return d, false
		}
		vals[i] = v
	}
	if vals[2] > 1<<63-1 {
		return d, false
	}
	return delivery{stream: vals[0], consumer: vals[1], time: int64(vals[2]), pending: vals[3]}, true
}

// parseUint parses 1 to 20 decimal digits into a uint64, refusing overflow.
func parseUint(s string) (uint64, bool) {
	if s == "" || len(s) > 20 {
		return 0, false
	}
	var v uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (1<<64-1-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
}
