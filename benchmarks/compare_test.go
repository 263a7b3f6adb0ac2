package benchmarks

// The comparison: every scenario for every library that supports it, named
// .../impl=NAME so that `benchstat -col /impl` puts them side by side.

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/whalesong/bus"
)

const (
	scenarioWildcard  = "wildcard"
	scenarioReplay    = "replay"
	scenarioUnrelated = "unrelated"
)

const (
	noPatterns = "no wildcard subscriptions"
	noReplay   = "no replay of past events"
)

var impls = []impl{
	{name: "chan", new: newChan},
	{name: "whalesong", new: newWhalesong},
	{name: "tailscale", new: newTailscale, lacks: map[string]string{
		scenarioWildcard: "routes by Go type, no topics",
		scenarioReplay:   noReplay,
	}},
	{name: "cskr", new: newCskr, lacks: map[string]string{
		scenarioWildcard: noPatterns,
		scenarioReplay:   noReplay,
	}},
	{name: "asaskevich", new: newEventBus, lacks: map[string]string{
		scenarioWildcard: noPatterns,
		scenarioReplay:   noReplay,
	}},
	{name: "watermill", new: newWatermill, unordered: true, lacks: map[string]string{
		scenarioWildcard: noPatterns,
	}},
}

const topic = "orders.eu.created"

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

// forEach runs fn as impl=NAME under b for every library that supports
// scenario, and skips (with the reason) those that do not.
func forEach(b *testing.B, scenario string, fn func(b *testing.B, im impl)) {
	for _, im := range impls {
		b.Run("impl="+im.name, func(b *testing.B) {
			if why := im.lacks[scenario]; why != "" {
				b.Skip(why)
			}
			fn(b, im)
		})
	}
}

// BenchmarkFanout is one publisher to 1 and to 100 subscribers of a topic.
func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{1, 100} {
		b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) {
			forEach(b, "fanout", func(b *testing.B, im impl) {
				runFanout(b, im, repeat(topic, n), []string{topic}, 0)
			})
		})
	}
}

// BenchmarkUnrelated publishes to one subscriber while 1 or 10,000 other
// subscriptions wait on other topics (tailscale: on another event type).
func BenchmarkUnrelated(b *testing.B) {
	for _, n := range []int{1, 10_000} {
		b.Run(fmt.Sprintf("unrelated=%d", n), func(b *testing.B) {
			forEach(b, scenarioUnrelated, func(b *testing.B, im impl) {
				runFanout(b, im, []string{topic}, []string{topic}, n)
			})
		})
	}
}

// BenchmarkWildcard fans out to orders.*.created, orders.> and >, publishing
// round-robin to four topics that match all three. The chan baseline sends
// to three channels.
func BenchmarkWildcard(b *testing.B) {
	patterns := []string{"orders.*.created", "orders.>", ">"}
	topics := []string{"orders.eu.created", "orders.us.created", "orders.ap.created", "orders.sa.created"}
	forEach(b, scenarioWildcard, func(b *testing.B, im impl) {
		if im.name == "chan" {
			runFanout(b, im, repeat(topic, len(patterns)), []string{topic}, 0)
			return
		}
		runFanout(b, im, patterns, topics, 0)
	})
}

// BenchmarkParallel runs one publisher per P (b.RunParallel), each on its
// own topic with its own subscriber.
func BenchmarkParallel(b *testing.B) {
	topics := make([]string, runtime.GOMAXPROCS(0))
	for i := range topics {
		topics[i] = fmt.Sprintf("orders.p%d.created", i)
	}
	forEach(b, "parallel", func(b *testing.B, im impl) { runParallel(b, im, topics) })
}

const replayN = 10_000

// BenchmarkReplay: a new subscriber gets 10,000 past events and drains
// them; one op is the whole replay. The chan baseline copies 10,000 stored
// events through a fresh channel; watermill uses GoChannel's Persistent
// mode, which re-sends everything ever published to the topic (unordered).
func BenchmarkReplay(b *testing.B) {
	forEach(b, scenarioReplay, func(b *testing.B, im impl) {
		switch im.name {
		case "chan":
			replayChan(b)
		case "whalesong":
			replayWhalesong(b)
		case "watermill":
			replayWatermill(b)
		default:
			b.Fatalf("no replay for %s", im.name)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*replayN), "ns/event")
	})
}

func replayChan(b *testing.B) {
	stored := make([]bus.Event[payload], replayN)
	for i := range stored {
		stored[i] = bus.Event[payload]{Seq: uint64(i + 1), Topic: topic, Data: payloadFor(i)}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		ch := make(chan bus.Event[payload], len(stored))
		for _, ev := range stored {
			ch <- ev
		}
		for range replayN {
			<-ch
		}
	}
	b.StopTimer()
}

func replayWhalesong(b *testing.B) {
	bs := bus.New[payload](bus.WithHistory(replayN))
	defer bs.Close()
	ctx := context.Background()
	for i := range replayN {
		if _, err := bs.Publish(ctx, topic, payloadFor(i)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		sub, err := bs.Subscribe(topic, bus.After(0))
		if err != nil {
			b.Fatal(err)
		}
		for range replayN {
			if _, err := sub.Next(ctx); err != nil {
				b.Fatal(err)
			}
		}
		sub.Close()
	}
	b.StopTimer() // Close is not part of the measure
}

func replayWatermill(b *testing.B) {
	s := newWatermillWith(gochannel.Config{OutputChannelBuffer: buffer, Persistent: true})
	defer s.close()
	pub := s.publisher(b, topic)
	for i := range replayN {
		pub(payloadFor(i))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		ctx, cancel := context.WithCancel(s.ctx)
		msgs, err := s.ch.Subscribe(ctx, topic)
		if err != nil {
			b.Fatal(err)
		}
		for range replayN {
			msg := <-msgs
			decodePayload(msg.Payload)
			msg.Ack()
		}
		cancel()
		for range msgs { // closed once the library has let go of the subscriber
		}
	}
	b.StopTimer()
}
