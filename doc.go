// Package bus is an embedded event bus for one Go type T, with NATS-style
// topics, per-subscriber flow control and replay of missed events. It runs
// in-process, or on a shared Log (NATS JetStream, module
// github.com/whalesong/bus/natsbus) so that several processes share one
// sequence space; the API is the same.
//
//	b := bus.New[Order](bus.WithHistory(1024))
//	defer b.Close()
//	sub, _ := b.Subscribe("orders.*.created")
//	seq, _ := b.Publish(ctx, "orders.eu.created", order)
//	for ev := range sub.C() { ... ev.Seq, ev.Topic, ev.Data ... }
//
// # Topics and patterns
//
// A topic is 1 to 256 bytes of valid UTF-8: tokens separated by '.', no
// empty token, no Unicode white space, no control character, no '*' or '>'. A pattern
// follows the same grammar, except that a whole token may be '*' (exactly one
// token) and the last token may be '>' (one or more tokens). Publish rejects a
// bad topic with ErrInvalidTopic, Subscribe a bad pattern with
// ErrInvalidPattern; CheckTopic and CheckPattern apply the same grammar to
// input early, and Match the same matching rules (for access checks, say).
// Matching walks a tree of tokens, so a Publish costs
// O(topic depth + matching subscribers), however many subscriptions exist on
// other topics: 10,000 subscriptions on other topics do not slow it
// measurably (a test holds it; BenchmarkUnrelated measures it).
//
// # Ordering
//
// Every event gets a bus-wide sequence number, Seq, starting at 1 and
// growing by one per event. Every subscription receives its events in
// strictly increasing Seq, across topics too. That is what makes the Seq of
// the last event seen a correct resume point: After(seq) gets exactly what
// came after it. A Seq means something only within its bus's Epoch.
//
// # Slow subscribers
//
// Each subscription has a buffer (WithBuffer, default 256 live events) and a
// Policy that applies when it is full:
//
//   - Block (default): Publish waits, bounded by its ctx, until every
//     matching Block subscriber has room. Only publishers of matching topics
//     wait; others go on. A goroutine that publishes from its own receive loop
//     to a topic its own Block subscription matches can wait on itself; give
//     it a bounded ctx or another policy. A waiting Publish holds no lock:
//     Subscribe, Subscription.Close and other publishers proceed.
//   - DropOldest: the oldest queued live event is discarded.
//   - DropNewest: the new event is not queued for this subscriber.
//   - Conflate: a queued live event of the new event's topic (its oldest) is
//     removed and the new one queued at the back, so Seq order holds; with
//     none of that topic queued, the oldest queued live event is dropped. A
//     slow reader of state topics sees the newest state of each.
//   - Disconnect: the subscription ends with ErrSlowConsumer; resubscribe
//     with After(last seen Seq) to recover what was missed.
//
// Losses are never silent: Subscription.Dropped and Superseded, Stats, and
// Event.Skipped, which counts this subscription's events lost between the
// previous event it received and this one. Replayed events are never
// dropped: they do not count against the buffer, so dropping one would make
// no room. A slow subscriber never slows publishers except under Block.
//
// Waiting publishers notice a reader that uses Next at once, and one that
// ranges over C within a millisecond. So that the oldest event can still be
// taken back and the next one's Skipped set, a DropOldest or Conflate
// subscription holds one live event at a time in its channel C and the
// others in a queue of its own: Next takes them at once, a goroutine of the
// bus hands them to a reader of C as it takes each one (within microseconds
// while it reads steadily, within a millisecond after a pause). A receive
// from C that does not wait sees only the one in the channel; Pending counts
// them all.
//
// # Replay
//
// WithHistory(n) keeps the newest n events of each topic (a busy topic does
// not evict a quiet one's history), WithHistoryTTL(d) drops events older than
// d, WithMaxRetained(n) caps the events kept over all topics together (the
// oldest go first). A subscription can start with After(seq), Last(n),
// Since(t) or Latest(): the retained matching events it selects are queued
// first, then live events follow, and the two are joined under one lock, so
// that each event is delivered exactly once with no gap while publishers keep
// publishing. Replayed events do not count against WithBuffer. A replay
// costs O(matching topics + events), however many other topics are retained.
//
// Recovered says whether the replay is complete: it is false whenever an
// event the option asked for is no longer retained, and never true when
// something asked for was lost (without a replay option it is true). Missing then bounds what may be missing:
// only matching events with after < Seq < before. Without WithHistoryTTL it
// is exact per topic: a loss on one topic does not affect a pattern that
// matches only others. With WithMaxRetained(n) a topic whose every event was
// evicted is remembered (its name and newest loss, not its events) so that
// this stays true, up to n such topics; past that the oldest is forgotten, as
// with WithHistoryTTL a topic is once every event has expired (memory stays
// bounded). A forgotten topic's newest loss is remembered for the whole bus:
// from then on a replay asking for events at or before that loss reports
// false whatever its pattern, which may be conservative; Latest, whose
// question is "is every matching topic's newest event retained", then
// reports false for every pattern. With WithHistory(0)
// nothing is retained and any replay option with something published in
// range gives false. Last(n) asks for the n newest matching events ever
// published, Latest for the newest of every matching topic.
//
// History, Page (older history, a page at a time) and Replay read the
// retained events without subscribing.
//
// # Publishing
//
// Publish is atomic: when it returns an error, no subscriber and no History
// ever sees the event, and Seq does not move. When it returns a Seq, the
// event is retained (if history is on) and queued to every matching live
// subscriber, subject to that subscriber's policy. It waits only for Block
// subscribers that are full, and then returns an error wrapping ctx.Err()
// if ctx ends first; a Publish that need not wait ignores ctx, and one
// blocked only by a subscription that is then closed goes on and succeeds.
//
// # Publishing once
//
// PublishID publishes once per id within a deduplication window
// (WithDedupWindow): a retry after an unknown outcome lands once and gets
// the first Seq.
//
// # Sharing a sequence space: the Log
//
// A bus made WithLog (natsbus.New makes one) numbers nothing: a shared Log
// does, and every bus on that log applies the same events in the same order,
// so a Seq and an Epoch mean the same on every node, across restarts too.
// What changes (the natsbus package doc has the details):
//
//   - Publish returns once the log has stored the event and this bus has
//     applied it (bounded by ctx); an error wrapping ErrUncertain means it
//     may have been stored: PublishID with the same id tells. Other errors
//     are atomic, as in-process (see Publishing).
//   - Block cannot make publishers in other processes wait: a full Block
//     subscriber stops taking live events and is refilled from the history
//     as it reads; it ends with ErrSlowConsumer only if the history no longer
//     holds what it has not read.
//   - A bus that misses events of the log (an outage longer than the
//     history) ends its subscriptions with ErrSlowConsumer rather than
//     deliver a hole, and its replays across the gap report Recovered false.
//     A recreated log is a new Epoch: subscriptions end the same way.
//   - Event.Time is the log's store time; Stats count per process.
//
// WaitSeq waits until a bus has applied a Seq: a client that saw it on
// another node can be served here once this one has it.
//
// # Closing
//
// Bus.Close ends every subscription with ErrClosed, closes Done, wakes waiting
// publishers with ErrClosed and returns once the bus's own goroutines (the
// TTL sweeper, the feeder of lossy subscriptions, the log's follower: each
// started only when needed) are gone. Events queued before a subscription
// ends by Bus.Close or Disconnect stay readable from C and Next before the
// end is reported. Subscription.Close ends one subscription with
// ErrSubscriptionClosed; what it had queued may be discarded, and a Publish
// waiting only for it goes on. After Close, Publish, Subscribe, History,
// Page and Replay return ErrClosed; Seq, Epoch and Stats still answer.
// Expired events are released within about the TTL, even on a topic nobody
// publishes to again.
//
// # Cost and memory
//
// In steady state a Publish and its receipt allocate nothing for a
// non-pointer T, under every policy. History is capped per topic (and over
// all topics with WithMaxRetained), a topic with no subscribers and no
// retained events is forgotten, and a subscription's queue holds at most its
// buffer plus what it replayed; its room is allocated when it is made.
//
// # Data is shared, not copied
//
// An event's Data is handed to every matching subscriber and kept in the
// history as it is: for a T that holds pointers, slices or maps, they all
// share what those point to. Treat published data as immutable (publish a
// new value instead of changing one already published), or use a value type.
//
// # Several kinds of events
//
// A bus carries one type. For several kinds, either give T a field per kind
// (a tagged union: a Kind string and one pointer field per kind, set
// exactly one) and route by topic ("orders.created", "users.renamed"), or
// make one bus per type. A union keeps one sequence for everything (one
// resume point per client); separate buses keep types apart but each has its
// own Seq and Epoch.
//
// # Concurrency
//
// Every exported method is safe for concurrent use. Topics are spread over
// shards, each with a lock of its own: a publish holds the lock of its
// topic's shard while it numbers the event (one atomic counter for the
// whole bus), retains it and queues it, so publishers of different topics
// work in parallel; a publish that a wildcard subscription matches also
// holds one bus-wide lock, which keeps every wildcard subscription in Seq
// order. Subscribe, Subscription.Close, History, Replay, Page and Stats take
// every lock for an instant, which is what joins a replay to live events
// exactly. With WithHistoryTTL, WithMaxRetained or WithLog the bus keeps its
// topics in one shard (their rules are bus-wide). No lock is ever held while
// user code runs or while a publisher waits, so handlers may publish.
//
// Event.Time never goes back within a topic. Across topics published in
// parallel it follows the publishers' clocks, so an event may carry a Time a
// little before that of an event with a lower Seq on another topic (Since
// judges each event by its own Time).
package bus
