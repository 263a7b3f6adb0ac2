// Command quickstart is a 30-second tour of the whalesong bus: typed events,
// wildcard subscriptions, and a subscriber that drops off, misses events and
// resumes exactly where it left off.
//
//	go run ./examples/quickstart
package main

import (
	"context"
	"fmt"
	"log"
	"sync"

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
	created, err := b.Subscribe("orders.*.created")
	if err != nil {
		log.Fatal(err)
	}
	audit, err := b.Subscribe("orders.>")
	if err != nil {
		log.Fatal(err)
	}

	var wg sync.WaitGroup
	wg.Go(func() {
		for ev := range created.C() {
			fmt.Printf("  [created] #%d %-18s %s %d€\n", ev.Seq, ev.Topic, ev.Data.ID, ev.Data.Amount)
		}
	})

	fmt.Println("1. publishing three orders; a wildcard subscriber sees the created ones:")
	publish(ctx, b, "orders.eu.created", Order{ID: "A-1", Region: "eu", Amount: 30})
	publish(ctx, b, "orders.eu.paid", Order{ID: "A-1", Region: "eu", Amount: 30})
	publish(ctx, b, "orders.us.created", Order{ID: "B-7", Region: "us", Amount: 99})

	// The audit subscriber reads two events, then "loses its connection".
	var lastSeen uint64
	for range 2 {
		ev, err := audit.Next(ctx)
		if err != nil {
			log.Fatal(err)
		}
		lastSeen = ev.Seq
	}
	audit.Close()
	fmt.Printf("\n2. the audit subscriber drops off after seq %d; life goes on without it:\n", lastSeen)
	publish(ctx, b, "orders.us.paid", Order{ID: "B-7", Region: "us", Amount: 99})
	publish(ctx, b, "orders.eu.refunded", Order{ID: "A-1", Region: "eu", Amount: 30, Comment: "damaged"})

	// Resume: After(lastSeen) replays exactly what was missed, then goes live,
	// with no gap and no duplicate even while others keep publishing.
	audit, err = b.Subscribe("orders.>", bus.After(lastSeen))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("\n3. it resubscribes with After(%d): recovered=%v, and catches up:\n", lastSeen, audit.Recovered())
	publish(ctx, b, "orders.eu.created", Order{ID: "C-3", Region: "eu", Amount: 5})
	for range 4 {
		ev, err := audit.Next(ctx)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("  [audit]   #%d %-18s %s\n", ev.Seq, ev.Topic, ev.Data.ID)
	}

	b.Close() // ends every subscription; the reader goroutine finishes
	wg.Wait()
	st := b.Stats()
	fmt.Printf("\n4. closed. published=%d delivered=%d dropped=%d\n", st.Published, st.Delivered, st.Dropped)
}

func publish(ctx context.Context, b *bus.Bus[Order], topic string, o Order) {
	if _, err := b.Publish(ctx, topic, o); err != nil {
		log.Fatal(err)
	}
}
