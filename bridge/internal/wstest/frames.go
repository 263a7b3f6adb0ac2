package wstest

import (
	"bytes"
	"encoding/binary"
)

// WebSocket opcodes (RFC 6455, section 5.2).
const (
	OpContinuation = 0x0
	OpText         = 0x1
	OpBinary       = 0x2
	OpClose        = 0x8
	OpPing         = 0x9
	OpPong         = 0xa
)

// Frame is one frame the server wrote. Payload is kept for control frames
// (close, ping, pong) only; Len is the payload length of every frame.
type Frame struct {
	Opcode  byte
	Fin     bool
	Len     int
	Payload []byte
}

// CloseCode returns the status code of a close frame, 1005 (no status) when
// it carries none, and 0 for any other frame.
func (f Frame) CloseCode() int {
	switch {
	case f.Opcode != OpClose:
		return 0
	case len(f.Payload) < 2:
		return 1005
	}
	return int(binary.BigEndian.Uint16(f.Payload))
}

// CloseReason returns the text of a close frame.
func (f Frame) CloseReason() string {
	if f.Opcode != OpClose || len(f.Payload) < 2 {
		return ""
	}
	return string(f.Payload[2:])
}

// maxHeader bounds the HTTP response head the recorder waits for.
const maxHeader = 64 << 10

// recorder parses what a server writes on one connection: the HTTP
// response head, then (after a 101) unmasked WebSocket frames, which may
// arrive split across writes or several in one.
type recorder struct {
	head     []byte // the response head until it is complete
	headDone bool
	upgraded bool
	pending  []byte // bytes of an incomplete frame header or control payload
	skip     int    // payload bytes of the current data frame still to pass
	frames   []Frame
}

func (r *recorder) write(p []byte) {
	if !r.headDone {
		p = r.readHead(p)
		if !r.upgraded {
			return
		}
	}
	for len(p) > 0 {
		if r.skip > 0 {
			n := min(r.skip, len(p))
			r.skip -= n
			p = p[n:]
			continue
		}
		r.pending = append(r.pending, p...)
		p = nil
		r.parse()
	}
}

// readHead consumes the HTTP response head and returns what follows it.
func (r *recorder) readHead(p []byte) []byte {
	r.head = append(r.head, p...)
	i := bytes.Index(r.head, []byte("\r\n\r\n"))
	if i < 0 {
		if len(r.head) > maxHeader {
			r.headDone, r.head = true, nil
		}
		return nil
	}
	r.headDone = true
	r.upgraded = bytes.HasPrefix(r.head, []byte("HTTP/1.1 101 "))
	rest := bytes.Clone(r.head[i+4:])
	r.head = nil
	return rest
}

// parse takes every complete frame header (and control payload) off
// pending; a data frame's payload is skipped as it streams by.
func (r *recorder) parse() {
	for {
		f, hdr, ok := parseHeader(r.pending)
		if !ok {
			return
		}
		b := r.pending[hdr:]
		if f.Opcode >= OpClose {
			if len(b) < f.Len {
				return
			}
			f.Payload = bytes.Clone(b[:f.Len])
			r.frames = append(r.frames, f)
			r.pending = append(r.pending[:0], b[f.Len:]...)
			continue
		}
		r.frames = append(r.frames, f)
		n := min(f.Len, len(b))
		r.skip = f.Len - n
		r.pending = append(r.pending[:0], b[n:]...)
		if r.skip > 0 {
			return
		}
	}
}

// parseHeader reads one frame header: the frame (without payload), the
// header's length, and whether b held all of it. Server frames are not
// masked; a mask key is skipped anyway.
func parseHeader(b []byte) (Frame, int, bool) {
	if len(b) < 2 {
		return Frame{}, 0, false
	}
	f := Frame{Opcode: b[0] & 0x0f, Fin: b[0]&0x80 != 0}
	n := 2
	switch l := int(b[1] & 0x7f); l {
	case 126:
		if len(b) < 4 {
			return Frame{}, 0, false
		}
		f.Len, n = int(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		if len(b) < 10 {
			return Frame{}, 0, false
		}
		f.Len, n = int(binary.BigEndian.Uint64(b[2:])&(1<<62-1)), 10
	default:
		f.Len = l
	}
	if b[1]&0x80 != 0 {
		n += 4
	}
	if len(b) < n {
		return Frame{}, 0, false
	}
	return f, n, true
}
