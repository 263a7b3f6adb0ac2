package metrics_test

import (
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// sample is one exported value: its family's type and the value.
type sample struct {
	kind  dto.MetricType
	value float64
}

// gather registers cs with a fresh pedantic registry (which also checks that
// every collected metric was described) and returns every sample by its
// series, `name{label="value",...}`.
func gather(t *testing.T, cs ...prometheus.Collector) map[string]sample {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			t.Fatalf("Register: %v", err)
		}
	}
	return gatherFrom(t, reg)
}

func gatherFrom(t *testing.T, g prometheus.Gatherer) map[string]sample {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	out := make(map[string]sample)
	for _, f := range families {
		for _, m := range f.GetMetric() {
			s := sample{kind: f.GetType()}
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				s.value = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				s.value = m.GetGauge().GetValue()
			default:
				t.Fatalf("%s: unexpected type %v", f.GetName(), f.GetType())
			}
			out[series(f.GetName(), m.GetLabel())] = s
		}
	}
	return out
}

// series names one metric: name{a="1",b="2"}, labels sorted by name.
func series(name string, labels []*dto.LabelPair) string {
	if len(labels) == 0 {
		return name
	}
	parts := make([]string, 0, len(labels))
	for _, l := range labels {
		parts = append(parts, l.GetName()+`="`+l.GetValue()+`"`)
	}
	sort.Strings(parts)
	return name + "{" + strings.Join(parts, ",") + "}"
}

// expect compares got with want exactly: the same series, types and values.
func expect(t *testing.T, got, want map[string]sample) {
	t.Helper()
	for k, w := range want {
		g, ok := got[k]
		switch {
		case !ok:
			t.Errorf("missing %s", k)
		case g != w:
			t.Errorf("%s = %v %v, want %v %v", k, g.kind, g.value, w.kind, w.value)
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected %s = %v %v", k, g.kind, g.value)
		}
	}
}

func counter(v float64) sample { return sample{dto.MetricType_COUNTER, v} }
func gauge(v float64) sample   { return sample{dto.MetricType_GAUGE, v} }
