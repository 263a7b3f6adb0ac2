package bridge

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	bus "github.com/whalesong/bus"
)

// TestResumeWhileEventsFlow drops and resumes a client again and again while
// a publisher keeps going: per subscription every event arrives exactly
// once, in order, with no gap, across reconnects, including a reconnect
// before any event came (resumed from the ack's "from").
func TestResumeWhileEventsFlow(t *testing.T) {
	s := newServer(t, nil)
	const total = 2000
	var wg sync.WaitGroup
	published := make([]uint64, 0, total)
	wg.Go(func() {
		for i := range total {
			published = append(published, s.publish(fmt.Sprintf("feed.%d", i%3), msg{N: i}))
			if i%40 == 0 {
				time.Sleep(time.Millisecond) // let reconnects land mid-stream
			}
		}
	})

	var got []uint64
	epoch := ""
	last := uint64(0)
	for round := 0; len(got) < total; round++ {
		cl := s.dial(t)
		if epoch != "" && cl.hello.Epoch != epoch {
			t.Fatalf("epoch changed")
		}
		var opt map[string]any
		if epoch != "" {
			opt = map[string]any{"after": map[string]any{"epoch": epoch, "seq": last}}
		} else {
			opt = map[string]any{"after": map[string]any{"seq": 0}}
		}
		ack := cl.sub("feed", "feed.>", opt)
		if !*ack.Recovered || *ack.From != last {
			t.Fatalf("round %d: ack %+v, want recovered from %d", round, ack, last)
		}
		epoch = ack.Epoch
		want := 1 + round%4*70 // round%4 == 0 reads one event, others more
		if round == 1 {
			want = 0 // drop right after the ack: resume from its "from"
		}
		for n := 0; n < want && len(got) < total; {
			for _, ev := range cl.events(1) {
				if ev.Seq <= last {
					t.Fatalf("round %d: seq %d after %d", round, ev.Seq, last)
				}
				last = ev.Seq
				got = append(got, ev.Seq)
				n++
			}
		}
		_ = cl.c.Close() // abrupt: no close handshake
	}
	wg.Wait()
	if !slices.Equal(got[:total], published) {
		t.Fatalf("got %d events, want exactly the %d published in order", len(got), len(published))
	}
}

func TestResumeOptions(t *testing.T) {
	b := bus.New[msg](bus.WithHistory(3))
	s := newServer(t, b)
	for i := range 6 { // seqs 1..6 on "h", only 4..6 retained
		s.publish("h", msg{N: i})
	}
	other := "0f8e2b1c-7d4a-4c2e-8f61-2a9d3c4b5e6f"
	const busSeq = ^uint64(0) // from is the bus seq at subscription
	since := time.Now().Add(-time.Hour).Format(time.RFC3339Nano)
	tests := []struct {
		name      string
		opt       map[string]any
		recovered bool
		from      uint64
		seqs      []uint64
	}{
		{"live only", nil, true, busSeq, nil},
		{"after retained", map[string]any{"after": map[string]any{"seq": 4}}, true, 4, []uint64{5, 6}},
		{"after this epoch", map[string]any{"after": map[string]any{"epoch": b.Epoch(), "seq": 5}}, true, 5, []uint64{6}},
		{"after evicted", map[string]any{"after": map[string]any{"seq": 1}}, false, 1, []uint64{4, 5, 6}},
		{"after another epoch", map[string]any{"after": map[string]any{"epoch": other, "seq": 5}}, false, 3, []uint64{4, 5, 6}},
		{"after the future", map[string]any{"after": map[string]any{"seq": 99}}, false, busSeq, nil},
		{"last 2", map[string]any{"last": 2}, true, 4, []uint64{5, 6}},
		{"last 0", map[string]any{"last": 0}, true, busSeq, nil},
		{"last too many", map[string]any{"last": 5}, false, 3, []uint64{4, 5, 6}},
		{"since", map[string]any{"since": since}, false, 3, []uint64{4, 5, 6}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cl := s.dial(t)
			if tt.from == busSeq {
				tt.from = b.Seq()
			}
			ack := cl.sub("s", "h", tt.opt)
			if *ack.Recovered != tt.recovered || *ack.From != tt.from {
				t.Fatalf("ack recovered %v from %d, want %v %d", *ack.Recovered, *ack.From, tt.recovered, tt.from)
			}
			// A live event on another topic marks the end of the replay.
			cl.sub("end", fmt.Sprint("end", i), nil)
			s.publish(fmt.Sprint("end", i), msg{})
			var seqs []uint64
			for done := false; !done; {
				for _, ev := range cl.events(1) {
					if slices.Contains(ev.Subs, "end") {
						done = true
					} else {
						seqs = append(seqs, ev.Seq)
					}
				}
			}
			if !slices.Equal(seqs, tt.seqs) {
				t.Fatalf("replayed %v, want %v", seqs, tt.seqs)
			}
		})
	}
}

// TestServerRestartGivesRecoveredFalse resumes against a new bus (a
// restarted server): the other epoch replays everything retained and says
// recovered=false.
func TestServerRestartGivesRecoveredFalse(t *testing.T) {
	s1 := newServer(t, nil)
	cl := s1.dial(t)
	cl.sub("s", "a.>", nil)
	s1.publish("a.x", msg{})
	last := cl.events(1)[0].Seq
	epoch := cl.hello.Epoch

	s2 := newServer(t, nil)
	s2.publish("a.y", msg{Text: "new"})
	cl2 := s2.dial(t)
	if cl2.hello.Epoch == epoch {
		t.Fatal("a new bus kept the epoch")
	}
	ack := cl2.sub("s", "a.>", map[string]any{"after": map[string]any{"epoch": epoch, "seq": last}})
	if *ack.Recovered || *ack.From != 0 || ack.Epoch != cl2.hello.Epoch {
		t.Fatalf("ack %+v, want recovered false from 0 in the new epoch", ack)
	}
	if ev := cl2.events(1)[0]; ev.Seq != 1 || ev.Topic != "a.y" {
		t.Fatalf("event %+v", ev)
	}
}
