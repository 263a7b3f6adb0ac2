package bridge

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gorilla/websocket"
	bus "github.com/whalesong/bus"
	"github.com/whalesong/bus/bridge/internal/wstest"
	"github.com/whalesong/bus/internal/memlog"
)

// These tests run several bridges on one shared log (internal/memlog):
// like several processes on one NATS stream, each bus on its own view of
// the log, which can fall behind (its view down) while the others go on.

// node is a bridge on a bus on its own view of a shared log.
type node struct {
	*server
	view *memlog.View[msg]
}

// twoMemNodes makes a log and two nodes on it, served in memory (for a
// synctest bubble).
func twoMemNodes(t *testing.T) (*memlog.Log[msg], node, node) {
	t.Helper()
	l := memlog.New[msg](0)
	nodes := newNodes(t, l, 2, true)
	return l, nodes[0], nodes[1]
}

// newNodes makes n nodes on l, served in memory (for a synctest bubble)
// or on 127.0.0.1, and waits until each has caught up with the log.
func newNodes(t *testing.T, l *memlog.Log[msg], n int, mem bool, opts ...bus.Option) []node {
	t.Helper()
	nodes := make([]node, n)
	for i := range nodes {
		v := l.View()
		b := bus.New[msg](append([]bus.Option{bus.WithLog[msg](v)}, opts...)...)
		if mem {
			nodes[i] = node{newMemServer(t, b), v}
		} else {
			nodes[i] = node{newServer(t, b), v}
		}
		nodes[i].reach(l.Head())
	}
	return nodes
}

// reach waits until the node's bus has applied seq.
func (nd node) reach(seq uint64) {
	nd.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), readWait)
	defer cancel()
	if err := nd.bus.WaitSeq(ctx, seq); err != nil {
		nd.t.Fatalf("WaitSeq(%d): %v (at %d)", seq, err, nd.bus.Seq())
	}
}

func afterPosition(epoch string, seq uint64) map[string]any {
	return map[string]any{"after": map[string]any{"epoch": epoch, "seq": seq}}
}

// serverFrames returns how many text frames the server wrote on c.
func serverFrames(c *wstest.Conn) int {
	n := 0
	for _, f := range c.Frames() {
		if f.Opcode == websocket.TextMessage {
			n++
		}
	}
	return n
}

// TestResumeOnANodeBehind: a client that read up to seq 10 on node A
// resumes on node B, which has not got there yet: B waits for it, then
// answers exactly as usual (recovered, from 10) and hands over what the
// client missed, nothing twice; live events follow.
func TestResumeOnANodeBehind(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, a, b := twoMemNodes(t)
		cl := a.dial(t)
		cl.sub("s", "feed", nil)
		b.view.SetDown(true)
		for i := range 10 {
			a.publish("feed", msg{N: i})
		}
		seen := cl.events(10)
		last := seen[9].Seq

		cl2 := b.dial(t)
		if cl2.hello.Epoch != cl.hello.Epoch || cl2.hello.Seq != 0 {
			t.Fatalf("hello on B %+v: want the shared epoch, at B's seq 0", cl2.hello)
		}
		cl2.send(map[string]any{"op": "sub", "id": "r", "sub": "s", "pattern": "feed", "after": map[string]any{"epoch": cl.hello.Epoch, "seq": last}})
		synctest.Wait() // B's session waits for seq 10
		if n := serverFrames(b.ws.Last()); n != 1 {
			t.Fatalf("B wrote %d frames while behind, want only hello", n)
		}
		var more []uint64
		for i := range 5 {
			more = append(more, a.publish("feed", msg{N: 10 + i}))
		}
		b.view.SetDown(false)
		ack := cl2.expect("subscribed")
		checkStart(t, ack, seqsOf(cl2.events(5)), wantStart{true, "", nil, last, more})
		live := a.publish("feed", msg{Text: "live"})
		if evs := cl2.events(1); len(evs) != 1 || evs[0].Seq != live {
			t.Fatalf("live %+v, want %d once", evs, live)
		}
	})
}

func seqsOf(evs []entry) []uint64 {
	out := make([]uint64, len(evs))
	for i, e := range evs {
		out[i] = e.Seq
	}
	return out
}

// TestResumeOnANodeTooFarBehind: a node that cannot reach the client's
// position within 2 seconds closes the connection with 1013 (try again
// later) and answers nothing: never "lost", never a wrong from.
func TestResumeOnANodeTooFarBehind(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, a, b := twoMemNodes(t)
		b.view.SetDown(true)
		for range 3 {
			a.publish("feed", msg{})
		}
		cl := b.dial(t)
		t0 := time.Now()
		cl.send(map[string]any{"op": "sub", "id": "r", "sub": "s", "pattern": "feed", "after": map[string]any{"epoch": cl.hello.Epoch, "seq": 3}})
		f, err := cl.tryRead(time.Minute)
		code, ok := wstest.CloseCode(err)
		if !ok || code != closeTryLater {
			t.Fatalf("got %+v, %v; want close 1013", f, err)
		}
		if waited := time.Since(t0); waited != resumeWait {
			t.Fatalf("closed after %v, want %v", waited, resumeWait)
		}
		// A history request for a position the node has not reached waits
		// the same way.
		cl = b.dial(t)
		cl.send(`{"op":"history","id":"h","pattern":"feed","before":4}`)
		if _, err := cl.tryRead(time.Minute); !isClose(err, closeTryLater) {
			t.Fatalf("history on a node behind: %v, want close 1013", err)
		}
	})
}

func isClose(err error, want int) bool {
	code, ok := wstest.CloseCode(err)
	return ok && code == want
}

// TestHistoryOnANodeBehind: a page asked with a before the node has not
// reached waits until it has, and has no hole.
func TestHistoryOnANodeBehind(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, a, b := twoMemNodes(t)
		b.view.SetDown(true)
		var seqs []uint64
		for range 6 {
			seqs = append(seqs, a.publish("feed", msg{}))
		}
		cl := b.dial(t)
		cl.send(`{"op":"history","id":"h","pattern":"feed","before":6,"limit":3}`)
		synctest.Wait()
		b.view.SetDown(false)
		p := cl.expect("page")
		if got := pageSeqs(t, p); !slices.Equal(got, seqs[2:5]) || !*p.More || p.Epoch != l.Epoch() {
			t.Fatalf("page %v more %v epoch %q; want %v, more, %q", got, deref(p.More), p.Epoch, seqs[2:5], l.Epoch())
		}
	})
}

// TestHelloWaitsForTheLog: a node that has not heard from its log yet does
// not say hello with an empty epoch: it waits for the log, up to 2
// seconds, then closes with 1013.
func TestHelloWaitsForTheLog(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := memlog.New[msg](0)
		v := l.View()
		v.SetDown(true)
		s := newMemServer(t, bus.New[msg](bus.WithLog[msg](v)))
		c, err := s.ws.Dial(t.Context(), "/", wstest.DialOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		synctest.Wait()
		v.SetDown(false)
		cl := newClient(t, c)
		if cl.hello.Epoch != l.Epoch() {
			t.Fatalf("hello %+v, want epoch %q", cl.hello, l.Epoch())
		}

		v2 := l.View()
		v2.SetDown(true)
		s2 := newMemServer(t, bus.New[msg](bus.WithLog[msg](v2)))
		c2, err := s2.ws.Dial(t.Context(), "/", wstest.DialOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer c2.Close()
		t0 := time.Now()
		_ = c2.SetReadDeadline(time.Now().Add(time.Minute))
		_, data, err := c2.ReadMessage()
		if !isClose(err, closeTryLater) || time.Since(t0) != resumeWait {
			t.Fatalf("got %s, %v after %v; want close 1013 after %v", data, err, time.Since(t0), resumeWait)
		}
	})
}

// TestNodeThatMissedEventsCutsOff: a node that misses events of the log
// beyond its history (its view was down while the log deleted them) ends
// its subscriptions: the client is cut off with 4000, and its resume says
// recovered false, reason evicted, with the range that may be missing.
func TestNodeThatMissedEventsCutsOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := memlog.New[msg](3)
		nodes := newNodes(t, l, 2, true, bus.WithHistory(3))
		a, b := nodes[0], nodes[1]
		cl := b.dial(t)
		cl.sub("s", "feed", nil)
		a.publish("feed", msg{})
		a.publish("feed", msg{})
		last := cl.events(2)[1].Seq
		b.view.SetDown(true)
		var seqs []uint64
		for range 10 {
			seqs = append(seqs, a.publish("feed", msg{}))
		}
		b.view.SetDown(false)
		if code := cl.closeCode(); code != closeResumeNeeded {
			t.Fatalf("close %d, want 4000", code)
		}
		b.reach(seqs[9])
		cl2 := b.dial(t)
		ack := cl2.sub("s", "feed", afterPosition(cl.hello.Epoch, last))
		checkStart(t, ack, seqsOf(cl2.events(3)), wantStart{false, "evicted", &missing{last, seqs[7]}, last, seqs[7:]})
		// The new shared subscription serves live events again.
		live := a.publish("feed", msg{})
		if evs := cl2.events(1); evs[0].Seq != live {
			t.Fatalf("live %+v, want %d", evs, live)
		}
	})
}

// TestRecreatedLogIsAReset: a recreated log is a new epoch: the node's
// clients are cut off with 4000, and a resume from the old epoch says
// reason reset with the range, then gets what the new stream holds.
func TestRecreatedLogIsAReset(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, a, b := twoMemNodes(t)
		cl := b.dial(t)
		cl.sub("s", "feed", nil)
		for range 3 {
			a.publish("feed", msg{})
		}
		last := cl.events(3)[2].Seq
		old := cl.hello.Epoch
		l.Recreate()
		if code := cl.closeCode(); code != closeResumeNeeded {
			t.Fatalf("close %d, want 4000", code)
		}
		fresh := []uint64{b.publish("feed", msg{}), b.publish("feed", msg{})}
		cl2 := b.dial(t)
		if cl2.hello.Epoch != l.Epoch() || cl2.hello.Epoch == old {
			t.Fatalf("hello %+v, want the new epoch %q", cl2.hello, l.Epoch())
		}
		ack := cl2.sub("s", "feed", afterPosition(old, last))
		if ack.Epoch != l.Epoch() {
			t.Fatalf("ack epoch %q", ack.Epoch)
		}
		checkStart(t, ack, seqsOf(cl2.events(2)), wantStart{false, "reset", &missing{last, fresh[0]}, fresh[0] - 1, fresh})
	})
}

// TestResumeFromANewEpochOnAStaleNode: the log was recreated, node A
// follows it into the new epoch and serves a client there; node B has not
// noticed yet (its follower lags). The client resumes on B with the new
// epoch: B asks the log, waits until it is in that epoch too, and answers
// exactly (recovered, nothing twice), never a reset from the old stream.
func TestResumeFromANewEpochOnAStaleNode(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, a, b := twoMemNodes(t)
		a.publish("feed", msg{Text: "old stream"})
		b.reach(1)
		old := b.bus.Epoch()
		b.view.Stall(true)
		l.Recreate()
		synctest.Wait() // A's follower has applied the new epoch
		cl := a.dial(t)
		if cl.hello.Epoch == old {
			t.Fatalf("A still in the old epoch %q", old)
		}
		cl.sub("s", "feed", nil)
		seen := []uint64{a.publish("feed", msg{N: 1}), a.publish("feed", msg{N: 2})}
		if got := seqsOf(cl.events(2)); !slices.Equal(got, seen) {
			t.Fatalf("on A %v, want %v", got, seen)
		}

		cl2 := b.dial(t)
		if cl2.hello.Epoch != old {
			t.Fatalf("hello on B %+v, want the old epoch it still follows", cl2.hello)
		}
		cl2.send(map[string]any{"op": "sub", "id": "r", "sub": "s", "pattern": "feed", "after": map[string]any{"epoch": cl.hello.Epoch, "seq": seen[1]}})
		synctest.Wait() // B's session waits for the new epoch
		if n := serverFrames(b.ws.Last()); n != 1 {
			t.Fatalf("B wrote %d frames while in the old epoch, want only hello", n)
		}
		more := a.publish("feed", msg{N: 3})
		b.view.Stall(false)
		ack := cl2.expect("subscribed")
		if ack.Epoch != cl.hello.Epoch {
			t.Fatalf("ack epoch %q, want the new %q", ack.Epoch, cl.hello.Epoch)
		}
		checkStart(t, ack, seqsOf(cl2.events(1)), wantStart{true, "", nil, seen[1], []uint64{more}})
	})
}

// TestResumeFromANewEpochWhenTheLogIsUnreachable: a node in another epoch
// than the client's that cannot ask the log which one is current cannot
// tell a client from a stream it has not seen yet from one that is gone:
// it closes with 1013 (try again later) and answers nothing.
func TestResumeFromANewEpochWhenTheLogIsUnreachable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, a, b := twoMemNodes(t)
		cl := b.dial(t)
		b.view.SetDown(true)
		l.Recreate()
		seq := a.publish("feed", msg{})
		cl.send(map[string]any{"op": "sub", "id": "r", "sub": "s", "pattern": "feed", "after": map[string]any{"epoch": a.bus.Epoch(), "seq": seq}})
		if f, err := cl.tryRead(time.Minute); !isClose(err, closeTryLater) {
			t.Fatalf("got %+v, %v; want close 1013", f, err)
		}
	})
}

// TestClientHopsBetweenNodes: three nodes on one log, a publisher on the
// first; a client reconnects again and again, each time to the next node
// (which may be behind the one it left), resuming from the last seq it
// saw: it gets every event exactly once, in order, and never a gap.
func TestClientHopsBetweenNodes(t *testing.T) {
	l := memlog.New[msg](0)
	nodes := newNodes(t, l, 3, false)
	const total = 1500
	var wg sync.WaitGroup
	defer wg.Wait()
	published := make([]uint64, 0, total)
	wg.Go(func() {
		for i := range total {
			published = append(published, nodes[0].publish(fmt.Sprint("feed.", i%3), msg{N: i}))
			if i%50 == 0 {
				time.Sleep(time.Millisecond) // let hops land mid-stream
			}
		}
	})
	var got []uint64
	last := uint64(0)
	epoch := l.Epoch()
	for round := 0; len(got) < total; round++ {
		cl := nodes[round%3].dial(t)
		ack := cl.sub("s", "feed.>", afterPosition(epoch, last))
		if !*ack.Recovered || *ack.From != last || ack.Epoch != epoch {
			t.Fatalf("round %d on node %d: ack %+v, want recovered from %d", round, round%3, ack, last)
		}
		for n := 0; n < 1+round%5*40 && len(got) < total; {
			for _, ev := range cl.events(1) {
				if ev.Seq <= last {
					t.Fatalf("round %d: seq %d after %d", round, ev.Seq, last)
				}
				last = ev.Seq
				got = append(got, ev.Seq)
				n++
			}
		}
		_ = cl.c.Close()
	}
	wg.Wait()
	if !slices.Equal(got[:total], published) {
		t.Fatalf("got %d events, want exactly the %d published in order", len(got), len(published))
	}
}
