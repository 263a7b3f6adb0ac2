// Package metrics exports the counters of a whalesong bus and bridge to
// Prometheus, as collectors for a prometheus.Registerer:
//
//	b := bus.New[Message]()
//	br := bridge.New(b)
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(metrics.NewBusCollector(b), metrics.NewBridgeCollector(br))
//	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// It is a module of its own (github.com/whalesong/bus/metrics), so that the
// bus and the bridge do not depend on client_golang; only a program that
// imports this package does.
//
// # What is exported
//
// A collector reads Stats once per scrape and keeps no state of its own
// beyond what Watch registers: totals are counters (names ending in _total),
// levels are gauges. With the default namespace "whalesong":
//
//	whalesong_bus_events_published_total          counter  bus.Stats.Published
//	whalesong_bus_events_delivered_total          counter  bus.Stats.Delivered (replayed events included)
//	whalesong_bus_events_dropped_total            counter  bus.Stats.Dropped (DropOldest, DropNewest, Conflate)
//	whalesong_bus_events_superseded_total         counter  bus.Stats.Superseded (Conflate)
//	whalesong_bus_subscriptions                   gauge    bus.Stats.Subscribers
//	whalesong_bus_topics                          gauge    bus.Stats.Topics
//	whalesong_bus_retained_events                 gauge    bus.Stats.Retained
//	whalesong_bus_subscription_pending_events     gauge    Pending of each watched subscription; labels subscription, pattern
//
//	whalesong_bridge_clients                      gauge    bridge.Stats.Clients
//	whalesong_bridge_subscriptions                gauge    bridge.Stats.Subscriptions
//	whalesong_bridge_patterns                     gauge    bridge.Stats.Patterns
//	whalesong_bridge_frames_received_total        counter  bridge.Stats.FramesIn
//	whalesong_bridge_frames_sent_total            counter  bridge.Stats.FramesOut
//	whalesong_bridge_events_sent_total            counter  bridge.Stats.EventsOut
//	whalesong_bridge_publishes_total              counter  bridge.Stats.Published
//	whalesong_bridge_publishes_deduplicated_total counter  bridge.Stats.Deduplicated
//	whalesong_bridge_disconnects_total            counter  label reason: "slow" (SlowDisconnects, close code 4000),
//	                                                       "abuse" (AbuseDisconnects, close code 4001),
//	                                                       "expired" (Expired, 4002), "kicked" (Kicked, 4003)
//	whalesong_bridge_subscriptions_revoked_total  counter  bridge.Stats.Revoked (Reauthorize)
//	whalesong_bridge_handshakes_refused_total     counter  bridge.Stats.HandshakesRefused; label reason: "unavailable",
//	                                                       "origin", "authentication", "expired"
//	whalesong_bridge_codec_errors_total           counter  bridge.Stats.CodecErrors
//	whalesong_bridge_events_superseded_total      counter  bridge.Stats.Superseded
//	whalesong_bridge_rejections_total             counter  bridge.Stats.Rejected; label code ("forbidden", ...)
//
// Every reason of whalesong_bridge_disconnects_total and of
// whalesong_bridge_handshakes_refused_total is always present, from 0, so
// that rate() sees the first slow client cut off. A code of
// whalesong_bridge_rejections_total appears with its first rejection.
//
// # Several buses or bridges
//
// Two collectors of the same kind export the same names, so a registry
// refuses the second one unless their constant labels differ: give each a
// label of its own with WithConstLabels (or a namespace of its own with
// WithNamespace):
//
//	reg.MustRegister(
//		metrics.NewBusCollector(orders, metrics.WithConstLabels(prometheus.Labels{"bus": "orders"})),
//		metrics.NewBusCollector(chat, metrics.WithConstLabels(prometheus.Labels{"bus": "chat"})),
//	)
//
// # Lag per subscription
//
// BusCollector.Watch exports how far a subscription is behind: the events
// queued to it and not yet read, a gauge per watched subscription, labelled
// with the name given to Watch and the subscription's pattern. A reader that
// cannot keep up shows as a gauge that climbs towards its buffer size
// (WithBuffer); what happens then is its Policy's business, and visible in
// whalesong_bus_events_dropped_total or, for a Disconnect subscription, in
// the gauge disappearing. Only the subscriptions you watch are exported, so
// the number of series stays yours to choose.
//
// # Errors
//
// Bad input is reported where Prometheus reports it: a nil bus or bridge, an
// invalid namespace or label makes Register fail with an error that says
// which. Watch returns an error wrapping ErrInvalidName or ErrNilSource.
// Collectors and Watch are safe for concurrent use, and a scrape holds no
// lock of this package while it calls Stats, Pending or Err.
package metrics
