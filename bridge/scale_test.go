package bridge

import (
	"fmt"
	"sync"
	"testing"
)

// TestThousandClients connects 1,000 clients on one pattern; every one gets
// every event, in order, while the bus holds a single subscription for all.
func TestThousandClients(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 connections")
	}
	s := newServer(t, nil)
	const n, events = 1000, 20
	clients := make([]*client, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 50)
	errs := make(chan error, n)
	for i := range clients {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			c, err := s.tryDial(nil)
			if err != nil {
				errs <- err
				return
			}
			cl := &client{t: t, c: c}
			t.Cleanup(func() { _ = c.Close() })
			if f, err := cl.tryRead(readWait); err != nil || f.Op != "hello" {
				errs <- fmt.Errorf("hello: %+v, %v", f, err)
				return
			}
			clients[i] = cl
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("dial: %v", err)
	}
	for _, cl := range clients {
		cl.send(`{"op":"sub","id":"r","sub":"s","pattern":"load.>"}`)
	}
	for _, cl := range clients {
		cl.expect("subscribed")
	}
	if st := s.br.Stats(); st.Clients != n || st.Subscriptions != n || st.Patterns != 1 {
		t.Fatalf("stats %+v", st)
	}
	if subs := s.bus.Stats().Subscribers; subs != 1 { // the shared one
		t.Fatalf("bus has %d subscribers, want 1", subs)
	}
	var want []uint64
	for i := range events {
		want = append(want, s.publish("load.x", msg{N: i}))
	}
	fail := make(chan string, n)
	for _, cl := range clients {
		wg.Go(func() {
			last := uint64(0)
			got := 0
			for got < events {
				f, err := cl.tryRead(readWait)
				if err != nil {
					fail <- err.Error()
					return
				}
				for _, ev := range f.Events {
					if ev.Seq != want[got] || ev.Seq <= last {
						fail <- "out of order"
						return
					}
					last = ev.Seq
					got++
				}
			}
		})
	}
	wg.Wait()
	close(fail)
	for f := range fail {
		t.Fatalf("a client: %s", f)
	}
}
