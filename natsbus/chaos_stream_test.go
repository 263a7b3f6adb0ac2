package natsbus

// The stream of a chaos run as it is: read at the end of a phase with a
// consumer of the test's own, not through natsbus, it is what every client
// and publisher is checked against.

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// streamMsg is one message of the stream.
type streamMsg struct {
	seq   uint64
	topic string
	id    string // the payload's
	msgID string // Nats-Msg-Id
}

// snapshot is the whole stream of one epoch, read at the end of a phase.
type snapshot struct {
	epoch   string
	msgs    []streamMsg
	bySeq   map[uint64]int      // seq -> index in msgs
	byTopic map[string][]uint64 // topic -> seqs
}

// snapshot reads every message of the stream, checks that it holds every
// seq from 1 (the run's history evicts nothing), and indexes it.
func (r *chaosRig) snapshot(epoch string) *snapshot {
	r.t.Helper()
	info := streamState(r.t, r.nc, chaosStream)
	if info.State.FirstSeq > 1 || info.State.Msgs != info.State.LastSeq {
		r.t.Fatalf("the stream holds %d messages, seqs %d to %d: something was evicted or deleted", info.State.Msgs, info.State.FirstSeq, info.State.LastSeq)
	}
	snap := newSnapshot(epoch)
	deadline := time.Now().Add(time.Minute)
	for uint64(len(snap.msgs)) < info.State.LastSeq {
		err := r.readFrom(snap, uint64(len(snap.msgs))+1, info.State.LastSeq)
		if err != nil {
			r.note("reading the stream: %d of %d messages, then %v; reading on", len(snap.msgs), info.State.LastSeq, err)
		}
		if err != nil && time.Now().After(deadline) {
			r.t.Fatalf("read the stream: %d of %d messages, then %v\ntimeline:\n%s", len(snap.msgs), info.State.LastSeq, err, r.timeline())
		}
	}
	return snap
}

func newSnapshot(epoch string) *snapshot {
	return &snapshot{epoch: epoch, bySeq: make(map[uint64]int), byTopic: make(map[string][]uint64)}
}

// add appends the next message of the stream.
func (s *snapshot) add(m streamMsg) {
	s.bySeq[m.seq] = len(s.msgs)
	s.msgs = append(s.msgs, m)
	s.byTopic[m.topic] = append(s.byTopic[m.topic], m.seq)
}

// readFrom reads the stream from seq from up to last into snap with an
// ordered consumer of its own, until an error (a consumer's server that
// went away: the caller reads on from where it stopped).
func (r *chaosRig) readFrom(snap *snapshot, from, last uint64) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := r.js.Stream(ctx, chaosStream)
	if err != nil {
		return err
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: from})
	if err != nil {
		return err
	}
	prefix := chaosStream + "."
	for next := from; next <= last; {
		batch, err := c.Fetch(int(min(1000, last-next+1)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return err
		}
		for m := range batch.Messages() {
			md, err := m.Metadata()
			if err != nil {
				return err
			}
			if md.Sequence.Stream != next {
				return fmt.Errorf("seq %d after %d", md.Sequence.Stream, next-1)
			}
			var ev chaosEvent
			if err := json.Unmarshal(m.Data(), &ev); err != nil {
				r.t.Fatalf("seq %d: %v", md.Sequence.Stream, err)
			}
			snap.add(streamMsg{seq: next, topic: strings.TrimPrefix(m.Subject(), prefix), id: ev.ID, msgID: m.Headers().Get(jetstream.MsgIDHeader)})
			next++
		}
		if err := batch.Error(); err != nil {
			return err
		}
	}
	return nil
}

// matching are the seqs of pattern (">" or a topic) after `after`.
func (s *snapshot) matching(pattern string, after uint64) []uint64 {
	var all []uint64
	if pattern == ">" {
		all = make([]uint64, len(s.msgs))
		for i, m := range s.msgs {
			all[i] = m.seq
		}
	} else {
		all = s.byTopic[pattern]
	}
	i := sort.Search(len(all), func(i int) bool { return all[i] > after })
	return all[i:]
}

// targets are, per pattern, the last seq a client of it must reach.
func (s *snapshot) targets(patterns []string) map[string]uint64 {
	out := make(map[string]uint64)
	for _, p := range patterns {
		if m := s.matching(p, 0); len(m) > 0 {
			out[p] = m[len(m)-1]
		}
	}
	return out
}

// ids counts the payload ids over snapshots: id -> where it is.
func ids(snaps ...*snapshot) map[string][]streamMsg {
	out := make(map[string][]streamMsg)
	for _, s := range snaps {
		for _, m := range s.msgs {
			out[m.id] = append(out[m.id], m)
		}
	}
	return out
}
