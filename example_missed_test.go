package bus_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/whalesong/bus"
)

// Latest gives a dashboard the current value of every state topic on
// join, then the live updates.
func ExampleLatest() {
	ctx := context.Background()
	b := bus.New[float64]()
	defer b.Close()
	b.Publish(ctx, "price.eur", 1.08)
	b.Publish(ctx, "price.gbp", 0.85)
	b.Publish(ctx, "price.eur", 1.09) // the newest EUR price

	sub, _ := b.Subscribe("price.*", bus.Latest())
	for range 2 {
		ev, _ := sub.Next(ctx)
		fmt.Println(ev.Topic, ev.Data)
	}
	fmt.Println("recovered:", sub.Recovered())
	// Output:
	// price.gbp 0.85
	// price.eur 1.09
	// recovered: true
}

// Conflate lets a slow reader of state topics fall behind without being
// cut off and without reading stale states: a queued event of the same
// topic is replaced by the newer one, and Skipped says how many it missed.
func ExampleWithPolicy_conflate() {
	ctx := context.Background()
	b := bus.New[int]()
	defer b.Close()
	sub, _ := b.Subscribe("cursor.*", bus.WithBuffer(2), bus.WithPolicy(bus.Conflate))
	for i := 1; i <= 10; i++ { // the reader is busy meanwhile
		b.Publish(ctx, "cursor.alice", i)
		b.Publish(ctx, "cursor.bob", 100+i)
	}
	for sub.Pending() > 0 {
		ev, _ := sub.Next(ctx)
		fmt.Println(ev.Topic, ev.Data, "skipped", ev.Skipped)
	}
	fmt.Println("superseded:", sub.Superseded())
	// Output:
	// cursor.alice 10 skipped 18
	// cursor.bob 110 skipped 0
	// superseded: 18
}

// Disconnect ends a subscriber that falls behind; it comes back with
// After(the last Seq it handled) and gets what it missed from the history.
func ExampleWithPolicy_disconnect() {
	ctx := context.Background()
	b := bus.New[int](bus.WithHistory(100))
	defer b.Close()

	var last uint64
	sub, _ := b.Subscribe("jobs", bus.WithBuffer(2), bus.WithPolicy(bus.Disconnect))
	for i := 1; i <= 5; i++ {
		b.Publish(ctx, "jobs", i) // the third one overflows the buffer
	}
	for { // the recovery loop
		ev, err := sub.Next(ctx)
		if errors.Is(err, bus.ErrSlowConsumer) {
			sub, _ = b.Subscribe("jobs", bus.WithBuffer(2), bus.WithPolicy(bus.Disconnect), bus.After(last))
			fmt.Println("resumed after", last, "recovered:", sub.Recovered())
			continue
		}
		fmt.Println("job", ev.Data)
		if last = ev.Seq; last == 5 {
			break
		}
	}
	// Output:
	// job 1
	// job 2
	// resumed after 2 recovered: true
	// job 3
	// job 4
	// job 5
}

// Next returns the events, then, once the subscription has ended and its
// queue is drained, why it ended.
func ExampleSubscription_Next() {
	ctx := context.Background()
	b := bus.New[string]()
	sub, _ := b.Subscribe("log")
	b.Publish(ctx, "log", "started")
	b.Close()
	for {
		ev, err := sub.Next(ctx)
		if err != nil {
			fmt.Println("ended:", err, errors.Is(err, bus.ErrClosed))
			return
		}
		fmt.Println(ev.Data)
	}
	// Output:
	// started
	// ended: bus: closed true
}

// Since replays what happened after a point in time.
func ExampleSince() {
	ctx := context.Background()
	b := bus.New[string]()
	defer b.Close()
	b.Publish(ctx, "audit", "before")
	cut := time.Now()
	b.Publish(ctx, "audit", "after")

	sub, _ := b.Subscribe("audit", bus.Since(cut))
	ev, _ := sub.Next(ctx)
	fmt.Println(ev.Data)
	// Output: after
}

// Replay reads what a subscription would replay, without subscribing.
func ExampleBus_Replay() {
	ctx := context.Background()
	b := bus.New[string](bus.WithHistory(2))
	defer b.Close()
	for _, m := range []string{"a", "b", "c"} {
		b.Publish(ctx, "room", m)
	}
	events, recovered, _ := b.Replay("room", bus.After(0))
	for _, ev := range events {
		fmt.Println(ev.Seq, ev.Data)
	}
	fmt.Println("recovered:", recovered)
	// Output:
	// 2 b
	// 3 c
	// recovered: false
}

// Missing says which events a replay could not give, so that only those
// need to be reloaded from the source of truth.
func ExampleSubscription_Missing() {
	ctx := context.Background()
	b := bus.New[int](bus.WithHistory(3))
	defer b.Close()
	for i := 1; i <= 10; i++ {
		b.Publish(ctx, "orders", i)
	}
	sub, _ := b.Subscribe("orders", bus.After(2))
	after, before := sub.Missing()
	fmt.Println("recovered:", sub.Recovered(), "missing: after", after, "before", before)
	// Output: recovered: false missing: after 2 before 8
}

// Page reads older history a page at a time, newest page first: a chat
// scrolling back.
func ExampleBus_Page() {
	ctx := context.Background()
	b := bus.New[string]()
	defer b.Close()
	for _, m := range []string{"one", "two", "three", "four", "five"} {
		b.Publish(ctx, "chat.lobby", m)
	}
	before := uint64(0) // first page: up to the newest
	for {
		page, more, _ := b.Page("chat.lobby", before, 2)
		fmt.Println(len(page), "messages from", page[0].Data)
		if !more {
			break
		}
		before = page[0].Seq
	}
	// Output:
	// 2 messages from four
	// 2 messages from two
	// 1 messages from one
}

// WithHistoryTTL drops events older than the TTL, even on a topic nobody
// publishes to again.
func ExampleWithHistoryTTL() {
	ctx := context.Background()
	b := bus.New[string](bus.WithHistoryTTL(20 * time.Millisecond))
	defer b.Close()
	b.Publish(ctx, "session", "token issued")
	time.Sleep(50 * time.Millisecond) // the TTL passes
	events, _ := b.History("session", 0, 0)
	fmt.Println(len(events), "retained")
	// Output: 0 retained
}

// WithMaxRetained bounds the history over all topics together: with many
// topics the per-topic cap alone does not bound memory.
func ExampleWithMaxRetained() {
	ctx := context.Background()
	b := bus.New[int](bus.WithHistory(50), bus.WithMaxRetained(100))
	defer b.Close()
	for i := range 1000 {
		b.Publish(ctx, fmt.Sprintf("user.%d", i%200), i)
	}
	fmt.Println(b.Stats().Retained, "retained")
	// Output: 100 retained
}

// WithHistory sets how many events of each topic are kept for replay; a
// busy topic never evicts a quiet one's.
func ExampleWithHistory() {
	ctx := context.Background()
	b := bus.New[int](bus.WithHistory(2))
	defer b.Close()
	b.Publish(ctx, "quiet", 1)
	for i := range 10 {
		b.Publish(ctx, "busy", i)
	}
	quiet, _ := b.History("quiet", 0, 0)
	busy, _ := b.History("busy", 0, 0)
	fmt.Println(len(quiet), len(busy))
	// Output: 1 2
}

// WithBuffer sets how many live events may wait unread before the policy
// applies.
func ExampleWithBuffer() {
	ctx := context.Background()
	b := bus.New[int]()
	defer b.Close()
	sub, _ := b.Subscribe("t", bus.WithBuffer(3), bus.WithPolicy(bus.DropNewest))
	for i := range 5 {
		b.Publish(ctx, "t", i)
	}
	fmt.Println(sub.Pending(), "queued,", sub.Dropped(), "dropped")
	// Output: 3 queued, 2 dropped
}

// PublishID publishes once per id: a retry after an unknown outcome (a
// timeout, a reconnect) lands once and answers the first Seq.
// WithDedupWindow sets how many ids are remembered and for how long.
func ExampleBus_PublishID() {
	ctx := context.Background()
	b := bus.New[string](bus.WithDedupWindow(1000, time.Minute))
	defer b.Close()
	first, _ := b.PublishID(ctx, "order-7f3a", "orders", "A-1")
	retry, _ := b.PublishID(ctx, "order-7f3a", "orders", "A-1")
	fmt.Println(first, retry, b.Stats().Published)
	// Output: 1 1 1
}
