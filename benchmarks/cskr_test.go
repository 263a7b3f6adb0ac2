package benchmarks

import (
	"testing"

	"github.com/cskr/pubsub/v2"
)

// cskrSys: Pub hands the message to the library's goroutine, which sends
// it to every subscribed channel. Idle subscriptions use AddSub with a
// channel of capacity 1.
type cskrSys struct {
	ps *pubsub.PubSub[string, payload]
}

func newCskr(b *testing.B) system { return &cskrSys{ps: pubsub.New[string, payload](buffer)} }

func (s *cskrSys) subscribe(b *testing.B, topic string, r *receiver) {
	ch := s.ps.Sub(topic)
	go func() {
		for p := range ch {
			if r.take(p) {
				break
			}
		}
		for range ch { // until Shutdown closes it
		}
	}()
}

func (s *cskrSys) idle(b *testing.B, topic string) {
	s.ps.AddSub(make(chan payload, 1), topic)
}

func (s *cskrSys) publisher(b *testing.B, topic string) func(payload) {
	return func(p payload) { s.ps.Pub(p, topic) }
}

func (s *cskrSys) close() { s.ps.Shutdown() }
