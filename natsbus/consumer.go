package natsbus

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/whalesong/bus"
)

// Consumer tuning.
const (
	heartbeat   = time.Second      // idle heartbeat asked of every pull; none for 2 = the consumer is gone
	pullBatch   = 512              // messages per pull request
	readAhead   = 8 * pullBatch    // messages asked for and not yet handled, at most
	pullExpires = 30 * time.Second // a pull request's life
	inactive    = 30 * time.Second // the server drops a consumer nobody pulls from for this long
)

var pullBody = []byte(fmt.Sprintf(`{"batch":%d,"expires":%d,"idle_heartbeat":%d}`,
	pullBatch, pullExpires.Nanoseconds(), heartbeat.Nanoseconds()))

// consumer is an ephemeral pull consumer that reads the stream after the
// cursor, for as long as the follower catches up.
type consumer struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	stream  string
	name    string
	pending uint64 // what the server had left to deliver when it made the consumer
	ch      chan *nats.Msg
	sub     *nats.Subscription
	p       puller
	seen    uint64    // messages of any kind at the last watch
	quiet   time.Time // since when nothing came
	stopped bool
}

// catchUp starts reading the stream after the cursor up to upTo with a
// consumer; the live copies wait meanwhile. upTo is capped at the last seq
// the stream holds (read after the consumer was made): a copy's seq is only
// believed as far as this incarnation goes. It returns that info.
func (f *follower[T]) catchUp(st *stage, upTo uint64) (*jetstream.StreamInfo, error) {
	st.cons.stop() // a catch-up that finds another gap starts over
	c, info, err := f.startConsumer()
	if err != nil {
		st.cons = nil
		return nil, err
	}
	st.cons, st.upTo = c, min(upTo, info.State.LastSeq)
	return info, nil
}

// startConsumer makes a consumer that delivers every message after the
// cursor, unacknowledged, from memory, on one replica; then checks that
// the stream is still the epoch followed (a consumer made on a recreated
// stream would go on at the old cursor), and asks for the first batches.
func (f *follower[T]) startConsumer() (*consumer, *jetstream.StreamInfo, error) {
	cfg := jetstream.ConsumerConfig{
		Name:              "whalesong_" + nuid.Next(),
		Description:       "natsbus follower",
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		AckPolicy:         jetstream.AckNonePolicy,
		ReplayPolicy:      jetstream.ReplayInstantPolicy,
		InactiveThreshold: inactive,
		Replicas:          1,
		MemoryStorage:     true,
	}
	if f.cursor > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, f.cursor+1
	}
	rctx, cancel := context.WithTimeout(f.ctx, requestTimeout)
	defer cancel()
	jc, err := f.l.js.CreateConsumer(rctx, f.l.cfg.stream, cfg)
	if err != nil {
		return nil, nil, err
	}
	ci := jc.CachedInfo()
	c := &consumer{nc: f.l.nc, js: f.l.js, stream: f.l.cfg.stream, name: ci.Name, pending: ci.NumPending,
		ch: make(chan *nats.Msg, readAhead+64), quiet: time.Now()}
	c.p.subject = "$JS.API.CONSUMER.MSG.NEXT." + c.stream + "." + c.name
	c.p.inbox = f.l.nc.NewInbox()
	info, err := f.verifyEpoch()
	if err == nil {
		c.sub, err = f.l.nc.ChanSubscribe(c.p.inbox, c.ch)
	}
	if err == nil {
		err = c.p.more(c.nc)
	}
	if err != nil {
		c.stop()
		return nil, nil, err
	}
	return c, info, nil
}

// verifyEpoch checks that the stream is still the incarnation followed.
func (f *follower[T]) verifyEpoch() (*jetstream.StreamInfo, error) {
	info, err := streamInfo(f.ctx, f.l.js, f.l.cfg.stream)
	if err != nil {
		return nil, err
	}
	if epochOf(info) != f.epoch {
		return nil, restartf("the stream is another incarnation")
	}
	return info, nil
}

// stop ends the consumer's subscription and deletes it, briefly and only
// while connected (the server drops it after inactive anyway). Idempotent;
// a nil consumer is stopped.
func (c *consumer) stop() {
	if c == nil || c.stopped {
		return
	}
	c.stopped = true
	if c.sub != nil {
		_ = c.sub.Unsubscribe()
	}
	if !c.nc.IsConnected() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_ = c.js.DeleteConsumer(ctx, c.stream, c.name)
}

// watch is the heartbeat watchdog: nothing for two heartbeats means the
// consumer or its server is gone.
func (c *consumer) watch(now time.Time) error {
	if c.p.received != c.seen {
		c.seen, c.quiet = c.p.received, now
		return nil
	}
	if now.Sub(c.quiet) > 2*heartbeat {
		return restartf("no heartbeat from the consumer for %v", now.Sub(c.quiet).Round(time.Millisecond))
	}
	return nil
}

// puller tracks the pull requests of one consumer.
type puller struct {
	subject     string // the consumer's next-messages API subject
	inbox       string // where its messages come
	outstanding int    // messages asked for and not yet handled or expired
	consumerSeq uint64 // the consumer sequence of the last message delivered
	received    uint64 // messages of any kind, for the watchdog
}

// more asks for batches while another fits in readAhead.
func (p *puller) more(nc *nats.Conn) error {
	for p.outstanding+pullBatch <= readAhead {
		if err := nc.PublishRequest(p.subject, p.inbox, pullBody); err != nil {
			return err
		}
		p.outstanding += pullBatch
	}
	return nil
}

// onConsumer takes one message from the consumer's inbox: a status, or an
// event, which must follow the previous one without a gap in the
// consumer's own sequence. Events up to upTo are applied; the first one
// after it, or nothing left to deliver, ends the catch-up.
func (f *follower[T]) onConsumer(st *stage, m *nats.Msg) error {
	c := st.cons
	c.p.received++
	if len(m.Data) == 0 && m.Header.Get("Status") != "" {
		return f.onStatus(st, m)
	}
	d, ok := parseDelivery(m.Reply)
	if !ok {
		return restartf("a message without delivery metadata (reply %s)", quote(m.Reply))
	}
	if d.consumer != c.p.consumerSeq+1 {
		return restartf("consumer sequence %d after %d", d.consumer, c.p.consumerSeq)
	}
	c.p.consumerSeq = d.consumer
	c.p.outstanding--
	if d.stream <= f.cursor {
		return restartf("stream sequence %d after %d", d.stream, f.cursor)
	}
	if d.stream > st.upTo {
		f.enterLive(st) // the consumer's replica has everything up to upTo
		return nil
	}
	f.take(d.stream, m, topicOf(m.Subject, f.l.prefix), time.Unix(0, d.time).UTC())
	if d.pending == 0 {
		return f.goLive(st)
	}
	return c.p.more(c.nc)
}

// onStatus handles a status on the consumer's inbox: an idle heartbeat
// (the consumer has nothing left), a pull request that ended, or the end of
// the consumer.
func (f *follower[T]) onStatus(st *stage, m *nats.Msg) error {
	c := st.cons
	code := m.Header.Get("Status")
	switch {
	case code == "100":
		last, ok := parseUint(m.Header.Get("Nats-Last-Consumer"))
		if ok && last > c.p.consumerSeq {
			return restartf("the consumer delivered %d, received %d", last, c.p.consumerSeq)
		}
		return f.goLive(st) // idle: the consumer has nothing left to deliver
	case code == "408" || code == "404" ||
		code == "409" && m.Header.Get("Description") == "Message Size Exceeds MaxBytes":
		n, ok := parseUint(m.Header.Get("Nats-Pending-Messages"))
		if !ok || n > uint64(max(c.p.outstanding, 0)) {
			n = uint64(max(c.p.outstanding, 0))
		}
		c.p.outstanding -= int(n)
		return c.p.more(c.nc)
	default:
		return restartf("consumer status %s %s", quote(code), quote(m.Header.Get("Description")))
	}
}

// goLive ends the catch-up once the consumer says it has nothing left to
// deliver. When it stopped short of upTo its replica may be lagging, so the
// stream leader says first whether the seqs it did not deliver are deleted
// (see stoppedShort); otherwise it read everything up to upTo.
func (f *follower[T]) goLive(st *stage) error {
	if st.upTo > f.cursor {
		if done, err := f.stoppedShort(st); !done {
			return err
		}
	}
	f.enterLive(st)
	return nil
}

// enterLive ends the catch-up: the seqs up to upTo that the consumer did
// not deliver are deleted, and the live copies hold everything after (they
// were subscribed before upTo was read). A Caught mark tells the bus.
func (f *follower[T]) enterLive(st *stage) {
	if st.upTo > f.cursor {
		f.cursor, f.cursorID = st.upTo, ""
	}
	f.apply(bus.Record[T]{Epoch: f.epoch, Head: f.cursor, Caught: true})
	f.l.caughtUp()
	st.cons.stop()
	st.cons = nil
}
