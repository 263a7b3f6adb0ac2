package metrics_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/whalesong/bus"
	"github.com/whalesong/bus/bridge"
	"github.com/whalesong/bus/metrics"
)

// printMetrics prints the named series of reg as a scrape shows them,
// without the HELP and TYPE lines.
func printMetrics(reg prometheus.Gatherer, names ...string) {
	text, err := testutil.GatherAndFormat(reg, expfmt.TypeTextPlain, names...)
	if err != nil {
		fmt.Println(err)
		return
	}
	for line := range strings.Lines(string(text)) {
		if !strings.HasPrefix(line, "#") {
			fmt.Print(line)
		}
	}
}

// A bus and its bridge on one registry; serve it with
// http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{})).
func Example() {
	ctx := context.Background()
	b := bus.New[string]()
	defer b.Close()
	br := bridge.New(b)
	defer br.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.NewBusCollector(b), metrics.NewBridgeCollector(br))

	sub, _ := b.Subscribe("orders.>")
	defer sub.Close()
	b.Publish(ctx, "orders.eu.created", "A-1")
	b.Publish(ctx, "orders.us.created", "B-2")

	printMetrics(reg,
		"whalesong_bus_events_published_total",
		"whalesong_bus_events_delivered_total",
		"whalesong_bus_subscriptions",
		"whalesong_bridge_clients",
		"whalesong_bridge_disconnects_total")
	// Output:
	// whalesong_bridge_clients 0
	// whalesong_bridge_disconnects_total{reason="abuse"} 0
	// whalesong_bridge_disconnects_total{reason="expired"} 0
	// whalesong_bridge_disconnects_total{reason="kicked"} 0
	// whalesong_bridge_disconnects_total{reason="slow"} 0
	// whalesong_bus_events_delivered_total 2
	// whalesong_bus_events_published_total 2
	// whalesong_bus_subscriptions 1
}

// Two buses on one registry, told apart by a constant label.
func ExampleWithConstLabels() {
	ctx := context.Background()
	orders, chat := bus.New[string](), bus.New[string]()
	defer orders.Close()
	defer chat.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(
		metrics.NewBusCollector(orders, metrics.WithConstLabels(prometheus.Labels{"bus": "orders"})),
		metrics.NewBusCollector(chat, metrics.WithConstLabels(prometheus.Labels{"bus": "chat"})),
	)
	orders.Publish(ctx, "orders.eu.created", "A-1")

	printMetrics(reg, "whalesong_bus_events_published_total")
	// Output:
	// whalesong_bus_events_published_total{bus="chat"} 0
	// whalesong_bus_events_published_total{bus="orders"} 1
}

// The bus of a shop, under names of its own.
func ExampleWithNamespace() {
	b := bus.New[string]()
	defer b.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.NewBusCollector(b, metrics.WithNamespace("shop")))
	b.Publish(context.Background(), "orders.eu.created", "A-1")

	printMetrics(reg, "shop_bus_events_published_total", "shop_bus_retained_events")
	// Output:
	// shop_bus_events_published_total 1
	// shop_bus_retained_events 1
}

// inbox is a worker's queue: anything with Pending and Pattern can be
// watched, a *bus.Subscription as well.
type inbox chan string

func (q inbox) Pending() int    { return len(q) }
func (q inbox) Pattern() string { return "jobs.>" }

// A reader that falls behind shows as a climbing gauge.
func ExampleBusCollector_Watch() {
	b := bus.New[string]()
	defer b.Close()
	c := metrics.NewBusCollector(b)
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)

	q := make(inbox, 10)
	unwatch, err := c.Watch("mailer", q)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer unwatch()
	q <- "welcome ada"
	q <- "welcome bob"

	printMetrics(reg, "whalesong_bus_subscription_pending_events")
	// Output:
	// whalesong_bus_subscription_pending_events{pattern="jobs.>",subscription="mailer"} 2
}
