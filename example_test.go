package bus_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/whalesong/bus"
)

type Order struct {
	ID     string
	Amount int
}

func Example() {
	ctx := context.Background()
	b := bus.New[Order]()
	defer b.Close()

	sub, _ := b.Subscribe("orders.created")
	defer sub.Close()

	b.Publish(ctx, "orders.created", Order{ID: "A-1", Amount: 30})
	b.Publish(ctx, "orders.created", Order{ID: "A-2", Amount: 12})

	for range 2 {
		ev, _ := sub.Next(ctx)
		fmt.Println(ev.Seq, ev.Topic, ev.Data.ID, ev.Data.Amount)
	}
	// Output:
	// 1 orders.created A-1 30
	// 2 orders.created A-2 12
}

// Wildcards: '*' stands for exactly one token, a final '>' for one or more.
func ExampleBus_Subscribe_wildcards() {
	ctx := context.Background()
	b := bus.New[string]()
	defer b.Close()

	created, _ := b.Subscribe("orders.*.created")
	everything, _ := b.Subscribe("orders.>")

	b.Publish(ctx, "orders.eu.created", "eu order")
	b.Publish(ctx, "orders.us.paid", "us payment")
	b.Publish(ctx, "orders.us.created", "us order")
	b.Close() // ends the subscriptions; what they queued stays readable

	for ev := range created.C() {
		fmt.Println("created:", ev.Data)
	}
	for ev := range everything.C() {
		fmt.Println("orders.>:", ev.Seq, ev.Data)
	}
	// Output:
	// created: eu order
	// created: us order
	// orders.>: 1 eu order
	// orders.>: 2 us payment
	// orders.>: 3 us order
}

// A subscriber remembers the Seq of the last event it handled; after a
// disconnect it resubscribes with After(that seq) and gets exactly what it
// missed, then live events. Recovered says whether nothing was lost.
func ExampleAfter() {
	ctx := context.Background()
	b := bus.New[string](bus.WithHistory(100))
	defer b.Close()

	sub, _ := b.Subscribe("chat.>")
	b.Publish(ctx, "chat.lobby", "hello")
	ev, _ := sub.Next(ctx)
	lastSeen := ev.Seq
	sub.Close() // the connection drops

	b.Publish(ctx, "chat.lobby", "you missed this")
	b.Publish(ctx, "chat.dev", "and this")

	sub, _ = b.Subscribe("chat.>", bus.After(lastSeen))
	defer sub.Close()
	b.Publish(ctx, "chat.lobby", "live again")

	fmt.Println("recovered:", sub.Recovered())
	for range 3 {
		ev, _ := sub.Next(ctx)
		fmt.Println(ev.Seq, ev.Data)
	}
	// Output:
	// recovered: true
	// 2 you missed this
	// 3 and this
	// 4 live again
}

// Last(n) starts with the n newest retained events, as a chat room does
// when someone joins.
func ExampleLast() {
	ctx := context.Background()
	b := bus.New[string]()
	defer b.Close()
	for _, msg := range []string{"one", "two", "three", "four"} {
		b.Publish(ctx, "room.1", msg)
	}
	sub, _ := b.Subscribe("room.1", bus.Last(2))
	defer sub.Close()
	for range 2 {
		ev, _ := sub.Next(ctx)
		fmt.Println(ev.Data)
	}
	// Output:
	// three
	// four
}

// Choosing a policy: a metrics sampler may drop old samples rather than hold
// up publishers, while a consumer that must see everything uses Disconnect
// and resumes from history.
func ExampleWithPolicy() {
	ctx := context.Background()
	b := bus.New[int]()
	defer b.Close()

	sampler, _ := b.Subscribe("cpu", bus.WithBuffer(2), bus.WithPolicy(bus.DropOldest))
	strict, _ := b.Subscribe("cpu", bus.WithBuffer(2), bus.WithPolicy(bus.Disconnect))

	for load := range 5 {
		b.Publish(ctx, "cpu", load*10) // never waits: no Block subscriber
	}

	fmt.Println("sampler keeps the newest:", (<-sampler.C()).Data, (<-sampler.C()).Data, "dropped", sampler.Dropped())

	var last uint64
	for ev := range strict.C() {
		last = ev.Seq
	}
	fmt.Println("strict ended:", errors.Is(strict.Err(), bus.ErrSlowConsumer), "after seq", last)
	again, _ := b.Subscribe("cpu", bus.After(last), bus.WithPolicy(bus.Disconnect))
	fmt.Println("resumed, recovered:", again.Recovered(), "replaying", len(again.C()), "events")
	// Output:
	// sampler keeps the newest: 30 40 dropped 3
	// strict ended: true after seq 2
	// resumed, recovered: true replaying 3 events
}

// Block, the default, makes a publisher wait for room; its ctx bounds the
// wait.
func ExampleBlock() {
	b := bus.New[string]()
	defer b.Close()
	sub, _ := b.Subscribe("jobs", bus.WithBuffer(1)) // Block by default
	defer sub.Close()

	b.Publish(context.Background(), "jobs", "first") // fits
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	_, err := b.Publish(ctx, "jobs", "second") // nobody reads: waits, then gives up
	fmt.Println(errors.Is(err, context.DeadlineExceeded), b.Seq())
	// Output:
	// true 1
}

func ExampleBus_History() {
	ctx := context.Background()
	b := bus.New[string]()
	defer b.Close()
	b.Publish(ctx, "audit.login", "alice")
	b.Publish(ctx, "audit.logout", "alice")
	b.Publish(ctx, "audit.login", "bob")

	evs, _ := b.History("audit.login", 0, 10)
	for _, ev := range evs {
		fmt.Println(ev.Seq, ev.Data)
	}
	// Output:
	// 1 alice
	// 3 bob
}
