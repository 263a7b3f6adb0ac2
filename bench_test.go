package bus

// Benchmarks of the bus against a plain buffered-channel fan-out, measured
// in the same run. Every sub-benchmark is named impl=chan (the baseline) or
// impl=bus..., so that `benchstat -col /impl` prints the ratios. Receivers
// are real: they drain in their own goroutines and the benchmark waits until
// each has received every event. BENCHMARKS.md has the figures and commands.

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// benchPayload is a small non-pointer event, the kind the 0-alloc promise is
// about.
type benchPayload struct {
	ID    int64
	Price float64
	Qty   int32
	Side  uint8
}

const (
	benchTopic  = "orders.eu.created"
	benchBuffer = 256 // the bus's default WithBuffer, also the baseline's channel capacity
	benchStopID = -1  // ID of the sentinel that ends a parallel benchmark's receivers
)

func benchPayloadFor(i int) benchPayload {
	return benchPayload{ID: int64(i), Price: 9.5, Qty: 3, Side: 1}
}

// benchChanFanout is the baseline: the benchmark goroutine sends every value
// to n buffered channels, each drained by its own goroutine.
func benchChanFanout(b *testing.B, n int) {
	chans := make([]chan benchPayload, n)
	var wg sync.WaitGroup
	for i := range chans {
		ch := make(chan benchPayload, benchBuffer)
		chans[i] = ch
		wg.Go(func() {
			for range b.N {
				<-ch
			}
		})
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		p := benchPayloadFor(i)
		for _, ch := range chans {
			ch <- p
		}
	}
	wg.Wait()
}

// benchChanEventFanout is the baseline with the bus's unavoidable work
// added: each value is stamped as an Event (Seq, Topic, time.Now) under a
// mutex before the fan-out, so the ratio to it is the bus's own overhead.
func benchChanEventFanout(b *testing.B, n int) {
	chans := make([]chan Event[benchPayload], n)
	var wg sync.WaitGroup
	for i := range chans {
		ch := make(chan Event[benchPayload], benchBuffer)
		chans[i] = ch
		wg.Go(func() {
			for range b.N {
				<-ch
			}
		})
	}
	var mu sync.Mutex
	var seq uint64
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		mu.Lock()
		seq++
		ev := Event[benchPayload]{Seq: seq, Topic: benchTopic, Time: time.Now(), Data: benchPayloadFor(i)}
		for _, ch := range chans {
			ch <- ev
		}
		mu.Unlock()
	}
	wg.Wait()
}

// benchReceivers drains subscriptions in one goroutine each, checking that
// Seq only grows, until each got want events.
type benchReceivers struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	err    error
}

func startBenchReceivers(subs []*Subscription[benchPayload], want int, useC bool) *benchReceivers {
	r := &benchReceivers{}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	for _, s := range subs {
		r.wg.Go(func() {
			if err := benchReceive(r.ctx, s, want, useC); err != nil {
				r.fail(err)
			}
		})
	}
	return r
}

func benchReceive(ctx context.Context, s *Subscription[benchPayload], want int, useC bool) error {
	var last uint64
	for i := range want {
		var ev Event[benchPayload]
		if useC {
			got, ok := <-s.C()
			if !ok {
				return fmt.Errorf("event %d of %d: channel closed: %v", i, want, s.Err())
			}
			ev = got
		} else {
			got, err := s.Next(ctx)
			if err != nil {
				return fmt.Errorf("event %d of %d: %w", i, want, err)
			}
			ev = got
		}
		if ev.Seq <= last {
			return fmt.Errorf("seq %d after %d", ev.Seq, last)
		}
		last = ev.Seq
	}
	return nil
}

func (r *benchReceivers) fail(err error) {
	r.mu.Lock()
	if r.err == nil {
		r.err = err
	}
	r.mu.Unlock()
	r.cancel()
}

// wait returns once every receiver is done, and fails b if one failed.
func (r *benchReceivers) wait(b *testing.B) {
	b.Helper()
	r.wg.Wait()
	r.cancel()
	if r.err != nil {
		b.Fatal(r.err)
	}
}

// publishOrStop publishes or, on error, stops the receivers and fails b.
func (r *benchReceivers) publish(b *testing.B, bs *Bus[benchPayload], topic string, p benchPayload) {
	if _, err := bs.Publish(r.ctx, topic, p); err != nil {
		r.fail(err)
		r.wait(b)
		b.Fatal(err)
	}
}

func benchSubscribe(b *testing.B, bs *Bus[benchPayload], pattern string, opts ...SubscribeOption) *Subscription[benchPayload] {
	b.Helper()
	s, err := bs.Subscribe(pattern, opts...)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// benchBusFanout publishes b.N events to topics[i%len(topics)], every one of
// which matches every pattern in patterns.
func benchBusFanout(b *testing.B, patterns, topics []string, useC bool) {
	bs := New[benchPayload]()
	defer bs.Close()
	subs := make([]*Subscription[benchPayload], len(patterns))
	for i, p := range patterns {
		subs[i] = benchSubscribe(b, bs, p)
	}
	r := startBenchReceivers(subs, b.N, useC)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		r.publish(b, bs, topics[i%len(topics)], benchPayloadFor(i))
	}
	r.wait(b)
	b.StopTimer() // Close is not part of the measure
}

func repeatString(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

// BenchmarkFanout is one publisher to 1 and to 100 subscribers of one topic.
func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{1, 100} {
		b.Run(fmt.Sprintf("subs=%d/impl=chan", n), func(b *testing.B) { benchChanFanout(b, n) })
		b.Run(fmt.Sprintf("subs=%d/impl=chan-event", n), func(b *testing.B) { benchChanEventFanout(b, n) })
		b.Run(fmt.Sprintf("subs=%d/impl=bus", n), func(b *testing.B) {
			benchBusFanout(b, repeatString(benchTopic, n), []string{benchTopic}, false)
		})
		if n == 1 {
			// A reader ranging over C cannot wake a publisher that waits for
			// room, so this shows what that costs next to Next.
			b.Run(fmt.Sprintf("subs=%d/impl=bus-rangeC", n), func(b *testing.B) {
				benchBusFanout(b, repeatString(benchTopic, n), []string{benchTopic}, true)
			})
		}
	}
}

// benchWildcardTopics all match every pattern of BenchmarkWildcard.
var benchWildcardTopics = []string{"orders.eu.created", "orders.us.created", "orders.ap.created", "orders.sa.created"}

// BenchmarkWildcard fans out to subscribers on orders.*.created, orders.>
// and >, publishing round-robin to four topics that match all three.
func BenchmarkWildcard(b *testing.B) {
	b.Run("subs=3/impl=chan", func(b *testing.B) { benchChanFanout(b, 3) })
	b.Run("subs=3/impl=bus", func(b *testing.B) {
		benchBusFanout(b, []string{"orders.*.created", "orders.>", ">"}, benchWildcardTopics, false)
	})
}

// benchUnrelated subscribes n patterns that never match benchTopic: half
// literal siblings of it, half wildcards under another root. Their buffer is
// 1 so that 10,000 of them stay small.
func benchUnrelated(b *testing.B, bs *Bus[benchPayload], n int) {
	for i := range n {
		p := fmt.Sprintf("orders.eu.other%d", i)
		if i%2 == 1 {
			p = fmt.Sprintf("users.u%d.*", i)
		}
		benchSubscribe(b, bs, p, WithBuffer(1))
	}
}

var benchUnrelatedCounts = []int{0, 1, 10_000}

// BenchmarkUnrelated publishes to a topic with one subscriber while n
// subscriptions wait on other topics: the cost must not grow with n.
func BenchmarkUnrelated(b *testing.B) {
	for _, n := range benchUnrelatedCounts {
		// The baseline has no subscriptions to skip; it runs next to each n
		// so that benchstat pairs them.
		b.Run(fmt.Sprintf("unrelated=%d/impl=chan", n), func(b *testing.B) { benchChanFanout(b, 1) })
		b.Run(fmt.Sprintf("unrelated=%d/impl=bus", n), func(b *testing.B) {
			bs := New[benchPayload]()
			defer bs.Close()
			benchUnrelated(b, bs, n)
			r := startBenchReceivers([]*Subscription[benchPayload]{benchSubscribe(b, bs, benchTopic)}, b.N, false)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				r.publish(b, bs, benchTopic, benchPayloadFor(i))
			}
			r.wait(b)
			b.StopTimer()
		})
	}
}

// BenchmarkPublishOnly is Publish alone, to a topic nobody subscribes to,
// with history on and full, next to n subscriptions on other topics: the
// receive side cannot hide a cost that grows with n here.
func BenchmarkPublishOnly(b *testing.B) {
	for _, n := range benchUnrelatedCounts {
		b.Run(fmt.Sprintf("unrelated=%d/impl=bus", n), func(b *testing.B) {
			bs := New[benchPayload]()
			defer bs.Close()
			benchUnrelated(b, bs, n)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if _, err := bs.Publish(ctx, benchTopic, benchPayloadFor(i)); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
		})
	}
}

const benchReplayN = 10_000

// BenchmarkReplay subscribes with After(0) to 10,000 retained events and
// drains them; one op is the whole replay. The baseline copies the same
// events through a channel of the same size. topics=10 spreads them over ten
// topics under one wildcard, so that the replay has to merge by Seq.
func BenchmarkReplay(b *testing.B) {
	for _, topics := range []int{1, 10} {
		b.Run(fmt.Sprintf("topics=%d/impl=chan", topics), benchReplayChan)
		b.Run(fmt.Sprintf("topics=%d/impl=bus", topics), func(b *testing.B) { benchReplayBus(b, topics) })
	}
}

// benchReplayChan copies benchReplayN stored events through a fresh channel.
func benchReplayChan(b *testing.B) {
	stored := make([]Event[benchPayload], benchReplayN)
	for i := range stored {
		stored[i] = Event[benchPayload]{Seq: uint64(i + 1), Topic: benchTopic, Data: benchPayloadFor(i)}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		ch := make(chan Event[benchPayload], len(stored))
		for _, ev := range stored {
			ch <- ev
		}
		close(ch)
		benchCountReplay(b, ch, nil)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchReplayN), "ns/event")
}

// benchReplayBus replays benchReplayN events spread round-robin over topics
// topics, subscribing with the wildcard orders.>.
func benchReplayBus(b *testing.B, topics int) {
	bs := New[benchPayload](WithHistory(benchReplayN))
	defer bs.Close()
	ctx := context.Background()
	for i := range benchReplayN {
		topic := fmt.Sprintf("orders.t%d.created", i%topics)
		if _, err := bs.Publish(ctx, topic, benchPayloadFor(i)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		s := benchSubscribe(b, bs, "orders.>", After(0))
		benchCountReplay(b, s.C(), s)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchReplayN), "ns/event")
}

// benchCountReplay receives benchReplayN events in Seq order from ch, then
// closes s (if any).
func benchCountReplay(b *testing.B, ch <-chan Event[benchPayload], s *Subscription[benchPayload]) {
	var last uint64
	for range benchReplayN {
		ev, ok := <-ch
		if !ok || ev.Seq <= last {
			b.Fatalf("replay broke after seq %d (channel open: %v)", last, ok)
		}
		last = ev.Seq
	}
	if s != nil {
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParallel runs one publisher per P (b.RunParallel), each on its
// own topic with one receiver. A sentinel per topic ends the receivers.
func BenchmarkParallel(b *testing.B) {
	procs := runtime.GOMAXPROCS(0)
	b.Run("impl=chan", func(b *testing.B) {
		chans := make([]chan benchPayload, procs)
		var wg sync.WaitGroup
		for i := range chans {
			ch := make(chan benchPayload, benchBuffer)
			chans[i] = ch
			wg.Go(func() {
				for p := range ch {
					if p.ID == benchStopID {
						return
					}
				}
			})
		}
		var worker atomic.Int32
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			ch := chans[int(worker.Add(1)-1)%procs]
			for i := 0; pb.Next(); i++ {
				ch <- benchPayloadFor(i)
			}
		})
		for _, ch := range chans {
			ch <- benchPayload{ID: benchStopID}
		}
		wg.Wait()
	})
	b.Run("impl=bus", func(b *testing.B) {
		bs := New[benchPayload]()
		defer bs.Close()
		topics := make([]string, procs)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var wg sync.WaitGroup
		for i := range topics {
			topics[i] = fmt.Sprintf("orders.p%d.created", i)
			s := benchSubscribe(b, bs, topics[i])
			wg.Go(func() {
				for {
					ev, err := s.Next(ctx)
					if err != nil || ev.Data.ID == benchStopID {
						return
					}
				}
			})
		}
		var worker atomic.Int32
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			topic := topics[int(worker.Add(1)-1)%procs]
			for i := 0; pb.Next(); i++ {
				if _, err := bs.Publish(ctx, topic, benchPayloadFor(i)); err != nil {
					b.Error(err)
					cancel()
					return
				}
			}
		})
		for _, topic := range topics {
			if _, err := bs.Publish(ctx, topic, benchPayload{ID: benchStopID}); err != nil {
				cancel()
				b.Error(err)
			}
		}
		wg.Wait()
		b.StopTimer()
	})
}

// TestPublishNextAllocs holds the promise that steady-state Publish + Next
// of a non-pointer T allocates nothing, once history is at capacity.
func TestPublishNextAllocs(t *testing.T) {
	cases := []struct {
		name    string
		pattern string
		opts    []SubscribeOption
	}{
		{"literal", benchTopic, nil},
		{"star", "orders.*.created", nil},
		{"tail", "orders.>", nil},
		{"all", ">", nil},
		{"drop oldest", benchTopic, []SubscribeOption{WithPolicy(DropOldest)}},
		{"drop newest", benchTopic, []SubscribeOption{WithPolicy(DropNewest)}},
		{"disconnect", benchTopic, []SubscribeOption{WithPolicy(Disconnect)}},
		{"conflate", benchTopic, []SubscribeOption{WithPolicy(Conflate)}},
		{"after replay", benchTopic, []SubscribeOption{After(0)}},
		{"latest replay", "orders.>", []SubscribeOption{Latest()}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			const history = 16
			bs := New[benchPayload](WithHistory(history))
			defer bs.Close()
			ctx := context.Background()
			for i := range history {
				if _, err := bs.Publish(ctx, benchTopic, benchPayloadFor(i)); err != nil {
					t.Fatal(err)
				}
			}
			s, err := bs.Subscribe(tc.pattern, tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			step := func() {
				seq, err := bs.Publish(ctx, benchTopic, benchPayload{ID: 7})
				if err != nil {
					t.Fatal(err)
				}
				for {
					ev, err := s.Next(ctx)
					if err != nil {
						t.Fatal(err)
					}
					if ev.Seq == seq {
						return
					}
				}
			}
			for range 4 * history { // drains any replay, fills the history ring
				step()
			}
			if got := testing.AllocsPerRun(1000, step); got != 0 {
				t.Fatalf("Publish + Next allocates %v times per event, want 0", got)
			}
		})
	}
}

// TestOverflowAllocs holds the zero-allocation promise for the policies
// that act on a full buffer, Conflate included, once their queues have
// grown: each step publishes three events and reads one, so the policy acts
// on every publish.
func TestOverflowAllocs(t *testing.T) {
	topics := []string{"s.a", "s.b", "s.c", "s.d", "s.e"}
	for _, p := range []Policy{DropOldest, DropNewest, Conflate} {
		t.Run(p.String(), func(t *testing.T) {
			bs := New[benchPayload](WithHistory(8))
			defer bs.Close()
			s, err := bs.Subscribe("s.*", WithBuffer(16), WithPolicy(p))
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			i := 0
			step := func() {
				for range 3 {
					if _, err := bs.Publish(ctx, topics[i%len(topics)], benchPayload{ID: int64(i)}); err != nil {
						t.Fatal(err)
					}
					i++
				}
				if _, err := s.Next(ctx); err != nil {
					t.Fatal(err)
				}
			}
			for range 200 {
				step()
			}
			if got := testing.AllocsPerRun(1000, step); got != 0 {
				t.Fatalf("a full %v subscription allocates %v times per step, want 0", p, got)
			}
		})
	}
}

// BenchmarkOverflow: publishing into a full lossy subscription (the
// reader takes one event for every three published), per publish: the
// cost of DropOldest and of Conflate on the same workload.
func BenchmarkOverflow(b *testing.B) {
	topics := []string{"s.a", "s.b", "s.c", "s.d", "s.e"}
	for _, p := range []Policy{DropOldest, Conflate} {
		b.Run("policy="+p.String(), func(b *testing.B) {
			bs := New[benchPayload](WithHistory(8))
			defer bs.Close()
			s, _ := bs.Subscribe("s.*", WithBuffer(64), WithPolicy(p))
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if _, err := bs.Publish(ctx, topics[i%len(topics)], benchPayload{ID: int64(i)}); err != nil {
					b.Fatal(err)
				}
				if i%3 == 2 {
					if _, err := s.Next(ctx); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// BenchmarkWildcardResume: a wildcard resume (After, Latest, a history
// page) that matches 10 topics among 100 or 100,000 retained ones.
func BenchmarkWildcardResume(b *testing.B) {
	for _, topics := range []int{100, 100_000} {
		bs := New[benchPayload](WithHistory(4))
		for i := range topics {
			for range 2 {
				if _, err := bs.Publish(context.Background(), fmt.Sprintf("room.%d.%d", i%(topics/10), i), benchPayload{}); err != nil {
					b.Fatal(err)
				}
			}
		}
		from := bs.Seq() - 4
		for _, kind := range []string{"after", "latest", "page"} {
			b.Run(fmt.Sprintf("topics=%d/kind=%s", topics, kind), func(b *testing.B) {
				b.ReportAllocs()
				for range b.N {
					var err error
					switch kind {
					case "after":
						_, _, err = bs.Replay("room.7.*", After(from))
					case "latest":
						_, _, err = bs.Replay("room.7.*", Latest())
					case "page":
						_, _, err = bs.Page("room.7.*", 0, 5)
					}
					if err != nil {
						b.Fatal(err)
					}
				}
			})
		}
		bs.Close()
	}
}

// BenchmarkParallelPublish is the publish path alone (nobody subscribed,
// default history) with one publisher per P on a topic of its own: run it
// with -cpu 1,2 to compare one publisher with two (ns/op is per publish,
// all publishers together).
func BenchmarkParallelPublish(b *testing.B) {
	bs := New[benchPayload]()
	defer bs.Close()
	var worker atomic.Int32
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		topic := fmt.Sprintf("orders.p%d.created", worker.Add(1))
		for i := 0; pb.Next(); i++ {
			if _, err := bs.Publish(ctx, topic, benchPayloadFor(i)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
