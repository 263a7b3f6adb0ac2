package bus

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// queueModel is the reference for what a lossy policy keeps queued: a plain
// list of live events, changed the way the policies are documented.
type queueModel struct {
	policy     Policy
	buffer     int
	queue      []Event[int]
	skip       uint64 // DropNewest: losses for the next event queued
	dropped    uint64
	superseded uint64
}

func (m *queueModel) publish(ev Event[int]) {
	if len(m.queue) >= m.buffer {
		victim := -1
		if m.policy == Conflate {
			victim = slices.IndexFunc(m.queue, func(e Event[int]) bool { return e.Topic == ev.Topic })
			if victim >= 0 {
				m.superseded++
			}
		}
		switch {
		case m.policy == DropNewest:
			m.skip++
			m.dropped++
			return
		case victim < 0:
			victim = 0
			m.dropped++
		}
		lost := m.queue[victim]
		m.queue = slices.Delete(m.queue, victim, victim+1)
		if victim < len(m.queue) {
			m.queue[victim].Skipped += lost.Skipped + 1
		} else {
			ev.Skipped += lost.Skipped + 1
		}
	}
	ev.Skipped += m.skip
	m.skip = 0
	m.queue = append(m.queue, ev)
}

func (m *queueModel) read() (Event[int], bool) {
	if len(m.queue) == 0 {
		return Event[int]{}, false
	}
	ev := m.queue[0]
	m.queue = m.queue[1:]
	return ev, true
}

// TestLossyPoliciesAgainstModel drives DropOldest, DropNewest and Conflate
// with random publishes and reads, and checks every event read (Seq, Topic,
// Skipped) and every counter against the model.
func TestLossyPoliciesAgainstModel(t *testing.T) {
	for _, policy := range []Policy{DropOldest, DropNewest, Conflate} {
		for seed := range uint64(40) {
			t.Run(fmt.Sprintf("%v/%d", policy, seed), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(seed, 7))
				buffer := 1 + rng.IntN(6)
				topics := 1 + rng.IntN(4)
				b := newBus[int](t)
				s := mustSubscribe(t, b, "t.*", WithBuffer(buffer), WithPolicy(policy))
				m := &queueModel{policy: policy, buffer: buffer}
				var read []Event[int]
				for step := range 400 {
					if rng.IntN(3) > 0 {
						topic := fmt.Sprintf("t.%d", rng.IntN(topics))
						seq := mustPublish(t, b, topic, step)
						m.publish(Event[int]{Seq: seq, Topic: topic, Data: step})
						continue
					}
					want, ok := m.read()
					if got := s.Pending(); got != len(m.queue)+btoi(ok) {
						t.Fatalf("step %d: Pending %d, model %d", step, got, len(m.queue)+btoi(ok))
					}
					if !ok {
						continue
					}
					got := next(t, s)
					if got.Seq != want.Seq || got.Topic != want.Topic || got.Skipped != want.Skipped {
						t.Fatalf("step %d: read %d %s skipped %d, model %d %s skipped %d",
							step, got.Seq, got.Topic, got.Skipped, want.Seq, want.Topic, want.Skipped)
					}
					read = append(read, got)
				}
				if s.Dropped() != m.dropped || s.Superseded() != m.superseded {
					t.Fatalf("Dropped %d Superseded %d, model %d %d", s.Dropped(), s.Superseded(), m.dropped, m.superseded)
				}
				st := b.Stats()
				if st.Dropped != m.dropped || st.Superseded != m.superseded {
					t.Fatalf("Stats Dropped %d Superseded %d, model %d %d", st.Dropped, st.Superseded, m.dropped, m.superseded)
				}
				if !slices.IsSortedFunc(read, func(a, b Event[int]) int { return int(a.Seq) - int(b.Seq) }) {
					t.Fatal("events out of Seq order")
				}
			})
		}
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestConflateKeepsTheNewestState: a reader that cannot keep up with a
// fast state stream on a conflated subscription ends with the newest value
// of every topic, in Seq order, and every loss is counted in Skipped.
func TestConflateKeepsTheNewestState(t *testing.T) {
	b := newBus[int](t)
	s := mustSubscribe(t, b, "price.*", WithBuffer(4), WithPolicy(Conflate))
	const topics, rounds = 4, 500
	last := map[string]int{}
	for i := range rounds * topics {
		topic := fmt.Sprintf("price.%d", i%topics)
		mustPublish(t, b, topic, i)
		last[topic] = i
	}
	got := map[string]int{}
	var skipped uint64
	for _, ev := range drain(s) {
		got[ev.Topic] = ev.Data
		skipped += ev.Skipped
	}
	for topic, v := range last {
		if got[topic] != v {
			t.Fatalf("%s: reader ended with %d, newest is %d", topic, got[topic], v)
		}
	}
	if n := uint64(rounds*topics - len(got)); skipped != n || s.Superseded()+s.Dropped() != n {
		t.Fatalf("Skipped total %d, Superseded %d + Dropped %d, want %d", skipped, s.Superseded(), s.Dropped(), n)
	}
}

// TestLossyPoliciesConcurrentReader: a reader on C and one on Next, racing
// fast publishers, see increasing Seqs, and what they read plus what they
// were told they skipped is exactly what was published.
func TestLossyPoliciesConcurrentReader(t *testing.T) {
	for _, policy := range []Policy{DropOldest, Conflate, DropNewest} {
		for _, viaC := range []bool{false, true} {
			t.Run(fmt.Sprintf("%v/viaC=%v", policy, viaC), func(t *testing.T) {
				b := newBus[int](t)
				s := mustSubscribe(t, b, "t.*", WithBuffer(3), WithPolicy(policy))
				const publishers, each = 3, 3000
				var wg sync.WaitGroup
				for p := range publishers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := range each {
							mustPublish(t, b, fmt.Sprintf("t.%d", (p+i)%5), i)
						}
					}()
				}
				finished := make(chan struct{})
				go func() { wg.Wait(); close(finished) }()
				var got, skipped, prev uint64
				total := uint64(publishers * each)
				take := func(ev Event[int]) {
					if ev.Seq <= prev {
						t.Fatalf("seq %d after %d", ev.Seq, prev)
					}
					prev = ev.Seq
					got++
					skipped += ev.Skipped
				}
			read:
				for {
					if viaC {
						select {
						case ev := <-s.C():
							take(ev)
						case <-finished:
							break read
						}
					} else {
						ctx, cancel := context.WithCancel(context.Background())
						go func() {
							select {
							case <-finished:
							case <-ctx.Done():
							}
							cancel()
						}()
						ev, err := s.Next(ctx)
						cancel()
						if err != nil {
							break read
						}
						take(ev)
					}
				}
				for _, ev := range drain(s) {
					take(ev)
				}
				// Losses after the last event read are reported on the next one.
				pending := s.pendingSkip()
				if got+skipped+pending != total || s.Dropped()+s.Superseded() != skipped+pending {
					t.Fatalf("read %d + skipped %d + pending %d of %d; Dropped %d Superseded %d", got, skipped, pending, total, s.Dropped(), s.Superseded())
				}
			})
		}
	}
}

// pendingSkip is what the subscription will report in the next event.
func (s *Subscription[T]) pendingSkip() uint64 {
	s.guard.Lock()
	defer s.guard.Unlock()
	return s.skip
}

// TestLatest: the newest retained event of every matching topic, in Seq
// order, then live ones; Recovered as API.md says.
func TestLatest(t *testing.T) {
	b := newBus[int](t, WithHistory(2))
	for i := range 10 {
		mustPublish(t, b, fmt.Sprintf("s.%d", i%3), i) // s.0: 0 3 6 9, s.1: 1 4 7, s.2: 2 5 8
	}
	mustPublish(t, b, "other", 99)
	s := mustSubscribe(t, b, "s.*", Latest())
	if !s.Recovered() {
		t.Fatal("every matching topic's newest is retained, yet not recovered")
	}
	mustPublish(t, b, "s.1", 100)
	var data []int
	for range 4 {
		data = append(data, next(t, s).Data)
	}
	if !slices.Equal(data, []int{7, 8, 9, 100}) {
		t.Fatalf("Latest gave %v, want [7 8 9 100]", data)
	}
	// Nothing retained (history 0) but something published: not recovered.
	none := newBus[int](t, WithHistory(0))
	mustPublish(t, none, "s.1", 1)
	if s := mustSubscribe(t, none, "s.*", Latest()); s.Recovered() {
		t.Fatal("Latest with nothing retained reported recovered")
	}
	if s := mustSubscribe(t, newBus[int](t), "s.*", Latest()); !s.Recovered() {
		t.Fatal("Latest on an empty bus not recovered")
	}
}

// TestLatestForgottenTopic: a topic whose events all expired had its newest
// event published and not retained, so Latest reports it.
func TestLatestForgottenTopic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := New[int](WithHistoryTTL(time.Minute))
		defer b.Close()
		mustPublish(t, b, "s.old", 1)
		time.Sleep(2 * time.Minute)
		mustPublish(t, b, "s.new", 2)
		s := mustSubscribe(t, b, "s.*", Latest())
		if s.Recovered() {
			t.Fatal("Latest after a matching topic expired reported recovered")
		}
		if ev := next(t, s); ev.Data != 2 {
			t.Fatalf("got %+v", ev)
		}
	})
}

// historyModel keeps every event published, and which the bus should
// still retain with WithHistory(n), to judge Recovered and Missing.
type historyModel struct {
	perTopic int
	all      []Event[int]
}

func (m *historyModel) retained(ev Event[int]) bool {
	newer := 0
	for _, e := range m.all {
		if e.Topic == ev.Topic && e.Seq > ev.Seq {
			newer++
		}
	}
	return newer < m.perTopic
}

// TestRecoveredAndMissingAgainstModel: for random histories, patterns and
// positions, After's Recovered is exact per topic and Missing bounds every
// evicted event asked for; Last's and Since's are never true when
// something asked for was lost.
func TestRecoveredAndMissingAgainstModel(t *testing.T) {
	patterns := []string{">", "a.*", "a.x", "b.>", "*.y", "c"}
	for seed := range uint64(30) {
		rng := rand.New(rand.NewPCG(seed, 11))
		m := &historyModel{perTopic: 1 + rng.IntN(4)}
		b := newBus[int](t, WithHistory(m.perTopic))
		topics := []string{"a.x", "a.y", "b.x.z", "b.y", "c"}
		base := time.Now()
		for i := range 60 {
			topic := topics[rng.IntN(len(topics))]
			seq := mustPublish(t, b, topic, i)
			m.all = append(m.all, Event[int]{Seq: seq, Topic: topic})
		}
		evs, _ := b.History(">", 0, 0)
		times := map[uint64]time.Time{}
		for _, e := range evs {
			times[e.Seq] = e.Time
		}
		for _, pattern := range patterns {
			for range 10 {
				after := uint64(rng.IntN(62))
				var lost []uint64
				for _, e := range m.all {
					if e.Seq > after && Match(pattern, e.Topic) && !m.retained(e) {
						lost = append(lost, e.Seq)
					}
				}
				s := mustSubscribe(t, b, pattern, After(after))
				if s.Recovered() != (len(lost) == 0) {
					t.Fatalf("seed %d %q After(%d): Recovered %v, lost %v", seed, pattern, after, s.Recovered(), lost)
				}
				lo, hi := s.Missing()
				if s.Recovered() && (lo != 0 || hi != 0) {
					t.Fatalf("recovered, yet Missing (%d, %d)", lo, hi)
				}
				for _, q := range lost {
					if q <= lo || q >= hi || lo < after || hi > b.Seq()+1 {
						t.Fatalf("seed %d %q After(%d): lost %d outside Missing (%d, %d)", seed, pattern, after, q, lo, hi)
					}
				}
				s.Close()
				n := rng.IntN(8)
				var newest []Event[int]
				for i := len(m.all) - 1; i >= 0 && len(newest) < n; i-- {
					if Match(pattern, m.all[i].Topic) {
						newest = append(newest, m.all[i])
					}
				}
				lostLast := slices.ContainsFunc(newest, func(e Event[int]) bool { return !m.retained(e) })
				if s := mustSubscribe(t, b, pattern, Last(n)); s.Recovered() && lostLast {
					t.Fatalf("seed %d %q Last(%d): recovered, yet one of the newest was evicted", seed, pattern, n)
				}
				_ = base
			}
		}
	}
}

// TestMaxRetained: the cap holds over all topics, the oldest events go
// first whatever their topic, and Recovered stays honest.
func TestMaxRetained(t *testing.T) {
	const topics, perTopic, capacity = 2000, 50, 10000
	b := newBus[int](t, WithHistory(perTopic), WithMaxRetained(capacity))
	for i := range topics * perTopic {
		mustPublish(t, b, fmt.Sprintf("t.%d", i%topics), i)
		if r := b.Stats().Retained; r > capacity {
			t.Fatalf("after %d publishes %d retained, cap %d", i+1, r, capacity)
		}
	}
	evs, _ := b.History(">", 0, 0)
	total := uint64(topics * perTopic)
	if len(evs) != capacity || evs[0].Seq != total-capacity+1 || evs[len(evs)-1].Seq != total {
		t.Fatalf("kept %d events %d..%d, want the newest %d", len(evs), evs[0].Seq, evs[len(evs)-1].Seq, capacity)
	}
	if s := mustSubscribe(t, b, "t.7", After(0)); s.Recovered() {
		t.Fatal("a topic whose old events the cap evicted reported recovered")
	}
	if s := mustSubscribe(t, b, "t.7", After(total-capacity)); !s.Recovered() {
		t.Fatal("asking only for retained events was not recovered")
	}
}

// TestMaxRetainedExactPerTopic: without a TTL, a topic that the bus-wide
// cap emptied keeps its loss to itself: a pattern that matches only other
// topics stays recovered, Latest included, while the emptied topic's own
// replays say what is missing. The emptied topic is not counted in Stats.
func TestMaxRetainedExactPerTopic(t *testing.T) {
	b := newBus[int](t, WithMaxRetained(1))
	a := mustPublish(t, b, "a", 0) // evicted by the next one
	mustPublish(t, b, "b", 0)
	for i, opt := range []SubscribeOption{After(0), Last(1), Since(time.Time{}), Latest()} {
		s := mustSubscribe(t, b, "b", opt)
		if !s.Recovered() || len(drain(s)) != 1 {
			after, before := s.Missing()
			t.Fatalf("b kept its one event; option %d: Recovered false, Missing (%d, %d)", i, after, before)
		}
		s.Close()
		s = mustSubscribe(t, b, "a", opt)
		if s.Recovered() {
			t.Fatalf("a lost its one event; option %d: Recovered true", i)
		} else if after, before := s.Missing(); before != a+1 {
			t.Fatalf("a, option %d: Missing (%d, %d), want before %d", i, after, before, a+1)
		}
		s.Close()
	}
	if s := mustSubscribe(t, b, ">", After(0)); s.Recovered() {
		t.Fatal("> matches a, which lost an event: Recovered true")
	}
	if st := b.Stats(); st.Topics != 1 || st.Retained != 1 { // b; a has no event and no literal subscription
		t.Fatalf("Stats: %d topics, %d retained; want 1 and 1", st.Topics, st.Retained)
	}
	// Events again on a: it is retained once more, its newest too.
	mustPublish(t, b, "a", 1)
	if s := mustSubscribe(t, b, "a", Latest()); !s.Recovered() {
		t.Fatal("a holds its newest event again: Latest not recovered")
	}
}

// TestMaxRetainedForgetsTheOldestEmptied: past the bound the topic emptied
// longest ago is forgotten, not one that was emptied, refilled and emptied
// again since (its first entry is stale).
func TestMaxRetainedForgetsTheOldestEmptied(t *testing.T) {
	b := newBus[int](t, WithMaxRetained(2))
	for _, topic := range []string{"a", "b", "c", "a", "d", "e"} { // seqs 1..6
		mustPublish(t, b, topic, 0)
	}
	// Emptied in turn: a (seq 1), b (2), c (3), a again (4). Remembered: two,
	// c and a; b is forgotten, so its loss (seq 2) counts for every pattern.
	if s := mustSubscribe(t, b, "d", After(3)); !s.Recovered() {
		after, before := s.Missing()
		t.Fatalf("d After(3): Recovered false, Missing (%d, %d): a was forgotten instead of b", after, before)
	}
	if s := mustSubscribe(t, b, "d", After(1)); s.Recovered() {
		t.Fatal("d After(1): b was forgotten with its loss at seq 2, Recovered should be (conservatively) false")
	}
	if s := mustSubscribe(t, b, "a", After(3)); s.Recovered() {
		t.Fatal("a After(3): a lost seq 4, Recovered true")
	}
}

// TestMaxRetainedRemembersBoundedly: at most the cap's number of emptied
// topics are remembered; past it the oldest is forgotten and its loss counts
// for every pattern (conservative, never dishonest). A random walk over a
// few topics (never more emptied than the cap) must be exact both ways;
// over many it must stay honest.
func TestMaxRetainedRemembersBoundedly(t *testing.T) {
	for _, tc := range []struct {
		topics int
		exact  bool
	}{{6, true}, {60, false}} {
		t.Run(fmt.Sprint(tc.topics), func(t *testing.T) {
			const capacity = 8
			b := newBus[int](t, WithHistory(3), WithMaxRetained(capacity))
			rng := rand.New(rand.NewPCG(1, uint64(tc.topics)))
			published := map[string][]uint64{} // every event ever, by topic
			for i := range 600 {
				topic := fmt.Sprintf("t%d", rng.IntN(tc.topics))
				published[topic] = append(published[topic], mustPublish(t, b, topic, i))
				if h := b.shards[0].hist; h.emptiedN > capacity {
					t.Fatalf("%d emptied topics remembered, cap %d", h.emptiedN, capacity)
				}
				if i%20 != 0 {
					continue
				}
				for topic, all := range published {
					x := all[rng.IntN(len(all))] - uint64(rng.IntN(2))
					var want []uint64
					for _, q := range all {
						if q > x {
							want = append(want, q)
						}
					}
					s := mustSubscribe(t, b, topic, After(x))
					got := seqs(drain(s))
					s.Close()
					complete := slices.Equal(got, want)
					if s.Recovered() && !complete {
						t.Fatalf("%s After(%d): Recovered with %v, want %v", topic, x, got, want)
					}
					if tc.exact && !s.Recovered() && complete {
						after, before := s.Missing()
						t.Fatalf("%s After(%d): got all of %v, yet Recovered false, Missing (%d, %d)", topic, x, want, after, before)
					}
				}
			}
		})
	}
}

// TestPage: pages of older history against the retained events.
func TestPage(t *testing.T) {
	b := newBus[int](t, WithHistory(5))
	for i := range 40 {
		mustPublish(t, b, fmt.Sprintf("r.%d", i%4), i)
	}
	all, _ := b.History("r.*", 0, 0) // 20 events retained
	for _, before := range []uint64{0, 1, 21, 30, 41, 1 << 40} {
		for _, limit := range []int{-1, 1, 3, 7, 100} {
			got, more, err := b.Page("r.*", before, limit)
			if err != nil {
				t.Fatal(err)
			}
			var older []Event[int]
			for _, e := range all {
				if before == 0 || e.Seq < before {
					older = append(older, e)
				}
			}
			n := min(max(limit, 1), len(older))
			want := older[len(older)-n:]
			if !slices.EqualFunc(got, want, func(a, b Event[int]) bool { return a.Seq == b.Seq }) || more != (len(older) > n) {
				t.Fatalf("Page(before %d, limit %d) = %v more %v; want %v more %v", before, limit, seqs(got), more, seqs(want), len(older) > n)
			}
		}
	}
	// Walking back page by page reaches every retained event once.
	var walked []uint64
	before := uint64(0)
	for {
		page, more, _ := b.Page("r.1", before, 2)
		walked = append(seqs(page), walked...)
		if !more {
			break
		}
		before = page[0].Seq
	}
	want, _ := b.History("r.1", 0, 0)
	if !slices.Equal(walked, seqs(want)) {
		t.Fatalf("walked %v, retained %v", walked, seqs(want))
	}
}

// TestWildcardReplayCostsMatchingTopics: with 100,000 retained topics a
// wildcard replay that matches a few of them costs about what it costs
// with 100 topics, not a scan of all of them.
func TestWildcardReplayCostsMatchingTopics(t *testing.T) {
	cost := func(topics int) time.Duration {
		b := newBus[int](t, WithHistory(1))
		for i := range topics {
			mustPublish(t, b, fmt.Sprintf("room.%d.msg", i), i)
		}
		best := time.Hour
		for range 5 {
			start := time.Now()
			for range 200 {
				if _, _, err := b.Replay("room.42*.>", After(0)); err == nil {
					t.Fatal("bad pattern accepted")
				}
				s, _ := b.Subscribe("room.42.*", After(0))
				s.Close()
			}
			best = min(best, time.Since(start))
		}
		return best
	}
	small, large := cost(100), cost(100_000)
	if large > 10*small+5*time.Millisecond {
		t.Fatalf("replays over 100,000 topics took %v, over 100 took %v", large, small)
	}
}

// TestPendingCountsQueued: Pending counts replayed and live events queued.
func TestPendingCountsQueued(t *testing.T) {
	b := newBus[int](t)
	for i := range 3 {
		mustPublish(t, b, "p", i)
	}
	s := mustSubscribe(t, b, "p", After(0))
	mustPublish(t, b, "p", 3)
	if got := s.Pending(); got != 4 {
		t.Fatalf("Pending %d, want 4", got)
	}
	next(t, s)
	if got := s.Pending(); got != 3 {
		t.Fatalf("Pending %d after one read, want 3", got)
	}
	_ = context.Background()
}
