package bridge

import (
	"encoding/json"
	"time"
	"unicode/utf8"

	bus "github.com/whalesong/bus"
)

// clientFrame is every field any client op can carry, decoded and checked.
// Every string in it is valid UTF-8, except Topic and Pattern, which the
// bus grammar checks (it refuses invalid UTF-8 with its own wording).
type clientFrame struct {
	Op, ID, Sub    string
	Pattern, Topic string
	Data           json.RawMessage
	After          *afterPos
	Last           *int64
	Since          *string
	since          time.Time // parsed Since
	Latest         bool      // sub: the newest retained event of every matching topic
	Conflate       bool      // sub: collapse queued live events to the newest per topic
	Fallback       *intent   // sub with After: what to replay when the resume cannot be complete
	Before         uint64    // history: read events with seq < Before; 0: past the newest
	Limit          int       // history: at most this many (1 to maxPageLimit)
}

// afterPos is the resume position of a sub frame.
type afterPos struct {
	Epoch string
	Seq   *uint64
}

// wireFrame is a client frame as encoding/json reads it. Its strings are
// text, read strictly: encoding/json would replace invalid UTF-8 and
// unpaired surrogate escapes with U+FFFD, so that different faulty topics
// would end on the same one.
type wireFrame struct {
	Op      text            `json:"op"`
	ID      text            `json:"id"`
	Sub     text            `json:"sub"`
	Pattern text            `json:"pattern"`
	Topic   text            `json:"topic"`
	Data    json.RawMessage `json:"data"`
	After   *wireAfter      `json:"after"`
	Last    *int64          `json:"last"`
	Since   text            `json:"since"`

	Latest   *bool         `json:"latest"`
	Conflate *bool         `json:"conflate"`
	Fallback *wireFallback `json:"fallback"`
	Before   *uint64       `json:"before"`
	Limit    *int64        `json:"limit"`
}

type wireAfter struct {
	Epoch text    `json:"epoch"`
	Seq   *uint64 `json:"seq"`
}

// text is a string field of a client frame, unquoted strictly (see
// unquote). A value that is not a string is remembered, not an error, so
// that decoding goes on and the error can name the request.
type text struct {
	s         string
	set       bool // present and not null
	notString bool
}

func (t *text) UnmarshalJSON(b []byte) error {
	s, ok := unquote(b)
	*t = text{s: s, set: ok && string(b) != "null", notString: !ok}
	return nil
}

// decodeFrame parses and checks one client frame. Its error names the
// request (id, and sub for sub and unsub) whenever the frame carries a
// valid one. UTF-8 is checked field by field first, so that a topic or a
// pattern that is not valid UTF-8 gets the grammar's code and an op, id or
// sub bad_frame with its name; invalid UTF-8 bytes anywhere else are
// bad_frame too (RFC 6455 text frames are UTF-8). Escapes inside data are
// the Codec's business.
func decodeFrame(data []byte) (*clientFrame, *protoError) {
	d := new(struct { // one allocation for both
		w wireFrame
		f clientFrame
	})
	w := &d.w
	if err := json.Unmarshal(data, w); err != nil {
		return nil, newProtoError(codeBadFrame, salvageIDs(data), "not a valid frame: %v", err)
	}
	f, pe := &d.f, w.strings(&d.f)
	switch {
	case pe != nil:
		return nil, pe
	case f.Op == "pub" && !utf8.ValidString(f.Topic):
		return nil, newProtoError(codeInvalidTopic, f, "%v", bus.CheckTopic(f.Topic))
	case (f.Op == "sub" || f.Op == "history") && !utf8.ValidString(f.Pattern):
		return nil, newProtoError(codeInvalidPattern, f, "%v", bus.CheckPattern(f.Pattern))
	}
	f.Data, f.Last = w.Data, w.Last
	switch f.Op {
	case "sub":
		pe = checkSub(f, w)
	case "history":
		pe = checkHistory(f, w)
	case "unsub":
		pe = checkIDs(f, true)
	case "pub", "ping":
		pe = checkIDs(f, false)
	default:
		pe = newProtoError(codeUnknownOp, f, "unknown op %q", clip(f.Op))
	}
	if pe == nil && !utf8.Valid(data) {
		pe = newProtoError(codeBadFrame, f, "frame is not valid UTF-8")
	}
	if pe != nil {
		return nil, pe
	}
	return f, nil
}

// strings fills f with the string fields, unquoted strictly. A field that is not a
// string is bad_frame, as encoding/json's type errors are; an id or sub
// that is not valid is left out, so that no error names it.
func (w *wireFrame) strings(f *clientFrame) *protoError {
	f.ID, f.Sub = ifValidID(w.ID.s), ifValidID(w.Sub.s)
	if utf8.ValidString(w.Op.s) {
		f.Op = w.Op.s // names the error below (sub and unsub carry the sub)
	}
	for _, field := range [...]struct {
		name string
		t    *text
	}{{"op", &w.Op}, {"id", &w.ID}, {"sub", &w.Sub}, {"pattern", &w.Pattern}, {"topic", &w.Topic}, {"since", &w.Since}} {
		if field.t.notString {
			return newProtoError(codeBadFrame, f, "not a valid frame: %s must be a string", field.name)
		}
	}
	switch {
	case w.Op.s == "":
		return newProtoError(codeBadFrame, f, "no op")
	case f.Op == "":
		return newProtoError(codeBadFrame, f, "op is not valid UTF-8")
	}
	f.Pattern, f.Topic = w.Pattern.s, w.Topic.s
	if w.Since.set {
		f.Since = &w.Since.s
	}
	return nil
}

// salvageIDs reads the op, id and sub of a frame that did not decode as a
// whole (say "last":"x"), so that the error can name its request.
func salvageIDs(data []byte) *clientFrame {
	var ids struct {
		Op  text `json:"op"`
		ID  text `json:"id"`
		Sub text `json:"sub"`
	}
	f := new(clientFrame)
	if json.Unmarshal(data, &ids) != nil {
		return f
	}
	f.ID, f.Sub = ifValidID(ids.ID.s), ifValidID(ids.Sub.s)
	if utf8.ValidString(ids.Op.s) {
		f.Op = ids.Op.s
	}
	return f
}

// validID reports whether s can be a request or subscription id: 1 to
// maxIDLen bytes of valid UTF-8.
func validID(s string) bool { return s != "" && len(s) <= maxIDLen && utf8.ValidString(s) }

func ifValidID(s string) string {
	if validID(s) {
		return s
	}
	return ""
}

func checkIDs(f *clientFrame, needSub bool) *protoError {
	if f.ID == "" {
		return newProtoError(codeBadFrame, f, "%s: id must be a string of 1 to %d bytes of UTF-8", f.Op, maxIDLen)
	}
	if needSub && f.Sub == "" {
		return newProtoError(codeBadFrame, f, "%s: sub must be a string of 1 to %d bytes of UTF-8", f.Op, maxIDLen)
	}
	return nil
}

func checkSub(f *clientFrame, w *wireFrame) *protoError {
	if e := checkIDs(f, true); e != nil {
		return e
	}
	n := 0
	if after := w.After; after != nil {
		n++
		switch {
		case after.Epoch.notString || !utf8.ValidString(after.Epoch.s):
			return newProtoError(codeBadFrame, f, "sub: after.epoch must be a string of UTF-8")
		case after.Seq == nil:
			return newProtoError(codeBadFrame, f, "sub: after needs a seq")
		}
		f.After = &afterPos{Epoch: after.Epoch.s, Seq: after.Seq}
	}
	if f.Last != nil {
		n++
		if *f.Last < 0 {
			return newProtoError(codeBadFrame, f, "sub: last must be >= 0")
		}
	}
	if f.Since != nil {
		n++
		t, err := time.Parse(time.RFC3339Nano, *f.Since)
		if err != nil {
			return newProtoError(codeBadFrame, f, "sub: since must be an RFC 3339 time, not %q", clip(*f.Since))
		}
		f.since = t
	}
	if w.Latest != nil && *w.Latest {
		n++
		f.Latest = true
	}
	if n > 1 {
		return newProtoError(codeBadFrame, f, "sub: at most one of after, last, since, latest")
	}
	f.Conflate = w.Conflate != nil && *w.Conflate
	return checkFallback(f, w.Fallback)
}
