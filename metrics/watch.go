package metrics

import (
	"fmt"
	"sync"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
)

// The variable labels of the collectors.
const (
	labelSubscription = "subscription" // the name given to Watch
	labelPattern      = "pattern"      // the watched subscription's pattern
	labelReason       = "reason"       // why the bridge closed a connection
	labelCode         = "code"         // the error code of a rejection
)

// Subscription is what BusCollector.Watch reads: a *bus.Subscription[T] of
// any T, or anything else that can say how many events wait unread in it.
type Subscription interface {
	// Pending is the number of events queued and not yet read.
	Pending() int
	// Pattern is the pattern the subscription was made with.
	Pattern() string
}

// ender is the optional method of a Subscription that tells it has ended,
// as *bus.Subscription has.
type ender interface{ Err() error }

// watchList is the subscriptions a BusCollector watches.
type watchList struct {
	desc *prometheus.Desc // subscription_pending_events

	mu     sync.Mutex
	byName map[string]*watched // guarded by mu
}

// watched is one Watch call: its entry in a watchList.
type watched struct {
	name, pattern string
	sub           Subscription
}

// Watch exports s.Pending() as the gauge
// whalesong_bus_subscription_pending_events{subscription=name,
// pattern=s.Pattern()}, read at every scrape, until unwatch is called or a
// scrape finds s ended (when s has an Err method, as *bus.Subscription does,
// and it returns non-nil). Watching another subscription under a name in use
// replaces the one watched there (as when a Disconnect subscription is
// resumed with After); unwatch then leaves the new one alone. unwatch is
// idempotent.
//
// The name must be a valid, non-empty UTF-8 string (ErrInvalidName); s must
// not be nil (ErrNilSource). Pattern is read once, here.
func (c *BusCollector) Watch(name string, s Subscription) (unwatch func(), err error) {
	if name == "" || !utf8.ValidString(name) {
		return nil, fmt.Errorf("%w: %q", ErrInvalidName, clip(name))
	}
	if s == nil {
		return nil, fmt.Errorf("%w: Watch(%q, nil)", ErrNilSource, clip(name))
	}
	pattern := s.Pattern()
	if !utf8.ValidString(pattern) {
		return nil, fmt.Errorf("%w: %q: its pattern %q is not UTF-8", ErrInvalidName, clip(name), clip(pattern))
	}
	w := &watched{name: name, pattern: pattern, sub: s}
	c.watched.put(w)
	return func() { c.watched.remove(w) }, nil
}

// put makes w the entry of its name.
func (l *watchList) put(w *watched) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byName == nil {
		l.byName = make(map[string]*watched)
	}
	l.byName[w.name] = w
}

// remove forgets w, unless another entry has replaced it under its name.
func (l *watchList) remove(w *watched) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byName[w.name] == w {
		delete(l.byName, w.name)
	}
}

// snapshot returns the entries, so that a scrape calls the subscriptions'
// methods without holding mu.
func (l *watchList) snapshot() []*watched {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]*watched, 0, len(l.byName))
	for _, w := range l.byName {
		out = append(out, w)
	}
	return out
}

// collect sends the Pending of every watched subscription, and forgets those
// that have ended.
func (l *watchList) collect(ch chan<- prometheus.Metric) {
	for _, w := range l.snapshot() {
		if e, ok := w.sub.(ender); ok && e.Err() != nil {
			l.remove(w)
			continue
		}
		ch <- constMetric(l.desc, prometheus.GaugeValue, float64(w.sub.Pending()), w.name, w.pattern)
	}
}
