package bridge

import (
	"encoding/json"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	bus "github.com/whalesong/bus"
)

// TestSubscribeWhileEventsFlow subscribes, with each resume option, while
// a publisher runs: the first event is exactly from+1 and the rest follow
// without gap or duplicate (one topic, so its seqs are consecutive).
func TestSubscribeWhileEventsFlow(t *testing.T) {
	for _, opt := range []map[string]any{nil, {"last": 5}, {"after": nil}} {
		t.Run(fmt.Sprint(opt), func(t *testing.T) {
			s := newServer(t, bus.New[msg](bus.WithHistory(1<<20))) // nothing asked for is evicted
			// A flood that never gets more than a thousand events ahead of
			// the subscription (well under the backlog limit, so the
			// client's reading speed cannot get it cut off with 4000).
			var limit atomic.Uint64
			limit.Store(1000)
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					if s.bus.Seq() >= limit.Load() {
						runtime.Gosched()
						continue
					}
					s.publish("flow", msg{})
				}
			})
			defer func() { close(stop); wg.Wait() }()
			for s.bus.Seq() < 10 {
				runtime.Gosched()
			}
			cl := s.dial(t)
			if _, ok := opt["after"]; ok { // a few events back: still retained
				opt = map[string]any{"after": map[string]any{"seq": s.bus.Seq() - 5}}
			}
			ack := cl.sub("s", "flow", opt)
			if !*ack.Recovered {
				t.Fatalf("ack %+v", ack)
			}
			limit.Store(*ack.From + 1000)
			next := *ack.From + 1
			for _, ev := range cl.events(300) {
				if ev.Seq != next {
					t.Fatalf("seq %d, want %d (from %d)", ev.Seq, next, *ack.From)
				}
				next++
			}
		})
	}
}

// TestUnsubscribeDuringReplay ends a subscription whose long replay is still
// being written: nothing for it follows the unsubscribed answer.
func TestUnsubscribeDuringReplay(t *testing.T) {
	s := newServer(t, bus.New[msg](bus.WithHistory(5000)))
	for i := range 3000 {
		s.publish("r", msg{N: i})
	}
	cl := s.dial(t)
	cl.send(`{"op":"sub","id":"r1","sub":"s","pattern":"r","after":{"seq":0}}`)
	cl.send(`{"op":"unsub","id":"u1","sub":"s"}`)
	n := 0
	for {
		f := cl.read()
		n += len(f.Events)
		if f.Op == "unsubscribed" {
			break
		}
	}
	cl.ping() // no event may come between
	if len(cl.early) != 0 {
		t.Fatalf("%d events after unsubscribed", len(cl.early))
	}
	if n >= 3000 {
		t.Logf("the whole replay (%d) left before the unsub was read", n)
	}
}

// countingCodec counts Marshal calls.
type countingCodec struct{ marshals *atomic.Int64 }

func (c countingCodec) Marshal(v any) ([]byte, error) {
	c.marshals.Add(1)
	return json.Marshal(v)
}

func (countingCodec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

// TestEncodeOncePerPattern: 40 clients on two patterns cost two encodings
// per event, not forty.
func TestEncodeOncePerPattern(t *testing.T) {
	var n atomic.Int64
	s := newServer(t, nil, WithCodec(countingCodec{&n}))
	var clients []*client
	for i := range 40 {
		cl := s.dial(t)
		cl.sub("s", []string{"t.>", "t.x"}[i%2], nil)
		clients = append(clients, cl)
	}
	const events = 10
	for i := range events {
		s.publish("t.x", msg{N: i})
	}
	for _, cl := range clients {
		cl.events(events)
	}
	if got := n.Load(); got != 2*events {
		t.Fatalf("%d encodings for %d events on 2 patterns", got, events)
	}
	if subs := s.bus.Stats().Subscribers; subs != 2 {
		t.Fatalf("%d bus subscriptions", subs)
	}
}
