package benchmarks

import (
	"testing"

	eventbus "github.com/asaskevich/EventBus"
)

// eventBusSys uses synchronous handlers, the library's ordered mode: the
// handler runs on the publisher's goroutine, so there is no hand-off at
// all. (SubscribeAsync starts a goroutine per event and handler.)
type eventBusSys struct {
	bus eventbus.Bus
}

func newEventBus(b *testing.B) system { return &eventBusSys{bus: eventbus.New()} }

func (s *eventBusSys) subscribe(b *testing.B, topic string, r *receiver) {
	if err := s.bus.Subscribe(topic, func(p payload) { r.take(p) }); err != nil {
		b.Fatal(err)
	}
}

func (s *eventBusSys) idle(b *testing.B, topic string) {
	if err := s.bus.Subscribe(topic, func(payload) {}); err != nil {
		b.Fatal(err)
	}
}

func (s *eventBusSys) publisher(b *testing.B, topic string) func(payload) {
	return func(p payload) { s.bus.Publish(topic, p) }
}

func (s *eventBusSys) close() {}
