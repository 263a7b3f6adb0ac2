package natsbus

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// The backlog's hand-off between a waiting Append and the follower, in
// every order: whatever the follower reads is recorded exactly once,
// either by the Append it reported to or by the backlog, and a report
// never blocks the follower.
func TestIDBacklogHandOff(t *testing.T) {
	const mid, topic, epoch = "i.x", "a", "E"
	at := seenAt{epoch: epoch, seq: 5}
	want := []pendingID{{mid, idEntry{Epoch: epoch, Seq: 5, Topic: topic}}}
	for _, tc := range []struct {
		name    string
		steps   func(b *idBacklog, report chan seenAt) (got seenAt, ok bool)
		pending []pendingID // what the backlog records
		told    bool        // what the Append records
	}{
		{"read, then taken by Append", func(b *idBacklog, r chan seenAt) (seenAt, bool) {
			b.seen(mid, epoch, 5, topic)
			got := <-r
			b.settled(mid, r)
			return got, true
		}, nil, true},
		{"read, then handed over (Append's wait ended)", func(b *idBacklog, r chan seenAt) (seenAt, bool) {
			b.seen(mid, epoch, 5, topic)
			b.handOver(mid, r)
			return seenAt{}, false
		}, want, false},
		{"handed over, then read", func(b *idBacklog, r chan seenAt) (seenAt, bool) {
			b.handOver(mid, r)
			b.seen(mid, epoch, 5, topic)
			return seenAt{}, false
		}, want, false},
		{"read twice (a session started over), then taken", func(b *idBacklog, r chan seenAt) (seenAt, bool) {
			b.seen(mid, epoch, 5, topic)
			b.seen(mid, epoch, 5, topic) // would block on a full channel
			got := <-r
			b.settled(mid, r)
			b.seen(mid, epoch, 5, topic)
			return got, true
		}, nil, true},
		{"another topic's event with the id: not this publish", func(b *idBacklog, r chan seenAt) (seenAt, bool) {
			b.seen(mid, epoch, 3, "other")
			select {
			case got := <-r:
				return got, true
			default:
			}
			b.settled(mid, r)
			return seenAt{}, false
		}, nil, false},
		{"settled (a duplicate), then read: nothing left", func(b *idBacklog, r chan seenAt) (seenAt, bool) {
			b.settled(mid, r)
			b.seen(mid, epoch, 5, topic)
			b.handOver(mid, r)
			return seenAt{}, false
		}, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b idBacklog
			report := b.expect(mid, topic, time.Minute)
			if report == nil {
				t.Fatal("expect on an empty backlog returned no channel")
			}
			got, ok := tc.steps(&b, report)
			if ok != tc.told || (ok && got != at) {
				t.Fatalf("Append was told %+v (%v), want %v", got, ok, tc.told)
			}
			if fmt.Sprint(b.pending) != fmt.Sprint(tc.pending) {
				t.Fatalf("the backlog records %+v, want %+v", b.pending, tc.pending)
			}
			if len(b.inDoubt) != 0 {
				t.Fatalf("%d ids still in doubt, want none", len(b.inDoubt))
			}
		})
	}
}

// Two Appends of one id at once: the second does not wait (it asks the
// stream), and neither settles nor hands over the other's wait.
func TestIDBacklogSameIDTwice(t *testing.T) {
	var b idBacklog
	first := b.expect("i.x", "a", time.Minute)
	if second := b.expect("i.x", "a", time.Minute); second != nil {
		t.Fatal("a second Append of a waited-for id was given a channel")
	}
	b.settled("i.x", nil) // the second, done
	b.handOver("i.x", nil)
	b.seen("i.x", "E", 5, "a")
	select {
	case at := <-first:
		if at != (seenAt{"E", 5}) {
			t.Fatalf("the first was told %+v", at)
		}
	default:
		t.Fatal("the first Append's wait was ended by the second")
	}
	b.settled("i.x", first)
	if len(b.inDoubt) != 0 || len(b.pending) != 0 {
		t.Fatalf("left: %d in doubt, %d pending", len(b.inDoubt), len(b.pending))
	}
	// Once the first has handed its id over (its ack was lost), a retry
	// waits for the follower in its place.
	first = b.expect("i.y", "a", time.Minute)
	b.handOver("i.y", first)
	retry := b.expect("i.y", "a", time.Minute)
	if retry == nil {
		t.Fatal("a retry after a hand-over was not given a channel")
	}
	b.seen("i.y", "E", 6, "a")
	if at := <-retry; at.seq != 6 {
		t.Fatalf("the retry was told %+v", at)
	}
}

// The uncertain path: a publish whose ack was lost is queued when the
// follower reads it; a full backlog makes Append ask the stream instead of
// waiting, until an id in doubt outlives its window.
func TestIDBacklogDoubtAndBound(t *testing.T) {
	var b idBacklog
	b.handOver("i.lost", b.expect("i.lost", "a", time.Minute))
	b.seen("i.lost", "E", 7, "a")
	if len(b.pending) != 1 || b.pending[0].e != (idEntry{Epoch: "E", Seq: 7, Topic: "a"}) {
		t.Fatalf("pending %+v after the follower read a lost-ack publish", b.pending)
	}
	for i := range maxIDBacklog - 1 {
		b.expect(fmt.Sprintf("i.%d", i), "a", time.Minute)
	}
	if b.expect("i.last", "a", time.Minute) == nil {
		t.Fatal("expect refused with room for one more")
	}
	if b.expect("i.over", "a", time.Minute) != nil {
		t.Fatal("expect past maxIDBacklog unexpired doubts returned a channel")
	}
	for k, d := range b.inDoubt { // once the window has passed, room is made
		d.until = time.Now().Add(-time.Second)
		b.inDoubt[k] = d
		break
	}
	if b.expect("i.after", "a", time.Minute) == nil {
		t.Fatal("expect refused though an id in doubt had outlived its window")
	}
	if len(b.inDoubt) != maxIDBacklog {
		t.Fatalf("%d ids in doubt, want %d", len(b.inDoubt), maxIDBacklog)
	}
}

// A bus that closes (a deploy) still records what is left in its
// backlog, once, within a bound: here an entry queued when the loop's
// ctx has already ended.
func TestRecordLoopDrainsAtTheEnd(t *testing.T) {
	_, nc := single(t)
	l := testLog[int](t, nc)
	epoch, err := l.Epoch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_, mid, _ := l.message("left", "a", 1)
	l.ids.later(mid, idEntry{Epoch: epoch, Seq: 1, Topic: "a"})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	l.recordLoop(ctx)
	if seq, st, err := l.askID(context.Background(), mid, "a", time.Now().Add(waitLimit)); st != idFound || seq != 1 {
		t.Fatalf("the ledger after the loop ended: seq %d, state %d, %v; want seq 1 found", seq, st, err)
	}
}

// A follower that does not read the event in time (here: counted as
// running, never reading) makes Append ask the stream for the epoch after
// reportWait, not wait out the publish's time; the id is recorded.
func TestAppendWhenTheFollowerIsBehind(t *testing.T) {
	_, nc := single(t)
	l := testLog[int](t, nc)
	l.followers.Add(1) // as if a Follow call ran, stuck behind
	defer l.followers.Add(-1)
	start := time.Now()
	seq, err := l.Append(context.Background(), "slow", "a", 1) // no deadline: 5 s to spend
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > defaultPublishTimeout/2 {
		t.Fatalf("Append took %v waiting for a follower that never read its event", took)
	}
	_, mid, _ := l.message("slow", "a", 1)
	if got, st, err := l.askID(context.Background(), mid, "a", time.Now().Add(waitLimit)); st != idFound || got != seq {
		t.Fatalf("the ledger: seq %d, state %d, %v; want %d found", got, st, err, seq)
	}
}
