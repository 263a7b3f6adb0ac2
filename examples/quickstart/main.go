// Command quickstart is a 30-second tour of the whalesong bus: typed events,
// wildcard subscriptions, a subscriber that drops off, misses events and
// resumes exactly where it left off, and the newest state of every topic.
//
//	go run ./examples/quickstart
package main

import (
	"context"
	"fmt"
	"log"

	"github.com/whalesong/bus"
)

// Order is the event type: a Bus carries one Go type, no interface{}.
type Order struct {
	ID      string
	Region  string
	Amount  int
	Comment string
}

func main() {
	ctx := context.Background()
	b := bus.New[Order](bus.WithHistory(1024)) // keep 1024 events per topic for replay
	defer b.Close()

	// Wildcards: '*' is one token, a final '>' is one or more.
	created := subscribe(b, "orders.*.created")
	audit := subscribe(b, "orders.>")

	fmt.Println("1. publishing three orders; a wildcard subscriber sees the created ones:")
	publish(ctx, b, "orders.eu.created", Order{ID: "A-1", Region: "eu", Amount: 30})
	publish(ctx, b, "orders.eu.paid", Order{ID: "A-1", Region: "eu", Amount: 30})
	publish(ctx, b, "orders.us.created", Order{ID: "B-7", Region: "us", Amount: 99})
	for created.Pending() > 0 {
		ev := next(ctx, created)
		fmt.Printf("  [created] #%d %-18s %s %d€\n", ev.Seq, ev.Topic, ev.Data.ID, ev.Data.Amount)
	}

	// The audit subscriber reads two events, then "loses its connection".
	var lastSeen uint64
	for range 2 {
		lastSeen = next(ctx, audit).Seq
	}
	audit.Close()
	fmt.Printf("\n2. the audit subscriber drops off after seq %d; life goes on without it:\n", lastSeen)
	publish(ctx, b, "orders.us.paid", Order{ID: "B-7", Region: "us", Amount: 99})
	publish(ctx, b, "orders.eu.refunded", Order{ID: "A-1", Region: "eu", Amount: 30, Comment: "damaged"})
	fmt.Println("  (published #4 and #5)")

	// Resume: After(lastSeen) replays exactly what was missed, then goes live,
	// with no gap and no duplicate even while others keep publishing.
	audit = subscribe(b, "orders.>", bus.After(lastSeen))
	fmt.Printf("\n3. it resubscribes with After(%d): recovered=%v, and catches up:\n", lastSeen, audit.Recovered())
	publish(ctx, b, "orders.eu.created", Order{ID: "C-3", Region: "eu", Amount: 5})
	for range 4 {
		ev := next(ctx, audit)
		fmt.Printf("  [audit]   #%d %-18s %s\n", ev.Seq, ev.Topic, ev.Data.ID)
	}

	// A dashboard that joins now wants the newest event of every topic.
	fmt.Println("\n4. a dashboard joins with Latest(): the newest event of each region's orders:")
	board := subscribe(b, "orders.*.created", bus.Latest())
	for board.Pending() > 0 {
		ev := next(ctx, board)
		fmt.Printf("  [latest]  #%d %-18s %s\n", ev.Seq, ev.Topic, ev.Data.ID)
	}

	b.Close() // ends every subscription
	st := b.Stats()
	fmt.Printf("\n5. closed. published=%d delivered=%d dropped=%d\n", st.Published, st.Delivered, st.Dropped)
}

func subscribe(b *bus.Bus[Order], pattern string, opts ...bus.SubscribeOption) *bus.Subscription[Order] {
	s, err := b.Subscribe(pattern, opts...)
	if err != nil {
		log.Fatal(err)
	}
	return s
}

func next(ctx context.Context, s *bus.Subscription[Order]) bus.Event[Order] {
	ev, err := s.Next(ctx)
	if err != nil {
		log.Fatal(err)
	}
	return ev
}

func publish(ctx context.Context, b *bus.Bus[Order], topic string, o Order) {
	if _, err := b.Publish(ctx, topic, o); err != nil {
		log.Fatal(err)
	}
}
