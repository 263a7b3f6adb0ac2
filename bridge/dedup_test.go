package bridge

import (
	"testing"
	"testing/synctest"
	"time"

	bus "github.com/whalesong/bus"
)

func TestDedupWindowOverTheWire(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := bus.New[msg](bus.WithDedupWindow(10, 30*time.Second))
		s := newMemServer(t, b, WithAuthorize(allowAll), WithDedupWindow(10, 10*time.Second))
		cl := s.dial(t)
		pub := func() uint64 {
			t.Helper()
			cl.send(`{"op":"pub","id":"once","topic":"t","data":{}}`)
			return cl.expect("published").Seq
		}
		first := pub()
		time.Sleep(10*time.Second - time.Nanosecond) // under melody's pong wait in all: this client does not read
		if seq := pub(); seq != first || s.br.Stats().Deduplicated != 1 {
			t.Fatalf("retry within the window: seq %d, want %d, answered by the bridge", seq, first)
		}
		time.Sleep(time.Nanosecond)
		if seq := pub(); seq != first || s.br.Stats().Deduplicated != 1 || b.Seq() != 1 {
			t.Fatalf("retry after the bridge's window: seq %d (bus at %d), want %d from the bus's window", seq, b.Seq(), first)
		}
		time.Sleep(20 * time.Second)
		if seq := pub(); seq == first {
			t.Fatalf("retry after both windows: seq %d again", seq)
		}
	})
}
