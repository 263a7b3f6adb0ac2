// Type declarations of whalesong.js, the browser client of a whalesong
// bridge. The wire format is bridge/PROTOCOL.md (protocol version 1).
//
//   import { connect } from "/whalesong.js"; // served by bridge.ClientJS()
//   const client = connect("wss://example.com/ws", { storage: "session" });
//   const sub = client.subscribe("chat.>", (ev) => show(ev), { last: 50 });
//   client.on("gap", () => reloadEverything());
//   const seq = await client.publish("chat.lobby", { text: "hi" });

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
 * Options of {@link connect}. Times are in milliseconds.
 *
 * Reconnecting: after a drop the client waits a delay drawn uniformly (full
 * jitter) between the floor max(minDelay, 100) and a cap of
 * min(maxDelay, initialDelay * backoffFactor^n), n being the number of failed
 * attempts since the last healthy connection; with the defaults the first
 * retry comes after 250-500 ms, then 250-1000, 250-2000, ... up to 250-30000.
 * It never reconnects in a tight loop: no delay is below 100 ms. Close codes:
 * 4000 "resume needed" retries promptly (first step) and resumes; 4001
 * "abuse" waits between abuseDelay and twice it; 1001 "going away" and
 * anything else use the backoff.
 */
export interface ConnectOptions {
  /**
   * Cap of the first reconnect delay.
   * @default 500
   */
  initialDelay?: number;
  /**
   * Floor of every reconnect delay (never below 100 whatever is given).
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
   * After close code 4001 (abuse), the wait is between this and twice it.
   * @default 60000
   */
  abuseDelay?: number;
  /**
   * A socket that has not delivered the server's hello this long after
   * dialing is abandoned and retried. A socket that fails before its hello
   * (an `error` event: a refused handshake, a refused port) ends its attempt
   * at once, without waiting for this or for a `close` event (Node 20 fires
   * none after a refused handshake).
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
   * plus in flight); one more rejects at once with code `queue_full`.
   * @default 1000
   */
  maxQueue?: number;
  /**
   * Persist each subscription's position (epoch, seq) so a page reload
   * resumes: "session" uses sessionStorage (silently nothing where there is
   * none), or pass any {@link StorageLike}. When a position is stored for a
   * pattern, subscribe() resumes from it (after {epoch, seq}) instead of
   * using its after/last/since option: use it when the page needs only what
   * it has not seen (it keeps its own state across reloads, or shows only new
   * events). Positions are kept on close() and forgotten on unsubscribe().
   * Without this option no storage is ever touched.
   * @default null
   */
  storage?: "session" | StorageLike | null;
  /**
   * Storage key prefix; the key of a position is prefix + pattern. Give each
   * bridge its own prefix when a page talks to several.
   * @default "whalesong:"
   */
  storagePrefix?: string;
  /**
   * The WebSocket constructor (for tests or Node without a global).
   * @default globalThis.WebSocket
   */
  WebSocket?: WebSocketConstructor;
  /**
   * Timer functions (tests inject a fake clock).
   * @default globalThis.setTimeout
   */
  setTimeout?: (fn: () => void, ms: number) => unknown;
  /** @default globalThis.clearTimeout */
  clearTimeout?: (id: unknown) => void;
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

/** Where a new subscription starts; give at most one. Without one it starts live. */
export interface SubscribeOptions {
  /** Every retained event after this seq ({after: 0}: all retained); with an epoch, only if it is still the server's. */
  after?: number | { epoch?: string; seq: number };
  /** The last n retained matching events, then live. */
  last?: number;
  /** Retained events at or after this time (Date, RFC 3339 string or epoch ms), then live. */
  since?: Date | string | number;
}

/** One event as a handler receives it. */
export interface WhalesongEvent<T = any> {
  topic: string;
  /** Bus-wide sequence number within the server's epoch. */
  seq: number;
  /** When the server accepted the publish (null if the server sent none). */
  time: Date | null;
  data: T;
  /** Present when the server could not encode this event's data (data is then null); an "error" (code codec) fires too. */
  error?: string;
}

/** What "gap" listeners receive: events of this pattern were lost; reload what you show. */
export interface GapInfo {
  pattern: string;
}

/** The second argument of "state" listeners when the client is about to retry. */
export interface StateDetail {
  /** Close code of the drop (1006 for an abandoned or failed socket, 0 when the constructor threw). */
  code: number;
  reason: string;
  /** Milliseconds until the next attempt. */
  retryIn: number;
}

/** Connection states: "closed" only after close(). */
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
 * The error of every rejection and "error" event. `code` is the server's
 * (bad_frame, unknown_op, invalid_topic, invalid_pattern, forbidden,
 * rate_limited, too_large, too_many_subscriptions, duplicate_subscription,
 * unknown_subscription, internal, ...) or the client's own: closed,
 * queue_full, invalid_data, unsubscribed, bad_frame (from the server),
 * handler (a handler or listener threw), abuse (close code 4001),
 * connect_failed, version, codec (the server could not encode an event).
 */
export declare class WhalesongError extends Error {
  constructor(code: string, message?: string, extra?: object);
  readonly code: string;
  /** The publish topic, when the error answers a publish. */
  topic?: string;
  /** The subscription pattern, when the error concerns a subscription. */
  pattern?: string;
}

/** A live subscription: its handler sees each event at most once, in increasing seq within an epoch. */
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
  /** Where the subscription is in its life; "ended" is final. */
  readonly state: SubscriptionState;
  /** Seq of the last event handed to the handler (0 before any). */
  readonly lastSeq: number;
  /** The resume position (null before the first acknowledgement). */
  readonly position: Position | null;
  /** Ends the subscription: its handler is never called again. Idempotent. */
  unsubscribe(): void;
}

/** A connection to a bridge that reconnects and resumes by itself until close(). */
export declare class Client {
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
   * too_many_subscriptions, ...) or ends ends here too, reported once: while
   * `ready` is pending by rejecting it with that code (no "error" event),
   * after that by an "error" with its `pattern` (a resubscribe refused after
   * a reconnect, a subscription the server ended). Throws a TypeError on bad
   * arguments.
   */
  subscribe<T = any>(pattern: string, handler: (event: WhalesongEvent<T>) => void, options?: SubscribeOptions): Subscription;
  /**
   * Publishes data (anything JSON encodes) to a topic and resolves to its
   * seq. Offline, or unanswered when the connection drops, it is (re)sent with
   * the same id after reconnecting and lands once (the server remembers ids
   * for its dedup window: 5 minutes / 16384 ids by default; a retry of an
   * id it has forgotten publishes again). Publishes go out in call order;
   * a retry-later refusal (rate_limited, unavailable) may let a later one
   * that was already in flight land first. Rejects with a
   * WhalesongError whose code is the server's (e.g. forbidden), or queue_full,
   * invalid_data, closed.
   */
  publish(topic: string, data?: unknown): Promise<number>;
  /** "state" fires on each change, and with a detail each time a retry is scheduled. Returns an unsubscribe function. */
  on(name: "state", fn: (state: State, detail?: StateDetail) => void): () => void;
  /** "gap" fires before any event of a stream that lost events (recovered:false or a new epoch). */
  on(name: "gap", fn: (info: GapInfo) => void): () => void;
  /**
   * "error": subscriptions refused or ended by the server after their `ready`
   * resolved (before that, the rejection of `ready` is the only report),
   * errors the server sent without a request, events it could not encode,
   * throwing handlers and listeners, abuse closes, failed WebSocket constructors.
   */
  on(name: "error", fn: (err: WhalesongError) => void): () => void;
  /** Removes a listener added with on(). */
  off(name: "state" | "gap" | "error", fn: (...args: any[]) => void): void;
  /** Stops for good: no reconnect; pending publishes reject with code closed; state becomes "closed". Idempotent. */
  close(): void;
}

/**
 * Connects to a bridge at url. Returns at once; connecting and reconnecting
 * happen by themselves. Throws a TypeError at once, and dials nothing, when
 * url is not an absolute `ws:` or `wss:` URL (a relative path, `http:`,
 * `https:`), since no attempt could ever succeed, or when no WebSocket
 * constructor exists.
 */
export declare function connect(url: string, options?: ConnectOptions): Client;

/** The reconnect delay before attempt n (0-based), as described on {@link ConnectOptions}. */
export declare function backoffDelay(
  attempt: number,
  options?: Pick<ConnectOptions, "initialDelay" | "minDelay" | "maxDelay" | "backoffFactor">,
  random?: () => number,
): number;

/** A random version-4 UUID (randomUUID, else getRandomValues, else Math.random). */
export declare function uuidv4(crypto?: ConnectOptions["crypto"]): string;
