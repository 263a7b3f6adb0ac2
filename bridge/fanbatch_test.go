package bridge

import (
	"testing"
)

// TestFanoutBatchesWaitingEvents holds a session's lock while events pile up
// in its fanout's bus subscription: once the fanout gets the lock, what it
// held and what waited reach the client in two frames at most (one batch
// each), in order, none lost. Handed over one at a time, most of them
// would find the previous frame still being written and leave in several.
func TestFanoutBatchesWaitingEvents(t *testing.T) {
	// Every event but the one the fanout holds waits in its bus
	// subscription, which holds fanoutBuffer: more, and the publisher
	// would wait for room behind the lock this test holds. And they must
	// fit one batch.
	const events = min(fanoutBuffer, maxFanBatch)
	s := newServer(t, nil, WithAuthorize(allowAll))
	cl := s.dial(t)
	cl.sub("s", "chat.>", nil)
	sess := onlySession(t, s.br)
	s.br.fanMu.Lock()
	fan := s.br.fans["chat.>"]
	s.br.fanMu.Unlock()

	sess.mu.Lock()
	locked := true
	defer func() {
		if locked {
			sess.mu.Unlock()
		}
	}()
	s.publish("chat.room", msg{N: 0})
	waitFor(t, "the fanout to take the first event", func() bool { return fan.sub.Pending() == 0 })
	for i := 1; i < events; i++ {
		s.publish("chat.room", msg{N: i})
	}
	sess.mu.Unlock() // the fanout, blocked with what it took, goes on
	locked = false

	var got []entry
	frames := 0
	for len(got) < events {
		got = append(got, cl.expect("events").Events...)
		frames++
	}
	for i, e := range got {
		if e.Seq != uint64(i+1) {
			t.Fatalf("event %d has seq %d, want %d", i, e.Seq, i+1)
		}
	}
	if frames > 2 {
		t.Errorf("%d events came in %d frames, want 2 at most", events, frames)
	}
}

// onlySession returns the bridge's one registered session.
func onlySession(t *testing.T, br *Bridge[msg]) *session[msg] {
	t.Helper()
	br.mu.Lock()
	defer br.mu.Unlock()
	if len(br.sessions) != 1 {
		t.Fatalf("%d sessions, want 1", len(br.sessions))
	}
	for s := range br.sessions {
		return s
	}
	return nil
}
