package metrics_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/whalesong/bus"
	"github.com/whalesong/bus/bridge"
	"github.com/whalesong/bus/metrics"
)

// The collectors read any bus and bridge, whatever their T.
var (
	_ metrics.BusSource    = (*bus.Bus[int])(nil)
	_ metrics.BusSource    = (*bus.Bus[struct{ A string }])(nil)
	_ metrics.BridgeSource = (*bridge.Bridge[int])(nil)
)

// fixedBus and fixedBridge answer Stats with given values.
type fixedBus bus.Stats

func (f fixedBus) Stats() bus.Stats { return bus.Stats(f) }

type fixedBridge bridge.Stats

func (f fixedBridge) Stats() bridge.Stats { return bridge.Stats(f) }

// TestBusCollectorExportsEveryField gives each field of bus.Stats a value
// of its own, so that a field exported under another's name, or as the
// wrong type, or not at all, fails.
func TestBusCollectorExportsEveryField(t *testing.T) {
	src := fixedBus{Published: 11, Delivered: 13, Dropped: 17, Superseded: 19, Subscribers: 2, Topics: 3, Retained: 5}
	expect(t, gather(t, metrics.NewBusCollector(src)), map[string]sample{
		"whalesong_bus_events_published_total":  counter(11),
		"whalesong_bus_events_delivered_total":  counter(13),
		"whalesong_bus_events_dropped_total":    counter(17),
		"whalesong_bus_events_superseded_total": counter(19),
		"whalesong_bus_subscriptions":           gauge(2),
		"whalesong_bus_topics":                  gauge(3),
		"whalesong_bus_retained_events":         gauge(5),
	})
}

func TestBridgeCollectorExportsEveryField(t *testing.T) {
	src := fixedBridge{
		Clients: 2, Subscriptions: 3, Patterns: 5,
		FramesIn: 7, FramesOut: 11, EventsOut: 13,
		Published: 17, Deduplicated: 19,
		SlowDisconnects: 23, AbuseDisconnects: 29,
		CodecErrors: 31, Superseded: 73,
		Rejected: map[string]uint64{"forbidden": 37, "rate_limited": 41},
		Kicked:   43, Expired: 47, Revoked: 53,
		HandshakesRefused: map[string]uint64{"unavailable": 59, "origin": 61, "authentication": 67, "expired": 71},
	}
	expect(t, gather(t, metrics.NewBridgeCollector(src)), map[string]sample{
		"whalesong_bridge_clients":                                           gauge(2),
		"whalesong_bridge_subscriptions":                                     gauge(3),
		"whalesong_bridge_patterns":                                          gauge(5),
		"whalesong_bridge_frames_received_total":                             counter(7),
		"whalesong_bridge_frames_sent_total":                                 counter(11),
		"whalesong_bridge_events_sent_total":                                 counter(13),
		"whalesong_bridge_publishes_total":                                   counter(17),
		"whalesong_bridge_publishes_deduplicated_total":                      counter(19),
		`whalesong_bridge_disconnects_total{reason="slow"}`:                  counter(23),
		`whalesong_bridge_disconnects_total{reason="abuse"}`:                 counter(29),
		"whalesong_bridge_codec_errors_total":                                counter(31),
		"whalesong_bridge_events_superseded_total":                           counter(73),
		`whalesong_bridge_rejections_total{code="forbidden"}`:                counter(37),
		`whalesong_bridge_rejections_total{code="rate_limited"}`:             counter(41),
		`whalesong_bridge_disconnects_total{reason="kicked"}`:                counter(43),
		`whalesong_bridge_disconnects_total{reason="expired"}`:               counter(47),
		"whalesong_bridge_subscriptions_revoked_total":                       counter(53),
		`whalesong_bridge_handshakes_refused_total{reason="unavailable"}`:    counter(59),
		`whalesong_bridge_handshakes_refused_total{reason="origin"}`:         counter(61),
		`whalesong_bridge_handshakes_refused_total{reason="authentication"}`: counter(67),
		`whalesong_bridge_handshakes_refused_total{reason="expired"}`:        counter(71),
	})
}

// TestNamesPassLint runs Prometheus's own naming lint (promlint: _total on
// counters, units, snake case, help text) over every metric, all of them
// present.
func TestNamesPassLint(t *testing.T) {
	bc := metrics.NewBusCollector(fixedBus{Published: 1})
	if _, err := bc.Watch("audit", &fakeSub{pattern: "orders.>"}); err != nil {
		t.Fatal(err)
	}
	br := metrics.NewBridgeCollector(fixedBridge{Rejected: map[string]uint64{"forbidden": 1}})
	for _, c := range []prometheus.Collector{bc, br} {
		problems, err := testutil.CollectAndLint(c)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range problems {
			t.Errorf("lint: %s: %s", p.Metric, p.Text)
		}
	}
	if n := testutil.CollectAndCount(bc) + testutil.CollectAndCount(br); n != 8+20 {
		t.Errorf("linted %d series, want all 28", n)
	}
}

// TestRealBus follows a real bus through publishes, a reader that falls
// behind with DropNewest, and Close, and checks every value against Stats.
func TestRealBus(t *testing.T) {
	b := bus.New[int](bus.WithHistory(2))
	c := metrics.NewBusCollector(b)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)

	fromStats := func() map[string]sample {
		st := b.Stats()
		return map[string]sample{
			"whalesong_bus_events_published_total":  counter(float64(st.Published)),
			"whalesong_bus_events_delivered_total":  counter(float64(st.Delivered)),
			"whalesong_bus_events_dropped_total":    counter(float64(st.Dropped)),
			"whalesong_bus_events_superseded_total": counter(float64(st.Superseded)),
			"whalesong_bus_subscriptions":           gauge(float64(st.Subscribers)),
			"whalesong_bus_topics":                  gauge(float64(st.Topics)),
			"whalesong_bus_retained_events":         gauge(float64(st.Retained)),
		}
	}
	expect(t, gatherFrom(t, reg), fromStats())

	sub, err := b.Subscribe("orders.>", bus.WithBuffer(1), bus.WithPolicy(bus.DropNewest))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := b.Publish(context.Background(), "orders.eu", i); err != nil {
			t.Fatal(err)
		}
	}
	got := gatherFrom(t, reg)
	expect(t, got, fromStats())
	// The scenario itself: 3 published, the one-slot reader took 1 and lost
	// 2, history keeps the newest 2 of the one topic.
	for name, want := range map[string]float64{
		"whalesong_bus_events_published_total": 3,
		"whalesong_bus_events_delivered_total": 1,
		"whalesong_bus_events_dropped_total":   2,
		"whalesong_bus_subscriptions":          1,
		"whalesong_bus_topics":                 1,
		"whalesong_bus_retained_events":        2,
	} {
		if got[name].value != want {
			t.Errorf("%s = %v, want %v", name, got[name].value, want)
		}
	}

	sub.Close()
	b.Close()
	got = gatherFrom(t, reg) // a closed bus still answers
	expect(t, got, fromStats())
	if v := got["whalesong_bus_subscriptions"].value; v != 0 {
		t.Errorf("subscriptions after Close = %v, want 0", v)
	}
}

// TestRealBridge reads a real bridge: both disconnect reasons are there from
// 0, and no rejection code before the first rejection.
func TestRealBridge(t *testing.T) {
	b := bus.New[int]()
	defer b.Close()
	br := bridge.New(b)
	defer br.Close()
	got := gather(t, metrics.NewBridgeCollector(br))
	for _, name := range []string{
		`whalesong_bridge_disconnects_total{reason="slow"}`,
		`whalesong_bridge_disconnects_total{reason="abuse"}`,
		`whalesong_bridge_disconnects_total{reason="expired"}`,
		`whalesong_bridge_disconnects_total{reason="kicked"}`,
		`whalesong_bridge_handshakes_refused_total{reason="origin"}`,
		"whalesong_bridge_subscriptions_revoked_total",
		"whalesong_bridge_clients",
	} {
		if s, ok := got[name]; !ok || s.value != 0 {
			t.Errorf("%s = %v (present %v), want 0", name, s.value, ok)
		}
	}
	for name := range got {
		if strings.HasPrefix(name, "whalesong_bridge_rejections_total") {
			t.Errorf("%s present before any rejection", name)
		}
	}
}

// TestSeveralBuses: collectors of two buses register together when their
// constant labels differ, and a registry refuses the second otherwise.
func TestSeveralBuses(t *testing.T) {
	orders := fixedBus{Published: 3}
	chat := fixedBus{Published: 5}
	got := gather(t,
		metrics.NewBusCollector(orders, metrics.WithConstLabels(prometheus.Labels{"bus": "orders"})),
		metrics.NewBusCollector(chat, metrics.WithConstLabels(prometheus.Labels{"bus": "chat"})),
		metrics.NewBridgeCollector(fixedBridge{}, metrics.WithConstLabels(prometheus.Labels{"bus": "chat"})),
	)
	for name, want := range map[string]float64{
		`whalesong_bus_events_published_total{bus="orders"}`: 3,
		`whalesong_bus_events_published_total{bus="chat"}`:   5,
		`whalesong_bridge_clients{bus="chat"}`:               0,
	} {
		if s, ok := got[name]; !ok || s.value != want {
			t.Errorf("%s = %v (present %v), want %v", name, s.value, ok, want)
		}
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.NewBusCollector(orders))
	if err := reg.Register(metrics.NewBusCollector(chat)); err == nil {
		t.Error("a second bus collector without labels of its own registered")
	}
	if err := reg.Register(metrics.NewBusCollector(chat, metrics.WithNamespace("chat"))); err != nil {
		t.Errorf("a second bus collector in a namespace of its own: %v", err)
	}
}

func TestWithNamespace(t *testing.T) {
	for ns, want := range map[string]string{
		"shop": "shop_bus_events_published_total",
		"":     "bus_events_published_total",
	} {
		got := gather(t, metrics.NewBusCollector(fixedBus{Published: 7}, metrics.WithNamespace(ns)))
		if s := got[want]; s.value != 7 {
			t.Errorf("WithNamespace(%q): %s = %v, want 7 (got %v)", ns, want, s.value, got)
		}
	}
}

// TestWithConstLabelsCopies: changing the map after the option is made
// changes nothing, and two calls add up.
func TestWithConstLabelsCopies(t *testing.T) {
	labels := prometheus.Labels{"bus": "orders"}
	opt := metrics.WithConstLabels(labels)
	labels["bus"] = "changed"
	got := gather(t, metrics.NewBusCollector(fixedBus{}, opt, metrics.WithConstLabels(prometheus.Labels{"node": "a"})))
	if _, ok := got[`whalesong_bus_topics{bus="orders",node="a"}`]; !ok {
		t.Errorf("want the labels as given, then added to; got %v", got)
	}
}

// TestRegisterRefusesBadInput: every bad input is an error from Register,
// never a panic at scrape time.
func TestRegisterRefusesBadInput(t *testing.T) {
	tests := []struct {
		name     string
		c        prometheus.Collector
		sentinel error
	}{
		{"nil bus", metrics.NewBusCollector(nil), metrics.ErrNilSource},
		{"nil bridge", metrics.NewBridgeCollector(nil), metrics.ErrNilSource},
		{"namespace not UTF-8", metrics.NewBusCollector(fixedBus{}, metrics.WithNamespace("\xff")), nil},
		{"label value not UTF-8", metrics.NewBridgeCollector(fixedBridge{},
			metrics.WithConstLabels(prometheus.Labels{"bus": "\xff"})), nil},
		{"reserved label name", metrics.NewBusCollector(fixedBus{},
			metrics.WithConstLabels(prometheus.Labels{"__name__": "x"})), nil},
		{"label the bus collector uses", metrics.NewBusCollector(fixedBus{},
			metrics.WithConstLabels(prometheus.Labels{"pattern": "x"})), nil},
		{"label the bridge collector uses", metrics.NewBridgeCollector(fixedBridge{},
			metrics.WithConstLabels(prometheus.Labels{"code": "x"})), nil},
	}
	for _, tt := range tests {
		err := prometheus.NewRegistry().Register(tt.c)
		switch {
		case err == nil:
			t.Errorf("%s: registered", tt.name)
		case tt.sentinel != nil && !errors.Is(err, tt.sentinel):
			t.Errorf("%s: %v, want %v", tt.name, err, tt.sentinel)
		}
		// Collected unregistered, it does not panic either.
		ch := make(chan prometheus.Metric, 64)
		tt.c.Collect(ch)
		close(ch)
		for range ch {
		}
	}
}
