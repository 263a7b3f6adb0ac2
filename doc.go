// Package bus is an embedded, in-process event bus for one Go type T, with
// NATS-style topics, per-subscriber flow control and replay of missed events.
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
// empty token, no white space, no control character, no '*' or '>'. A pattern
// follows the same grammar, except that a whole token may be '*' (exactly one
// token) and the last token may be '>' (one or more tokens). Publish rejects a
// bad topic with ErrInvalidTopic, Subscribe a bad pattern with
// ErrInvalidPattern; CheckTopic and CheckPattern apply the same grammar to
// input early, and Match the same matching rules (for access checks, say).
// Matching walks a tree of tokens, so a Publish costs
// O(topic depth + matching subscribers), however many subscriptions exist on
// other topics.
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
//   - DropOldest: the oldest queued event is discarded. Replayed events still
//     unread are older than any live one, so they go first.
//   - DropNewest: the new event is not queued for this subscriber.
//   - Disconnect: the subscription ends with ErrSlowConsumer; resubscribe
//     with After(last seen Seq) to recover what was missed.
//
// Dropped events are counted in Subscription.Dropped and Stats.Dropped, never
// silently. A slow subscriber never slows publishers except under Block.
// Waiting publishers notice a reader that uses Next at once, and one that
// ranges over C within a millisecond.
//
// # Replay
//
// WithHistory(n) keeps the newest n events of each topic (a busy topic does
// not evict a quiet one's history), WithHistoryTTL(d) drops events older than
// d. A subscription can start with After(seq), Last(n) or Since(t): the
// retained matching events it selects are queued first, then live events
// follow, and the two are joined under one lock, so that each event is
// delivered exactly once with no gap while publishers keep publishing.
// Replayed events do not count against WithBuffer.
//
// Recovered says whether the replay is complete: it is false whenever an
// event the option asked for is no longer retained, and never true when
// something asked for was lost. Without WithHistoryTTL it is exact per topic:
// a loss on one topic does not affect a pattern that matches only others.
// With WithHistoryTTL, once all events of a topic have expired the topic is
// forgotten and its newest loss is remembered for the whole bus: from then on
// a replay asking for events at or before that loss reports false whatever
// its pattern, which may be conservative. With WithHistory(0) nothing is
// retained and any replay option with something published in range gives
// false. Last(n) asks for the n newest matching events ever published.
//
// History and Replay read the retained events without subscribing.
//
// # Closing
//
// Bus.Close ends every subscription with ErrClosed, closes Done, wakes waiting
// publishers with ErrClosed and returns once the bus's own goroutine (the
// TTL sweeper, started only with WithHistoryTTL) is gone. Events queued
// before a subscription ends by Bus.Close or Disconnect stay readable from C
// and Next before the end is reported. Subscription.Close ends one
// subscription with ErrSubscriptionClosed; what it had queued may be
// discarded, and a Publish waiting only for it goes on. After Close, Publish,
// Subscribe, History and Replay return ErrClosed; Seq, Epoch and Stats still
// answer. Expired events are released within about the TTL, even on a topic
// nobody publishes to again.
//
// # Cost and memory
//
// In steady state a Publish and its receipt allocate nothing for a
// non-pointer T. History is capped per topic, a topic with no subscribers and
// no retained events is forgotten, and a subscription's queue holds at most
// its buffer plus what it replayed.
//
// # Concurrency
//
// Every exported method is safe for concurrent use. The bus holds one lock
// while it numbers an event, retains it and queues it; it never holds it
// while user code runs or while a publisher waits, so handlers may publish.
package bus
