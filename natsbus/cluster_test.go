package natsbus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/whalesong/bus"
	"github.com/whalesong/bus/natsbus/internal/natstest"
)

// R3: the stream leader is killed and later restarted while a publisher
// keeps publishing with ids (retrying each one, as PublishID callers do);
// two followers on other servers see every acked event exactly once, in
// order, in one epoch.
func TestClusterLeaderKilledAndRestarted(t *testing.T) {
	if testing.Short() {
		t.Skip("a 3-node cluster")
	}
	c := natstest.StartCluster(t, 3)
	pub := testLog[int](t, connect(t, c.URLs()), WithReplicas(3))
	leader := c.WaitStreamLeader(defaultStream)
	others := []int{(leader + 1) % 3, (leader + 2) % 3}
	var recs []*recorder[int]
	for _, i := range others {
		l := testLog[int](t, connect(t, c.Nodes[i].URL()+","+c.URLs(), nats.DontRandomize()), WithReplicas(3))
		recs = append(recs, follow(t, l))
		waitLoaded(t, l)
	}
	const n = 300
	var stall time.Duration
	uncertain := 0
	for i := range n {
		switch i {
		case 100:
			c.Kill(leader)
		case 101:
			if nl := c.StreamLeader(defaultStream); nl == leader || nl < 0 {
				t.Fatalf("after killing n%d the stream leader is %d", leader, nl)
			}
		case 200:
			c.Restart(leader)
		}
		start := time.Now()
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			seq, err := pub.Append(ctx, fmt.Sprintf("ev-%d", i), "orders", i)
			cancel()
			if err == nil {
				if seq != uint64(i+1) {
					t.Fatalf("event %d got seq %d", i, seq)
				}
				break
			}
			if errors.Is(err, bus.ErrUncertain) {
				uncertain++
			}
			if time.Since(start) > waitLimit {
				t.Fatalf("event %d not stored within %v: %v", i, waitLimit, err)
			}
		}
		stall = max(stall, time.Since(start))
	}
	for k, r := range recs {
		got := r.waitSeq(t, n)
		checkContiguous(t, fmt.Sprintf("follower on n%d", others[k]), got, 1, n)
		if eps := epochs(got); len(eps) != 1 {
			t.Fatalf("epochs %v", eps)
		}
		for _, rec := range events(got) {
			if rec.Event.Data != int(rec.Event.Seq)-1 {
				t.Fatalf("seq %d carries %d", rec.Event.Seq, rec.Event.Data)
			}
		}
	}
	t.Logf("longest publish stall %v, uncertain tries %d", stall.Round(time.Millisecond), uncertain)

	// One id published at once through two servers: the clustered dedup
	// answers "in process" (10158) to all but one, and they retry.
	other := testLog[int](t, connect(t, c.Nodes[others[0]].URL()), WithReplicas(3))
	var wg sync.WaitGroup
	seqs := make([]uint64, 16)
	for i := range seqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := []*natsLog[int]{pub, other}[i%2]
			ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
			defer cancel()
			seqs[i], _ = l.Append(ctx, "same", "orders", -1)
		}()
	}
	wg.Wait()
	for _, s := range seqs {
		if s != n+1 {
			t.Fatalf("concurrent appends of one id: %v, want all %d", seqs, n+1)
		}
	}
	checkContiguous(t, "follower", recs[0].waitSeq(t, n+1), 1, n+1)
}
