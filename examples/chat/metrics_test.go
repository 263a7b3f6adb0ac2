package main

import (
	"context"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape GETs /metrics from a chat server over its socket, as Prometheus
// does, and returns every counter and gauge by series,
// `name{label="value",...}` (labels sorted by name).
func scrape(t *testing.T, baseURL string) map[string]float64 {
	t.Helper()
	res, err := http.Get(baseURL + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %s", res.Status)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("scrape: Content-Type %q, want the text format", ct)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(res.Body)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	out := make(map[string]float64)
	for name, f := range families {
		for _, m := range f.GetMetric() {
			labels := make([]string, 0, len(m.GetLabel()))
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+`="`+l.GetValue()+`"`)
			}
			sort.Strings(labels)
			key := name
			if len(labels) > 0 {
				key += "{" + strings.Join(labels, ",") + "}"
			}
			switch {
			case m.Counter != nil:
				out[key] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				out[key] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}

// checkSeries reports every series of want whose scraped value differs.
func checkSeries(t *testing.T, when string, got, want map[string]float64) {
	t.Helper()
	for k, w := range want {
		if g, ok := got[k]; !ok || g != w {
			t.Errorf("%s: %s = %v (present %v), want %v", when, k, g, ok, w)
		}
	}
}

// TestMetricsMoveWithEvents scrapes /metrics over a real socket before and
// after a client subscribes, publishes, is refused once and leaves, and
// checks that each value moved by exactly what happened.
func TestMetricsMoveWithEvents(t *testing.T) {
	hs, b := newTestServer(t)
	before := scrape(t, hs.URL)
	checkSeries(t, "before", before, map[string]float64{
		"whalesong_bus_events_published_total":              0,
		"whalesong_bus_subscriptions":                       0,
		"whalesong_bridge_clients":                          0,
		`whalesong_bridge_disconnects_total{reason="slow"}`: 0,
	})
	if _, ok := before["go_goroutines"]; !ok {
		t.Error("no Go runtime metrics")
	}

	c := dialChat(t, hs, "ada")
	c.send(`{"op":"sub","id":"r1","sub":"s1","pattern":"chat.lobby"}`)
	if got := c.read(); got["op"] != "subscribed" {
		t.Fatalf("sub: %v", got)
	}
	c.send(`{"op":"pub","id":"00000000-0000-4000-8000-000000000001","topic":"chat.lobby","data":{"nick":"ada","text":"hi"}}`)
	ops := map[any]bool{}
	for range 2 { // the answer and the event, in either order
		ops[c.read()["op"]] = true
	}
	if !ops["published"] || !ops["events"] {
		t.Fatalf("pub: got frames %v, want published and events", ops)
	}
	c.send(`{"op":"pub","id":"00000000-0000-4000-8000-000000000002","topic":"news.today","data":{}}`)
	if got := c.read(); got["code"] != "forbidden" {
		t.Fatalf("pub to news.today: %v", got)
	}

	// The refusal was read last, so everything before it is counted.
	after := scrape(t, hs.URL)
	st := b.Stats()
	checkSeries(t, "after", after, map[string]float64{
		"whalesong_bus_events_published_total":                1,
		"whalesong_bus_events_delivered_total":                1, // to the bridge's one subscription to chat.lobby
		"whalesong_bus_subscriptions":                         1,
		"whalesong_bus_topics":                                float64(st.Topics),
		"whalesong_bus_retained_events":                       1,
		"whalesong_bridge_clients":                            1,
		"whalesong_bridge_subscriptions":                      1,
		"whalesong_bridge_patterns":                           1,
		"whalesong_bridge_frames_received_total":              3,
		"whalesong_bridge_events_sent_total":                  1,
		"whalesong_bridge_publishes_total":                    1,
		`whalesong_bridge_rejections_total{code="forbidden"}`: 1,
		`whalesong_bridge_disconnects_total{reason="slow"}`:   0,
	})
	if sent := after["whalesong_bridge_frames_sent_total"]; sent < 4 { // hello, subscribed, published, event
		t.Errorf("frames sent = %v, want at least 4", sent)
	}

	// The client leaves: the gauges fall back. Nothing outside the bridge
	// signals the end of its session, so the scrape is repeated, bounded.
	c.conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		gone := scrape(t, hs.URL)
		if gone["whalesong_bridge_clients"] == 0 {
			checkSeries(t, "gone", gone, map[string]float64{
				"whalesong_bridge_subscriptions":       0,
				"whalesong_bus_events_published_total": 1,
			})
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("clients = %v 10 s after the client closed", gone["whalesong_bridge_clients"])
		case <-time.After(10 * time.Millisecond):
		}
	}
}
