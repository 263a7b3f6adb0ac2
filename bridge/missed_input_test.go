package bridge

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	bus "github.com/whalesong/bus"
)

// TestMissedFieldsBadInput: every new field of sub (latest, conflate,
// fallback) and the history op refuse what PROTOCOL.md does not allow with
// a clear error naming the request, and never close the connection.
func TestMissedFieldsBadInput(t *testing.T) {
	sub := func(extra string) string {
		return `{"op":"sub","id":"r1","sub":"s","pattern":"a",` + extra + `}`
	}
	hist := func(extra string) string {
		if extra != "" {
			extra = "," + extra
		}
		return `{"op":"history","id":"h1","pattern":"a"` + extra + `}`
	}
	const after = `"after":{"seq":1}`
	tests := []struct {
		name, frame, code, id, sub, message string
	}{
		{"latest and after", sub(`"latest":true,` + after), "bad_frame", "r1", "s", "at most one of after, last, since, latest"},
		{"latest and last", sub(`"latest":true,"last":3`), "bad_frame", "r1", "s", "at most one"},
		{"latest and since", sub(`"latest":true,"since":"2026-11-27T17:00:00Z"`), "bad_frame", "r1", "s", "at most one"},
		{"latest not a boolean", sub(`"latest":"yes"`), "bad_frame", "r1", "s", "latest"},
		{"latest a number", sub(`"latest":1`), "bad_frame", "r1", "s", "latest"},
		{"conflate not a boolean", sub(`"conflate":"true"`), "bad_frame", "r1", "s", "conflate"},
		{"fallback without after", sub(`"fallback":{"last":5}`), "bad_frame", "r1", "s", "fallback needs after"},
		{"fallback with last", sub(`"last":2,"fallback":{"last":5}`), "bad_frame", "r1", "s", "fallback needs after"},
		{"fallback empty", sub(after + `,"fallback":{}`), "bad_frame", "r1", "s", "fallback must be one of"},
		{"fallback latest false", sub(after + `,"fallback":{"latest":false}`), "bad_frame", "r1", "s", "fallback must be one of"},
		{"fallback two options", sub(after + `,"fallback":{"last":5,"latest":true}`), "bad_frame", "r1", "s", "fallback must be one of"},
		{"fallback after", sub(after + `,"fallback":{"after":{"seq":3}}`), "bad_frame", "r1", "s", "fallback must be one of"},
		{"fallback negative last", sub(after + `,"fallback":{"last":-1}`), "bad_frame", "r1", "s", "fallback.last must be >= 0"},
		{"fallback fractional last", sub(after + `,"fallback":{"last":1.5}`), "bad_frame", "r1", "s", "not a valid frame"},
		{"fallback huge last", sub(after + `,"fallback":{"last":9223372036854775808}`), "bad_frame", "r1", "s", "not a valid frame"},
		{"fallback bad since", sub(after + `,"fallback":{"since":"yesterday"}`), "bad_frame", "r1", "s", "fallback.since must be an RFC 3339 time"},
		{"fallback since a number", sub(after + `,"fallback":{"since":5}`), "bad_frame", "r1", "s", "fallback.since must be a string"},
		{"fallback since surrogate", sub(after + `,"fallback":{"since":"\ud800"}`), "bad_frame", "r1", "s", "fallback.since must be a string of UTF-8"},
		{"fallback not an object", sub(after + `,"fallback":"last"`), "bad_frame", "r1", "s", "not a valid frame"},
		{"history without id", `{"op":"history","pattern":"a"}`, "bad_frame", "", "", "id must be"},
		{"history limit 0", hist(`"limit":0`), "bad_frame", "h1", "", "limit must be 1 to 1000"},
		{"history limit 1001", hist(`"limit":1001`), "bad_frame", "h1", "", "limit must be 1 to 1000"},
		{"history limit negative", hist(`"limit":-5`), "bad_frame", "h1", "", "limit must be 1 to 1000"},
		{"history limit huge", hist(`"limit":9223372036854775807`), "bad_frame", "h1", "", "limit must be 1 to 1000"},
		{"history limit beyond int64", hist(`"limit":1e30`), "bad_frame", "h1", "", "not a valid frame"},
		{"history limit fractional", hist(`"limit":2.5`), "bad_frame", "h1", "", "not a valid frame"},
		{"history limit a string", hist(`"limit":"50"`), "bad_frame", "h1", "", "not a valid frame"},
		{"history before 0", hist(`"before":0`), "bad_frame", "h1", "", "before must be a seq >= 1"},
		{"history before negative", hist(`"before":-1`), "bad_frame", "h1", "", "not a valid frame"},
		{"history before beyond uint64", hist(`"before":18446744073709551616`), "bad_frame", "h1", "", "not a valid frame"},
		{"history no pattern", `{"op":"history","id":"h1"}`, "invalid_pattern", "h1", "", "invalid pattern"},
		{"history invalid pattern", `{"op":"history","id":"h1","pattern":"a.>.b"}`, "invalid_pattern", "h1", "", "'>' is not the last token"},
		{"history pattern not UTF-8", "{\"op\":\"history\",\"id\":\"h1\",\"pattern\":\"a.\xff\"}", "invalid_pattern", "h1", "", "not valid UTF-8"},
		{"history pattern surrogate", `{"op":"history","id":"h1","pattern":"\ud800.>"}`, "invalid_pattern", "h1", "", "not valid UTF-8"},
		{"history forbidden", `{"op":"history","id":"h1","pattern":"secret.>"}`, "forbidden", "h1", "", `subscribe to "secret.>" denied: no secrets`},
		{"history forbidden wildcard", `{"op":"history","id":"h1","pattern":">"}`, "forbidden", "h1", "", `subscribe to ">" denied`},
	}
	authorize := func(_ any, a Action, p string) error {
		if a == Subscribe && (strings.HasPrefix(p, "secret") || p == ">") {
			return errors.New("no secrets")
		}
		return nil
	}
	s := newServer(t, nil, WithAuthorize(authorize), WithBadFrameBudget(1000, time.Hour))
	cl := s.dial(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cl.t = t
			cl.send(tt.frame)
			f := cl.read()
			if f.Op != "error" || f.Code != tt.code || f.ID != tt.id || f.Sub != tt.sub || !strings.Contains(f.Message, tt.message) {
				t.Fatalf("got %+v, want code %s id %q sub %q message containing %q", f, tt.code, tt.id, tt.sub, tt.message)
			}
			cl.ping()
		})
	}
}

// TestMissedFieldsAccepted: the values PROTOCOL.md allows are accepted,
// false and null meaning absent.
func TestMissedFieldsAccepted(t *testing.T) {
	s := newServer(t, bus.New[msg](bus.WithHistory(4)))
	for range 3 {
		s.publish("a", msg{})
	}
	cl := s.dial(t)
	for i, extra := range []string{
		`"latest":false,"after":{"seq":1}`,
		`"latest":null,"last":2`,
		`"conflate":false`,
		`"conflate":true,"latest":true`,
		`"conflate":null`,
		`"fallback":null`,
		`"after":{"seq":1},"fallback":{"last":0}`,
		`"after":{"seq":1},"fallback":{"last":9223372036854775807}`,
		`"after":{"seq":1},"fallback":{"latest":true,"last":null}`,
		`"after":{"seq":1},"fallback":{"since":"0001-01-01T00:00:00Z"}`,
	} {
		cl.send(fmt.Sprintf(`{"op":"sub","id":"r%d","sub":"s%d","pattern":"a",%s}`, i, i, extra))
		if f := cl.expect("subscribed"); f.ID != fmt.Sprint("r", i) {
			t.Errorf("%s: %+v", extra, f)
		}
	}
	for i, extra := range []string{``, `,"limit":1`, `,"limit":1000`, `,"before":1`, `,"before":18446744073709551615`, `,"limit":null,"before":null`} {
		cl.send(fmt.Sprintf(`{"op":"history","id":"h%d","pattern":"a"%s}`, i, extra))
		if f := cl.expect("page"); f.ID != fmt.Sprint("h", i) {
			t.Errorf("%s: %+v", extra, f)
		}
	}
}

// TestHistoryIsAuthorizedLikeSubscribe: the history op asks the same
// authorizer, with Action Subscribe and the very pattern.
func TestHistoryIsAuthorizedLikeSubscribe(t *testing.T) {
	var mu sync.Mutex
	var asked []string
	authorize := func(_ any, a Action, p string) error {
		mu.Lock()
		defer mu.Unlock()
		asked = append(asked, fmt.Sprint(a, " ", p))
		return nil
	}
	s := newServer(t, nil, WithAuthorize(authorize))
	cl := s.dial(t)
	cl.send(`{"op":"history","id":"h1","pattern":"chat.*"}`)
	cl.expect("page")
	cl.sub("s", "chat.*", nil)
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"subscribe chat.*", "subscribe chat.*"}; fmt.Sprint(asked) != fmt.Sprint(want) {
		t.Fatalf("authorizer asked %q, want %q", asked, want)
	}
}

// TestDecodeMissedFields: what the decoder makes of the new fields.
func TestDecodeMissedFields(t *testing.T) {
	f, pe := decodeFrame([]byte(`{"op":"history","id":"h","pattern":"a"}`))
	if pe != nil || f.Limit != defaultPageLimit || f.Before != 0 {
		t.Fatalf("history defaults: %+v, %v", f, pe)
	}
	f, pe = decodeFrame([]byte(`{"op":"history","id":"h","pattern":"a","before":7,"limit":3}`))
	if pe != nil || f.Limit != 3 || f.Before != 7 {
		t.Fatalf("history: %+v, %v", f, pe)
	}
	f, pe = decodeFrame([]byte(`{"op":"sub","id":"r","sub":"s","pattern":"a","latest":true,"conflate":true}`))
	if pe != nil || !f.Latest || !f.Conflate || f.Fallback != nil {
		t.Fatalf("sub latest conflate: %+v, %v", f, pe)
	}
	f, pe = decodeFrame([]byte(`{"op":"sub","id":"r","sub":"s","pattern":"a","after":{"seq":3},"fallback":{"since":"2026-11-27T17:00:00Z"}}`))
	if pe != nil || f.Fallback == nil || f.Fallback.since == nil || f.Fallback.since.Year() != 2026 || f.Fallback.last != nil || f.Fallback.latest {
		t.Fatalf("sub fallback since: %+v, %v", f, pe)
	}
}
