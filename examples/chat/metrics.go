package main

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/whalesong/bus"
	"github.com/whalesong/bus/bridge"
	"github.com/whalesong/bus/metrics"
)

// metricsHandler serves the chat's metrics in the Prometheus text format:
// the bus's and the bridge's counters (whalesong_bus_..., whalesong_bridge_...,
// listed in the metrics package doc) and the Go runtime's and the process's.
// Each server has a registry of its own, so that tests can run several.
//
// The chat serves them on its one public address, at /metrics, to keep the
// demo to one port; a real deployment serves them on an internal address.
func metricsHandler(b *bus.Bus[Message], br *bridge.Bridge[Message]) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister( // fails only for collectors that clash, and these do not
		metrics.NewBusCollector(b),
		metrics.NewBridgeCollector(br),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}
