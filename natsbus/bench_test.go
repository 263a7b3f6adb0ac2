package natsbus

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/whalesong/bus"
	"github.com/whalesong/bus/natsbus/internal/natstest"
)

// The benchmarks compare the bus with a raw nats.go JetStream publish (with
// a Nats-Msg-Id, as the bus sends) measured in the same run, on one server
// (R1) and on a 3-node cluster (R3), and report p50/p99 latencies.
//
//	go test -run '^$' -bench . -benchtime 3000x

type payload struct {
	Text string `json:"text"`
	N    int    `json:"n"`
}

// benchServers gives the URL of each server of a setup.
func benchServers(b *testing.B, replicas int) []string {
	b.Helper()
	if replicas == 1 {
		s := natstest.Start(b)
		return []string{s.URL()}
	}
	c := natstest.StartCluster(b, replicas)
	urls := make([]string, replicas)
	for i, n := range c.Nodes {
		urls[i] = n.URL()
	}
	return urls
}

func benchBus(b *testing.B, url string, replicas int) *bus.Bus[payload] {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	bb, err := New[payload](ctx, connect(b, url), WithReplicas(replicas))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { bb.Close() })
	return bb
}

// latencies records one duration per op and reports p50 and p99.
type latencies []time.Duration

func (l latencies) report(b *testing.B) {
	slices.Sort(l)
	if len(l) == 0 {
		return
	}
	b.ReportMetric(float64(l[len(l)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(l[len(l)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkPublish: the round trip of one publish until it is stored (and,
// for the bus, applied by the publishing node), against a raw JetStream
// publish of the same bytes with a message id, measured first, while no
// bus follows the stream in this process.
func BenchmarkPublish(b *testing.B) {
	for _, r := range []int{1, 3} {
		b.Run(fmt.Sprintf("R%d", r), func(b *testing.B) {
			urls := benchServers(b, r)
			nc := connect(b, urls[0])
			_ = testLog[payload](b, nc, WithReplicas(r)) // the stream, with no follower yet
			js, _ := jetstream.New(nc)
			data, _ := JSON{}.Marshal(payload{Text: "hello, world", N: 42})
			ctx := context.Background()
			b.Run("raw", func(b *testing.B) {
				lat := make(latencies, 0, b.N)
				b.ReportAllocs()
				for i := 0; b.Loop(); i++ {
					start := time.Now()
					msg := &nats.Msg{Subject: defaultStream + ".bench", Data: data,
						Header: nats.Header{jetstream.MsgIDHeader: {msgID("")}}}
					if _, err := js.PublishMsg(ctx, msg, jetstream.WithExpectStream(defaultStream)); err != nil {
						b.Fatal(err)
					}
					lat = append(lat, time.Since(start))
				}
				lat.report(b)
			})
			bb := benchBus(b, urls[0], r)
			b.Run("bus", func(b *testing.B) {
				lat := make(latencies, 0, b.N)
				b.ReportAllocs()
				for i := 0; b.Loop(); i++ {
					start := time.Now()
					if _, err := bb.Publish(ctx, "bench", payload{Text: "hello, world", N: i}); err != nil {
						b.Fatal(err)
					}
					lat = append(lat, time.Since(start))
				}
				lat.report(b)
			})
			// With a caller id: the id ledger is asked first and told after.
			b.Run("bus-id", func(b *testing.B) {
				lat := make(latencies, 0, b.N)
				b.ReportAllocs()
				for i := 0; b.Loop(); i++ {
					start := time.Now()
					if _, err := bb.PublishID(ctx, fmt.Sprintf("bench-%d", i), "bench", payload{Text: "hello, world", N: i}); err != nil {
						b.Fatal(err)
					}
					lat = append(lat, time.Since(start))
				}
				lat.report(b)
			})
		})
	}
}

// BenchmarkDelivery: from Publish on one node until a subscriber on
// another node (its own connection, another server in R3) has the event.
func BenchmarkDelivery(b *testing.B) {
	for _, r := range []int{1, 3} {
		b.Run(fmt.Sprintf("R%d", r), func(b *testing.B) {
			urls := benchServers(b, r)
			pub := benchBus(b, urls[0], r)
			sub := benchBus(b, urls[len(urls)-1], r)
			s, err := sub.Subscribe("bench", bus.WithBuffer(64))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ctx := context.Background()
			lat := make(latencies, 0, b.N)
			for i := 0; b.Loop(); i++ {
				start := time.Now()
				seq, err := pub.Publish(ctx, "bench", payload{N: i})
				if err != nil {
					b.Fatal(err)
				}
				for {
					ev, err := s.Next(ctx)
					if err != nil {
						b.Fatal(err)
					}
					if ev.Seq == seq {
						break
					}
				}
				lat = append(lat, time.Since(start))
			}
			lat.report(b)
		})
	}
}

// BenchmarkApply: how fast one node applies the stream: a node that starts
// with n events in the stream and loads them (New returns when it has).
func BenchmarkApply(b *testing.B) {
	const n = 100_000
	urls := benchServers(b, 1)
	nc := connect(b, urls[0])
	_ = testLog[payload](b, nc, WithHistory(n)) // makes the stream
	js, _ := jetstream.New(nc)
	data, _ := JSON{}.Marshal(payload{Text: "hello, world", N: 42})
	for i := range n {
		if _, err := js.PublishAsync(fmt.Sprintf("%s.t%d", defaultStream, i%100), data); err != nil {
			b.Fatal(err)
		}
	}
	<-js.PublishAsyncComplete()
	b.ResetTimer()
	var total time.Duration
	for b.Loop() {
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		bb, err := New[payload](ctx, connect(b, urls[0]), WithHistory(n))
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		total += time.Since(start)
		if bb.Seq() != n {
			b.Fatalf("loaded %d, want %d", bb.Seq(), n)
		}
		bb.Close()
	}
	b.ReportMetric(float64(n)*float64(b.N)/total.Seconds(), "events/s")
}
