package metrics_test

import (
	"context"
	"errors"
	"fmt"
	bus "github.com/whalesong/bus"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/whalesong/bus/metrics"
)

// fakeSub is a subscription whose Pending and end the test sets (until
// *bus.Subscription has Pending: see the TODO on metrics.Subscription).
type fakeSub struct {
	pattern string
	pending atomic.Int64
	ended   atomic.Bool
}

func (f *fakeSub) Pending() int    { return int(f.pending.Load()) }
func (f *fakeSub) Pattern() string { return f.pattern }
func (f *fakeSub) Err() error {
	if f.ended.Load() {
		return errors.New("ended")
	}
	return nil
}

// plainSub has no Err method: it is exported until unwatched.
type plainSub struct{ n int }

func (p plainSub) Pending() int    { return p.n }
func (p plainSub) Pattern() string { return "jobs" }

const pendingName = "whalesong_bus_subscription_pending_events"

func pendingSeries(name, pattern string) string {
	return pendingName + `{pattern="` + pattern + `",subscription="` + name + `"}`
}

// pendings returns the pending gauges of c's scrape, by series.
func pendings(t *testing.T, reg prometheus.Gatherer) map[string]float64 {
	t.Helper()
	out := make(map[string]float64)
	for k, s := range gatherFrom(t, reg) {
		if strings.HasPrefix(k, pendingName) {
			if s.kind != gauge(0).kind {
				t.Errorf("%s is a %v, want a gauge", k, s.kind)
			}
			out[k] = s.value
		}
	}
	return out
}

func equalMaps(a, b map[string]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestWatchFollowsPending(t *testing.T) {
	c := metrics.NewBusCollector(fixedBus{})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	audit := &fakeSub{pattern: "orders.>"}
	unwatch, err := c.Watch("audit", audit)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Watch("jobs", plainSub{n: 4}); err != nil {
		t.Fatal(err)
	}
	step := func(what string, want map[string]float64) {
		t.Helper()
		if got := pendings(t, reg); !equalMaps(got, want) {
			t.Errorf("%s: pending gauges %v, want %v", what, got, want)
		}
	}
	step("watched", map[string]float64{pendingSeries("audit", "orders.>"): 0, pendingSeries("jobs", "jobs"): 4})
	audit.pending.Store(17)
	step("behind by 17", map[string]float64{pendingSeries("audit", "orders.>"): 17, pendingSeries("jobs", "jobs"): 4})
	audit.pending.Store(3)
	step("caught up to 3", map[string]float64{pendingSeries("audit", "orders.>"): 3, pendingSeries("jobs", "jobs"): 4})
	unwatch()
	unwatch() // idempotent
	step("unwatched", map[string]float64{pendingSeries("jobs", "jobs"): 4})
}

// TestWatchReplacesByName: a resumed subscription takes its name over, and
// the old unwatch leaves it alone.
func TestWatchReplacesByName(t *testing.T) {
	c := metrics.NewBusCollector(fixedBus{})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	old := &fakeSub{pattern: "billing.>"}
	old.pending.Store(9)
	unwatchOld, err := c.Watch("billing", old)
	if err != nil {
		t.Fatal(err)
	}
	resumed := &fakeSub{pattern: "billing.eu.>"}
	resumed.pending.Store(2)
	unwatchNew, err := c.Watch("billing", resumed)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{pendingSeries("billing", "billing.eu.>"): 2}
	if got := pendings(t, reg); !equalMaps(got, want) {
		t.Errorf("after replacing: %v, want %v", got, want)
	}
	unwatchOld()
	if got := pendings(t, reg); !equalMaps(got, want) {
		t.Errorf("after the old unwatch: %v, want %v", got, want)
	}
	unwatchNew()
	if got := pendings(t, reg); len(got) != 0 {
		t.Errorf("after the new unwatch: %v, want none", got)
	}
}

// TestWatchForgetsEnded: a subscription whose Err says it ended is dropped
// at the next scrape, and stays dropped.
func TestWatchForgetsEnded(t *testing.T) {
	c := metrics.NewBusCollector(fixedBus{})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	s := &fakeSub{pattern: "a.b"}
	s.pending.Store(5)
	if _, err := c.Watch("slow", s); err != nil {
		t.Fatal(err)
	}
	if got := pendings(t, reg); got[pendingSeries("slow", "a.b")] != 5 {
		t.Fatalf("live: %v", got)
	}
	s.ended.Store(true)
	for i := range 2 {
		if got := pendings(t, reg); len(got) != 0 {
			t.Errorf("scrape %d after the end: %v, want none", i+1, got)
		}
	}
}

func TestWatchRefusesBadInput(t *testing.T) {
	c := metrics.NewBusCollector(fixedBus{})
	tests := []struct {
		name     string
		sub      metrics.Subscription
		sentinel error
	}{
		{"", &fakeSub{pattern: "a"}, metrics.ErrInvalidName},
		{"bad\xffname", &fakeSub{pattern: "a"}, metrics.ErrInvalidName},
		{"ok", &fakeSub{pattern: "a\xff"}, metrics.ErrInvalidName},
		{strings.Repeat("é", 100) + "\xff", &fakeSub{pattern: "a"}, metrics.ErrInvalidName},
		{"ok", nil, metrics.ErrNilSource},
	}
	for _, tt := range tests {
		unwatch, err := c.Watch(tt.name, tt.sub)
		if !errors.Is(err, tt.sentinel) || unwatch != nil {
			t.Errorf("Watch(%q, %v) = %v, want %v and no unwatch", tt.name, tt.sub, err, tt.sentinel)
		}
		if err != nil && len(err.Error()) > 200 {
			t.Errorf("error does not clip the name: %d bytes", len(err.Error()))
		}
	}
	if n := len(pendings(t, registryWith(t, c))); n != 0 {
		t.Errorf("%d series after refused Watch calls", n)
	}
}

func registryWith(t *testing.T, c prometheus.Collector) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	return reg
}

// TestWatchConcurrent: Watch, unwatch, ended subscriptions and scrapes at
// once, under -race; at the end exactly the ones still watched are there.
func TestWatchConcurrent(t *testing.T) {
	c := metrics.NewBusCollector(fixedBus{})
	reg := registryWith(t, c)
	const workers, rounds = 4, 200
	var wg sync.WaitGroup
	stop := make(chan struct{})
	scraped := make(chan error, 1)
	go func() {
		defer close(scraped)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := reg.Gather(); err != nil {
				scraped <- err
				return
			}
		}
	}()
	for w := range workers {
		wg.Go(func() {
			for i := range rounds {
				s := &fakeSub{pattern: "p"}
				s.pending.Store(int64(i))
				unwatch, err := c.Watch(fmt.Sprintf("w%d-%d", w, i%5), s)
				if err != nil {
					t.Error(err)
					return
				}
				switch i % 3 {
				case 0:
					unwatch()
				case 1:
					s.ended.Store(true)
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	if err := <-scraped; err != nil {
		t.Fatal(err)
	}
	// Rounds 195..199 hold each worker's five names last; 195 and 198 were
	// unwatched, 196 and 199 ended, so 197 alone is left per worker.
	got := pendings(t, reg)
	want := make(map[string]float64)
	for w := range workers {
		want[pendingSeries(fmt.Sprintf("w%d-%d", w, 197%5), "p")] = 197
	}
	if !equalMaps(got, want) {
		t.Errorf("after the storm: %v, want %v", got, want)
	}
}

var _ metrics.Subscription = (*bus.Subscription[int])(nil)

// TestWatchRealSubscription: a reader that falls behind shows as its
// Pending; one ended by Disconnect is forgotten at the next scrape.
func TestWatchRealSubscription(t *testing.T) {
	b := bus.New[int]()
	defer b.Close()
	c := metrics.NewBusCollector(b)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	slow, _ := b.Subscribe("jobs.>", bus.WithBuffer(4), bus.WithPolicy(bus.Disconnect))
	if _, err := c.Watch("worker", slow); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := b.Publish(context.Background(), "jobs.mail", i); err != nil {
			t.Fatal(err)
		}
	}
	if got := pendings(t, reg); got[pendingSeries("worker", "jobs.>")] != 3 {
		t.Fatalf("behind by 3: %v", got)
	}
	for i := range 2 { // overflow: Disconnect ends it
		if _, err := b.Publish(context.Background(), "jobs.mail", i); err != nil {
			t.Fatal(err)
		}
	}
	if slow.Err() == nil {
		t.Fatal("the slow subscription did not end")
	}
	if got := pendings(t, reg); len(got) != 0 {
		t.Fatalf("an ended subscription is still exported: %v", got)
	}
}
