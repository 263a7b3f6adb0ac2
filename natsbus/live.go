package natsbus

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
)

// liveBuffer is how many live copies wait while the follower catches up;
// past it they are dropped, and read from the stream again. (A variable
// for the test that overflows it.)
var liveBuffer = 1 << 16

const (
	// liveCheck is how often a live follower reads the stream's info: a
	// deleted or recreated stream, or a copy lost at the end of a burst,
	// shows up within it.
	liveCheck = time.Second
)

// live is the subscription to the copies the stream republishes as it
// stores events (RePublish, on the stream leader, in stream order).
type live struct {
	sub     *nats.Subscription
	ch      chan *nats.Msg
	seen    uint64    // copies received
	checked time.Time // when the stream's info was last read
	atCheck uint64    // seen at that time
}

// subscribeLive subscribes to the live copies and waits until the server
// has the subscription, so that every event stored from then on is in it.
func (f *follower[T]) subscribeLive() (*live, error) {
	lv := &live{ch: make(chan *nats.Msg, liveBuffer), checked: time.Now()}
	sub, err := f.l.nc.ChanSubscribe(f.l.cfg.livePrefix()+">", lv.ch)
	if err != nil {
		return nil, err
	}
	lv.sub = sub
	ctx, cancel := context.WithTimeout(f.ctx, requestTimeout)
	defer cancel()
	if err := f.l.nc.FlushWithContext(ctx); err != nil {
		lv.close()
		return nil, err
	}
	return lv, nil
}

func (lv *live) close() { _ = lv.sub.Unsubscribe() }

// onLive takes one live copy. Copies come in stream order. A copy at or
// below the cursor was read by the consumer already; the next one is
// applied; one further on means copies were lost (a full buffer, a leader
// change), and the follower reads the gap from the stream. A copy that goes
// back is another incarnation's: restart.
//
// Copies carry no incarnation, so the first copy of a session anchors the
// rest only once the stream is known to be still the one followed (read
// after the copy came) and the copy is younger than the stream (not an old
// incarnation's copy still in flight).
func (f *follower[T]) onLive(st *stage, m *nats.Msg) error {
	seq, ok := parseUint(m.Header.Get("Nats-Sequence"))
	if !ok || seq <= st.lastLive {
		return restartf("live copy %s after %d", quote(m.Header.Get("Nats-Sequence")), st.lastLive)
	}
	at, err := time.Parse(time.RFC3339Nano, m.Header.Get("Nats-Time-Stamp"))
	if err != nil {
		return restartf("live copy %d without a time stamp", seq)
	}
	if st.lastLive == 0 {
		if _, err := f.verifyEpoch(); err != nil {
			return err
		}
		if at.Before(f.created) {
			return restartf("live copy %d is older than the stream", seq)
		}
	}
	st.lastLive = seq
	switch {
	case seq <= f.cursor:
		return nil
	case seq > f.cursor+1:
		f.logCatchUp("live copies %d to %d are missing", f.cursor+1, seq-1)
		_, err := f.catchUp(st, seq)
		return err
	}
	f.take(seq, m, topicOf(m.Subject, f.l.cfg.livePrefix()), at.UTC())
	return nil
}

// checkLive reads the stream's info every liveCheck: another epoch means a
// restart; events stored beyond the cursor while no copy came mean copies
// were lost at the end of a burst.
func (f *follower[T]) checkLive(st *stage, now time.Time) error {
	lv := st.live
	if now.Sub(lv.checked) < liveCheck {
		return nil
	}
	quiet := lv.seen == lv.atCheck
	lv.checked, lv.atCheck = now, lv.seen
	info, err := streamInfo(f.ctx, f.l.js, f.l.cfg.stream)
	if err != nil {
		return err
	}
	if epochOf(info) != f.epoch {
		return restartf("the stream is another incarnation")
	}
	if quiet && info.State.LastSeq > f.cursor {
		f.logCatchUp("the stream holds %d, no live copy after %d", info.State.LastSeq, f.cursor)
		_, err := f.catchUp(st, info.State.LastSeq)
		return err
	}
	return nil
}

func (f *follower[T]) logCatchUp(format string, args ...any) {
	f.l.cfg.logger.Info("natsbus: catching up", "stream", f.l.cfg.stream, "seq", f.cursor, "why", fmt.Sprintf(format, args...))
}
