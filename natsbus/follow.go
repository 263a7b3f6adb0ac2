package natsbus

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/whalesong/bus"
)

// behindLimit is how long a replicated stream may report a last seq below
// what this node read (a new leader still applying) before natsbus takes
// it for a rewind.
const behindLimit = 15 * time.Second

// errRestart marks a reason to start a new session at once: a consumer
// sequence gap, a lost heartbeat, a reconnect, an epoch that moved.
var errRestart = errors.New("restart")

func restartf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errRestart}, args...)...)
}

// Follow hands apply the stream's records in order until ctx ends (see
// bus.Log). Each session announces the epoch and head, reads what it
// missed with a consumer of its own and then goes live on the copies the
// stream republishes as it stores them, reading any gap in those from the
// stream again. It announces a new epoch when the stream was recreated or
// rewound. An event the codec cannot decode is handed over as lost
// (logged, counted).
// It returns early only when the connection is closed for good.
func (l *natsLog[T]) Follow(ctx context.Context, from bus.Position, apply func(bus.Record[T])) error {
	f := &follower[T]{l: l, ctx: ctx, apply: apply, epoch: from.Epoch, cursor: from.Seq, cursorID: l.resumeID(from)}
	defer func() { l.saveResume(resumePoint{epoch: f.epoch, seq: f.cursor, id: f.cursorID}) }()
	l.followers.Add(1)
	defer l.followers.Add(-1)
	rctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { l.recordLoop(rctx) })
	defer wg.Wait()
	defer stop()
	return f.run()
}

// follower is the state of one Follow call, owned by its goroutine.
type follower[T any] struct {
	l     *natsLog[T]
	ctx   context.Context
	apply func(bus.Record[T])

	epoch      string    // of the records handed to apply
	cursor     uint64    // the last stream seq read (applied, or skipped as undecodable)
	cursorID   string    // its Nats-Msg-Id
	created    time.Time // when the server made the incarnation followed
	reconnects uint64    // the connection's count when the session began
	behind     time.Time // since when a replicated stream reports a last seq below the cursor
}

func (f *follower[T]) run() error {
	wait := retryMin
	for {
		progress, err := f.session()
		if f.ctx.Err() != nil {
			return f.ctx.Err()
		}
		if f.l.nc.IsClosed() {
			return fmt.Errorf("%w: follow stream %s: the connection is closed", ErrStream, quote(f.l.cfg.stream))
		}
		f.l.cfg.logger.Info("natsbus: follower session ended", "stream", f.l.cfg.stream, "seq", f.cursor, "err", err)
		if progress || errors.Is(err, errRestart) {
			wait = retryMin
			continue
		}
		if !sleep(f.ctx, wait) {
			return f.ctx.Err()
		}
		wait = min(2*wait, retryMax)
	}
}

// session subscribes to the stream's live copies, reads its info (the
// epoch, and upTo: every later event is in the live copies), makes a
// consumer for what the cursor lacks up to there, announces the epoch and
// head and follows until something goes wrong. progress: something came.
func (f *follower[T]) session() (progress bool, err error) {
	f.reconnects = f.l.nc.Stats().Reconnects
	st := &stage{}
	if st.live, err = f.subscribeLive(); err != nil {
		return false, err
	}
	defer st.live.close()
	before, err := f.readStream()
	if err != nil {
		return false, err
	}
	st.upTo = before.State.LastSeq
	after, err := f.catchUp(st, st.upTo)
	if err != nil {
		return false, err
	}
	defer func() { st.cons.stop() }()
	f.apply(bus.Record[T]{Epoch: f.epoch, Head: after.State.LastSeq})
	return f.loop(st)
}

// stage is what one session reads from: its live subscription, and a
// consumer while it catches up.
type stage struct {
	live     *live
	cons     *consumer // nil while live
	upTo     uint64    // the consumer reads up to here; the live copies have what comes after
	lastLive uint64    // the seq of the last live copy
	received uint64    // messages of any kind, for progress

	// A consumer that stopped short of upTo while the stream leader held
	// more is replaced (stoppedShort); replacements that make no progress
	// wait, doubling from retryMin to retryMax.
	retried bool          // a consumer was replaced in this session
	shortAt uint64        // the cursor at the last replacement
	wait    time.Duration // the last wait
}

// loop reads the consumer while there is one, else the live copies, with a
// watchdog at every tick: reconnects, and heartbeats while catching up or
// the stream's info while live.
func (f *follower[T]) loop(st *stage) (bool, error) {
	tick := time.NewTicker(heartbeat / 2)
	defer tick.Stop()
	for {
		if err := f.step(st, tick.C); err != nil {
			return st.received > 0, err
		}
	}
}

// step takes one message or tick, or ends a catch-up whose consumer had
// nothing to deliver.
func (f *follower[T]) step(st *stage, tick <-chan time.Time) error {
	switch {
	case st.cons != nil && st.cons.pending == 0:
		return f.goLive(st) // the consumer had nothing to deliver when it was made
	case st.cons != nil:
		return f.catchUpStep(st, tick)
	default:
		return f.liveStep(st, tick)
	}
}

// reconnected tells, at a tick, that the connection reconnected since the
// session began: what was in flight is lost and the server may be another
// one (or a restarted one, possibly rewound), so the session starts over.
func (f *follower[T]) reconnected() error {
	if f.l.nc.Stats().Reconnects != f.reconnects {
		return restartf("reconnected")
	}
	return nil
}

func (f *follower[T]) catchUpStep(st *stage, tick <-chan time.Time) error {
	select {
	case <-f.ctx.Done():
		return f.ctx.Err()
	case m := <-st.cons.ch:
		st.received++
		return f.onConsumer(st, m)
	case now := <-tick:
		if err := f.reconnected(); err != nil {
			return err
		}
		return st.cons.watch(now)
	}
}

func (f *follower[T]) liveStep(st *stage, tick <-chan time.Time) error {
	select {
	case <-f.ctx.Done():
		return f.ctx.Err()
	case m := <-st.live.ch:
		st.received++
		st.live.seen++
		return f.onLive(st, m)
	case now := <-tick:
		if err := f.reconnected(); err != nil {
			return err
		}
		return f.checkLive(st, now)
	}
}

// readStream reads the stream's info and judges it against the cursor: a
// new epoch starts over from the oldest event; a rewound stream gets a new
// generation (hence a new epoch for every node) and a restart.
func (f *follower[T]) readStream() (*jetstream.StreamInfo, error) {
	s, err := getStream(f.ctx, f.l.js, f.l.cfg.stream)
	if err != nil {
		return nil, err
	}
	info := s.CachedInfo()
	f.created = info.Created
	ep := epochOf(info)
	f.l.epoch.Store(&ep)
	if ep != f.epoch {
		if f.epoch != "" {
			f.l.cfg.logger.Warn("natsbus: new epoch", "stream", f.l.cfg.stream, "old", f.epoch, "new", ep)
		}
		f.epoch, f.cursor, f.cursorID, f.behind = ep, 0, "", time.Time{}
		return info, nil
	}
	rewound, err := f.rewound(s)
	if err != nil {
		return nil, err
	}
	if rewound {
		f.l.cfg.logger.Warn("natsbus: the stream was rewound; raising its generation", "stream", f.l.cfg.stream,
			"seq", f.cursor, "last", info.State.LastSeq)
		if err := bumpGeneration(f.ctx, f.l.js, info); err != nil {
			return nil, err
		}
		return nil, restartf("the stream was rewound below %d", f.cursor)
	}
	return info, nil
}

// rewound tells whether the stream lost events this node read: its last seq
// is below the cursor (at once for R1; for a replicated stream only if that
// lasts behindLimit, since a new leader may still be applying), or the
// message at the cursor carries another Nats-Msg-Id.
func (f *follower[T]) rewound(s jetstream.Stream) (bool, error) {
	info := s.CachedInfo()
	if f.cursor == 0 {
		return false, nil
	}
	if info.State.LastSeq < f.cursor {
		if info.Config.Replicas <= 1 {
			return true, nil
		}
		if f.behind.IsZero() {
			f.behind = time.Now()
		}
		if time.Since(f.behind) > behindLimit {
			return true, nil
		}
		return false, fmt.Errorf("the stream's last seq %d is below %d, read before", info.State.LastSeq, f.cursor)
	}
	f.behind = time.Time{}
	if f.cursorID == "" || f.cursor < info.State.FirstSeq {
		return false, nil
	}
	rctx, cancel := context.WithTimeout(f.ctx, requestTimeout)
	defer cancel()
	m, err := s.GetMsg(rctx, f.cursor)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return m.Header.Get(jetstream.MsgIDHeader) != f.cursorID, nil
}

// take moves the cursor to a message read from either source and applies
// it, or, when it does not decode, hands it over as lost.
func (f *follower[T]) take(seq uint64, m *nats.Msg, topic string, at time.Time) {
	f.cursor, f.cursorID = seq, m.Header.Get(jetstream.MsgIDHeader)
	f.l.ids.seen(f.cursorID, f.epoch, seq, topic)
	var v T
	err := bus.CheckTopic(topic)
	if err == nil {
		err = f.l.cfg.codec.Unmarshal(m.Data, &v)
	}
	if err != nil {
		n := f.l.undecodable.Add(1)
		f.l.cfg.logger.Warn("natsbus: skipped an event that does not decode", "stream", f.l.cfg.stream,
			"seq", seq, "subject", m.Subject, "err", err, "skipped", strconv.FormatUint(n, 10))
		f.apply(bus.Record[T]{Epoch: f.epoch, Event: bus.Event[T]{Seq: seq, Topic: topic, Time: at}, Lost: true})
		return
	}
	f.apply(bus.Record[T]{Epoch: f.epoch, Event: bus.Event[T]{Seq: seq, Topic: topic, Time: at, Data: v}})
}

// topicOf strips prefix from a subject; a subject outside it gives a topic
// that CheckTopic refuses.
func topicOf(subject, prefix string) string {
	t, ok := strings.CutPrefix(subject, prefix)
	if !ok {
		return ""
	}
	return t
}
