package bridge

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	bus "github.com/whalesong/bus"
)

// These tests pin the session's exact arithmetic (where the 4000 cut-off
// falls, how a backlog is batched) in a testing/synctest bubble over
// in-memory connections, where a stalled socket and every step are exact.

// TestCutOffIsExact: with WithMaxBacklog(n) and a socket that takes
// nothing, the first event goes in flight, the next ones queue, and the
// session is cut off by the event that finds more than n entries queued
// (control frames count, the frame in flight does not). The client then
// gets what was in flight and 4000.
func TestCutOffIsExact(t *testing.T) {
	for _, pongs := range []int{0, 3} {
		t.Run(fmt.Sprint(pongs, " pongs queued"), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const limit = 8
				s := newMemServer(t, nil, WithMaxBacklog(limit))
				cl := s.dial(t)
				cl.sub("s", "x", nil)
				s.ws.Last().Stall()
				s.publish("x", msg{N: 1})
				synctest.Wait() // event 1 is in flight
				for range pongs {
					cl.send(`{"op":"ping","id":"p"}`)
				}
				synctest.Wait()
				cut := 0
				for i := 2; cut == 0 && i < 100; i++ {
					s.publish("x", msg{N: i})
					synctest.Wait()
					if s.br.Stats().SlowDisconnects > 0 {
						cut = i
					}
				}
				if want := limit + 3 - pongs; cut != want {
					t.Fatalf("cut off by event %d, want %d", cut, want)
				}
				s.ws.Last().Unstall()
				if got := cl.shape(2); !slices.Equal(got, []string{"events:1", "close:4000"}) {
					t.Fatalf("the client got %v, want the event in flight, then 4000", got)
				}
			})
		})
	}
}

// TestBatchingIsExact stalls a socket while a backlog builds, then lets it
// drain: a frame carries at most 512 events or stops once past 64 KiB,
// control frames leave alone and in order, and a replay and the live
// events behind it share frames.
func TestBatchingIsExact(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newMemServer(t, nil)
		for i := range 1000 { // retained for the replay below
			s.publish("h", msg{N: i})
		}
		cl := s.dial(t)
		cl.sub("y", "y.>", nil)
		sc := s.ws.Last()
		sc.Stall()
		publish := func(topic string, n int, m msg) {
			for range n {
				s.publish(topic, m)
			}
			synctest.Wait()
		}
		publish("y.a", 1, msg{}) // in flight
		publish("y.a", 1100, msg{})
		cl.send(`{"op":"ping","id":"p1"}`)
		synctest.Wait()
		big := msg{Text: strings.Repeat("x", 1000)}
		publish("y.b", 70, big)
		cl.send(`{"op":"sub","id":"r2","sub":"h","pattern":"h","after":{"seq":0}}`)
		synctest.Wait()
		publish("h", 30, msg{})
		sc.Unstall()

		// The size arithmetic: a live entry counts its tail and 16 bytes.
		se := (&Bridge[msg]{cfg: newConfig(nil)}).encodeEvent(bus.Event[msg]{Topic: "y.b", Seq: 2000, Time: time.Now(), Data: big}, nil)
		perFrame := (maxBatchBytes + len(se.tail) + 16 - 1) / (len(se.tail) + 16)
		want := []string{
			"events:1", "events:512", "events:512", "events:76", // 1 + 1100 small ones
			"pong",
			fmt.Sprint("events:", perFrame), fmt.Sprint("events:", 70-perFrame), // 70 of about 1 KB
			"subscribed",
			"events:512", "events:512", // the replay of 1000, then 30 live on the same sub
			"events:6",
		}
		if got := cl.shape(len(want)); !slices.Equal(got, want) {
			t.Fatalf("frames\n%v\nwant\n%v", got, want)
		}
	})
}
