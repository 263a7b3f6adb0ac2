package metrics

import (
	"maps"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultNamespace is the first part of every metric name unless
// WithNamespace says otherwise: whalesong_bus_..., whalesong_bridge_....
const DefaultNamespace = "whalesong"

// Option configures a BusCollector or a BridgeCollector.
type Option func(*config)

type config struct {
	namespace   string
	constLabels prometheus.Labels
}

func newConfig(opts []Option) config {
	c := config{namespace: DefaultNamespace}
	for _, o := range opts {
		o(&c)
	}
	return c
}

// WithNamespace replaces DefaultNamespace as the first part of every metric
// name; "" leaves names starting with bus_ or bridge_. Keep to letters,
// digits and '_': Prometheus takes other characters but PromQL then needs
// the names quoted. A namespace that is not valid UTF-8 makes Register
// fail.
func WithNamespace(ns string) Option {
	return func(c *config) { c.namespace = ns }
}

// WithConstLabels adds labels with fixed values to every metric of the
// collector, so that several buses or bridges can be registered with one
// registry: {"bus": "orders"} and {"bus": "chat"}, say. The map is copied.
// Invalid label names, and the names the collector uses itself
// (subscription, pattern, reason, code), make Register fail. Calling it
// again adds to the labels given before.
func WithConstLabels(labels prometheus.Labels) Option {
	own := maps.Clone(labels)
	return func(c *config) {
		if c.constLabels == nil {
			c.constLabels = make(prometheus.Labels, len(own))
		}
		maps.Copy(c.constLabels, own)
	}
}

// fqName is the full name of one metric of subsystem sub.
func (c config) fqName(sub, name string) string {
	return prometheus.BuildFQName(c.namespace, sub, name)
}
