package bridge

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/whalesong/bus/bridge/internal/wstest"
)

// TestLifecycleChaos runs Kick, Reauthorize and expiries against clients
// that connect, subscribe, unsubscribe, publish and hang up at random,
// while the bus publishes, and then Closes the bridge in the middle of it
// all. Under -race: no race, no panic, no leak (goleak), Close returns,
// every count is back to zero, and no client ever sees an event of a
// subscription after it ended (Reauthorize's error, or unsubscribed) until
// it subscribes again.
func TestLifecycleChaos(t *testing.T) {
	for round := range 3 {
		t.Run(fmt.Sprint("round ", round), chaosRound)
	}
}

func chaosRound(t *testing.T) {
	var revoked atomic.Bool
	authorize := func(_ any, a Action, p string) error {
		if a == Subscribe && p == "red.>" && revoked.Load() {
			return errNotMember
		}
		return nil
	}
	expiry := func(id any) time.Time {
		if id.(string)[0] == 'e' { // names starting with e expire soon
			return time.Now().Add(time.Duration(rand.IntN(50)) * time.Millisecond)
		}
		return time.Time{}
	}
	s := newServer(t, nil, WithAuthenticate(nameAuth), WithAuthorize(authorize), WithExpiry(expiry),
		WithPublishRate(1e6, 1e6), WithMaxBacklog(1<<20))

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var violations atomic.Int64
	names := []string{"ann", "ben", "eve", "eli"}
	for i := range 12 {
		wg.Go(func() { chaosClient(s, names[i%len(names)], stop, &violations) })
	}
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_, _ = s.bus.Publish(t.Context(), []string{"red.x", "blue.x", "red.y"}[i%3], msg{N: i})
		}
	})
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			revoked.Store(rand.IntN(2) == 0)
			s.br.Reauthorize(func(id any) bool { return id != "ben" })
			s.br.Kick(func(id any) bool { return id == "ann" && rand.IntN(8) == 0 }, "chaos")
			time.Sleep(time.Millisecond) // pacing
		}
	})
	time.Sleep(300 * time.Millisecond) // let the chaos run (pacing, not synchronisation)
	done := make(chan struct{})
	go func() {
		s.br.Close() // in the middle of it all
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Close did not return")
	}
	close(stop)
	wg.Wait()
	if n := violations.Load(); n > 0 {
		t.Fatalf("%d events of subscriptions the server had ended", n)
	}
	st := s.br.Stats()
	if st.Clients != 0 || st.Subscriptions != 0 || st.Patterns != 0 {
		t.Fatalf("after Close: %d clients, %d subscriptions, %d patterns; want 0", st.Clients, st.Subscriptions, st.Patterns)
	}
	if s.br.expiries.len() != 0 {
		t.Fatalf("%d sessions left in the expiry heap", s.br.expiries.len())
	}
	t.Logf("kicked %d, expired %d, revoked %d, published %d", st.Kicked, st.Expired, st.Revoked, st.Published)
}

// chaosClient connects as name again and again until stop (or until the
// bridge refuses), doing random things on each connection and checking
// that no event of an ended subscription arrives.
func chaosClient(s *server, name string, stop <-chan struct{}, violations *atomic.Int64) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		c, err := wstest.Dial(context.Background(), s.ws.URL+"/?name="+name, wstest.DialOptions{})
		if err != nil {
			time.Sleep(time.Millisecond)
			continue
		}
		chaosConn(c, stop, violations)
		_ = c.Close()
	}
}

func chaosConn(c *websocket.Conn, stop <-chan struct{}, violations *atomic.Int64) {
	ended := map[string]bool{} // subs that ended (unsubscribed, or by the server) and were not subscribed again
	readDone := make(chan struct{})
	var mu sync.Mutex
	go func() {
		defer close(readDone)
		for {
			_, data, err := c.ReadMessage()
			if err != nil {
				return
			}
			var f frame
			if json.Unmarshal(data, &f) != nil {
				continue
			}
			mu.Lock()
			switch {
			case f.Op == "error" && f.ID == "" && f.Sub != "", f.Op == "unsubscribed":
				ended[f.Sub] = true // by Reauthorize, or by the client
			case f.Op == "subscribed":
				delete(ended, f.Sub)
			case f.Op == "events":
				for _, ev := range f.Events {
					for _, sub := range ev.Subs {
						if ended[sub] {
							violations.Add(1)
						}
					}
				}
			}
			mu.Unlock()
		}
	}()
	for i := 0; i < 200; i++ {
		select {
		case <-stop:
			i = 200
			continue
		case <-readDone:
			return
		default:
		}
		sub := fmt.Sprint("s", rand.IntN(4))
		var frame string
		switch rand.IntN(5) {
		case 0, 1:
			pattern := []string{"red.>", "blue.>", "red.x"}[rand.IntN(3)]
			frame = fmt.Sprintf(`{"op":"sub","id":"r%d","sub":%q,"pattern":%q}`, i, sub, pattern)
		case 2:
			frame = fmt.Sprintf(`{"op":"unsub","id":"u%d","sub":%q}`, i, sub)
		case 3:
			frame = fmt.Sprintf(`{"op":"pub","id":"%p-%d","topic":"blue.c","data":{}}`, c, i)
		case 4:
			if rand.IntN(10) == 0 {
				return // hang up
			}
			frame = `{"op":"ping","id":"p"}`
		}
		if c.WriteMessage(websocket.TextMessage, []byte(frame)) != nil {
			return
		}
		time.Sleep(time.Duration(rand.IntN(500)) * time.Microsecond)
	}
	_ = c.Close()
	<-readDone
}
