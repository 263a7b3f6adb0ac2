// Package natsbus serves a bus.Bus from a NATS JetStream stream, so that
// several processes share one sequence space: an event published on any
// node is delivered on every node, with the same Seq, in the same order, and
// a client that resumes with (epoch, seq) on another node, or after a
// deploy, gets exactly what it missed. The bus API is unchanged, so the
// bridge and all user code run as they are.
//
//	nc, err := nats.Connect(url, natsbus.ConnectOptions()...)
//	b, err := natsbus.New[Order](ctx, nc, natsbus.WithReplicas(3))
//	defer b.Close() // nc stays yours: close it after the bus
//
// The module is separate (github.com/whalesong/bus/natsbus, its own go.mod)
// so that the bus module keeps no NATS dependency. nats-server is a test
// dependency only.
//
// # Guarantees
//
// Each has a test against an embedded nats-server (bus_test.go, and the
// log-level tests beside it).
//
//  1. One sequence space. Every bus New makes on the same stream, in any
//     process, has the same Epoch and numbers events with the stream's
//     sequence: an event published on any of them is delivered to every
//     matching subscription on every one of them exactly once, in
//     increasing Seq, in the same order everywhere.
//  2. Replay everywhere. After, Last, Latest, Since, History and Recovered
//     work on every node for everything the stream retains, including
//     events published before that node started (New returns once the bus
//     holds them). Recovered is never true when something asked for was
//     lost; it may be conservative where package bus says so for a shared
//     log (history loaded at start, per topic at capacity or with a TTL).
//  3. Restarts keep the epoch. A restarted node, or a NATS server restarted
//     with its store (or an R3 stream that changed leaders), has the same
//     Epoch and history; a browser that resumes after a deploy gets what it
//     missed with no gap. A deleted and recreated stream is a new Epoch:
//     the running buses end their subscriptions with bus.ErrSlowConsumer
//     and go on in it.
//  4. Publish. Publish returns the event's Seq once the stream has stored
//     it (and this node has applied it, bounded by ctx). An error either
//     wraps ErrNotStored (it was not stored: safe to retry), or wraps
//     bus.ErrUncertain (it may have been stored): retrying with the same
//     id (Bus.PublishID) within the dedup window never stores it twice and
//     returns its Seq, across server restarts too (see the id ledger
//     below). An id is deduplicated by the stream, across nodes; the same
//     id on another topic is refused with bus.ErrIDReused.
//  5. Outages. While NATS is unreachable, Publish fails within its ctx and
//     subscriptions stay open; when it is back, every node resumes after
//     the last event it applied: nothing lost, nothing twice. A node that
//     cannot know what it missed (the stream evicted events it had not yet
//     read) ends its subscriptions with bus.ErrSlowConsumer rather than
//     deliver a silent hole, and its replays from before the loss report
//     Recovered false.
//  6. What holds instead of the in-process guarantees that cannot hold
//     across processes is written below.
//
// A position ahead of a node: a subscriber that saw seq x on one node and
// subscribes with bus.After(x) on a node that has not applied x yet gets
// nothing up to x again, neither replayed nor live as the node catches up,
// and then every event after x. To wait for the node first (bounded), call
// Bus.WaitSeq(ctx, x) before Subscribe, as the bridge does.
//
// # What changes from the in-process bus
//
//   - Block cannot slow publishers on other nodes, and on a shared log it
//     slows none: Publish waits for the stream, not for subscribers. A full
//     Block subscription stops taking live events and is refilled from the
//     node's history as it reads; it ends with bus.ErrSlowConsumer once the
//     history no longer holds what it has not read (see package bus).
//   - Atomic publish becomes: definite errors (ErrNotStored, and every error
//     not wrapping bus.ErrUncertain) are atomic — no subscriber and no
//     History anywhere ever sees the event, and Seq does not move. An
//     error wrapping bus.ErrUncertain may have been stored, once, and then
//     it is delivered everywhere like any other event.
//   - Allocation: the in-process bus allocates nothing per event; here each
//     publish encodes (Codec), builds a NATS message and parses an ack, and
//     each applied event is decoded: about a hundred allocations and a few
//     kilobytes per publish (BenchmarkPublish). The fan-out to local
//     subscribers after that is the bus's own.
//   - Event.Time is the stream's store time (the server's clock), the same
//     on every node, kept non-decreasing in Seq; not the publisher's clock.
//   - Stats are per process: Published counts the events this bus applied,
//     from any node; Delivered and Dropped count its own subscribers.
//   - Epoch is not a random UUID made by New but names the stream's
//     incarnation: a version 5 UUID of the stream's name, the time the
//     server created it and a generation kept in its metadata. Every node
//     computes the same value, and it survives restarts.
//
// # How a node follows the stream
//
// One stream holds every topic: topic t is subject "<stream>.t" (streams
// never overlap: each has its own first token). Its sequence is the Seq.
// WithHistory(n) is the stream's MaxMsgsPerSubject (a busy topic never
// evicts a quiet one), WithHistoryTTL(d) its MaxAge, and the stream's
// retention is exactly the bus's, so every node holds the same history.
// Nothing else deletes or adds a message: MaxMsgs and MaxBytes are
// unlimited, deletes, purges, rollups and per-message TTLs are denied.
//
// The stream republishes every event as it stores it (RePublish, from the
// stream leader, in stream order) to "_whalesong.<stream>.<topic>": that
// is each node's live feed, so that no retention limit can evict an event
// before a live node has it, however small WithHistory is. A node that
// starts, reconnects or finds a gap in the copies (a stalled reader, a
// leader change) subscribes to the copies first, then reads what it lacks
// with an ephemeral pull consumer of its own (unacknowledged, in memory,
// one replica, idle heartbeats every second: a lost consumer is noticed in
// about two seconds) and switches back to the copies. That consumer may be
// on any replica of the stream, and a replica that has just restarted lacks
// the newest events for a while: so when a consumer says it has nothing
// more below the last seq the stream held, the node asks the stream leader
// for the first message after its cursor (STREAM.MSG.GET, which in a
// cluster only the leader answers, unlike a direct get) before it takes the
// seqs it was not given for deleted. If the leader holds one up to there,
// the node makes another consumer (waiting up to a second between tries
// that make no progress); if not, those seqs are deleted (expired); with no
// answer it starts over and takes nothing for deleted. It checks the
// consumer's sequence for gaps, and reads the stream's info before and
// after making a consumer and every second while live: a different epoch
// means the stream was recreated, and the node announces it and reads the
// new stream from its oldest event. (nats.go's OrderedConsumer is not used:
// it carries on into a recreated stream at the old position.) After a
// reconnect the node also checks that the stream did not rewind (an R1
// server that lost its last writes in a crash comes back with the same
// Created and reuses seqs): if its last seq is below what the node read, or
// the message there is another one, the node raises the generation, which
// makes a new epoch for every node.
//
// An event the codec cannot decode (another T or Codec on the same stream)
// is passed over by every node, counted and logged (WithLogger): the bus
// counts it as lost on its topic (subscriptions matching it end with
// ErrSlowConsumer, replays asking for it report Recovered false).
//
// # What an operator configures
//
//   - The *nats.Conn: New refuses, naming the option, one whose options can
//     lose or resurrect publishes. Pass ConnectOptions: MaxReconnects(-1)
//     (the default gives up after about two minutes and closes the
//     connection for good) and ReconnectBufSize(-1) (by default a publish
//     made while disconnected is buffered and stored after the reconnect,
//     although it already returned an error). The connection stays yours:
//     Bus.Close does not close it.
//   - Replicas: WithReplicas(3) on a cluster of three servers or more
//     survives the loss of one; R1 loses the stream with its server. While
//     a lost server's roles are elected anew, publishes wait (the chaos
//     run saw about 4 s when the killed server led both the stream and
//     the meta group): give Publish a ctx with room for that, or retry an
//     ErrUncertain with its publish id.
//   - Durability: a JetStream ack is not an fsync. With R1 set
//     "jetstream { sync_interval: always }" on the server (or accept that a
//     power loss can lose the last acknowledged events, which natsbus then
//     detects as a rewind and turns into a new epoch); with R3 a write is
//     on a majority before it is acknowledged.
//   - Permissions, if the account restricts them: publish to "<stream>.>",
//     "_whalesong_ids.<stream>.>" and "$JS.API.>", subscribe to
//     "_whalesong.<stream>.>" and "_INBOX.>" (the connection's inbox
//     prefix, if it sets nats.CustomInboxPrefix). Of the JetStream API,
//     natsbus asks STREAM.CREATE, STREAM.INFO, STREAM.UPDATE (the epoch
//     of a rewound stream) and STREAM.MSG.GET of both streams, and
//     CONSUMER.CREATE, CONSUMER.MSG.NEXT and CONSUMER.DELETE of the event
//     stream. The server reports a subject it refuses only to the
//     connection's error handler, so New checks each of these (a probe of
//     the id ledger stores nothing) and fails with ErrPermission naming
//     the one refused; a publish to a topic the account refuses returns
//     ErrNotStored wrapping ErrPermission. Publishing may be narrowed to
//     some topics ("<stream>.chat.>").
//   - The stream: New creates it. One that exists must agree with the
//     options (history, TTL, replicas, subjects, republish, dedup window,
//     nothing that deletes messages): otherwise New fails with
//     ErrStreamMismatch and changes nothing. Every node must use the same
//     options, T and Codec.
//   - The dedup window (the stream's Duplicates) is 5 minutes, or the TTL if
//     shorter: retry an uncertain publish within it. One Publish retries its
//     id for at most half of it (and 5 s when ctx has no deadline).
//   - The id ledger: a second stream, "<stream>_IDS", that New creates
//     beside the first (file storage, as many replicas, one message per
//     subject, kept for the dedup window; New refuses one that cannot keep
//     that), holds one small message per caller publish id (Bus.PublishID,
//     the bridge's client publishes). JetStream rebuilds its own dedup
//     after a restart only from the messages it still stores, so without
//     the ledger an id whose event WithHistory had evicted would be stored
//     again by a retry after a server restart. PublishID asks the ledger
//     first, and again before every retry of the same call (if it cannot
//     be read within half the publish's time, nothing is sent and the
//     error wraps ErrNotStored; a retry it cannot read is not sent), and
//     records the id once stored, under the epoch this node's follower read its event in (a
//     duplicate, or a node not following, asks the stream); an id of an
//     earlier epoch is a new id. PublishID costs about 3x a Publish: it is
//     three requests in a row, the lookup, the publish and the record
//     (BENCHMARKS.md).
//     A record that fails is retried in the background, and a publish whose
//     ack was lost (ErrUncertain) is recorded when this node's follower
//     reads its event; Bus.Close tries what is left once more (for at most
//     2 s) before it returns. What is left: an id whose record has not landed yet
//     (its node lost the connection to NATS, or died, before it could write
//     it) and whose event is evicted and the server restarted before the
//     retry; the retry may then store it again.
//
// # Cost
//
// Measured on loopback with the server embedded in the same process, 2
// vCPU (BenchmarkPublish, BenchmarkDelivery, BenchmarkApply; BENCHMARKS.md):
// with R1 a Publish takes 28-32 µs at the median and 100-120 µs at p99,
// against 24-26 µs and 90-120 µs for a raw nats.go JetStream publish of the
// same bytes with a message id in the same run (1.17x-1.23x; the
// difference is the codec, the server's live copy and this node applying
// its own event before Publish returns); with R3 about 110-120 µs and
// 0.5 ms, 1.1x raw. Another node's subscriber has the event about 40 µs
// (R1) or 125-135 µs (R3) after Publish began. A node loads or catches up
// 330,000 to 700,000 events a second, JSON decoding included; a catch-up that ends below the stream's
// last seq (its last events expired, or its consumer is on a lagging
// replica) costs one request more, to the stream leader. That is two to
// three orders of magnitude above the in-process Publish: a shared bus is
// for events that must survive a process, not for hot loops. A live node
// holds up to 65,536 copies while it catches up and reads up to 4,096
// events ahead of what it has applied.
package natsbus
