package bridge

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"testing"

	bus "github.com/whalesong/bus"
)

// history sends a history request and returns its page.
func (cl *client) history(id, pattern, extra string) frame {
	cl.t.Helper()
	cl.send(fmt.Sprintf(`{"op":"history","id":%q,"pattern":%q%s}`, id, pattern, extra))
	f := cl.expect("page")
	if f.ID != id {
		cl.t.Fatalf("page %+v answers another request than %s", f, id)
	}
	return f
}

func pageSeqs(t *testing.T, f frame) []uint64 {
	t.Helper()
	var out []uint64
	for _, ev := range f.Events {
		if ev.Subs != nil {
			t.Errorf("page entry %+v has subs", ev)
		}
		out = append(out, ev.Seq)
	}
	return out
}

// TestHistoryPages reads a room back page by page: each page holds the
// newest limit events before `before`, oldest first, `more` says whether
// older ones are retained, and the page names the epoch; a wildcard merges
// topics in seq order; a pattern nothing matches gets an empty page.
func TestHistoryPages(t *testing.T) {
	b := bus.New[msg](bus.WithHistory(100))
	s := newServer(t, b)
	var room, all []uint64
	for i := range 120 {
		seq := s.publish(fmt.Sprint("room.", i%2), msg{N: i})
		all = append(all, seq)
		if i%2 == 0 {
			room = append(room, seq)
		}
	}
	cl := s.dial(t)

	p := cl.history("h1", "room.0", `,"limit":25`)
	if got := pageSeqs(t, p); !slices.Equal(got, room[35:]) || !*p.More || p.Epoch != b.Epoch() {
		t.Fatalf("first page %v more %v epoch %q; want %v, more, %q", got, deref(p.More), p.Epoch, room[35:], b.Epoch())
	}
	p = cl.history("h2", "room.0", fmt.Sprintf(`,"before":%d,"limit":25`, room[35]))
	if got := pageSeqs(t, p); !slices.Equal(got, room[10:35]) || !*p.More {
		t.Fatalf("second page %v more %v; want %v, more", got, deref(p.More), room[10:35])
	}
	p = cl.history("h3", "room.0", fmt.Sprintf(`,"before":%d,"limit":25`, room[10]))
	if got := pageSeqs(t, p); !slices.Equal(got, room[:10]) || *p.More {
		t.Fatalf("last page %v more %v; want %v, no more", got, deref(p.More), room[:10])
	}
	p = cl.history("h4", "room.0", "")
	if got := pageSeqs(t, p); len(got) != defaultPageLimit || !slices.Equal(got, room[len(room)-defaultPageLimit:]) {
		t.Fatalf("default page %v; want the newest %d", got, defaultPageLimit)
	}
	p = cl.history("h5", "room.*", fmt.Sprintf(`,"before":%d,"limit":7`, all[100]))
	if got := pageSeqs(t, p); !slices.Equal(got, all[93:100]) || !*p.More {
		t.Fatalf("wildcard page %v; want %v, more", got, all[93:100])
	}
	p = cl.history("h6", "nothing.>", "")
	if len(p.Events) != 0 || *p.More {
		t.Fatalf("page of nothing %+v", p)
	}
	p = cl.history("h7", "room.0", `,"before":1`)
	if len(p.Events) != 0 || *p.More {
		t.Fatalf("page before 1 %+v", p)
	}
	// Entries are those of an events frame: topic, seq, time, data.
	p = cl.history("h8", "room.1", `,"limit":1`)
	ev := p.Events[0]
	var m msg
	if err := json.Unmarshal(ev.Data, &m); err != nil || ev.Topic != "room.1" || ev.Seq != all[119] || m.N != 119 || ev.Time.IsZero() {
		t.Fatalf("entry %+v (%v)", ev, err)
	}
}

// TestHistoryLimitBounds: limit 1000 reads 1000, and `more` is exact at
// the edge.
func TestHistoryLimitBounds(t *testing.T) {
	s := newServer(t, bus.New[msg](bus.WithHistory(2000)))
	var seqs []uint64
	for i := range 1001 {
		seqs = append(seqs, s.publish("t", msg{N: i}))
	}
	cl := s.dial(t)
	p := cl.history("h1", "t", `,"limit":1000`)
	if got := pageSeqs(t, p); !slices.Equal(got, seqs[1:]) || !*p.More {
		t.Fatalf("limit 1000: %d events, more %v", len(got), deref(p.More))
	}
	p = cl.history("h2", "t", fmt.Sprintf(`,"before":%d,"limit":1000`, seqs[1]))
	if got := pageSeqs(t, p); !slices.Equal(got, seqs[:1]) || *p.More {
		t.Fatalf("the rest: %v, more %v", got, deref(p.More))
	}
}

// TestHistoryCodecErrorEntry: an event the Codec cannot encode is in the
// page with data null and an error, like in an events frame.
func TestHistoryCodecErrorEntry(t *testing.T) {
	b := bus.New[float64]()
	defer b.Close()
	br := New(b)
	defer br.Close()
	if _, err := b.Publish(t.Context(), "x", math.NaN()); err != nil {
		t.Fatal(err)
	}
	evs, err := b.History("x", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	page := string(br.appendPage(nil, "h", b.Epoch(), false, evs))
	var p struct {
		Events []struct {
			Data  json.RawMessage `json:"data"`
			Error string          `json:"error"`
		} `json:"events"`
	}
	if err := json.Unmarshal([]byte(page), &p); err != nil || len(p.Events) != 1 || string(p.Events[0].Data) != "null" || p.Events[0].Error == "" {
		t.Fatalf("page %s (%v)", page, err)
	}
}
