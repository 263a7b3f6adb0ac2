// Package bridge serves the events of a bus.Bus to browsers (and any
// WebSocket client) and lets them publish, so that one bus serves goroutines
// and remote sockets alike:
//
//	b := bus.New[Message](bus.WithHistory(1024))
//	br := bridge.New(b, bridge.WithAuthorize(authorize))
//	http.Handle("/ws", br)
//	http.Handle("/whalesong.js", bridge.ClientJS())
//	...
//	srv.Shutdown(ctx); br.Close(); b.Close()
//
// The wire protocol (JSON text frames) is written down in PROTOCOL.md, with
// an example of every frame and error code; bridge/client/whalesong.js is
// its browser client.
//
// # Guarantees
//
//   - Per client subscription, events arrive in strictly increasing seq and
//     none twice, across the switch from replay to live.
//   - Resume: a subscription with after = (epoch, seq) gets every retained
//     matching event after seq, then live ones, with no gap. The
//     "subscribed" answer says recovered=false when anything asked for was
//     no longer retained, or the epoch is another one (the server
//     restarted: everything retained is replayed). Its "from" is the exact
//     resume position of a client that has not received an event yet.
//   - Missed events are described, not just flagged: with recovered=false
//     the answer gives a reason ("evicted": history no longer reaches back;
//     "reset": another epoch, or a position this epoch never reached) and a
//     range outside which nothing asked for is missing; "replayed" and
//     "until" say how many events the replay holds and where it ends. A
//     resume that cannot be complete applies the sub's "fallback" (the
//     subscription's original last, latest or since) instead of replaying
//     everything, never sending again what the client saw in the same
//     epoch. "latest" replays the newest retained event of each matching
//     topic.
//   - History pages: a "history" request reads older retained events of a
//     pattern, newest first by page (before, limit 1 to 1000), authorized
//     exactly like a subscribe of that pattern; each page names its epoch.
//   - Nothing is dropped silently. A client that falls behind by more than
//     WithMaxBacklog events is closed with 4000 "resume needed" and its
//     queue released; it resumes from history. Publishers and other
//     clients never wait for a slow client. A subscription made with
//     "conflate" is the one exception, and it says so: while its client is
//     behind, its queued live events collapse to the newest per topic, and
//     the next event it gets counts the ones superseded ("skipped"), so that
//     a slow reader of state topics gets the newest state and is not cut
//     off. It holds at most one event per topic; a connection whose
//     conflating subscriptions hold more than WithMaxBacklog topics, or
//     whose other subscriptions pass WithMaxBacklog, is still cut off.
//   - On a shared log (several nodes on one stream, bus.WithLog) a client
//     may resume on any node: a position ahead of a node that is behind is
//     waited for (up to 2 seconds, else the connection is closed with 1013,
//     try again later), never answered as lost, nothing sent twice. A node
//     that missed events of the log, or saw it recreated (a new epoch),
//     closes the connections of the patterns concerned with 4000, and their
//     resume says honestly what may be missing.
//   - A publish retried with the same id within the dedup window
//     (WithDedupWindow) is published once and answered with the same seq.
//   - A bad frame gets an error frame with a machine-readable code and never
//     closes the connection by itself; a spent bad-frame budget closes it
//     with 4001.
//   - Close sends going-away (1001) to every client, including one whose
//     WithAuthenticate was still running, and returns once all the bridge's
//     goroutines are gone: within WithWriteTimeout (plus the time such
//     WithAuthenticate calls take), dropping a socket that has not taken its
//     close frame by then. It leaves the bus open; a closed bus closes every
//     client with 1001.
//   - Text is UTF-8, strictly: a topic, pattern, id or sub that is not valid
//     UTF-8 (an unpaired surrogate escape included) is refused, never
//     replaced with U+FFFD (PROTOCOL.md, "Text is UTF-8, strictly").
//   - Absurd option values are clamped as each option says, never a panic.
//   - A client publish reaches the bus only through WithPublishHook when
//     one is set: what the hook returns is what every subscriber and the
//     history see, and a refusal publishes nothing. The hook runs once per
//     publish that reaches the bus, never for a retry the dedup window
//     answers.
//   - A refused handshake can be told apart from a network failure: a
//     plain GET of the endpoint answers the verdict the handshake gets
//     (the probe), readable by the page that asked, and by a foreign page
//     only as 403 (PROTOCOL.md, "Refusals a browser can see").
//   - A connection ends at its identity's WithExpiry time with 4002, and
//     by Kick with 4003; after Reauthorize ends a subscription, no event of
//     it reaches the client. Kick and Reauthorize run user code with no
//     lock held and are safe at any time, Close included.
//
// # Cost
//
// Each distinct pattern is one bus subscription shared by every client
// subscribed to it, read by one goroutine that encodes each event once (the
// Codec runs once per event, not per client). Each client only adds its
// subscription ids. (Replayed events are encoded per client, lazily, a
// frame at a time, as the client's socket takes them.) The shared bus
// subscription uses the Block policy with a buffer of 48 events, and its
// goroutine never waits for a client, so publishers wait only if that
// goroutine itself is starved of CPU; events that wait in that buffer are
// handed to each client together. Conflation keeps the shared encoding
// (a superseded event is a dropped reference) and costs a map lookup per
// event of a conflating subscription whose client is behind; an idle
// client gets each event at once, whatever its subscriptions. A distinct pattern costs one bus
// subscription and one goroutine, whatever the number of its clients; many
// per-user patterns cost one each. An idle connection costs melody's two
// goroutines and no more, and holds no write buffer (about 20 KB resident
// with its HTTP server's share, a little under raw melody's: see
// BENCHMARKS.md; the handshake goes through a small buffer of the bridge's,
// so the server's 4 KB writer, kept for the whole session, stays
// untouched): a connection's frames
// are written by a writer goroutine of its own that runs only while there
// is something to send, and takes everything queued by the time it runs
// into one frame. So events that arrive while it waits for the CPU or the
// socket leave together: a busy client costs one socket write per batch,
// while an idle one gets each event at once.
//
// # Security
//
// Browsers let any page open a WebSocket to any site, with the user's
// cookies; the Origin check is what stops a foreign page. By default only an
// Origin whose host:port is the request's Host is accepted
// (WithAllowedOrigins lists others). A request without Origin is not a
// browser and is let through to WithAuthenticate, which runs before the
// upgrade (an error answers 401, no socket). The identity it returns is
// passed to WithAuthorize for every subscribe pattern and publish topic,
// to WithPublishHook for every publish and to WithExpiry once;
// without WithAuthorize, clients may subscribe to anything and publish
// nothing. Limits: frame size (WithMaxMessageSize), subscriptions per
// connection (WithMaxSubscriptions), publish rate (WithPublishRate),
// malformed frames (WithBadFrameBudget), backlog (WithMaxBacklog).
//
// # Trust and the life of a connection
//
// WithAuthorize sees who asks and for which topic, never the data: to
// vouch for a sender, WithPublishHook gets the identity, the topic and the
// decoded data of every allowed publish and returns what is published (the
// sender's name stamped from the identity, so that a client cannot claim
// to be someone else) or an error (the client gets forbidden with its
// text). It runs after the rate limit and the dedup window, before the bus.
//
// Credentials are checked once, at the handshake; WithExpiry says when
// they end. At that time the connection is closed with 4002 and the JS
// client reconnects at once, calling its url function for fresh
// credentials, and resumes with nothing missed; an identity already
// expired is refused like a failed WithAuthenticate. Kick closes the
// connections of some identities with 4003 (the JS client goes to state
// "closed" and does not come back by itself); Reauthorize runs
// WithAuthorize again for their live subscriptions and ends those now
// refused, with the connection left open. To ban a user, make
// WithAuthenticate and WithAuthorize refuse them first, then Kick.
//
// A browser shows a refused WebSocket handshake only as close code 1006.
// The JS client therefore asks the endpoint why with a plain GET after a
// handshake that failed before hello; the bridge answers it with the
// handshake's verdict (503 unavailable, 403 forbidden, 401 unauthorized,
// or 426 when nothing refuses), running the same checks in the same order,
// so that a foreign page gets its 403 before authentication runs and
// never learns whether the user's cookies would have passed. The client
// reports unauthorized, forbidden or not_found as an error and waits its
// long abuse delay before trying again.
//
// WithLogger logs to a log/slog Logger: connections and disconnects (close
// code, and who closed) at Info; refused connection requests (reason),
// refused requests on a connection (error code) and cut-offs at Warn; never
// a line per event. Without it nothing is logged. Stats counts the same
// things (Kicked, Expired, Revoked, HandshakesRefused by reason), and the
// metrics module exports them.
//
// # Authorizing wildcard patterns
//
// A subscribe pattern may hold wildcards, so an authorizer must ask whether
// everything the pattern can match is allowed, not whether the pattern
// matches some allowed topic. A rule meant for "chat.>" must refuse ">" and
// "*.lobby", which also match "admin.keys". PatternWithin answers exactly
// that question:
//
//	func authorize(id any, a bridge.Action, p string) error {
//		user := id.(*User)
//		if a == bridge.Subscribe && (bridge.PatternWithin(p, "chat.>") ||
//			bridge.PatternWithin(p, "user."+user.Name+".>")) {
//			return nil
//		}
//		if a == bridge.Publish && bridge.PatternWithin(p, "chat.*") {
//			return nil
//		}
//		return errors.New("not allowed")
//	}
//
// Checks such as strings.HasPrefix(p, "chat") or matching the client's
// pattern against an example topic are wrong: the first lets "chatter.>"
// through, the second lets ">" through (it matches "chat.lobby"). Tokens
// may hold characters such as '"' or '\'; the bridge checks every topic and
// pattern against the bus grammar before the authorizer sees it.
package bridge
