// Type declarations of whalesong.js, the browser client of a whalesong
// bridge. The wire format is bridge/PROTOCOL.md (protocol version 1).
//
//   import { connect } from "/whalesong.js"; // served by bridge.ClientJS(), this file next to it
//   type Msg = { nick: string; text: string };
//   const client = connect<Msg>(async () => `wss://example.com/ws?token=${await freshToken()}`, { storage: "session" });
//   const sub = client.subscribe("chat.>", (ev) => show(ev.data.text), { last: 50 });
//   await sub.caughtUp; hideSpinner();
//   client.on("gap", (g) => reload(g.pattern, g.after, g.before));
//   const seq = await client.publish("chat.lobby", { nick: "alice", text: "hi" });
//   const { events, more } = await client.history("chat.lobby", { before: oldestShown, limit: 50 });

/** The wire protocol version this client speaks. */
export declare const PROTOCOL_VERSION: 1;

/** The numeric and string defaults of {@link ConnectOptions}, frozen. */
export declare const DEFAULTS: Readonly<{
  initialDelay: number;
  minDelay: number;
  maxDelay: number;
  backoffFactor: number;
  healthyAfter: number;
  abuseDelay: number;
  connectTimeout: number;
  pingInterval: number;
  pingTimeout: number;
  rateLimitDelay: number;
  rateLimitQuiet: number;
  maxQueue: number;
  maxInFlight: number;
  storagePrefix: string;
}>;

/** The part of the Web Storage API the client uses (sessionStorage fits). */
export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

/** A WebSocket constructor: the global one, or any class shaped like it. */
export type WebSocketConstructor = new (url: string) => {
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
};

/**
 * The part of `fetch` the refusal probe uses: a GET of the http(s) form of
 * the attempt's URL, resolving to something with a numeric `status`.
 */
export type FetchLike = (
  url: string,
  init: { method: "GET"; credentials: "include"; cache: "no-store"; redirect: "manual"; signal?: AbortSignal },
) => Promise<{ status: number; body?: { cancel?(): Promise<void> } | null }>;

/**
 * Where to connect: a `ws:` or `wss:` URL, or a function called before
 * every connection attempt that returns one (or a promise of one), e.g. with
 * fresh credentials in the query string. A function that throws, rejects,
 * does not settle within connectTimeout, or gives anything but an absolute
 * `ws:`/`wss:` URL fails that attempt: "error" with code `connect_failed`,
 * then the usual backoff, and it is called again for the next attempt.
 */
export type UrlSource = string | URL | (() => string | URL | Promise<string | URL>);

/**
 * Options of {@link connect}. Times are in milliseconds.
 *
 * Reconnecting: after a drop the client waits a delay drawn uniformly (full
 * jitter) between the floor max(minDelay, 100) and a cap of
 * min(maxDelay, initialDelay * backoffFactor^n), n being the number of failed
 * attempts since the last healthy connection; with the defaults the first
 * retry comes after 250-500 ms, then 250-1000, 250-2000, ... up to 250-30000.
 *
 * Close codes: 4000 "resume needed" retries promptly (first step) and
 * resumes; 4001 "abuse" waits between abuseDelay and twice it (an "error"
 * with code `abuse`); 4002 "credentials expired" reconnects at once (calling
 * the url function again), skipping the backoff and not growing it; 4003
 * "kicked" emits "error" with code `kicked` and goes to state "closed" until
 * {@link Client.reconnect}; 1001 "going away", 1013 "try again later" and
 * anything else use the backoff.
 *
 * Never a tight loop: no two attempts start less than the floor
 * max(minDelay, 100) apart, whatever asks for one (reconnect(), 4002); a
 * request within the floor is moved to its end.
 *
 * Refused handshakes: a handshake that fails before the server's hello with
 * close code 1006 (how a browser reports any refused handshake, and Node
 * reports a refused port) is followed by a probe: a plain GET of the same
 * URL with http:/https: (credentials included, no cache, no redirect
 * followed). 401 is "error" `unauthorized`, 403 `forbidden` (this page's
 * Origin is not allowed), 404 `not_found`; each then waits between
 * abuseDelay and twice it before the next attempt (or until reconnect()).
 * Any other answer (426 from a bridge that would accept it, 503 while it is
 * closed, a CORS failure or network error, no answer within connectTimeout)
 * is an ordinary failure with the usual backoff and no "error". Cross-origin,
 * a 404 is readable only when that server sends CORS headers; otherwise it is
 * an ordinary failure too.
 */
export interface ConnectOptions {
  /**
   * Cap of the first reconnect delay.
   * @default 500
   */
  initialDelay?: number;
  /**
   * Floor of every reconnect delay, and the least time between the starts
   * of two attempts (never below 100 whatever is given).
   * @default 250
   */
  minDelay?: number;
  /**
   * Cap of any reconnect delay.
   * @default 30000
   */
  maxDelay?: number;
  /**
   * Growth of the cap per failed attempt.
   * @default 2
   */
  backoffFactor?: number;
  /**
   * A connection open (hello received) this long counts as healthy and resets
   * the backoff to its first step.
   * @default 5000
   */
  healthyAfter?: number;
  /**
   * After close code 4001 (abuse) or a refused handshake (unauthorized,
   * forbidden, not_found), the wait is between this and twice it.
   * @default 60000
   */
  abuseDelay?: number;
  /**
   * An attempt that has not delivered the server's hello this long after it
   * started (the url function's time included) is abandoned and retried. A
   * socket that fails before its hello (an `error` event: a refused
   * handshake, a refused port) ends its attempt at once, without waiting for
   * this or for a `close` event (Node 20 fires none after a refused
   * handshake). The refusal probe is bounded by this too.
   * @default 10000
   */
  connectTimeout?: number;
  /**
   * While open, a ping frame goes out this often so a dead connection is
   * noticed (browsers expose no WebSocket-level ping). 0 disables it.
   * @default 25000
   */
  pingInterval?: number;
  /**
   * No frame at all this long after a ping abandons the connection and
   * reconnects.
   * @default 10000
   */
  pingTimeout?: number;
  /**
   * After a `rate_limited` or `unavailable` answer ("retry later") the
   * publish is not rejected: the client stops sending publishes for a delay
   * drawn between half this and this, doubling (up to 4 times this, and
   * never past maxDelay) with each further refusal, then resends the refused
   * one with the same id, first.
   * Until rateLimitQuiet passes without a refusal it keeps only one publish
   * in flight, so each refusal costs the connection one unit of the server's
   * malformed-frame budget at most (exhausting it closes with 4001).
   * @default 1000
   */
  rateLimitDelay?: number;
  /**
   * How long without a refusal ends the careful mode above and resets the
   * pause to its first step.
   * @default 30000
   */
  rateLimitQuiet?: number;
  /**
   * At most this many publishes are sent and unanswered at once (the rest
   * wait in order), so a long offline queue is not flushed as one burst.
   * @default 16
   */
  maxInFlight?: number;
  /**
   * At most this many publishes wait for the server's answer (queued offline
   * plus in flight); one more rejects at once with code `queue_full`. The
   * same bound applies, separately, to history requests.
   * @default 1000
   */
  maxQueue?: number;
  /**
   * Persist each subscription's position (epoch, seq) so a page reload
   * resumes: "session" uses sessionStorage (silently nothing where there is
   * none), or pass any {@link StorageLike}. When a position is stored for a
   * pattern, subscribe() resumes from it (after {epoch, seq}) instead of
   * using its after/last/since/latest option (which still applies as the
   * fallback when that resume cannot be complete): use it when the page
   * needs only what it has not seen (it keeps its own state across reloads,
   * or shows only new events). Positions are kept on close() and forgotten
   * on unsubscribe(). Without this option no storage is ever touched.
   * @default null
   */
  storage?: "session" | StorageLike | null;
  /**
   * Storage key prefix; the key of a position is prefix + pattern (for a
   * second live subscription of the same pattern prefix + pattern + " 2",
   * and so on: each keeps its own). Give each bridge its own prefix when a
   * page talks to several.
   * @default "whalesong:"
   */
  storagePrefix?: string;
  /**
   * The WebSocket constructor (for tests or Node without a global).
   * @default globalThis.WebSocket
   */
  WebSocket?: WebSocketConstructor;
  /**
   * The fetch the refusal probe uses (tests inject one; a page may pass a
   * wrapper). null turns the probe off: a refused handshake is then an
   * ordinary failure. Without any fetch there is no probe either.
   * @default globalThis.fetch
   */
  fetch?: FetchLike | null;
  /**
   * Timer functions (tests inject a fake clock).
   * @default globalThis.setTimeout
   */
  setTimeout?: (fn: () => void, ms: number) => unknown;
  /** @default globalThis.clearTimeout */
  clearTimeout?: (id: unknown) => void;
  /**
   * The clock of the floor between attempts, in milliseconds (tests inject
   * the fake clock's). Whatever it does, a wait it computes stays between 0
   * and the floor.
   * @default Date.now
   */
  now?: () => number;
  /**
   * Uniform random numbers in [0, 1) for jitter.
   * @default Math.random
   */
  random?: () => number;
  /**
   * Source of publish ids (randomUUID, else getRandomValues).
   * @default globalThis.crypto
   */
  crypto?: { randomUUID?: () => string; getRandomValues?: (a: Uint8Array) => Uint8Array };
}

/** A position in a bus's sequence space: resume after `seq` of `epoch`. */
export interface Position {
  epoch: string;
  seq: number;
}

/**
 * Where a new subscription starts: give at most one of after, last, since
 * and latest (a TypeError otherwise); without one it starts live. conflate
 * combines with any of them.
 *
 * After a drop every subscription resumes from its position. When that
 * resume cannot be complete (the server no longer has everything after the
 * position, or it runs a new epoch), "gap" fires first and the intent is
 * re-applied: a subscription made with `last: n` gets at most the n newest
 * retained events before live ones, `latest` the newest of each topic,
 * `since` those since that time; one made with `after` or live only gets
 * everything retained after its position (after a new epoch: everything the
 * new stream retains).
 */
export interface SubscribeOptions {
  /** Every retained event after this seq ({after: 0}: all retained); with an epoch, only if it is still the server's. */
  after?: number | { epoch?: string; seq: number };
  /** The last n retained matching events, then live. */
  last?: number;
  /** Retained events at or after this time (Date, RFC 3339 string or epoch ms), then live. An RFC 3339 string is sent as given, so up to nanoseconds count (a Date holds milliseconds). */
  since?: Date | string | number;
  /** The newest retained event of every matching topic, in seq order, then live (state topics: prices, cursors, progress). */
  latest?: boolean;
  /**
   * While this client is behind (the server has a backlog for it), the
   * server keeps only the newest queued event per topic for this
   * subscription instead of cutting the connection off (close 4000); each
   * event then says in `skipped` how many it superseded. For state topics,
   * where only the newest value matters.
   */
  conflate?: boolean;
}

/** One event as a handler (or a history page) receives it. */
export interface WhalesongEvent<T = any> {
  topic: string;
  /** Bus-wide sequence number within the server's epoch. */
  seq: number;
  /** When the server accepted the publish (null if the server sent none). */
  time: Date | null;
  data: T;
  /** Present when the server could not encode this event's data (data is then null); an "error" (code codec) fires too. */
  error?: string;
  /**
   * Present (and > 0) on a conflated subscription: how many of this
   * subscription's events with seq between the previous event handed to the
   * handler and this one the server superseded while the client was behind.
   * Never on history events or replayed ones.
   */
  skipped?: number;
}

/**
 * What "gap" listeners receive: events of this pattern may be missing;
 * reload what you show (or just the range). It fires before any event of the
 * stream that follows the loss.
 * - "reset": the server's sequence space is new (a restart without durable
 *   history, a recreated stream). `after` is the last seq seen in the old
 *   epoch (what came after it there may be missing), `before` the first seq
 *   the new epoch will deliver (what came before it may be missing).
 * - "evicted": history no longer reaches back far enough: only events with
 *   after < seq < before may be missing, none outside that range.
 * From an older server that sends no reason: "reset" when the epoch
 * changed, else "evicted"; after = the position the subscription resumed
 * from (0 for a first subscribe with last, since or latest), before = the
 * server's resume position + 1.
 */
export interface GapInfo {
  pattern: string;
  reason: "reset" | "evicted";
  after: number;
  before: number;
}

/** The second argument of "state" listeners when the client is about to retry. */
export interface StateDetail {
  /** Close code of the drop (1006 for an abandoned or failed socket, 0 when the attempt opened no socket: a url function or WebSocket constructor failed). */
  code: number;
  reason: string;
  /** Milliseconds until the next attempt (0: at once, after close code 4002). */
  retryIn: number;
}

/**
 * Connection states: "connecting" (also between attempts), "open", and
 * "closed" only after close() or a kick (close code 4003; reconnect() leaves
 * it).
 */
export type State = "connecting" | "open" | "closed";

/**
 * Where a subscription is in its life ({@link Subscription.state}):
 * - "waiting": on no connection (before the first hello, and after a drop
 *   until it is resent);
 * - "subscribing": its request is out on the open connection; events that
 *   arrive before the answer wait, and are handed over after it;
 * - "live": acknowledged on the open connection; events go to the handler;
 * - "ended": unsubscribed, refused or ended by the server, or the client was
 *   closed. Final: the handler is never called again.
 *
 * waiting -> subscribing -> live, back to waiting on each drop, and ended
 * from any of them.
 */
export type SubscriptionState = "waiting" | "subscribing" | "live" | "ended";

/**
 * Every code a {@link WhalesongError} can carry.
 *
 * The server's (PROTOCOL.md "Error codes"): bad_frame, unknown_op,
 * invalid_topic, invalid_pattern, forbidden (WithAuthorize refused, a
 * publish hook refused, a subscription ended by Reauthorize), rate_limited,
 * too_large, too_many_subscriptions, duplicate_subscription,
 * unknown_subscription, unavailable, internal.
 *
 * The client's own: closed (close() was called), kicked (close code 4003),
 * unauthorized / forbidden / not_found (a refused handshake, from the
 * probe), abuse (close code 4001), connect_failed (an attempt that opened no
 * socket: the url function failed or gave a bad URL, the WebSocket
 * constructor threw), queue_full, invalid_data (publish data JSON cannot
 * encode), invalid_topic (a publish topic that is not a string),
 * unsubscribed (before the server acknowledged), epoch_changed (a
 * history page `before` a seq of an epoch the server no longer runs),
 * bad_frame (an unreadable frame from the server), codec (the server could
 * not encode an event), handler (a handler or listener threw), version (the
 * server speaks another protocol version).
 */
export type ErrorCode =
  | "bad_frame"
  | "unknown_op"
  | "invalid_topic"
  | "invalid_pattern"
  | "forbidden"
  | "rate_limited"
  | "too_large"
  | "too_many_subscriptions"
  | "duplicate_subscription"
  | "unknown_subscription"
  | "unavailable"
  | "internal"
  | "closed"
  | "kicked"
  | "unauthorized"
  | "not_found"
  | "abuse"
  | "connect_failed"
  | "queue_full"
  | "invalid_data"
  | "unsubscribed"
  | "epoch_changed"
  | "codec"
  | "handler"
  | "version";

/** The error of every rejection and "error" event. */
export declare class WhalesongError extends Error {
  constructor(code: string, message?: string, extra?: object);
  /**
   * One of {@link ErrorCode}; a newer server may send a code this client
   * does not know yet, passed through as it is (hence the open string).
   */
  readonly code: ErrorCode | (string & {});
  /** The publish topic, when the error answers a publish. */
  topic?: string;
  /** The subscription or history pattern, when the error concerns one. */
  pattern?: string;
  /** The probe's HTTP status, for unauthorized (401), forbidden (403) and not_found (404) refusals of the handshake. */
  status?: number;
  /** The server's close reason, for kicked. */
  reason?: string;
  /** What a handler or listener threw, for handler. */
  cause?: unknown;
}

/** A subscription: its handler sees each event at most once, in increasing seq within an epoch. */
export declare class Subscription {
  private constructor();
  readonly pattern: string;
  /** The subscription id on the wire (unique within the client). */
  readonly id: string;
  /**
   * Resolves when the server first acknowledges the subscription; recovered
   * is false when something asked for was lost (a "gap" was emitted). Rejects
   * when the subscription ends before that: with the server's code (e.g.
   * forbidden, invalid_pattern, too_many_subscriptions), or `unsubscribed` /
   * `closed`. A refusal while `ready` is pending is reported by this
   * rejection only, never by an "error" event too; once `ready` has
   * resolved, a refusal (of a resubscribe after a reconnect) or an end by the
   * server is an "error" event with the subscription's `pattern`.
   */
  readonly ready: Promise<{ recovered: boolean }>;
  /**
   * Resolves when every event replayed at subscribe time has been handed to
   * the handler (the server's first acknowledgement says up to which seq it
   * replays): hide a "loading" state then. Resolves at the acknowledgement
   * when nothing was replayed (no replay option, or nothing retained), and
   * there too with a server that does not say how far it replays.
   *
   * Across drops it keeps waiting for the same replay: the resumed
   * subscription continues it, and it resolves once an event at or past
   * where the first replay ended (or where the resumed replay ends, if that
   * is sooner: events were evicted meanwhile) has been handed over, or at
   * once if the resumed replay hands nothing. After a new epoch only the new
   * stream's replay counts. A "gap" for that resume always fires before it
   * resolves. A drop never settles it.
   *
   * It rejects, with the same error as `ready` would, when the subscription
   * ends before: unsubscribe() (`unsubscribed`), close() (`closed`), a
   * refusal or an end by the server (its code). Settled once.
   */
  readonly caughtUp: Promise<void>;
  /** Where the subscription is in its life; "ended" is final. */
  readonly state: SubscriptionState;
  /** Seq of the last event handed to the handler (0 before any). */
  readonly lastSeq: number;
  /** The resume position (null before the first acknowledgement). */
  readonly position: Position | null;
  /** Ends the subscription: its handler is never called again. Idempotent. */
  unsubscribe(): void;
}

/** What {@link Client.history} reads. */
export interface HistoryOptions {
  /** Only events with seq < before (a seq >= 1 of the current epoch); default: past the newest, so a first page ends with the newest event. */
  before?: number;
  /**
   * The newest `limit` matching events before `before`, 1 to 1000.
   * @default 50
   */
  limit?: number;
}

/** A page of retained events, oldest first. */
export interface HistoryPage<T = any> {
  /** Shaped like handler events (no `skipped`), oldest first. */
  events: WhalesongEvent<T>[];
  /** Older matching events are retained: ask again with before = events[0].seq. */
  more: boolean;
  /** The epoch the seqs belong to (null from a server that does not say). */
  epoch: string | null;
}

/**
 * A connection to a bridge that reconnects and resumes by itself until
 * close() (or a kick). T is the type of event data on the bus (the bridge's
 * T, as JSON): publish takes it, handlers and history pages give it.
 */
export declare class Client<T = any> {
  private constructor();
  /** The current state (starts "connecting"). */
  readonly state: State;
  /** The epoch of the server's last hello (null before any). */
  readonly epoch: string | null;
  /** Publishes waiting for the server's answer. */
  readonly pending: number;
  /**
   * Subscribes to a pattern (`*` matches one token, a final `>` the rest).
   * Resubscribed from its last position after every reconnect. A
   * subscription the server refuses (forbidden, invalid_pattern,
   * too_many_subscriptions, ...) or ends (forbidden from Reauthorize: the
   * handler gets no more events, the connection stays open) ends here too,
   * reported once: while `ready` is pending by rejecting it with that code
   * (no "error" event), after that by an "error" with its `pattern`. Throws
   * a TypeError on bad arguments (two of after/last/since/latest, a
   * non-boolean latest or conflate, ...).
   */
  subscribe<E extends T = T>(pattern: string, handler: (event: WhalesongEvent<E>) => void, options?: SubscribeOptions): Subscription;
  /**
   * Publishes data (anything JSON encodes; typed as the client's T, and
   * optional only when T admits undefined, which is sent as null) to a topic
   * and resolves to its seq. Offline, or unanswered when the connection drops, it is (re)sent with
   * the same id after reconnecting and lands once (the server remembers ids
   * for its dedup window: 5 minutes / 16384 ids by default; a retry of an
   * id it has forgotten publishes again). Publishes go out in call order;
   * a retry-later refusal (rate_limited, unavailable) may let a later one
   * that was already in flight land first. Rejects with a
   * WhalesongError whose code is the server's (e.g. forbidden), or queue_full,
   * invalid_data, closed, kicked (every pending one at a kick, and any made
   * while kicked).
   */
  publish<D extends T>(topic: string, ...data: undefined extends T ? [data?: D] : [data: D]): Promise<number>;
  /**
   * Reads retained events of a pattern, a page at a time: those with seq <
   * `before` (default: past the newest), the newest `limit` (default 50) of
   * them, oldest first; `more` says older ones are retained. Authorized like
   * a subscribe of that pattern. Sent when open; made offline, or
   * unanswered when the connection drops, it is sent after the next hello.
   * Rejects with the server's code (forbidden, invalid_pattern, ...),
   * closed (close()), kicked, queue_full, or epoch_changed when `before` was
   * given in an epoch the server no longer runs (it restarted: read a first
   * page again). Throws a TypeError at once on bad arguments (an empty
   * pattern, before not an integer >= 1, limit not an integer 1..1000).
   */
  history<E extends T = T>(pattern: string, options?: HistoryOptions): Promise<HistoryPage<E>>;
  /**
   * Connects now, skipping what is left of the backoff (for the browser's
   * online event, a "retry" button), or connects again after a kick. No
   * effect while open, while an attempt (or its refusal probe) is in flight,
   * and after close(). Never sooner than max(minDelay, 100) after the
   * previous attempt started: within that floor it dials at the floor's end,
   * so calling it from every "connecting" listener makes one attempt per
   * floor at most. It skips the wait, not the count: the next automatic
   * wait is as long as it would have been.
   */
  reconnect(): void;
  /** "state" fires on each change, and with a detail each time a retry is scheduled. Returns an unsubscribe function. */
  on(name: "state", fn: (state: State, detail?: StateDetail) => void): () => void;
  /** "gap" fires before any event of a stream that lost events (recovered:false or a new epoch), saying what may be missing. */
  on(name: "gap", fn: (info: GapInfo) => void): () => void;
  /**
   * "error": subscriptions refused or ended by the server after their `ready`
   * resolved (before that, the rejection of `ready` is the only report),
   * refused handshakes (unauthorized, forbidden, not_found), kicked, abuse
   * closes, failed attempts (connect_failed), errors the server sent
   * without a request, events it could not encode, throwing handlers and
   * listeners. What the first attempt reports inside connect() (a url
   * function that throws at once) is delivered a microtask later, so
   * listeners added right after connect() see it.
   */
  on(name: "error", fn: (err: WhalesongError) => void): () => void;
  /** Removes a listener added with on(). */
  off(name: "state" | "gap" | "error", fn: (...args: any[]) => void): void;
  /** Stops for good: no reconnect; pending publishes and history requests reject with code closed; state becomes "closed". Idempotent. */
  close(): void;
}

/**
 * Connects to a bridge. Returns at once; connecting and reconnecting happen
 * by themselves. url is a `ws:`/`wss:` URL or a function giving one before
 * every attempt ({@link UrlSource}). Throws a TypeError at once, and dials
 * nothing, when a url string is not an absolute `ws:` or `wss:` URL (a
 * relative path, `http:`, `https:`), since no attempt could ever succeed, or
 * when no WebSocket constructor exists.
 */
export declare function connect<T = any>(url: UrlSource, options?: ConnectOptions): Client<T>;

/** The reconnect delay before attempt n (0-based), as described on {@link ConnectOptions}. */
export declare function backoffDelay(
  attempt: number,
  options?: Pick<ConnectOptions, "initialDelay" | "minDelay" | "maxDelay" | "backoffFactor">,
  random?: () => number,
): number;

/** A random version-4 UUID (randomUUID, else getRandomValues, else Math.random). */
export declare function uuidv4(crypto?: ConnectOptions["crypto"]): string;
