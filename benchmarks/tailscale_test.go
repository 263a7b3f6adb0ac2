package benchmarks

import (
	"fmt"
	"testing"

	"tailscale.com/util/eventbus"
)

// tailscale's eventbus routes by Go type, not by topic: each distinct topic
// of a benchmark becomes its own event type (up to four), and every idle
// subscription is on one more type. Each subscription has its own Client,
// as a Client may subscribe to a type only once.
type (
	tsEvent0 payload
	tsEvent1 payload
	tsEvent2 payload
	tsEvent3 payload
	tsIdle   payload
)

type tsShape interface {
	~struct {
		ID    int64
		Price float64
		Qty   int32
		Side  uint8
	}
}

type tailscaleSys struct {
	bus     *eventbus.Bus
	types   map[string]int // topic -> which tsEventN
	clients int
}

func newTailscale(b *testing.B) system {
	return &tailscaleSys{bus: eventbus.New(), types: make(map[string]int)}
}

func (s *tailscaleSys) client() *eventbus.Client {
	s.clients++
	return s.bus.Client(fmt.Sprintf("c%d", s.clients))
}

func (s *tailscaleSys) typeOf(b *testing.B, topic string) int {
	n, ok := s.types[topic]
	if !ok {
		n = len(s.types)
		if n > 3 {
			b.Fatal("tailscale adapter: more than four topics")
		}
		s.types[topic] = n
	}
	return n
}

func (s *tailscaleSys) subscribe(b *testing.B, topic string, r *receiver) {
	c := s.client()
	switch s.typeOf(b, topic) {
	case 0:
		tsReceive(eventbus.Subscribe[tsEvent0](c), r)
	case 1:
		tsReceive(eventbus.Subscribe[tsEvent1](c), r)
	case 2:
		tsReceive(eventbus.Subscribe[tsEvent2](c), r)
	case 3:
		tsReceive(eventbus.Subscribe[tsEvent3](c), r)
	}
}

func tsReceive[T tsShape](sub *eventbus.Subscriber[T], r *receiver) {
	go func() {
		for {
			select {
			case ev := <-sub.Events():
				if r.take(payload(ev)) {
					return
				}
			case <-sub.Done():
				r.finish(fmt.Errorf("subscriber closed after %d events", r.got))
				return
			}
		}
	}()
}

func (s *tailscaleSys) idle(b *testing.B, topic string) {
	eventbus.Subscribe[tsIdle](s.client())
}

func (s *tailscaleSys) publisher(b *testing.B, topic string) func(payload) {
	c := s.client()
	switch s.typeOf(b, topic) {
	case 0:
		return tsPublisher[tsEvent0](c)
	case 1:
		return tsPublisher[tsEvent1](c)
	case 2:
		return tsPublisher[tsEvent2](c)
	default:
		return tsPublisher[tsEvent3](c)
	}
}

func tsPublisher[T tsShape](c *eventbus.Client) func(payload) {
	pub := eventbus.Publish[T](c)
	return func(p payload) { pub.Publish(T(p)) }
}

func (s *tailscaleSys) close() { s.bus.Close() }
