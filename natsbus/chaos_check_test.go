package natsbus

// The checks of the chaos runs: what every JS client got and what every
// publisher was told, against the stream.

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/whalesong/bus"
	"github.com/whalesong/bus/natsbus/internal/natstest"
)

// checkOneEpoch: a client of the main run got every event of its pattern
// after its start position, each once, in order, in one epoch, with no gap.
func (r *chaosRig) checkOneEpoch(fl *failLog, spec jsClientSpec, c jsClient, s *snapshot) {
	r.checkReady(fl, c)
	for _, g := range c.Gaps {
		fl.add("gap", "client %d (%q): gap %s after %d before %d, at %.3fs on %s", c.K, c.Pattern, g.Reason, g.After, g.Before,
			time.UnixMilli(g.At).Sub(r.start).Seconds(), r.where(c, g.Events))
	}
	if len(c.Segments) != 1 || c.Segments[0].Epoch != s.epoch {
		fl.add("epochs", "client %d: events in %d epochs, want 1 (%.8s)", c.K, len(c.Segments), s.epoch)
		return
	}
	from, _ := clientStart(spec, c)
	r.checkSegment(fl, c, c.Segments[0], 0, s.matching(spec.Pattern, from))
}

// checkTwoEpochs: a client of the epoch run got exactly one gap, reason
// reset, between the old epoch's events and the new one's; every event of
// the old epoch after its start, then every event of the new one.
func (r *chaosRig) checkTwoEpochs(fl *failLog, spec jsClientSpec, c jsClient, s1, s2 *snapshot) {
	r.checkReady(fl, c)
	var old, cur []jsSegment
	for _, seg := range c.Segments {
		switch seg.Epoch {
		case s1.epoch:
			old = append(old, seg)
		case s2.epoch:
			cur = append(cur, seg)
		default:
			fl.add("epochs", "client %d: events of an unknown epoch %s", c.K, seg.Epoch)
		}
	}
	if len(old) > 1 || len(cur) != 1 || (len(old) == 1 && c.Segments[0].Epoch != s1.epoch) {
		fl.add("epochs", "client %d: %d segments (%d old, %d new), want the old epoch's then the new one's", c.K, len(c.Segments), len(old), len(cur))
		return
	}
	nOld := 0
	if len(old) == 1 {
		from, _ := clientStart(spec, c)
		r.checkSegment(fl, c, old[0], 0, s1.matching(spec.Pattern, from))
		nOld = old[0].N
	}
	r.checkSegment(fl, c, cur[0], nOld, s2.matching(spec.Pattern, 0))
	if len(c.Gaps) != 1 {
		fl.add("gaps", "client %d: %d gaps, want exactly 1: %+v", c.K, len(c.Gaps), c.Gaps)
		return
	}
	// The gap says the old position (the last old event, else where the
	// subscription started, unknown for a live one that had none) and the
	// first seq of the new epoch it delivers: nothing of the pattern before
	// it (the check above has every event of the new epoch delivered), so
	// at most the first one the client got.
	g := c.Gaps[0]
	lastOld, known := uint64(0), true
	switch {
	case len(old) == 1:
		lastOld = old[0].Last
	case spec.After != nil:
		lastOld, _ = clientStart(spec, c)
	default:
		known = false
	}
	if g.Reason != "reset" || g.Events != nOld || (known && g.After != lastOld) || g.Before < 1 || g.Before > cur[0].First {
		fl.add("gaps", "client %d: gap %+v, want reason reset after the %d old events, after %d, before 1 to %d (the first new event)", c.K, g, nOld, lastOld, cur[0].First)
	}
}

// checkReady: the first acknowledgement of every subscription is recovered
// (every position asked for is within the stream's history).
func (r *chaosRig) checkReady(fl *failLog, c jsClient) {
	if c.Ready == nil || c.Ready.Error != "" || !c.Ready.Recovered {
		fl.add("ready", "client %d (%q): first acknowledgement %+v, want recovered", c.K, c.Pattern, c.Ready)
	}
}

// clientStart is the position a client's first segment must start after:
// its after option, or (a live subscription) just before its first event.
func clientStart(spec jsClientSpec, c jsClient) (uint64, bool) {
	switch a := spec.After.(type) {
	case uint64:
		return a, true
	case afterPos:
		return a.Seq, true
	}
	if len(c.Segments) == 0 {
		return 0, false
	}
	return c.Segments[0].First - 1, true
}

// afterPos is an after option with an epoch.
type afterPos struct {
	Epoch string `json:"epoch"`
	Seq   uint64 `json:"seq"`
}

// checkSegment compares one epoch's events of a client with the stream;
// offset is how many events the client had before the segment.
func (r *chaosRig) checkSegment(fl *failLog, c jsClient, seg jsSegment, offset int, want []uint64) {
	got := seg.seqs()
	missing, extra, disorder := compareSeqs(got, want)
	if len(missing) == 0 && len(extra) == 0 && len(disorder) == 0 {
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "client %d (%q), epoch %.8s: %d events, want %d: %d missing, %d extra or twice, %d out of order",
		c.K, c.Pattern, seg.Epoch, len(got), len(want), len(missing), len(extra), len(disorder))
	for _, s := range missing[:min(len(missing), 3)] {
		i := sort.Search(len(got), func(i int) bool { return got[i] > s })
		fmt.Fprintf(&b, "\n  missing seq %d (between %s) on %s", s, around(got, i), r.where(c, offset+i))
	}
	for _, s := range extra[:min(len(extra), 3)] {
		i := slices.Index(got, s)
		fmt.Fprintf(&b, "\n  extra seq %d on %s", s, r.where(c, offset+i))
	}
	for _, i := range disorder[:min(len(disorder), 3)] {
		fmt.Fprintf(&b, "\n  seq %d after %d on %s", got[i], got[i-1], r.where(c, offset+i))
	}
	fl.add("events", "%s", b.String())
}

// compareSeqs tells how got differs from want: the first few seqs missing,
// twice or out of order, each with where it should have come.
func compareSeqs(got, want []uint64) (missing, extra []uint64, disorder []int) {
	for i := 1; i < len(got); i++ {
		if got[i] <= got[i-1] {
			disorder = append(disorder, i)
		}
	}
	wantSet := make(map[uint64]bool, len(want))
	for _, s := range want {
		wantSet[s] = true
	}
	gotCount := make(map[uint64]int, len(got))
	for _, s := range got {
		gotCount[s]++
		if !wantSet[s] || gotCount[s] > 1 {
			extra = append(extra, s)
		}
	}
	for _, s := range want {
		if gotCount[s] == 0 {
			missing = append(missing, s)
		}
	}
	return missing, extra, disorder
}

// where says on which connection (node, open time) a client had, or should
// have had, the event at index i of its events, for failure messages.
func (r *chaosRig) where(c jsClient, i int) string {
	conn := -1
	for j, cn := range c.Conns {
		if cn.Events <= i {
			conn = j
		}
	}
	if conn < 0 {
		return "before its first connection"
	}
	at := time.UnixMilli(c.Conns[conn].At)
	node := -1
	for _, rt := range r.lb.Routes(strconv.Itoa(c.K)) {
		if !rt.At.After(at) {
			node = rt.Target
		}
	}
	return fmt.Sprintf("connection %d (hello at %.3fs, node %d)", conn+1, at.Sub(r.start).Seconds(), node)
}

func around(got []uint64, i int) string {
	prev, next := "start", "end"
	if i > 0 {
		prev = strconv.FormatUint(got[i-1], 10)
	}
	if i < len(got) {
		next = strconv.FormatUint(got[i], 10)
	}
	return prev + " and " + next
}

// checkPublishes checks both kinds of publishes against the snapshots and
// every Nats-Msg-Id for duplicates.
func (r *chaosRig) checkPublishes(fl *failLog, clients []jsClient, snaps ...*snapshot) {
	r.t.Helper()
	at := ids(snaps...)
	r.checkGoPublishes(fl, at)
	checkClientPublishes(fl, clients, at)
	checkStreamIDs(fl, snaps...)
}

// checkGoPublishes: an acked Publish is in the stream once, at its seq;
// a definite error is not in it; an uncertain one at most once.
func (r *chaosRig) checkGoPublishes(fl *failLog, at map[string][]streamMsg) {
	r.mu.Lock()
	pubs := slices.Clone(r.goPub)
	r.mu.Unlock()
	for _, p := range pubs {
		where := at[p.id]
		switch {
		case p.err == nil:
			if len(where) != 1 || where[0].seq != p.seq || where[0].topic != p.topic {
				fl.add("go-publish", "Go publish %s on node %d acked seq %d; the stream has it at %v", p.id, p.node, p.seq, where)
			}
		case errors.Is(p.err, bus.ErrUncertain):
			if len(where) > 1 {
				fl.add("go-publish", "Go publish %s (uncertain: %v) stored %d times: %v", p.id, p.err, len(where), where)
			}
		default:
			if len(where) != 0 {
				fl.add("go-publish", "Go publish %s on node %d failed definitely (%v) but the stream has it at %v", p.id, p.node, p.err, where)
			}
		}
	}
}

// checkClientPublishes: every client publish resolved to one seq, and is in
// the stream exactly once, there; none was rejected or left pending.
func checkClientPublishes(fl *failLog, clients []jsClient, at map[string][]streamMsg) {
	for _, c := range clients {
		for _, p := range c.Pubs {
			id := fmt.Sprintf("c%d-%d", c.K, p[0])
			where := at[id]
			if len(where) != 1 || where[0].seq != p[1] {
				fl.add("client-publish", "client %d: publish %s resolved to seq %d; the stream has it %d times: %v", c.K, id, p[1], len(where), where)
			}
		}
		for _, f := range c.PubFails {
			id := fmt.Sprintf("c%d-%d", c.K, f.N)
			fl.add("client-publish", "client %d: publish %s rejected with code %q (in the stream %d times: %v)", c.K, id, f.Code, len(at[id]), at[id])
		}
		if c.PubPending > 0 {
			fl.add("client-publish", "client %d: %d publishes never settled", c.K, c.PubPending)
		}
	}
}

// checkStreamIDs fails on a Nats-Msg-Id stored twice (the dedup window
// let a retry through).
func checkStreamIDs(fl *failLog, snaps ...*snapshot) {
	for _, s := range snaps {
		seen := make(map[string]uint64)
		for _, m := range s.msgs {
			if prev, dup := seen[m.msgID]; dup {
				fl.add("msgid", "epoch %.8s: Nats-Msg-Id %q at seq %d and %d", s.epoch, m.msgID, prev, m.seq)
			}
			seen[m.msgID] = m.seq
		}
	}
}

// checkHistories: every live node's History is the stream, event for
// event (so every acked Go Publish is in every node's History).
func (r *chaosRig) checkHistories(s *snapshot) {
	r.t.Helper()
	for _, n := range r.live() {
		if len(s.msgs) > 0 {
			waitSeqOf(r.t, n.bus, s.msgs[len(s.msgs)-1].seq) // an uncertain publish may have landed after settle
		}
		h, err := n.bus.History(">", 0, 0)
		if err != nil {
			r.t.Fatalf("node %d: History: %v", n.i, err)
		}
		if len(h) != len(s.msgs) {
			r.t.Errorf("node %d: History has %d events, the stream %d", n.i, len(h), len(s.msgs))
		}
		for i := range min(len(h), len(s.msgs)) {
			if m := s.msgs[i]; h[i].Seq != m.seq || h[i].Topic != m.topic || h[i].Data.ID != m.id {
				r.t.Errorf("node %d: History[%d] is seq %d %s %s, the stream's seq %d %s %s", n.i, i, h[i].Seq, h[i].Topic, h[i].Data.ID, m.seq, m.topic, m.id)
				break
			}
		}
	}
}

// failLog reports the first few failures of each kind in full and counts
// the rest, so that a run where every client fails stays readable.
type failLog struct {
	t      testing.TB
	counts map[string]int
}

const failsShown = 5

func newFailLog(t testing.TB) *failLog { return &failLog{t: t, counts: map[string]int{}} }

func (f *failLog) add(kind, format string, args ...any) {
	f.t.Helper()
	f.counts[kind]++
	if f.counts[kind] <= failsShown {
		f.t.Errorf(format, args...)
	}
}

func (f *failLog) summary() {
	f.t.Helper()
	if len(f.counts) > 0 {
		f.t.Errorf("failures by kind (the first %d of each shown): %v", failsShown, fmt.Sprint(f.counts))
	}
}

// recordTB is a testing.TB whose Errorf records instead of failing, for
// the test of the checks themselves.
type recordTB struct {
	testing.TB
	errs []string
}

func (r *recordTB) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// The checks catch what the chaos runs look for: an event lost, delivered
// twice or out of order, a gap, a publish stored twice or at another seq,
// a rejected one, a definite Go failure that was stored and an acked one
// that was not. A correct client passes.
func TestChaosChecksCatchFaults(t *testing.T) {
	r := &chaosRig{t: t, lb: natstest.NewBalancer(t, clientKey), start: time.Now()}
	s := newSnapshot("e1")
	for seq := uint64(1); seq <= 10; seq++ {
		s.add(streamMsg{seq: seq, topic: []string{"a", "b"}[seq%2], id: fmt.Sprintf("g0-%d", seq), msgID: fmt.Sprintf("g.%d", seq)})
	}
	s.msgs[7].id, s.msgs[8].id = "c1-1", "c1-1" // one client publish stored twice
	spec := jsClientSpec{Pattern: ">", After: uint64(2)}
	client := func(seqs ...uint64) jsClient {
		seg := jsSegment{Epoch: "e1", First: seqs[0], Last: seqs[len(seqs)-1], N: len(seqs)}
		for i := 1; i < len(seqs); i++ {
			seg.Deltas = append(seg.Deltas, int64(seqs[i])-int64(seqs[i-1]))
		}
		return jsClient{K: 1, Pattern: ">", Segments: []jsSegment{seg}, Ready: &struct {
			Recovered bool   `json:"recovered"`
			Error     string `json:"error"`
			At        int64  `json:"at"`
		}{Recovered: true}}
	}
	gap := client(3, 4, 5, 6, 7, 8, 9, 10)
	gap.Gaps = []jsGap{{Reason: "evicted"}}
	for _, tc := range []struct {
		name  string
		c     jsClient
		kinds []string
	}{
		{"every event once", client(3, 4, 5, 6, 7, 8, 9, 10), nil},
		{"one lost", client(3, 4, 6, 7, 8, 9, 10), []string{"events"}},
		{"one twice", client(3, 4, 5, 5, 6, 7, 8, 9, 10), []string{"events"}},
		{"two swapped", client(3, 5, 4, 6, 7, 8, 9, 10), []string{"events"}},
		{"the tail lost", client(3, 4, 5, 6, 7), []string{"events"}},
		{"a gap", gap, []string{"gap"}},
	} {
		rec := &recordTB{TB: t}
		fl := newFailLog(rec)
		r.checkOneEpoch(fl, spec, tc.c, s)
		if got := slices.Sorted(maps.Keys(fl.counts)); !slices.Equal(got, tc.kinds) {
			t.Errorf("%s: failures %v, want %v: %q", tc.name, got, tc.kinds, rec.errs)
		}
	}

	at := ids(s)
	rec := &recordTB{TB: t}
	fl := newFailLog(rec)
	pubs := []jsClient{{K: 1, Pubs: [][2]uint64{{1, 8}}}, {K: 2, Pubs: [][2]uint64{{1, 3}}}, {K: 3, PubFails: []jsPubFail{{1, "internal"}}}}
	checkClientPublishes(fl, pubs, at)
	if fl.counts["client-publish"] != 3 {
		t.Errorf("client publishes: %d failures, want 3 (stored twice, absent, rejected): %q", fl.counts["client-publish"], rec.errs)
	}
	r.goPub = []goPublish{
		{id: "g0-1", topic: "b", seq: 1},                                // acked, there
		{id: "g0-2", topic: "a", seq: 3},                                // acked at another seq
		{id: "g0-3", topic: "b", err: ErrNotStored},                     // definite, but stored
		{id: "g0-x", err: fmt.Errorf("%w: lost ack", bus.ErrUncertain)}, // uncertain, absent: fine
	}
	r.checkGoPublishes(fl, at)
	if fl.counts["go-publish"] != 2 {
		t.Errorf("Go publishes: %d failures, want 2: %q", fl.counts["go-publish"], rec.errs)
	}
}
