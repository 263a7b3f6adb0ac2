package benchmarks

import "testing"

// chanSys is the baseline: one buffered channel per subscription, the
// publisher sends to each channel of the topic; no patterns.
type chanSys struct {
	topics map[string][]chan payload
}

func newChan(b *testing.B) system { return &chanSys{topics: make(map[string][]chan payload)} }

func (s *chanSys) subscribe(b *testing.B, topic string, r *receiver) {
	ch := make(chan payload, buffer)
	s.topics[topic] = append(s.topics[topic], ch)
	go func() {
		for p := range ch {
			if r.take(p) {
				return
			}
		}
	}()
}

func (s *chanSys) idle(b *testing.B, topic string) {
	s.topics[topic] = append(s.topics[topic], make(chan payload, 1))
}

// publisher looks the channels up once, as a hand-written fan-out would.
func (s *chanSys) publisher(b *testing.B, topic string) func(payload) {
	chans := s.topics[topic]
	return func(p payload) {
		for _, ch := range chans {
			ch <- p
		}
	}
}

func (s *chanSys) close() {}
