package benchmarks

import (
	"context"
	"testing"

	"github.com/whalesong/bus"
)

// whalesongSys receives with Subscription.Next in one goroutine per
// subscription; idle subscriptions get WithBuffer(1) to stay small.
type whalesongSys struct {
	bus *bus.Bus[payload]
	ctx context.Context
}

func newWhalesong(b *testing.B) system {
	return &whalesongSys{bus: bus.New[payload](), ctx: context.Background()}
}

func (s *whalesongSys) subscribe(b *testing.B, pattern string, r *receiver) {
	sub, err := s.bus.Subscribe(pattern)
	if err != nil {
		b.Fatal(err)
	}
	go func() {
		for {
			ev, err := sub.Next(s.ctx)
			if err != nil {
				r.finish(err)
				return
			}
			if r.take(ev.Data) {
				return
			}
		}
	}()
}

func (s *whalesongSys) idle(b *testing.B, topic string) {
	if _, err := s.bus.Subscribe(topic, bus.WithBuffer(1)); err != nil {
		b.Fatal(err)
	}
}

func (s *whalesongSys) publisher(b *testing.B, topic string) func(payload) {
	return func(p payload) {
		if _, err := s.bus.Publish(s.ctx, topic, p); err != nil {
			b.Error(err)
		}
	}
}

func (s *whalesongSys) close() { s.bus.Close() }
