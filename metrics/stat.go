package metrics

import "github.com/prometheus/client_golang/prometheus"

// stat is one metric a collector reads from a Stats value of type S.
type stat[S any] struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(S) float64
}

// statSet builds the stats of one subsystem ("bus", "bridge") of a config.
type statSet[S any] struct {
	cfg   config
	sub   string
	stats []stat[S]
}

// counter adds a total; its name must end in _total.
func (b *statSet[S]) counter(name, help string, value func(S) float64) {
	b.add(name, help, prometheus.CounterValue, value)
}

// gauge adds a level.
func (b *statSet[S]) gauge(name, help string, value func(S) float64) {
	b.add(name, help, prometheus.GaugeValue, value)
}

func (b *statSet[S]) add(name, help string, kind prometheus.ValueType, value func(S) float64) {
	b.stats = append(b.stats, stat[S]{desc: b.desc(name, help), kind: kind, value: value})
}

// desc describes one metric of the set, with the config's constant labels
// and the given variable ones.
func (b *statSet[S]) desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(b.cfg.fqName(b.sub, name), help, labels, b.cfg.constLabels)
}

// describe sends the descriptions of every stat.
func (b *statSet[S]) describe(ch chan<- *prometheus.Desc) {
	for _, m := range b.stats {
		ch <- m.desc
	}
}

// collect sends every stat's value in s.
func (b *statSet[S]) collect(ch chan<- prometheus.Metric, s S) {
	for _, m := range b.stats {
		ch <- constMetric(m.desc, m.kind, m.value(s))
	}
}

// constMetric is prometheus.NewConstMetric that reports an error (an invalid
// description, which Register refuses first) as an invalid metric, never a
// panic.
func constMetric(d *prometheus.Desc, kind prometheus.ValueType, v float64, labels ...string) prometheus.Metric {
	m, err := prometheus.NewConstMetric(d, kind, v, labels...)
	if err != nil {
		return prometheus.NewInvalidMetric(d, err)
	}
	return m
}
