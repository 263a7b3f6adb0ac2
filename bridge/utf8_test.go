package bridge

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// TestInvalidUTF8IsRefused: a topic, pattern, op, id or sub that is not
// valid UTF-8 (invalid bytes, or an unpaired surrogate escape, which
// encoding/json would turn into U+FFFD) is refused with the grammar's code
// or bad_frame, naming the request when its id is readable; invalid bytes
// anywhere else in the frame are bad_frame. Nothing is published.
func TestInvalidUTF8IsRefused(t *testing.T) {
	tests := []struct {
		name  string
		frame string
		code  string
		id    string
		sub   string
		msg   string // in the message
	}{
		{"topic bytes", "{\"op\":\"pub\",\"id\":\"p1\",\"topic\":\"chat.\xff\",\"data\":{}}", "invalid_topic", "p1", "", "not valid UTF-8"},
		{"topic other bytes", "{\"op\":\"pub\",\"id\":\"p2\",\"topic\":\"chat.\xfe\",\"data\":{}}", "invalid_topic", "p2", "", "not valid UTF-8"},
		{"topic high surrogate", `{"op":"pub","id":"p3","topic":"chat.\ud800","data":{}}`, "invalid_topic", "p3", "", "not valid UTF-8"},
		{"topic low surrogate", `{"op":"pub","id":"p4","topic":"chat.\uDC00","data":{}}`, "invalid_topic", "p4", "", "not valid UTF-8"},
		{"topic reversed pair", `{"op":"pub","id":"p5","topic":"chat.\udc00\ud800","data":{}}`, "invalid_topic", "p5", "", "not valid UTF-8"},
		{"topic truncated sequence", "{\"op\":\"pub\",\"id\":\"p6\",\"topic\":\"chat.\xe2\x82\",\"data\":{}}", "invalid_topic", "p6", "", "not valid UTF-8"},
		{"pattern bytes", "{\"op\":\"sub\",\"id\":\"r1\",\"sub\":\"s1\",\"pattern\":\"chat.\xc0\xaf\"}", "invalid_pattern", "r1", "s1", "not valid UTF-8"},
		{"pattern surrogate", `{"op":"sub","id":"r2","sub":"s2","pattern":"\udfff.>"}`, "invalid_pattern", "r2", "s2", "not valid UTF-8"},
		{"op bytes", "{\"op\":\"pi\xffng\",\"id\":\"r3\"}", "bad_frame", "r3", "", "op is not valid UTF-8"},
		{"op surrogate", `{"op":"ping\ud800","id":"r4"}`, "bad_frame", "r4", "", "op is not valid UTF-8"},
		{"id bytes", "{\"op\":\"ping\",\"id\":\"r\xff\"}", "bad_frame", "", "", "id must be"},
		{"id surrogate", `{"op":"pub","id":"p\ud800","topic":"chat.x","data":{}}`, "bad_frame", "", "", "id must be"},
		{"sub bytes", "{\"op\":\"sub\",\"id\":\"r5\",\"sub\":\"s\xff\",\"pattern\":\"chat.>\"}", "bad_frame", "r5", "", "sub must be"},
		{"sub surrogate", `{"op":"unsub","id":"r6","sub":"s\udbff"}`, "bad_frame", "r6", "", "sub must be"},
		{"data bytes", "{\"op\":\"pub\",\"id\":\"p7\",\"topic\":\"chat.x\",\"data\":{\"text\":\"\xff\"}}", "bad_frame", "p7", "", "not valid UTF-8"},
		{"unknown field bytes", "{\"op\":\"ping\",\"id\":\"r7\",\"pad\":\"\xff\"}", "bad_frame", "r7", "", "not valid UTF-8"},
		{"epoch surrogate", `{"op":"sub","id":"r8","sub":"s8","pattern":"chat.>","after":{"epoch":"\ud800","seq":1}}`, "bad_frame", "r8", "s8", "epoch"},
		{"since bytes", "{\"op\":\"sub\",\"id\":\"r9\",\"sub\":\"s9\",\"pattern\":\"chat.>\",\"since\":\"2026-01-01T00:00:00Z\xff\"}", "bad_frame", "r9", "s9", "since"},
		{"topic not a string", `{"op":"pub","id":"p8","topic":["chat"],"data":{}}`, "bad_frame", "p8", "", "topic must be a string"},
	}
	s := newServer(t, nil, WithAuthorize(allowAll), WithBadFrameBudget(1000, 0))
	watcher := s.dial(t)
	watcher.sub("all", ">", nil)
	cl := s.dial(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cl.t = t
			cl.send(tt.frame)
			f := cl.read()
			if f.Op != "error" || f.Code != tt.code || f.ID != tt.id || f.Sub != tt.sub || !strings.Contains(f.Message, tt.msg) {
				t.Fatalf("got %+v, want code %s id %q sub %q, a message with %q", f, tt.code, tt.id, tt.sub, tt.msg)
			}
			if !utf8.ValidString(f.Message) {
				t.Fatalf("message %q is not valid UTF-8", f.Message)
			}
			cl.ping()
		})
	}
	cl.t = t
	// Valid text passes: a surrogate pair is one character, and an unpaired
	// surrogate escape inside data is the Codec's business (encoding/json
	// replaces it with U+FFFD).
	cl.send(`{"op":"pub","id":"ok","topic":"chat.\ud83d\ude00","data":{"text":"\ud800"}}`)
	if f := cl.read(); f.Op != "published" || f.Seq != 1 {
		t.Fatalf("valid publish: %+v", f)
	}
	ev := watcher.events(1)[0]
	if ev.Topic != "chat.😀" || string(ev.Data) != `{"text":"�"}` {
		t.Fatalf("event %s %s, want the one valid publish", ev.Topic, ev.Data)
	}
	if st := s.bus.Stats(); st.Published != 1 {
		t.Fatalf("the bus published %d events, want 1", st.Published)
	}
}

// TestTooLargeNamesOnlyValidIDs: the id of an oversized frame is read
// strictly too.
func TestTooLargeNamesOnlyValidIDs(t *testing.T) {
	s := newServer(t, nil, WithMaxMessageSize(100))
	cl := s.dial(t)
	pad := strings.Repeat("x", 200)
	cl.send(`{"op":"ping","id":"big\ud800","pad":"` + pad + `"}`)
	if f := cl.read(); f.Code != "too_large" || f.ID != "" {
		t.Fatalf("got %+v, want too_large without id", f)
	}
	cl.send(`{"op":"ping","id":"big","pad":"` + pad + `"}`)
	if f := cl.read(); f.Code != "too_large" || f.ID != "big" {
		t.Fatalf("got %+v, want too_large for id big", f)
	}
}
