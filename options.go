package bus

import "time"

const (
	defaultHistory   = 1024
	defaultBuffer    = 256
	defaultDedupSize = 16384
	defaultDedupAge  = 5 * time.Minute
)

// MaxBuffer is the largest WithBuffer: a subscription's queue is allocated
// when it is made, so a larger request counts as MaxBuffer.
const MaxBuffer = 1 << 20

// Option configures a Bus made by New.
type Option func(*busConfig)

type busConfig struct {
	history     int
	ttl         time.Duration
	maxRetained int
	dedupSize   int
	dedupAge    time.Duration
	log         any // a Log[T], asserted by New[T]
}

func newBusConfig(opts []Option) busConfig {
	c := busConfig{history: defaultHistory, dedupSize: defaultDedupSize, dedupAge: defaultDedupAge}
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	if c.history < 0 {
		c.history = 0
	}
	if c.ttl < 0 {
		c.ttl = 0
	}
	c.maxRetained = max(c.maxRetained, 0)
	return c
}

// WithHistory keeps the newest n events of each topic for replay (After,
// Last, Since, History). A busy topic never evicts a quiet topic's events.
// 0 disables replay. Default 1024; a negative n counts as 0.
func WithHistory(n int) Option {
	return func(c *busConfig) { c.history = n }
}

// WithHistoryTTL drops retained events once they are older than d, even on a
// topic nobody publishes to again. 0 (the default) sets no age limit.
func WithHistoryTTL(d time.Duration) Option {
	return func(c *busConfig) { c.ttl = d }
}

// WithMaxRetained caps the events retained over all topics together at n:
// past it the oldest retained event, whatever its topic, is evicted first.
// Recovered stays honest and exact per topic: an eviction counts as a loss
// of its topic, and a topic left with no event is remembered (its name and
// newest loss) for that, up to n such topics. Past n the oldest is
// forgotten, its loss then counting for every replay (conservatively, as
// with WithHistoryTTL). 0, the default, sets no bus-wide cap; a negative n
// counts as 0.
func WithMaxRetained(n int) Option {
	return func(c *busConfig) { c.maxRetained = n }
}

// WithDedupWindow sets how many publish ids PublishID remembers (default
// 16384) and for how long (default 5 minutes): a PublishID repeated within
// the window is answered with the first one's Seq and publishes nothing.
// size < 1 or age <= 0 keeps that default. A bus on a shared Log uses the
// log's window instead.
func WithDedupWindow(size int, age time.Duration) Option {
	return func(c *busConfig) {
		if size > 0 {
			c.dedupSize = size
		}
		if age > 0 {
			c.dedupAge = age
		}
	}
}

// SubscribeOption configures one subscription made by Bus.Subscribe.
type SubscribeOption func(*subConfig)

type replayKind int

const (
	replayNone replayKind = iota
	replayAfter
	replayLast
	replaySince
	replayLatest
	replayBefore // History pages: the newest last events with Seq < before
)

// replayFrom is where a replay starts: After, Last, Since or Latest.
type replayFrom struct {
	kind   replayKind
	after  uint64
	last   int
	since  time.Time
	before uint64
}

type subConfig struct {
	buffer int
	policy Policy
	from   replayFrom
}

func newSubConfig(opts []SubscribeOption) subConfig {
	c := subConfig{buffer: defaultBuffer, policy: Block}
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	c.buffer = min(max(c.buffer, 1), MaxBuffer)
	if c.policy < Block || c.policy > Conflate {
		c.policy = Block
	}
	return c
}

// WithBuffer lets at most n live events wait unread before the subscription's
// Policy applies. Replayed events do not count against it. Default 256;
// n < 1 counts as 1 and n > MaxBuffer as MaxBuffer (the queue's room is
// allocated by Subscribe).
func WithBuffer(n int) SubscribeOption {
	return func(c *subConfig) { c.buffer = n }
}

// WithPolicy chooses what happens when the subscription's buffer is full.
// Default Block; a value that is not one of the Policy constants counts as
// Block.
func WithPolicy(p Policy) SubscribeOption {
	return func(c *subConfig) { c.policy = p }
}

// After replays the retained matching events with Seq > seq, then goes live.
// After(0) replays everything retained. Of several replay options the last
// one wins.
//
// On a shared Log, seq may be ahead of this bus's Seq: a position the
// subscriber saw on another bus of the log, which this one has not applied
// yet. Then nothing up to seq is delivered, neither replayed nor live, and
// the subscription starts with the first event after it once this bus
// applies it: nothing twice and nothing lost. (A position from another
// epoch is not one of these: compare Epoch first, as the bridge does.)
func After(seq uint64) SubscribeOption {
	return func(c *subConfig) { c.from = replayFrom{kind: replayAfter, after: seq} }
}

// Last replays the newest n retained matching events, then goes live.
// Of several replay options the last one wins.
func Last(n int) SubscribeOption {
	if n < 0 {
		n = 0
	}
	return func(c *subConfig) { c.from = replayFrom{kind: replayLast, last: n} }
}

// Since replays the retained matching events with Time >= t, then goes live.
// Of several replay options the last one wins.
func Since(t time.Time) SubscribeOption {
	return func(c *subConfig) { c.from = replayFrom{kind: replaySince, since: t} }
}

// Latest replays the newest retained event of every matching topic, in Seq
// order, then goes live: the current value of every state topic. Recovered
// is false when a matching topic's newest event was published but is no
// longer retained (which, once a topic has been forgotten, is not known per
// topic: see the package doc and WithMaxRetained). Of several replay options the last one wins.
func Latest() SubscribeOption {
	return func(c *subConfig) { c.from = replayFrom{kind: replayLatest} }
}
