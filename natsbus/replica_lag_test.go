package natsbus

import (
	"context"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/whalesong/bus"
	"github.com/whalesong/bus/natsbus/internal/natstest"
)

// A replica of an R3 stream that has just restarted is behind its leader
// for a while. A follower whose catch-up consumer the meta leader places
// there (an R1 consumer may go to any of the stream's servers) sees that
// replica's NumPending and idle heartbeats, not the leader's: it must not
// take the seqs that replica does not have yet for deleted ones. Buses made
// by New right after the restart (each on its own connection, so their
// consumers land on all three servers) must each hold every event, and
// never say Recovered for what they lack.
//
// Found by the chaos run (TestChaos): a node that restarted its follower
// session while the killed stream leader came back skipped 450 events.
// Without the check with the stream leader (stoppedShort) this fails in
// most runs: some buses hold only what the lagging replica had.
func TestCatchUpOnALaggingReplica(t *testing.T) {
	if testing.Short() {
		t.Skip("a 3-node cluster")
	}
	noLeaks(t)
	c := natstest.StartCluster(t, 3)
	nc := connect(t, c.URLs())
	n := 50000 // enough that the restarted replica lags for a second or so
	if raceEnabled {
		n = 20000 // everything is slower, the lag too
	}
	first := newBus(t, nc, WithReplicas(3), WithHistory(n+10))
	defer first.Close()
	for i := range 10 {
		if _, err := first.Publish(context.Background(), "t", i); err != nil {
			t.Fatal(err)
		}
	}
	leader := c.WaitStreamLeader(defaultStream)
	lagging := (leader + 1) % 3
	c.Kill(lagging)
	js, err := jetstream.New(connect(t, c.Nodes[leader].URL()))
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := js.PublishAsync(defaultStream+".t", fmt.Appendf(nil, "%d", 10+i)); err != nil {
			t.Fatal(err)
		}
		if i%1000 == 999 {
			<-js.PublishAsyncComplete() // within the async window, however slow the run
		}
	}
	<-js.PublishAsyncComplete()
	c.Restart(lagging) // it catches up from the others over the next second or so
	const buses = 12
	for k := range buses {
		b := newBus(t, connect(t, c.URLs()), WithReplicas(3), WithHistory(n+10))
		defer b.Close()
		h, _ := b.History(">", 0, 0)
		if b.Seq() != uint64(n+10) || len(h) != n+10 {
			_, recovered, _ := b.Replay("t", bus.After(5))
			t.Errorf("bus %d made right after n%d restarted: Seq %d, %d events in History, want %d: %s; Replay(After(5)) says recovered %v", k, lagging, b.Seq(), len(h), n+10, holes(h), recovered)
		}
	}
}

// holes describes the first missing seqs of a History read from 1.
func holes(h []bus.Event[int]) string {
	next := uint64(1)
	for _, ev := range h {
		if ev.Seq != next {
			return fmt.Sprintf("first hole %d to %d", next, ev.Seq-1)
		}
		next = ev.Seq + 1
	}
	return fmt.Sprintf("complete up to %d", next-1)
}
