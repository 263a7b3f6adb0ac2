package bridge

import (
	"fmt"
	"slices"
	"testing"
	"time"

	bus "github.com/whalesong/bus"
)

// replayOf subscribes sub to pattern with extra and returns the answer and
// the seqs replayed for it: a live event on a marker topic, published
// after the answer, ends the replay (every replayed event precedes it).
func (cl *client) replayOf(s *server, sub, pattern string, extra map[string]any) (frame, []uint64) {
	cl.t.Helper()
	ack := cl.sub(sub, pattern, extra)
	marker := "end." + sub
	cl.sub("end-"+sub, marker, nil)
	s.publish(marker, msg{})
	var seqs []uint64
	for {
		for _, ev := range cl.events(1) {
			switch {
			case slices.Contains(ev.Subs, "end-"+sub):
				return ack, seqs
			case slices.Contains(ev.Subs, sub):
				seqs = append(seqs, ev.Seq)
			}
		}
	}
}

// wantStart is what a subscribed answer and its replay must say.
type wantStart struct {
	recovered bool
	reason    string
	missing   *missing // nil: absent
	from      uint64
	seqs      []uint64 // replayed (until is the last, replayed their count)
}

func checkStart(t *testing.T, ack frame, seqs []uint64, want wantStart) {
	t.Helper()
	var until uint64
	if len(want.seqs) > 0 {
		until = want.seqs[len(want.seqs)-1]
	}
	switch {
	case ack.Recovered == nil || *ack.Recovered != want.recovered, ack.Reason != want.reason,
		(ack.Missing == nil) != (want.missing == nil), ack.Missing != nil && *ack.Missing != *want.missing,
		ack.From == nil || *ack.From != want.from,
		ack.Replayed == nil || *ack.Replayed != len(want.seqs), ack.Until == nil || *ack.Until != until:
		t.Errorf("ack recovered %v reason %q missing %+v from %v replayed %v until %v;\nwant %v %q %+v from %d replayed %d until %d",
			deref(ack.Recovered), ack.Reason, ack.Missing, deref(ack.From), deref(ack.Replayed), deref(ack.Until),
			want.recovered, want.reason, want.missing, want.from, len(want.seqs), until)
	}
	if !slices.Equal(seqs, want.seqs) {
		t.Errorf("replayed %v, want %v", seqs, want.seqs)
	}
}

func deref[V any](p *V) any {
	if p == nil {
		return "absent"
	}
	return *p
}

// TestSubscribedSaysWhatWasReplayedAndMissed: every way to start a
// subscription, with the answer's recovered, reason, missing, from,
// replayed and until, and the events that follow it (PROTOCOL.md's table).
// Each case has its own bus keeping 3 events per topic: of seqs 1..6 on
// "h", 4..6 are retained.
func TestSubscribedSaysWhatWasReplayedAndMissed(t *testing.T) {
	const ep = "this epoch" // replaced by the bus's own
	other := "0f8e2b1c-7d4a-4c2e-8f61-2a9d3c4b5e6f"
	hourAgo := time.Now().Add(-time.Hour).Format(time.RFC3339Nano)
	inAnHour := time.Now().Add(time.Hour).Format(time.RFC3339Nano)
	after := func(epoch string, seq uint64, fallback map[string]any) map[string]any {
		a := map[string]any{"seq": seq}
		if epoch != "" {
			a["epoch"] = epoch
		}
		m := map[string]any{"after": a}
		if fallback != nil {
			m["fallback"] = fallback
		}
		return m
	}
	tests := []struct {
		name string
		opt  map[string]any
		want wantStart
	}{
		{"live only", nil, wantStart{true, "", nil, 6, nil}},
		{"after retained", after(ep, 4, nil), wantStart{true, "", nil, 4, []uint64{5, 6}}},
		{"after retained, no epoch", after("", 5, nil), wantStart{true, "", nil, 5, []uint64{6}}},
		{"after the newest", after(ep, 6, nil), wantStart{true, "", nil, 6, nil}},
		{"after evicted", after(ep, 1, nil), wantStart{false, "evicted", &missing{1, 4}, 1, []uint64{4, 5, 6}}},
		{"after another epoch", after(other, 5, nil), wantStart{false, "reset", &missing{5, 4}, 3, []uint64{4, 5, 6}}},
		{"after the future", after(ep, 99, nil), wantStart{false, "reset", &missing{99, 7}, 6, nil}},
		{"last 2", map[string]any{"last": 2}, wantStart{true, "", nil, 4, []uint64{5, 6}}},
		{"last 0", map[string]any{"last": 0}, wantStart{true, "", nil, 6, nil}},
		{"last too many", map[string]any{"last": 5}, wantStart{false, "evicted", &missing{0, 4}, 3, []uint64{4, 5, 6}}},
		{"since an hour ago", map[string]any{"since": hourAgo}, wantStart{false, "evicted", &missing{0, 4}, 3, []uint64{4, 5, 6}}},
		{"latest", map[string]any{"latest": true}, wantStart{true, "", nil, 5, []uint64{6}}},
		{"latest false is live", map[string]any{"latest": false}, wantStart{true, "", nil, 6, nil}},
		{"fallback unused when recovered", after(ep, 4, map[string]any{"last": 1}), wantStart{true, "", nil, 4, []uint64{5, 6}}},
		{"fallback last 1", after(ep, 1, map[string]any{"last": 1}), wantStart{false, "evicted", &missing{1, 6}, 5, []uint64{6}}},
		{"fallback last 10", after(ep, 1, map[string]any{"last": 10}), wantStart{false, "evicted", &missing{1, 4}, 3, []uint64{4, 5, 6}}},
		{"fallback latest", after(ep, 2, map[string]any{"latest": true}), wantStart{false, "evicted", &missing{2, 6}, 5, []uint64{6}}},
		{"fallback since", after(ep, 2, map[string]any{"since": hourAgo}), wantStart{false, "evicted", &missing{2, 4}, 3, []uint64{4, 5, 6}}},
		{"fallback since nothing", after(ep, 2, map[string]any{"since": inAnHour}), wantStart{false, "evicted", &missing{2, 7}, 6, nil}},
		{"reset with fallback last 2", after(other, 5, map[string]any{"last": 2}), wantStart{false, "reset", &missing{5, 5}, 4, []uint64{5, 6}}},
		{"reset with fallback latest", after(other, 9, map[string]any{"latest": true}), wantStart{false, "reset", &missing{9, 6}, 5, []uint64{6}}},
		{"reset with nothing to replay", after(other, 5, map[string]any{"since": inAnHour}), wantStart{false, "reset", &missing{5, 7}, 6, nil}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := bus.New[msg](bus.WithHistory(3))
			s := newServer(t, b)
			for i := range 6 {
				s.publish("h", msg{N: i})
			}
			if a, ok := tt.opt["after"].(map[string]any); ok && a["epoch"] == ep {
				a["epoch"] = b.Epoch()
			}
			cl := s.dial(t)
			ack, seqs := cl.replayOf(s, "s", "h", tt.opt)
			if ack.Epoch != b.Epoch() {
				t.Errorf("ack epoch %q, want %q", ack.Epoch, b.Epoch())
			}
			checkStart(t, ack, seqs, tt.want)
		})
	}
}

// TestFallbackLeavesOutWhatTheClientSaw: a resume that cannot be complete
// replays its fallback without the events at or before the client's
// position, and counts what the fallback leaves out as missing. Topic a
// keeps seqs 1..3; b lost 4..7 and keeps 8..10; a client at 5 on ">" with
// fallback last 5 (2, 3, 8, 9, 10) gets 8, 9, 10.
func TestFallbackLeavesOutWhatTheClientSaw(t *testing.T) {
	b := bus.New[msg](bus.WithHistory(3))
	s := newServer(t, b)
	for range 3 {
		s.publish("a", msg{})
	}
	for range 7 {
		s.publish("b", msg{})
	}
	cl := s.dial(t)
	ack, seqs := cl.replayOf(s, "s", "b", map[string]any{"after": map[string]any{"epoch": b.Epoch(), "seq": 5}, "fallback": map[string]any{"last": 5}})
	checkStart(t, ack, seqs, wantStart{false, "evicted", &missing{5, 8}, 7, []uint64{8, 9, 10}})
	ack, seqs = cl.replayOf(s, "w", "*", map[string]any{"after": map[string]any{"epoch": b.Epoch(), "seq": 5}, "fallback": map[string]any{"last": 5}})
	checkStart(t, ack, seqs, wantStart{false, "evicted", &missing{5, 8}, 5, []uint64{8, 9, 10}})
}

// TestLatestPerTopic: latest replays the newest retained event of every
// matching topic, in seq order, and only those; then live events follow.
func TestLatestPerTopic(t *testing.T) {
	s := newServer(t, bus.New[msg](bus.WithHistory(10)))
	newest := map[string]uint64{}
	for i := range 30 {
		topic := fmt.Sprint("px.", "abc"[i%3:i%3+1])
		newest[topic] = s.publish(topic, msg{N: i})
	}
	s.publish("other", msg{})
	cl := s.dial(t)
	ack, seqs := cl.replayOf(s, "p", "px.*", map[string]any{"latest": true})
	want := []uint64{newest["px.a"], newest["px.b"], newest["px.c"]}
	slices.Sort(want)
	checkStart(t, ack, seqs, wantStart{true, "", nil, want[0] - 1, want})
	live := s.publish("px.b", msg{Text: "live"})
	if evs := cl.events(1); evs[0].Seq != live || !slices.Equal(evs[0].Subs, []string{"p"}) {
		t.Fatalf("after the replay %+v, want the live event %d", evs[0], live)
	}
}

// TestSubscribedFieldsOnTheWire pins the exact bytes of the answers.
func TestSubscribedFieldsOnTheWire(t *testing.T) {
	const ep = "0f8e2b1c-7d4a-4c2e-8f61-2a9d3c4b5e6f"
	evs := []bus.Event[msg]{{Seq: 30}, {Seq: 48}}
	got := string(appendSubscribed(nil, "r1", "s1", ep, &subStart[msg]{from: 41, recovered: true}))
	if want := `{"op":"subscribed","id":"r1","sub":"s1","epoch":"` + ep + `","recovered":true,"from":41,"replayed":0,"until":0}`; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	got = string(appendSubscribed(nil, "r2", "s2", ep, &subStart[msg]{from: 29, reason: "evicted", missAfter: 12, missBefore: 30, events: evs}))
	if want := `{"op":"subscribed","id":"r2","sub":"s2","epoch":"` + ep + `","recovered":false,"reason":"evicted","missing":{"after":12,"before":30},"from":29,"replayed":2,"until":48}`; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}
