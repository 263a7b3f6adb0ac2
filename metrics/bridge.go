package metrics

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/whalesong/bus/bridge"
)

// BridgeSource is what a BridgeCollector reads: a *bridge.Bridge[T] of any T.
type BridgeSource interface {
	Stats() bridge.Stats // read at every scrape
}

// The reasons of whalesong_bridge_disconnects_total.
const (
	reasonSlow    = "slow"    // Stats.SlowDisconnects: close code 4000, backlog past WithMaxBacklog
	reasonAbuse   = "abuse"   // Stats.AbuseDisconnects: close code 4001, bad-frame budget spent
	reasonExpired = "expired" // Stats.Expired: close code 4002, WithExpiry's time came
	reasonKicked  = "kicked"  // Stats.Kicked: close code 4003, Bridge.Kick
)

// refusalReasons are the keys of bridge.Stats.HandshakesRefused, each
// exported from 0.
var refusalReasons = []string{"unavailable", "origin", "authentication", "expired"}

// BridgeCollector is a prometheus.Collector for the Stats of one bridge.
// Make it with NewBridgeCollector.
type BridgeCollector struct {
	src         BridgeSource
	stats       statSet[bridge.Stats]
	disconnects *prometheus.Desc // by reason
	rejections  *prometheus.Desc // by code
	refusals    *prometheus.Desc // handshakes, by reason
	invalid     *prometheus.Desc // non-nil when src is nil: Register fails with it
}

// NewBridgeCollector returns a collector of br's Stats, to register with a
// prometheus.Registerer; the package doc lists what it exports. A nil br
// makes Register fail with ErrNilSource.
func NewBridgeCollector(br BridgeSource, opts ...Option) *BridgeCollector {
	cfg := newConfig(opts)
	c := &BridgeCollector{src: br, stats: statSet[bridge.Stats]{cfg: cfg, sub: "bridge"}}
	if br == nil {
		c.invalid = prometheus.NewInvalidDesc(fmt.Errorf("%w: NewBridgeCollector(nil)", ErrNilSource))
	}
	s := &c.stats
	s.gauge("clients", "Open client connections.",
		func(st bridge.Stats) float64 { return float64(st.Clients) })
	s.gauge("subscriptions", "Live client subscriptions, over all connections.",
		func(st bridge.Stats) float64 { return float64(st.Subscriptions) })
	s.gauge("patterns", "Distinct patterns of the client subscriptions, each served by one bus subscription.",
		func(st bridge.Stats) float64 { return float64(st.Patterns) })
	s.counter("frames_received_total", "Frames received from clients.",
		func(st bridge.Stats) float64 { return float64(st.FramesIn) })
	s.counter("frames_sent_total", "Frames written to clients.",
		func(st bridge.Stats) float64 { return float64(st.FramesOut) })
	s.counter("events_sent_total", "Events written to clients, one per event per client.",
		func(st bridge.Stats) float64 { return float64(st.EventsOut) })
	s.counter("publishes_total", "Client publishes that reached the bus.",
		func(st bridge.Stats) float64 { return float64(st.Published) })
	s.counter("publishes_deduplicated_total", "Client publishes retried within the dedup window, answered without publishing again.",
		func(st bridge.Stats) float64 { return float64(st.Deduplicated) })
	s.counter("codec_errors_total", "Events the codec could not encode, delivered with null data and an error.",
		func(st bridge.Stats) float64 { return float64(st.CodecErrors) })
	s.counter("subscriptions_revoked_total", "Client subscriptions ended by Reauthorize.",
		func(st bridge.Stats) float64 { return float64(st.Revoked) })
	s.counter("events_superseded_total", "Queued events of conflating subscriptions replaced by a newer one of their topic while the client was behind.",
		func(st bridge.Stats) float64 { return float64(st.Superseded) })
	c.disconnects = s.desc("disconnects_total",
		"Connections the bridge closed, by reason: slow (close code 4000, backlog past WithMaxBacklog), "+
			"abuse (4001, bad-frame budget spent), expired (4002, WithExpiry) or kicked (4003, Kick).",
		labelReason)
	c.rejections = s.desc("rejections_total", "Error frames sent to clients, by error code.", labelCode)
	c.refusals = s.desc("handshakes_refused_total",
		"Connection requests refused before the upgrade, by reason: unavailable (503), origin (403), "+
			"authentication or expired (401).",
		labelReason)
	return c
}

// Describe sends the description of every metric c can export. It is part of
// prometheus.Collector.
func (c *BridgeCollector) Describe(ch chan<- *prometheus.Desc) {
	if c.invalid != nil {
		ch <- c.invalid
		return
	}
	c.stats.describe(ch)
	ch <- c.disconnects
	ch <- c.rejections
	ch <- c.refusals
}

// Collect reads the bridge's Stats and sends them as metrics. It is part of
// prometheus.Collector; a registry calls it on every scrape.
func (c *BridgeCollector) Collect(ch chan<- prometheus.Metric) {
	if c.invalid != nil {
		return
	}
	st := c.src.Stats()
	c.stats.collect(ch, st)
	ch <- constMetric(c.disconnects, prometheus.CounterValue, float64(st.SlowDisconnects), reasonSlow)
	ch <- constMetric(c.disconnects, prometheus.CounterValue, float64(st.AbuseDisconnects), reasonAbuse)
	ch <- constMetric(c.disconnects, prometheus.CounterValue, float64(st.Expired), reasonExpired)
	ch <- constMetric(c.disconnects, prometheus.CounterValue, float64(st.Kicked), reasonKicked)
	for _, reason := range refusalReasons {
		ch <- constMetric(c.refusals, prometheus.CounterValue, float64(st.HandshakesRefused[reason]), reason)
	}
	for code, n := range st.Rejected {
		ch <- constMetric(c.rejections, prometheus.CounterValue, float64(n), code)
	}
}
