package bridge

import (
	"fmt"
	"testing"
	"time"

	bus "github.com/whalesong/bus"
)

// BenchmarkPipeFanoutConflate is BenchmarkPipeFanout with every client's
// subscription made with conflate: the cost of conflation on the path of
// clients that keep up (each event they do not get counts as delivered).
func BenchmarkPipeFanoutConflate(b *testing.B) {
	benchPipeFanout(b, `{"op":"sub","id":"r","sub":"s","pattern":"bench","conflate":true}`)
}

// BenchmarkSessionQueueConflate is BenchmarkSessionQueue (64 live events
// queued behind a frame in flight, then claimed and built as one batch; an
// op is one batch) for a conflating subscription: over 64 topics nothing is
// superseded (the same frame as the plain queue's, the cost of the
// conflation's bookkeeping), over 8 topics 56 of the 64 are.
func BenchmarkSessionQueueConflate(b *testing.B) {
	for _, topics := range []int{64, 8} {
		b.Run(fmt.Sprint("topics=", topics), func(b *testing.B) {
			bs := bus.New[msg]()
			defer bs.Close()
			br := New(bs, WithMaxBacklog(1<<30))
			defer br.Close()
			s := &session[msg]{br: br}
			cs := &clientSub[msg]{id: "s", conf: newConflation()}
			s.subs = map[string]*clientSub[msg]{"s": cs}
			a := &attachment[msg]{sess: s, subs: []*clientSub[msg]{cs}}
			cs.att = a
			var events [64]*sharedEvent
			for i := range events {
				ev := bus.Event[msg]{Topic: fmt.Sprint("bench.", i%topics), Seq: uint64(i + 1), Time: time.Now(), Data: msg{Text: benchPad}}
				events[i] = br.encodeEvent(ev, nil)
			}
			s.writing = true
			b.ReportAllocs()
			for b.Loop() {
				if n := s.queueAndClaim(events[:]); n != topics {
					b.Fatalf("claimed %d events, want %d", n, topics)
				}
				putBuf(s.buildEvents())
			}
		})
	}
}
