package metrics

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/whalesong/bus"
)

// BusSource is what a BusCollector reads: a *bus.Bus[T] of any T.
type BusSource interface {
	Stats() bus.Stats // read at every scrape
}

// BusCollector is a prometheus.Collector for the Stats of one bus and the
// lag of the subscriptions given to Watch. Make it with NewBusCollector.
type BusCollector struct {
	src     BusSource
	stats   statSet[bus.Stats]
	invalid *prometheus.Desc // non-nil when src is nil: Register fails with it
	watched watchList
}

// NewBusCollector returns a collector of b's Stats, to register with a
// prometheus.Registerer; the package doc lists what it exports. A nil b
// makes Register fail with ErrNilSource.
func NewBusCollector(b BusSource, opts ...Option) *BusCollector {
	cfg := newConfig(opts)
	c := &BusCollector{src: b, stats: statSet[bus.Stats]{cfg: cfg, sub: "bus"}}
	if b == nil {
		c.invalid = prometheus.NewInvalidDesc(fmt.Errorf("%w: NewBusCollector(nil)", ErrNilSource))
	}
	s := &c.stats
	s.counter("events_published_total", "Events published on the bus since it was made.",
		func(st bus.Stats) float64 { return float64(st.Published) })
	s.counter("events_delivered_total", "Events queued to subscribers since the bus was made, replayed events included.",
		func(st bus.Stats) float64 { return float64(st.Delivered) })
	s.counter("events_dropped_total", "Events lost by subscribers with the DropOldest, DropNewest or Conflate policy.",
		func(st bus.Stats) float64 { return float64(st.Dropped) })
	s.counter("events_superseded_total", "Queued events replaced by a newer event of their topic under the Conflate policy.",
		func(st bus.Stats) float64 { return float64(st.Superseded) })
	s.gauge("subscriptions", "Live subscriptions on the bus.",
		func(st bus.Stats) float64 { return float64(st.Subscribers) })
	s.gauge("topics", "Topics with retained events or a subscription naming them literally.",
		func(st bus.Stats) float64 { return float64(st.Topics) })
	s.gauge("retained_events", "Events held for replay, over all topics.",
		func(st bus.Stats) float64 { return float64(st.Retained) })
	c.watched.desc = s.desc("subscription_pending_events",
		"Events queued to a watched subscription and not yet read, by the name given to Watch.",
		labelSubscription, labelPattern)
	return c
}

// Describe sends the description of every metric c can export. It is part of
// prometheus.Collector.
func (c *BusCollector) Describe(ch chan<- *prometheus.Desc) {
	if c.invalid != nil {
		ch <- c.invalid
		return
	}
	c.stats.describe(ch)
	ch <- c.watched.desc
}

// Collect reads the bus's Stats and the Pending of every watched
// subscription and sends them as metrics. It is part of
// prometheus.Collector; a registry calls it on every scrape.
func (c *BusCollector) Collect(ch chan<- prometheus.Metric) {
	if c.invalid != nil {
		return
	}
	c.stats.collect(ch, c.src.Stats())
	c.watched.collect(ch)
}
