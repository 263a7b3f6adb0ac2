package natsbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/whalesong/bus"
)

// Guarantee 1 at the log level: several connections publish concurrently,
// every follower sees the same events with the same Seq, Topic, Time and
// Data, 1..N without a gap or a duplicate, in one epoch.
func TestOneSequenceAcrossConnections(t *testing.T) {
	s, _ := single(t)
	const nodes, perNode = 3, 120
	logs := make([]*natsLog[int], nodes)
	recs := make([]*recorder[int], nodes)
	for i := range logs {
		logs[i] = testLog[int](t, connect(t, s.URL()))
		recs[i] = follow(t, logs[i])
		waitLoaded(t, logs[i])
	}
	var wg sync.WaitGroup
	acked := make([][]uint64, nodes)
	for i, l := range logs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range perNode {
				ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
				seq, err := l.Append(ctx, "", fmt.Sprintf("node%d.t%d", i, j%3), i*perNode+j)
				cancel()
				if err != nil {
					t.Errorf("append: %v", err)
					return
				}
				acked[i] = append(acked[i], seq)
			}
		}()
	}
	wg.Wait()
	const n = nodes * perNode
	all := slices.Concat(acked...)
	slices.Sort(all)
	if len(slices.Compact(all)) != n || all[0] != 1 || all[n-1] != n {
		t.Fatalf("acked seqs are not 1..%d: %v", n, all)
	}
	var first []bus.Record[int]
	for i, r := range recs {
		got := events(r.waitSeq(t, n))
		checkContiguous(t, fmt.Sprintf("follower %d", i), got, 1, n)
		if eps := epochs(got); len(eps) != 1 {
			t.Fatalf("follower %d saw epochs %v", i, eps)
		}
		if i == 0 {
			first = got
			continue
		}
		for k := range got {
			a, b := first[k], got[k]
			if a.Epoch != b.Epoch || a.Event.Topic != b.Event.Topic || a.Event.Data != b.Event.Data || !a.Event.Time.Equal(b.Event.Time) {
				t.Fatalf("seq %d differs: follower 0 %+v, follower %d %+v", a.Event.Seq, a, i, b)
			}
		}
	}
	for k := 1; k < len(first); k++ {
		if first[k].Event.Time.Before(first[k-1].Event.Time) {
			t.Fatalf("store time goes back at seq %d", first[k].Event.Seq)
		}
	}
}

// A hot topic with a tiny history evicts its events within microseconds;
// a follower that is live must still see every one of them (the live copies
// are made as the stream stores each event, before anything can evict it).
func TestHotTopicWithTinyHistoryLosesNothingLive(t *testing.T) {
	for _, history := range []int{0, 4} {
		t.Run(fmt.Sprintf("history=%d", history), func(t *testing.T) {
			s, nc := single(t)
			l := testLog[int](t, nc, WithHistory(history))
			r := follow(t, l)
			waitLoaded(t, l)
			const publishers, each = 6, 500
			var wg sync.WaitGroup
			for p := range publishers {
				wg.Add(1)
				pl := testLog[int](t, connect(t, s.URL()), WithHistory(history))
				go func() {
					defer wg.Done()
					for i := range each {
						if _, err := pl.Append(context.Background(), "", "hot", p*each+i); err != nil {
							t.Errorf("append: %v", err)
							return
						}
					}
				}()
			}
			wg.Wait()
			checkContiguous(t, "follower", r.waitSeq(t, publishers*each), 1, publishers*each)
		})
	}
}

// Publish ids: the same caller id through two connections is one event
// with one Seq, also when both publish at once; generated ids and caller ids
// cannot collide; an id a header cannot carry is hashed, deterministically.
func TestDedupAcrossConnections(t *testing.T) {
	s, nc := single(t)
	a := testLog[int](t, nc)
	b := testLog[int](t, connect(t, s.URL()))
	ctx := context.Background()
	s1, err := a.Append(ctx, "order-1", "orders", 1)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := b.Append(ctx, "order-1", "orders", 1)
	if err != nil || s2 != s1 {
		t.Fatalf("same id on another connection: seq %d, %v; want %d", s2, err, s1)
	}
	weird := "line\r\nbreak " + string(make([]byte, 300))
	w1, err1 := a.Append(ctx, weird, "orders", 2)
	w2, err2 := b.Append(ctx, weird, "orders", 2)
	if err1 != nil || err2 != nil || w1 != w2 || w1 == s1 {
		t.Fatalf("a hashed id: %d %v, %d %v", w1, err1, w2, err2)
	}
	var wg sync.WaitGroup
	got := make([]uint64, 8)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := a
			if i%2 == 1 {
				l = b
			}
			got[i], _ = l.Append(ctx, "concurrent", "orders", 3)
		}()
	}
	wg.Wait()
	for _, g := range got {
		if g != got[0] || g == 0 {
			t.Fatalf("concurrent appends of one id got seqs %v", got)
		}
	}
	if last := streamState(t, nc, defaultStream).State.LastSeq; last != 3 {
		t.Fatalf("the stream holds %d events, want 3", last)
	}
	if _, err := b.Append(ctx, "order-1", "refunds", 1); !errors.Is(err, bus.ErrIDReused) {
		t.Fatalf("the id of an event on another topic: %v, want ErrIDReused", err)
	}
	if msgID("") == msgID("") || msgID("x") != "i.x" || msgID("g.x") == msgID("") {
		t.Fatalf("ids: %q %q %q", msgID(""), msgID("x"), msgID("g.x"))
	}
}

// Server down: a publish fails within its ctx with a definite error (not
// stored), and nothing lands when the server is back.
func TestDefiniteErrorWhileServerDown(t *testing.T) {
	s, nc := single(t)
	l := testLog[int](t, nc)
	appendN(t, l, "a", 3)
	s.Shutdown()
	waitFor(t, "the client to see the server gone", func() bool { return !nc.IsConnected() })
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	start := time.Now()
	_, err := l.Append(ctx, "lost-1", "a", 99)
	cancel()
	if !errors.Is(err, ErrNotStored) || errors.Is(err, bus.ErrUncertain) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("append while down: %v; want ErrNotStored wrapping the deadline", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("append took %v with a 300ms ctx", d)
	}
	s.Restart()
	seq := appendN(t, l, "a", 1)[0] // waits for the reconnect; anything buffered would be before it
	if seq != 4 {
		t.Fatalf("next seq %d, want 4: the failed publish landed", seq)
	}
}

// The trap New refuses: with nats.go's default reconnect buffer, a
// JetStream publish that returned an error while the server was down is
// stored after the reconnect.
func TestDefaultReconnectBufferResurrects(t *testing.T) {
	s, _ := single(t)
	nc, err := nats.Connect(s.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := checkConn(nc); !errors.Is(err, ErrConnOption) {
		t.Fatalf("checkConn: %v, want ErrConnOption", err)
	}
	_ = testLog[int](t, connect(t, s.URL())) // makes the stream
	js, _ := jetstream.New(nc)
	s.Shutdown()
	waitFor(t, "the client to see the server gone", func() bool { return !nc.IsConnected() })
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	_, err = js.Publish(ctx, defaultStream+".a", []byte("1"))
	cancel()
	if err == nil {
		t.Fatal("a publish while the server is down succeeded")
	}
	s.Restart()
	nc2 := connect(t, s.URL())
	waitFor(t, "the resurrected publish", func() bool { return streamState(t, nc2, defaultStream).State.Msgs == 1 })
}

// Paused network: the publish reached the server but its ack did not come
// back: ErrUncertain. A retry with the same id tells the seq and stores
// nothing twice. (The first try is sent as Append sends it once the id
// ledger has said the id is new: over a network paused before that,
// Append sends nothing and says ErrNotStored.)
func TestUncertainThenRetrySameID(t *testing.T) {
	s, nc := single(t)
	p := natstestProxy(t, s.URL())
	l := testLog[int](t, connect(t, p.URL()))
	_ = follow(t, l)
	waitLoaded(t, l)
	appendN(t, l, "a", 2)
	p.Pause()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, err := l.Append(ctx, "pay-7", "a", 7)
	cancel()
	if !errors.Is(err, ErrNotStored) || errors.Is(err, bus.ErrUncertain) {
		t.Fatalf("append with an id over a paused network (the ledger cannot be read): %v; want ErrNotStored", err)
	}
	msg, _, err := l.message("pay-7", "a", 7)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, _, err = l.publish(ctx, msg, nil)
	cancel()
	if !errors.Is(err, bus.ErrUncertain) || errors.Is(err, ErrNotStored) {
		t.Fatalf("publish over a paused network: %v; want ErrUncertain", err)
	}
	p.Resume()
	ctx, cancel = context.WithTimeout(context.Background(), waitLimit)
	seq, err := l.Append(ctx, "pay-7", "a", 7)
	cancel()
	if err != nil || seq != 3 {
		t.Fatalf("retry: seq %d, %v; want 3", seq, err)
	}
	if st := streamState(t, nc, defaultStream).State; st.LastSeq != 3 || st.Msgs != 3 {
		t.Fatalf("stream state %+v: want 3 events", st)
	}
}

// An uncertain publish (its ack lost) whose event this node's follower then
// reads is recorded in the id ledger by the follower's side, so that a
// retry of its id after the event was evicted and the server restarted is
// answered with the first seq, not stored again.
func TestUncertainPublishRecordedByTheFollower(t *testing.T) {
	s, nc := single(t)
	p := natstestProxy(t, s.URL())
	l := testLog[int](t, connect(t, p.URL()), WithHistory(1))
	_ = follow(t, l)
	waitLoaded(t, l)
	msg, mid, err := l.message("pay-9", "a", 9)
	if err != nil {
		t.Fatal(err)
	}
	report := l.ids.expect(mid, "a", time.Minute) // as Append does before its publish
	p.Pause()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, _, err = l.publish(ctx, msg, nil)
	cancel()
	if !errors.Is(err, bus.ErrUncertain) {
		t.Fatalf("publish over a paused network: %v; want ErrUncertain", err)
	}
	l.ids.handOver(mid, report) // and after it failed
	p.Resume()
	waitFor(t, "the follower's ledger entry", func() bool {
		seq, st, _ := l.askID(context.Background(), mid, "a", time.Now().Add(time.Second))
		return st == idFound && seq == 1
	})
	other := testLog[int](t, nc, WithHistory(1))
	if _, err := other.Append(context.Background(), "", "a", 10); err != nil { // evicts seq 1
		t.Fatal(err)
	}
	s.Restart()
	var again uint64
	deadline := time.Now().Add(waitLimit)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		again, err = l.Append(ctx, "pay-9", "a", 9)
		cancel()
		if err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil || again != 1 {
		t.Fatalf("retry after an uncertain publish, an eviction and a restart: seq %d, %v; want 1", again, err)
	}
	if last := streamState(t, connect(t, s.URL()), defaultStream).State.LastSeq; last != 2 {
		t.Fatalf("the stream's last seq is %d, want 2: the retry was stored again", last)
	}
}

// A NATS restart on the same store: the follower resumes with nothing lost
// or twice, the epoch stays, and the dedup window survives.
func TestServerRestartKeepsEpochAndEvents(t *testing.T) {
	s, nc := single(t)
	l := testLog[int](t, nc)
	r := follow(t, l)
	waitLoaded(t, l)
	appendN(t, l, "a", 20)
	r.waitSeq(t, 20)
	before := epochOf(streamState(t, nc, defaultStream))
	s.Restart()
	done := make(chan []uint64, 1)
	go func() { done <- appendN(t, l, "b", 20) }() // retries through the restart
	got := <-done
	if got[0] != 21 || got[19] != 40 {
		t.Fatalf("seqs after the restart %v", got)
	}
	recs := r.waitSeq(t, 40)
	checkContiguous(t, "follower", recs, 1, 40)
	if eps := epochs(recs); len(eps) != 1 || eps[0] != before || epochOf(streamState(t, nc, defaultStream)) != before {
		t.Fatalf("epochs %v, want only %s", eps, before)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	seq1, err := l.Append(ctx, "kept", "a", 1)
	if err != nil {
		t.Fatal(err)
	}
	s.Restart()
	seq2, err := l.Append(ctx, "kept", "a", 1)
	if err != nil || seq2 != seq1 {
		t.Fatalf("the same id after a restart: %d %v, want %d", seq2, err, seq1)
	}
}

// The OrderedConsumer trap as a regression test: the stream is deleted and
// recreated under a follower whose cursor is at 10, then gets 3 events and
// 10 more. The follower must announce a new epoch and deliver the new
// stream's 1..13, not carry on at 11.
func TestStreamRecreatedIsANewEpoch(t *testing.T) {
	s, nc := single(t)
	l := testLog[int](t, nc)
	r := follow(t, l)
	waitLoaded(t, l)
	appendN(t, l, "a", 10)
	old := r.waitSeq(t, 10)[0].Epoch
	js, _ := jetstream.New(nc)
	if err := js.DeleteStream(context.Background(), defaultStream); err != nil {
		t.Fatal(err)
	}
	l2 := testLog[int](t, connect(t, s.URL())) // recreates it
	appendN(t, l2, "a", 3)
	appendN(t, l2, "a", 10)
	recs := r.wait(t, "the new epoch's 13 events", func(recs []bus.Record[int]) bool {
		n := 0
		for _, rec := range recs {
			if rec.Epoch != old && rec.Event.Seq != 0 {
				n++
			}
		}
		return n >= 13
	})
	var fresh []bus.Record[int]
	for i, rec := range recs {
		if rec.Epoch != old {
			if len(fresh) == 0 && rec.Event.Seq != 0 {
				t.Fatalf("record %d of the new epoch is an event, not an announcement", i)
			}
			fresh = append(fresh, rec)
		} else if len(fresh) > 0 {
			t.Fatalf("an old-epoch record after the new epoch: %s", tail(recs[i:], 1))
		}
	}
	checkContiguous(t, "new epoch", fresh, 1, 13)
	checkContiguous(t, "old epoch", recs[:len(recs)-len(fresh)], 1, 10)
}

// An outage: the follower resumes after the last event it read. Within
// retention it misses nothing; beyond it, the seqs evicted meanwhile are
// skipped (the bus ends its subscriptions), and nothing is delivered twice.
func TestOutage(t *testing.T) {
	for _, tc := range []struct {
		name    string
		history int
		skip    bool
	}{{"within retention", 100, false}, {"beyond retention", 5, true}} {
		t.Run(tc.name, func(t *testing.T) {
			s, nc := single(t)
			a := testLog[int](t, nc, WithHistory(tc.history))
			p := natstestProxy(t, s.URL())
			b := testLog[int](t, connect(t, p.URL()), WithHistory(tc.history))
			r := follow(t, b)
			waitLoaded(t, b)
			appendN(t, a, "hot", 3)
			r.waitSeq(t, 3)
			p.Down()
			appendN(t, a, "hot", 20)
			p.Up()
			got := seqs(r.waitSeq(t, 23))
			want := []uint64{1, 2, 3}
			first := uint64(4)
			if tc.skip {
				first = 23 - uint64(tc.history) + 1
			}
			for q := first; q <= 23; q++ {
				want = append(want, q)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("seqs %v, want %v", got, want)
			}
		})
	}
}

// storedOther tells a ledger entry whose seq holds another event (one
// mislabelled across a recreation) from one whose event is there.
func TestLedgerEntryCheckedAgainstTheEvent(t *testing.T) {
	s, _ := single(t)
	l := testLog[int](t, connect(t, s.URL()))
	seq, err := l.Append(context.Background(), "x-1", "t", 1)
	if err != nil {
		t.Fatal(err)
	}
	if l.storedOther(context.Background(), seq, msgID("x-1")) {
		t.Fatal("the entry's own event counted as another's")
	}
	if !l.storedOther(context.Background(), seq, msgID("x-2")) {
		t.Fatal("another id's event at the entry's seq not seen")
	}
	if l.storedOther(context.Background(), seq+5, msgID("x-1")) {
		t.Fatal("a seq that holds nothing counted as another's event")
	}
}

// A PublishID whose ledger record lands logs nothing: the ledger's ack is
// read as the ledger's (it was taken for an unexpected ack of the event
// stream, and every record logged as failed).
func TestLedgerRecordLogsNothing(t *testing.T) {
	s, _ := single(t)
	sink := newLogSink()
	l := testLog[int](t, connect(t, s.URL()), WithLogger(slog.New(sink)))
	if _, err := l.Append(context.Background(), "quiet-1", "t", 1); err != nil {
		t.Fatal(err)
	}
	seq, st, err := l.askID(context.Background(), msgID("quiet-1"), "t", time.Now().Add(time.Second))
	if st != idFound || seq != 1 || err != nil {
		t.Fatalf("the ledger after PublishID: seq %d, state %d, %v; want seq 1 found", seq, st, err)
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	for _, line := range sink.lines {
		if strings.Contains(line, "not recorded") {
			t.Fatalf("a record that landed was logged: %q", line)
		}
	}
}

// A retry inside one publish asks the id ledger again: here node B's first
// try is held by a paused network while node A stores and records the same
// id, the event is evicted and the server restarts (JetStream forgets the
// id with the evicted event). B's next try, after its reconnect, must find
// A's entry and answer its seq, not store the id again.
func TestRetryAfterAnotherNodeRecordedTheID(t *testing.T) {
	s, nc := single(t)
	la := testLog[int](t, connect(t, s.URL()), WithHistory(1))
	_ = follow(t, la)
	waitLoaded(t, la)
	p := natstestProxy(t, s.URL())
	lb := testLog[int](t, connect(t, p.URL()), WithHistory(1))
	msg, mid, err := lb.message("id-1", "t", 1)
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		seq uint64
		how storedAs
		err error
	}
	done := make(chan result, 1)
	asked := make(chan struct{})
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		asks := 0
		ask := func(deadline time.Time) (uint64, idState, error) { // as Append asks
			seq, st, err := lb.askID(ctx, mid, "t", deadline)
			if asks++; asks == 1 {
				p.Pause() // the first try, sent next, is held
				close(asked)
			}
			return seq, st, err
		}
		seq, how, err := lb.publish(ctx, msg, ask)
		done <- result{seq, how, err}
	}()
	<-asked // the ledger told B the id is new
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	first, err := la.Append(ctx, "id-1", "t", 1)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, la, "t", 1) // evicts it
	s.Restart()
	p.Resume()
	r := <-done
	if r.err != nil || r.seq != first || r.how != recorded {
		t.Fatalf("B's publish after A recorded the id, an eviction and a restart: seq %d (%d), %v; want A's seq %d from the ledger", r.seq, r.how, r.err, first)
	}
	if last := streamState(t, nc, defaultStream).State.LastSeq; last != first+1 {
		t.Fatalf("the stream's last seq is %d, want %d: B stored the id again", last, first+1)
	}
}
