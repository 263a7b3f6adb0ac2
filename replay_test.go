package bus

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func TestReplayOptions(t *testing.T) {
	b := newBus[int](t)
	mustPublish(t, b, "a.x", 1) // seq 1
	mustPublish(t, b, "b.x", 2) // seq 2
	mustPublish(t, b, "a.y", 3) // seq 3
	mid := time.Now()
	mustPublish(t, b, "a.x", 4) // seq 4
	mustPublish(t, b, "a.y", 5) // seq 5
	tests := []struct {
		name    string
		pattern string
		opts    []SubscribeOption
		want    []uint64
	}{
		{"none", "a.*", nil, nil},
		{"after 0", "a.*", []SubscribeOption{After(0)}, []uint64{1, 3, 4, 5}},
		{"after 3", "a.*", []SubscribeOption{After(3)}, []uint64{4, 5}},
		{"after newest", "a.*", []SubscribeOption{After(5)}, nil},
		{"last 2", "a.*", []SubscribeOption{Last(2)}, []uint64{4, 5}},
		{"last 0", ">", []SubscribeOption{Last(0)}, nil},
		{"last more than retained", "b.>", []SubscribeOption{Last(10)}, []uint64{2}},
		{"since", ">", []SubscribeOption{Since(mid)}, []uint64{4, 5}},
		{"since zero time", "*.x", []SubscribeOption{Since(time.Time{})}, []uint64{1, 2, 4}},
		{"literal", "a.x", []SubscribeOption{After(0)}, []uint64{1, 4}},
		{"last option wins", ">", []SubscribeOption{After(0), Last(1)}, []uint64{5}},
		{"last option wins again", ">", []SubscribeOption{Last(1), After(3)}, []uint64{4, 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustSubscribe(t, b, tt.pattern, tt.opts...)
			defer s.Close()
			if got := seqs(drain(s)); !slices.Equal(got, tt.want) && len(got)+len(tt.want) > 0 {
				t.Fatalf("replayed %v, want %v", got, tt.want)
			}
			if !s.Recovered() {
				t.Fatal("Recovered = false with everything retained")
			}
			evs, rec, err := b.Replay(tt.pattern, tt.opts...)
			if err != nil || !rec || (!slices.Equal(seqs(evs), tt.want) && len(evs)+len(tt.want) > 0) {
				t.Fatalf("Replay = %v, %v, %v; want %v", seqs(evs), rec, err, tt.want)
			}
		})
	}
}

func TestHistory(t *testing.T) {
	b := newBus[int](t)
	for i := range 6 {
		mustPublish(t, b, fmt.Sprintf("h.%d", i%2), i)
	}
	tests := []struct {
		pattern string
		after   uint64
		limit   int
		want    []uint64
	}{
		{"h.*", 0, 0, []uint64{1, 2, 3, 4, 5, 6}},
		{"h.*", 2, 0, []uint64{3, 4, 5, 6}},
		{"h.*", 2, 3, []uint64{3, 4, 5}},
		{"h.1", 0, -1, []uint64{2, 4, 6}},
		{"h.1", 0, 1, []uint64{2}},
		{"nothing", 0, 0, nil},
	}
	for _, tt := range tests {
		got, err := b.History(tt.pattern, tt.after, tt.limit)
		if err != nil || !slices.Equal(seqs(got), tt.want) && len(got)+len(tt.want) > 0 {
			t.Errorf("History(%q, %d, %d) = %v, %v; want %v", tt.pattern, tt.after, tt.limit, seqs(got), err, tt.want)
		}
	}
}

// TestRecoveredIsHonest checks guarantee 3 with eviction by WithHistory:
// false whenever something asked for is gone, exact per topic.
func TestRecoveredIsHonest(t *testing.T) {
	b := newBus[int](t, WithHistory(2))
	for i := range 5 {
		mustPublish(t, b, "busy", i) // seqs 1-5; 1-3 evicted
	}
	mustPublish(t, b, "quiet", 0) // seq 6, never evicted
	mustPublish(t, b, "busy", 5)  // seq 7; 4 evicted
	afterBusy3 := time.Now()
	tests := []struct {
		pattern string
		opt     SubscribeOption
		want    bool
	}{
		{"busy", After(0), false},
		{"busy", After(3), false},
		{"busy", After(4), true},
		{"busy", Last(2), true},
		{"busy", Last(3), false},
		{"quiet", After(0), true}, // a busy topic never evicts a quiet one
		{"quiet", Last(5), true},  // fewer than asked exist at all, none lost
		{"quiet", Since(time.Time{}), true},
		{"*", After(0), false},
		{">", After(4), true},
		{">", Last(3), true}, // 5, 6, 7 retained
		{">", Last(4), false},
		{"busy", Since(time.Time{}), false},
		{"busy", Since(afterBusy3), true},
		{"never", After(0), true},
	}
	for _, tt := range tests {
		s := mustSubscribe(t, b, tt.pattern, tt.opt)
		if s.Recovered() != tt.want {
			t.Errorf("Subscribe(%q, %v): Recovered = %v, want %v", tt.pattern, tt.opt, s.Recovered(), tt.want)
		}
		s.Close()
	}
}

func TestNoHistory(t *testing.T) {
	b := newBus[int](t, WithHistory(0))
	if s := mustSubscribe(t, b, ">", After(0)); !s.Recovered() {
		t.Error("nothing published yet: Recovered should be true")
	}
	mustPublish(t, b, "a", 1)
	start := time.Now()
	for _, opt := range []SubscribeOption{After(0), Last(1), Since(time.Time{})} {
		if s := mustSubscribe(t, b, "a", opt); s.Recovered() || len(drain(s)) != 0 {
			t.Error("WithHistory(0) with something in range: Recovered should be false and nothing replayed")
		}
	}
	for _, opt := range []SubscribeOption{After(1), Last(0), Since(start.Add(time.Hour))} {
		if s := mustSubscribe(t, b, "a", opt); !s.Recovered() {
			t.Error("WithHistory(0) with nothing in range: Recovered should be true")
		}
	}
	if st := b.Stats(); st.Retained != 0 {
		t.Errorf("Retained = %d", st.Retained)
	}
}

// TestNoHistoryIsBusWide: with WithHistory(0) the answer is bus-wide: an
// event published on one topic makes every replay whose range holds it
// false, on any other topic too, whichever shard that topic is in.
func TestNoHistoryIsBusWide(t *testing.T) {
	b := newBus[int](t, WithHistory(0))
	start := time.Now()
	seq := mustPublish(t, b, "x", 1)
	for i := range 64 { // 64 topics cover every shard
		topic := fmt.Sprintf("t%d", i)
		for _, opt := range []SubscribeOption{After(0), Last(1), Since(start), Latest()} {
			if s := mustSubscribe(t, b, topic, opt); s.Recovered() {
				t.Fatalf("Subscribe(%q, %v) after seq %d on x: Recovered true", topic, opt, seq)
			}
		}
		if s := mustSubscribe(t, b, topic, After(seq)); !s.Recovered() {
			t.Fatalf("Subscribe(%q, After(%d)): nothing in range, Recovered false", topic, seq)
		}
	}
}

func TestReplayDoesNotCountAgainstBuffer(t *testing.T) {
	b := newBus[int](t)
	for i := range 100 {
		mustPublish(t, b, "a", i)
	}
	s := mustSubscribe(t, b, "a", After(0), WithBuffer(1), WithPolicy(DropNewest))
	mustPublish(t, b, "a", 100) // fits: the buffer holds 1 live event
	mustPublish(t, b, "a", 101) // dropped
	got := seqs(drain(s))
	if len(got) != 101 || got[100] != 101 || s.Dropped() != 1 {
		t.Fatalf("got %d events ending %v, dropped %d", len(got), got[len(got)-1:], s.Dropped())
	}
	if st := b.Stats(); st.Delivered != 101 {
		t.Fatalf("Stats.Delivered = %d, want 101 (replay included)", st.Delivered)
	}
}

// TestReplayToLiveUnderLoad checks guarantee 2: subscribers joining with
// After/Last at random moments while publishers run see every retained
// matching event in range and every later one exactly once, in order.
func TestReplayToLiveUnderLoad(t *testing.T) {
	b := newBus[int](t, WithHistory(4096))
	const publishers, perPublisher, joiners = 4, 400, 24
	var logMu sync.Mutex
	var published []Event[int]
	var pubs, subs sync.WaitGroup
	for p := range publishers {
		pubs.Go(func() {
			for i := range perPublisher {
				topic := fmt.Sprintf("load.%d.%d", p, i%3)
				seq := mustPublish(t, b, topic, i)
				logMu.Lock()
				published = append(published, Event[int]{Seq: seq, Topic: topic})
				logMu.Unlock()
			}
		})
	}
	type joined struct {
		s     *Subscription[int]
		opt   string
		from  uint64 // After's argument
		last  int
		since time.Time
		got   []Event[int]
	}
	results := make([]*joined, joiners)
	for j := range joiners {
		pattern := []string{">", "load.*.0", "load.1.>", "load.2.1"}[j%4]
		r := rand.New(rand.NewPCG(uint64(j), 7))
		for range r.IntN(50) {
			time.Sleep(50 * time.Microsecond) // spread the joins over the run
		}
		jn := &joined{}
		switch j % 3 {
		case 0:
			jn.opt, jn.from = "after", b.Seq()/2
			jn.s = mustSubscribe(t, b, pattern, After(jn.from), WithBuffer(8))
		case 1:
			jn.opt, jn.last = "last", 1+r.IntN(30)
			jn.s = mustSubscribe(t, b, pattern, Last(jn.last), WithBuffer(8))
		default:
			jn.opt, jn.since = "since", time.Now().Add(-time.Duration(r.IntN(3000))*time.Microsecond)
			jn.s = mustSubscribe(t, b, pattern, Since(jn.since), WithBuffer(8))
		}
		results[j] = jn
		subs.Go(func() {
			for ev := range jn.s.C() {
				jn.got = append(jn.got, ev)
			}
		})
	}
	pubs.Wait()
	retained, _ := b.History(">", 0, 0) // every event, with its Time
	at := make(map[uint64]time.Time, len(retained))
	for _, ev := range retained {
		at[ev.Seq] = ev.Time
	}
	b.Close()
	subs.Wait()
	slices.SortFunc(published, func(a, b Event[int]) int { return cmp.Compare(a.Seq, b.Seq) })
	for j, jn := range results {
		if !jn.s.Recovered() {
			t.Errorf("joiner %d: not recovered with ample history", j)
		}
		var want []uint64
		for _, ev := range published {
			inRange := ev.Seq > jn.from
			switch jn.opt {
			case "last":
				inRange = true
			case "since":
				inRange = !at[ev.Seq].Before(jn.since)
			}
			if matchSubject(jn.s.Pattern(), ev.Topic) && inRange {
				want = append(want, ev.Seq)
			}
		}
		got := seqs(jn.got)
		if jn.opt == "last" {
			// Last(n): a suffix of the matching events, from the n newest at join.
			if len(got) == 0 {
				t.Fatalf("joiner %d: Last(%d) got nothing", j, jn.last)
			}
			i := slices.Index(want, got[0])
			if i < 0 {
				t.Fatalf("joiner %d: first event %d not a matching event", j, got[0])
			}
			want = want[i:]
		}
		if !slices.Equal(got, want) {
			t.Errorf("joiner %d (%s %q): got %d events, want %d; first difference at %d",
				j, jn.opt, jn.s.Pattern(), len(got), len(want), firstDiff(got, want))
		}
	}
}

func firstDiff(a, b []uint64) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestTTL checks that expired events are released within about the TTL on
// a topic nobody publishes to again, and that recovery then says false.
func TestTTL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ttl = time.Minute
		b := New[int](WithHistoryTTL(ttl))
		defer b.Close()
		mustPublish(t, b, "idle", 1)
		time.Sleep(ttl / 2)
		mustPublish(t, b, "later", 2)
		if st := b.Stats(); st.Retained != 2 || st.Topics != 2 {
			t.Fatalf("before expiry: %+v", st)
		}
		time.Sleep(ttl/2 + ttl/8 + time.Second)
		synctest.Wait()
		if st := b.Stats(); st.Retained != 1 || st.Topics != 1 {
			t.Fatalf("idle topic's event not released within about the TTL: %+v", st)
		}
		if s := mustSubscribe(t, b, "idle", After(0)); s.Recovered() {
			t.Fatal("an expired event was asked for: Recovered must be false")
		}
		if s := mustSubscribe(t, b, "later", After(1)); !s.Recovered() || len(drain(s)) != 1 {
			t.Fatal("later's event is still retained")
		}
		time.Sleep(ttl)
		synctest.Wait()
		if st := b.Stats(); st.Retained != 0 || st.Topics != 2 { // two literal subscriptions remain
			t.Fatalf("after full expiry: %+v", st)
		}
		// A forgotten topic published to again is retained afresh (the
		// publish path must not keep appending to the forgotten log).
		seq := mustPublish(t, b, "idle", 3)
		if h, _ := b.History("idle", 0, 0); len(h) != 1 || h[0].Seq != seq || b.Stats().Retained != 1 {
			t.Fatalf("republished to a forgotten topic: History %v, %+v", seqs(h), b.Stats())
		}
	})
}

// TestTTLOnRead: an event past its TTL is never replayed, even before the
// sweeper has run.
func TestTTLOnRead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := New[int](WithHistoryTTL(time.Hour))
		defer b.Close()
		mustPublish(t, b, "a", 1)
		time.Sleep(time.Hour) // the sweeper runs at the same instant; either way
		evs, rec, err := b.Replay("a", After(0))
		if err != nil || len(evs) != 0 || rec {
			t.Fatalf("Replay after TTL = %v, %v, %v", seqs(evs), rec, err)
		}
	})
}

// TestTopicsAreForgotten checks the memory bound: per-request topics with no
// subscribers and no retained events leave nothing behind.
func TestTopicsAreForgotten(t *testing.T) {
	b := newBus[int](t, WithHistory(0))
	for i := range 1000 {
		topic := fmt.Sprintf("req.%d.reply", i)
		s := mustSubscribe(t, b, topic)
		w := mustSubscribe(t, b, fmt.Sprintf("req.%d.*", i))
		mustPublish(t, b, topic, i)
		s.Close()
		w.Close()
	}
	if st := b.Stats(); st.Topics != 0 || st.Subscribers != 0 || st.Retained != 0 {
		t.Fatalf("after 1000 request topics: %+v", st)
	}
	topics := 0
	for i := range b.shards {
		topics += len(b.shards[i].hist.topics)
	}
	if !b.tree.root.empty() || len(b.literal) != 0 || topics != 0 {
		t.Fatal("internal indexes still hold forgotten topics")
	}
}

func TestStats(t *testing.T) {
	b := newBus[int](t, WithHistory(2))
	mustSubscribe(t, b, "a", WithBuffer(1), WithPolicy(DropNewest))
	mustSubscribe(t, b, "lit") // literal, no events: counts as a topic
	mustSubscribe(t, b, "w.*") // wildcard: does not
	for i := range 3 {
		mustPublish(t, b, "a", i)
	}
	mustPublish(t, b, "z", 9)
	want := Stats{Published: 4, Delivered: 1, Dropped: 2, Subscribers: 3, Topics: 3, Retained: 3}
	if st := b.Stats(); st != want {
		t.Fatalf("Stats = %+v, want %+v", st, want)
	}
	mustSubscribe(t, b, "a", After(0)) // replays 2: Delivered counts them
	if st := b.Stats(); st.Delivered != 3 || st.Subscribers != 4 {
		t.Fatalf("after a replay: %+v", st)
	}
}

// TestReplayMergesManyTopics holds the k-way merge to the plain answer:
// every retained event, in Seq order, whatever the number of topics.
func TestReplayMergesManyTopics(t *testing.T) {
	b := newBus[int](t)
	r := rand.New(rand.NewPCG(3, 4))
	var all []uint64
	for i := range 2000 {
		all = append(all, mustPublish(t, b, fmt.Sprintf("m.%d", r.IntN(40)), i))
	}
	for _, after := range []uint64{0, 1, 999, 1999, 2000} {
		evs, rec, err := b.Replay("m.*", After(after))
		if err != nil || !rec || !slices.Equal(seqs(evs), all[after:]) {
			t.Fatalf("After(%d): %d events, recovered %v, %v", after, len(evs), rec, err)
		}
	}
	for _, n := range []int{1, 7, 500, 2000, 5000} {
		evs, rec, _ := b.Replay(">", Last(n))
		want := all[max(len(all)-n, 0):]
		if !rec || !slices.Equal(seqs(evs), want) {
			t.Fatalf("Last(%d): got %d events, recovered %v", n, len(evs), rec)
		}
	}
}
