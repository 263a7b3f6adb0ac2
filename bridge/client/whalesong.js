// @ts-self-types="./whalesong.d.ts"
// whalesong.js: the browser client of a whalesong bridge (wire protocol v1,
// bridge/PROTOCOL.md). One ES module, no dependencies, no build step. It runs
// wherever a WebSocket global exists (browsers, Node 22, Node 20 with
// --experimental-websocket) and touches no window or document; it touches
// sessionStorage only when the `storage` option asks for it.
//
// What it promises (see whalesong.d.ts for every option and its default):
//   - connect() returns at once (it throws only on a bad URL string or without
//     any WebSocket); the client connects, and reconnects after any drop with
//     exponential backoff and full jitter, never in a tight loop: no two
//     attempts start less than the floor (max(minDelay, 100 ms)) apart,
//     whatever reconnect() or the server's close codes ask for;
//   - a url function is called before every attempt (fresh credentials);
//   - a refused handshake is told apart from a network failure by a probe
//     (a plain fetch of the same URL): `error` with code unauthorized,
//     forbidden or not_found, then the long abuseDelay;
//   - every subscription keeps a resume position (epoch, seq) and is
//     resubscribed after each reconnect from that position, so its handler
//     sees each event at most once and, within one epoch, in increasing seq;
//     a resume that cannot be complete re-applies the subscription's intent
//     (last, latest, since) through the sub frame's `fallback`;
//   - when events were lost (the server says recovered:false, or it runs a new
//     epoch) the client emits "gap" with what may be missing, before any event
//     of the new stream;
//   - a publish made offline, or sent but unanswered when the connection
//     dropped, is sent again with the same id; the server deduplicates it, so
//     it lands once and its promise resolves to that one seq.
//
// How it is built: a Subscription is one state machine (waiting, subscribing,
// live, ended) whose transitions say what the Client must do (deliver, buffer,
// drop, emit gap or error, send unsub); the PublishQueue owns the publishes
// (offline queue, in-flight window, resend, careful mode) and the
// HistoryRequests the history pages asked for; the Client owns the socket
// (its phases: dialing, open, probing, waiting, halted, closed), the timers
// and the listeners.

/** The wire protocol version this client speaks (the `v` of the server's hello). */
export const PROTOCOL_VERSION = 1;

/**
 * The documented defaults of every numeric option of {@link connect}
 * (milliseconds unless named otherwise). Frozen; pass options to override.
 */
export const DEFAULTS = Object.freeze({
  initialDelay: 500, // cap of the first reconnect delay (full jitter between minDelay and it)
  minDelay: 250, // floor of every reconnect delay, and of the time between two attempts' starts
  maxDelay: 30000, // cap of any reconnect delay
  backoffFactor: 2, // the cap grows by this factor per failed attempt
  healthyAfter: 5000, // an open connection this old resets the backoff
  abuseDelay: 60000, // after close code 4001 or a refused handshake, wait between this and twice it
  connectTimeout: 10000, // from the start of an attempt (url function included) to the server's hello; also bounds the probe
  pingInterval: 25000, // a ping this often while open; 0 disables keepalive
  pingTimeout: 10000, // no frame for this long after a ping drops the connection
  rateLimitDelay: 1000, // first pause of publishing after a rate_limited answer
  rateLimitQuiet: 30000, // careful publishing ends after this long without a refusal
  maxQueue: 1000, // publishes waiting for an answer (offline or in flight); history requests likewise
  maxInFlight: 16, // publishes sent and not yet answered
  storagePrefix: "whalesong:", // sessionStorage key prefix (key = prefix + pattern; see #storageKey)
});

/** No reconnect delay is ever shorter than this, whatever the options say. */
const ABSOLUTE_MIN_DELAY = 100;

/** The largest page a history request may ask for (PROTOCOL.md: limit 1 to 1000). */
const MAX_HISTORY_LIMIT = 1000;

/**
 * What the probe's HTTP status means (PROTOCOL.md "Refusals a browser can
 * see"); any other answer is an ordinary network failure.
 */
const REFUSALS = Object.freeze({
  401: { code: "unauthorized", why: "authentication refused (WithAuthenticate, or expired credentials)" },
  403: { code: "forbidden", why: "this page's Origin is not allowed" },
  404: { code: "not_found", why: "nothing serves this URL" },
});

/**
 * The Error every rejection and "error" event of this client carries. `code`
 * is machine-readable: the server's code (e.g. "forbidden", "rate_limited",
 * "invalid_topic") or one of the client's own (whalesong.d.ts lists them all
 * as the ErrorCode type).
 */
export class WhalesongError extends Error {
  /**
   * @param {string} code machine-readable error code
   * @param {string} [message] human-readable detail
   * @param {object} [extra] more fields copied onto the error (e.g. pattern, topic, status, reason)
   */
  constructor(code, message, extra) {
    super(message || code);
    this.name = "WhalesongError";
    /** @type {string} */
    this.code = code;
    if (extra) Object.assign(this, extra);
  }
}

/**
 * The reconnect delay (ms) before attempt number `attempt` (0 = the first
 * retry): full jitter, uniform between the floor (max(minDelay, 100 ms)) and
 * the cap min(maxDelay, initialDelay * backoffFactor^attempt).
 * @param {number} attempt failed attempts so far (0 after a healthy connection)
 * @param {{initialDelay?: number, minDelay?: number, maxDelay?: number, backoffFactor?: number}} [opts]
 * @param {() => number} [random] uniform in [0, 1); Math.random by default
 * @returns {number}
 */
export function backoffDelay(attempt, opts = {}, random = Math.random) {
  const o = { ...DEFAULTS, ...opts };
  const floor = Math.max(ABSOLUTE_MIN_DELAY, o.minDelay);
  const grown = o.initialDelay * Math.pow(Math.max(1, o.backoffFactor), Math.max(0, attempt));
  const cap = Math.max(floor, Math.min(o.maxDelay, grown));
  return floor + random() * (cap - floor);
}

/**
 * A random version-4 UUID: crypto.randomUUID when present, else built from
 * crypto.getRandomValues (insecure browser contexts lack randomUUID), else
 * from Math.random as a last resort.
 * @param {{randomUUID?: () => string, getRandomValues?: (a: Uint8Array) => Uint8Array}} [c]
 * @returns {string}
 */
export function uuidv4(c = globalThis.crypto) {
  if (c && typeof c.randomUUID === "function") return c.randomUUID();
  const b = new Uint8Array(16);
  if (c && typeof c.getRandomValues === "function") c.getRandomValues(b);
  else for (let i = 0; i < 16; i++) b[i] = Math.floor(Math.random() * 256);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/**
 * Connects to a whalesong bridge. Returns at once; the client connects, and
 * reconnects after every drop, by itself until close() (or a kick).
 * @param {string|URL|(() => string|URL|Promise<string|URL>)} url the WebSocket URL of the bridge
 *   ("ws://host/ws" or "wss://host/ws"), or a function called before every
 *   attempt that returns it (fresh credentials in the query string)
 * @param {object} [options] ConnectOptions: every one and its default is in whalesong.d.ts
 * @returns {Client}
 * @throws {TypeError} when url is not a function nor an absolute ws: or wss: URL, or no WebSocket constructor exists
 */
export function connect(url, options = {}) {
  return new Client(url, options);
}

// checkURL returns url as a string, or throws unless it is an absolute ws:
// or wss: URL. A relative or http(s) URL would fail every attempt the same
// way, forever, so it is a programming error to report at once. The message
// names only the scheme: the rest of a URL may carry credentials.
function checkURL(url) {
  let u = null;
  try {
    u = new URL(String(url));
  } catch {
    // not absolute, or not a URL at all
  }
  if (!u) throw new TypeError('whalesong: url must be an absolute "ws:" or "wss:" URL (got a relative or malformed one)');
  if (u.protocol === "ws:" || u.protocol === "wss:") return String(url);
  const hint = { "http:": ' (use "ws:")', "https:": ' (use "wss:")' }[u.protocol] || "";
  throw new TypeError(`whalesong: url must be a "ws:" or "wss:" URL, not ${JSON.stringify(u.protocol.slice(0, 32))}${hint}`);
}

// probeURL is the http: or https: form of a ws: or wss: URL (the probe asks
// there for the verdict the handshake got).
function probeURL(wsURL) {
  const u = new URL(wsURL);
  u.protocol = u.protocol === "wss:" ? "https:" : "http:";
  return u.toString();
}

// errText is the message of anything thrown, for an error's detail.
function errText(e) {
  return String(e && typeof e === "object" && "message" in e ? e.message : e);
}

// Timers runs named one-shot timers on the injected timer functions; starting
// a name again replaces its timer.
class Timers {
  #set;
  #clear;
  #ids = new Map(); // name -> timer id, while pending

  /**
   * @param {(fn: () => void, ms: number) => unknown} set
   * @param {(id: unknown) => void} clear
   */
  constructor(set, clear) {
    this.#set = set;
    this.#clear = clear;
  }

  /**
   * @param {string} name
   * @param {number} ms
   * @param {() => void} fn
   */
  start(name, ms, fn) {
    this.stop(name);
    const id = this.#set(() => {
      if (this.#ids.get(name) === id) this.#ids.delete(name);
      fn();
    }, ms);
    this.#ids.set(name, id);
  }

  /** @param {string} name */
  stop(name) {
    if (!this.#ids.has(name)) return;
    const id = this.#ids.get(name);
    this.#ids.delete(name);
    this.#clear(id);
  }

  /** @param {string} name */
  has(name) {
    return this.#ids.has(name);
  }

  stopAll() {
    for (const name of [...this.#ids.keys()]) this.stop(name);
  }
}

/** @typedef {"waiting"|"subscribing"|"live"|"ended"} SubscriptionState */
/** @typedef {{action: "deliver", event: object, error: WhalesongError|null} | {action: "buffer"} | {action: "drop"}} Reception */
/** @typedef {{pattern: string, reason: "reset"|"evicted", after: number, before: number}} GapInfo */

const BUFFER = Object.freeze({ action: /** @type {"buffer"} */ ("buffer") });
const DROP = Object.freeze({ action: /** @type {"drop"} */ ("drop") });

// isSeq tells whether x can be a seq (or a position) on the wire.
function isSeq(x) {
  return Number.isSafeInteger(x) && x >= 0;
}

// toEvent turns a wire entry (of an events or page frame) into the event a
// handler or a history page gets.
function toEvent(ev) {
  const event = { topic: ev.topic, seq: ev.seq, time: parseTime(ev.time), data: ev.data };
  if (typeof ev.error === "string") event.error = ev.error; // the server could not encode this event's data
  return event;
}

/**
 * A subscription made by Client.subscribe: its handler gets every matching
 * event at most once and, within one epoch, in increasing seq.
 *
 * Its life is one state machine, `state`:
 *
 *   "waiting"      on no connection: before the first hello and after a drop
 *   "subscribing"  its sub frame is out on the open connection; events that
 *                  come before the answer wait in a buffer
 *   "live"         acknowledged on the open connection; events go to the handler
 *   "ended"        unsubscribed, refused or ended by the server, or the client
 *                  was closed; final
 *
 *   waiting --_sent--> subscribing --_acknowledged--> live
 *   subscribing, live --_dropped--> waiting        (resent after the next hello)
 *   any --_ended--> ended
 *
 * Across the states `position` (epoch, seq) is where a resubscribe resumes:
 * it never moves back within an epoch. `ready` settles once: it resolves on
 * the first acknowledgement, or rejects if the subscription ends before one.
 * `caughtUp` settles once: it resolves when the replay the first
 * acknowledgement announced (its `until`) has been handed over, or rejects if
 * the subscription ends before. The transitions (the _ methods) are the
 * Client's: each returns what the client must do and touches nothing outside
 * the subscription.
 */
export class Subscription {
  #client;
  /** @type {SubscriptionState} */
  #state = "waiting";
  #intent; // the after/last/since/latest fields of a sub frame without a position
  #fallback; // the intent to re-apply when a resume cannot be complete: {last}|{since}|{latest}, or null
  #conflate;
  /** @type {{epoch: string, seq: number}|null} */
  #position;
  #lastSeq = 0;
  /** @type {string|null} subscribing: the request id of its sub frame */
  #reqId = null;
  /** @type {object[]} subscribing: wire events that came before the answer */
  #buffer = [];
  /** @type {((err: Error|null, value?: {recovered: boolean}) => void)|null} until ready settles */
  #settleReady;
  /** @type {((err: Error|null) => void)|null} until caughtUp settles */
  #settleCaughtUp;
  /** @type {number|undefined} while caughtUp is pending: the seq that ends the replay (undefined before an ack) */
  #target;

  /** @param {object} init internal; made by Client.subscribe only */
  constructor(init) {
    this.#client = init.client;
    /** @type {string} the subscription's pattern */
    this.pattern = init.pattern;
    /** @type {string} the client-chosen subscription id on the wire */
    this.id = init.id;
    /** @internal its storage key (see Client.#storageKey) */
    this._key = init.key;
    this.handler = init.handler;
    this.#intent = init.intent || null;
    this.#fallback = init.fallback || null;
    this.#conflate = init.conflate === true;
    this.#position = init.position || null;
    /** @type {Promise<{recovered: boolean}>} resolves on the server's first acknowledgement */
    this.ready = new Promise((resolve, reject) => {
      this.#settleReady = (err, value) => (err ? reject(err) : resolve(value));
    });
    this.ready.catch(() => {}); // a rejection nobody awaits is not an unhandled one
    /** @type {Promise<void>} resolves when the replay asked for at subscribe time has been handed to the handler */
    this.caughtUp = new Promise((resolve, reject) => {
      this.#settleCaughtUp = (err) => (err ? reject(err) : resolve());
    });
    this.caughtUp.catch(() => {});
  }

  /** @returns {SubscriptionState} where the subscription is in its life */
  get state() {
    return this.#state;
  }

  /** @returns {{epoch: string, seq: number}|null} the resume position (null before the first acknowledgement) */
  get position() {
    return this.#position;
  }

  /** @returns {number} seq of the last event handed to the handler (0 before any) */
  get lastSeq() {
    return this.#lastSeq;
  }

  /** Ends the subscription: its handler is never called again. Idempotent. */
  unsubscribe() {
    this.#client?._unsubscribe(this);
  }

  /**
   * @internal waiting -> subscribing: the client sends the returned sub frame
   * as request reqId on the open connection; null (send nothing) in any other
   * state. With a position the frame resumes from it (after), carrying the
   * subscription's intent as `fallback`; without one it carries the intent.
   * @param {string} reqId
   * @returns {object|null}
   */
  _sent(reqId) {
    if (this.#state !== "waiting") return null;
    this.#state = "subscribing";
    this.#reqId = reqId;
    this.#buffer = [];
    const frame = { op: "sub", id: reqId, sub: this.id, pattern: this.pattern };
    const p = this.#position;
    if (p) {
      frame.after = p.epoch ? { epoch: p.epoch, seq: p.seq } : { seq: p.seq };
      if (this.#fallback) frame.fallback = { ...this.#fallback };
    } else if (this.#intent) Object.assign(frame, this.#intent);
    if (this.#conflate) frame.conflate = true;
    return frame;
  }

  /**
   * @internal subscribing -> live on the server's `subscribed` answer. The
   * client emits `gap` when it is not null, then runs each event of `replay`
   * (those buffered meanwhile) through _receive, in order. Null when the
   * answer is not the one awaited (nothing changed).
   * @param {{id?: unknown, epoch?: unknown, from?: unknown, recovered?: unknown, reason?: unknown, missing?: any, replayed?: unknown, until?: unknown}} msg
   * @param {string|null} epoch the connection's epoch (from hello), used when msg names none
   * @returns {{gap: GapInfo|null, replay: object[]}|null}
   */
  _acknowledged(msg, epoch) {
    if (this.#state !== "subscribing" || msg.id !== this.#reqId) return null;
    const ep = typeof msg.epoch === "string" ? msg.epoch : epoch;
    const from = isSeq(msg.from) ? msg.from : 0;
    const prev = this.#position;
    const reset = !!(prev && prev.epoch && prev.epoch !== ep); // a new sequence space: a server restart
    const lost = msg.recovered === false || reset;
    const keep = prev && !reset && prev.seq > from; // never move backwards within an epoch
    this.#position = { epoch: ep, seq: keep ? prev.seq : from };
    this.#state = "live";
    this.#reqId = null;
    const replay = this.#buffer;
    this.#buffer = [];
    this.#settle(null, { recovered: !lost });
    this.#aim(msg, reset);
    return { gap: lost ? this.#gapInfo(msg, prev, reset, from) : null, replay };
  }

  // #gapInfo says what may be missing: the server's reason and range when it
  // sends them, else (an older server) "reset" when the epoch changed and
  // "evicted" otherwise, from the old position to the new one.
  #gapInfo(msg, prev, reset, from) {
    const reason = reset || msg.reason === "reset" ? "reset" : "evicted";
    const m = msg.missing;
    if (m && typeof m === "object" && isSeq(m.after) && isSeq(m.before)) {
      return { pattern: this.pattern, reason, after: m.after, before: m.before };
    }
    const after = prev ? prev.seq : (this.#intent?.after?.seq ?? 0);
    return { pattern: this.pattern, reason, after, before: from + 1 };
  }

  // #aim sets where caughtUp resolves, from an acknowledgement's `until` (the
  // seq of the last event it replays; 0, or absent from an older server:
  // nothing to wait for). A resumed acknowledgement while still pending
  // continues the same replay within an epoch (the nearer of the two ends
  // wins: what the first announced, or what the server still has); after a
  // new epoch only the new announcement means anything.
  #aim(msg, reset) {
    if (!this.#settleCaughtUp) return;
    const until = isSeq(msg.until) && msg.replayed !== 0 ? msg.until : 0;
    if (until === 0) {
      this.#caughtUp();
      return;
    }
    this.#target = this.#target === undefined || reset ? until : Math.min(this.#target, until);
    if (this.#position && this.#position.seq >= this.#target) this.#caughtUp();
  }

  /**
   * @internal what to do with a wire event the server sent for this
   * subscription: "deliver" (hand `event` to the handler after emitting
   * `error`, if any; the position has moved to it), "buffer" (kept until the
   * acknowledgement) or "drop" (seen already, or not live).
   * @param {{seq: number, topic?: string, time?: string, data?: any, error?: string, skipped?: number}} ev
   * @returns {Reception}
   */
  _receive(ev) {
    if (this.#state === "subscribing") {
      this.#buffer.push(ev);
      return BUFFER;
    }
    const p = this.#position;
    if (this.#state !== "live" || !p || ev.seq <= p.seq) return DROP;
    this.#position = { epoch: p.epoch, seq: ev.seq };
    this.#lastSeq = ev.seq;
    const event = toEvent(ev);
    if (Number.isSafeInteger(ev.skipped) && ev.skipped > 0) event.skipped = ev.skipped;
    const error =
      typeof ev.error === "string" ? new WhalesongError("codec", `event ${ev.seq} on ${ev.topic}: ${ev.error}`, { pattern: this.pattern }) : null;
    // Resolving now is the same as after the handler: it runs synchronously
    // next, and promise reactions only after it.
    if (this.#target !== undefined && ev.seq >= this.#target) this.#caughtUp();
    return { action: "deliver", event, error };
  }

  /** @internal the connection dropped: subscribing, live -> waiting. */
  _dropped() {
    if (this.#state !== "subscribing" && this.#state !== "live") return;
    this.#state = "waiting";
    this.#reqId = null;
    this.#buffer = [];
  }

  /**
   * @internal any -> ended, with err (its pattern set) as the reason. cause
   * "unsubscribed" (the user), "closed" (the client), "refused" (the server
   * refused the sub frame or ended the subscription). `ready`, when still
   * pending, rejects with err and that is the whole report; otherwise a
   * refusal is reported as an "error" event. `caughtUp`, when still pending,
   * rejects with err too. The client sends an unsub frame when `unsub` (the
   * server has or may get the subscription). Null when already ended
   * (nothing to do).
   * @param {"unsubscribed"|"closed"|"refused"} cause
   * @param {WhalesongError} err
   * @returns {{unsub: boolean, error: WhalesongError|null}|null}
   */
  _ended(cause, err) {
    if (this.#state === "ended") return null;
    const onConnection = this.#state === "subscribing" || this.#state === "live";
    this.#state = "ended";
    this.#reqId = null;
    this.#buffer = [];
    Object.assign(err, { pattern: this.pattern });
    const readyPending = this.#settleReady !== null;
    this.#settle(err);
    const settle = this.#settleCaughtUp;
    this.#settleCaughtUp = null;
    this.#target = undefined;
    settle?.(err);
    return {
      unsub: cause === "unsubscribed" && onConnection,
      error: cause === "refused" && !readyPending ? err : null,
    };
  }

  /**
   * @param {Error|null} err
   * @param {{recovered: boolean}} [value]
   */
  #settle(err, value) {
    const settle = this.#settleReady;
    if (!settle) return;
    this.#settleReady = null;
    settle(err, value);
  }

  #caughtUp() {
    const settle = this.#settleCaughtUp;
    this.#settleCaughtUp = null;
    this.#target = undefined;
    settle?.(null);
  }
}

// PublishQueue holds the publishes waiting for the server's answer, in call
// order: queued while offline, sent with at most maxInFlight unanswered (one
// while careful), each resent with the same id after a drop or a retry-later
// refusal, so that the server's dedup lands it once. Careful mode starts with
// a refusal (rate_limited, unavailable): publishing pauses for a backoff that
// grows with each refusal (up to 4 x rateLimitDelay: each cycle then costs one
// unit of the server's malformed-frame budget per several seconds while using
// most of the allowed rate), and one publish at a time goes out until
// rateLimitQuiet passes without a refusal.
class PublishQueue {
  #o;
  #send;
  #newId;
  #random;
  #timers;
  /** @type {Map<string, {id: string, topic: string, frame: string, sent: boolean, resolve: (seq: number) => void, reject: (err: Error) => void}>} */
  #entries = new Map(); // publish id -> entry, in call order
  #inFlight = 0; // entries sent on this connection and not yet answered
  #refusals = 0; // retry-later refusals since the last quiet period; > 0 is careful mode

  /**
   * @param {{maxQueue: number, maxInFlight: number, rateLimitDelay: number, rateLimitQuiet: number, maxDelay: number}} o
   * @param {{send: (frame: string) => boolean, newId: () => string, random: () => number, timers: Timers}} io
   *   send returns false when nothing could be sent (not open, or the socket failed)
   */
  constructor(o, io) {
    this.#o = o;
    this.#send = io.send;
    this.#newId = io.newId;
    this.#random = io.random;
    this.#timers = io.timers;
  }

  /** @returns {number} publishes waiting for an answer (queued or in flight) */
  get size() {
    return this.#entries.size;
  }

  /**
   * Queues a publish and sends what the window allows.
   * @param {string} topic
   * @param {any} data
   * @returns {Promise<number>}
   */
  add(topic, data) {
    if (this.#entries.size >= this.#o.maxQueue) {
      return Promise.reject(new WhalesongError("queue_full", `${this.#entries.size} publishes already wait for an answer`, { topic }));
    }
    const id = this.#newId();
    let frame;
    try {
      frame = JSON.stringify({ op: "pub", id, topic, data: data === undefined ? null : data });
    } catch (e) {
      return Promise.reject(new WhalesongError("invalid_data", `data cannot be encoded as JSON: ${e && e.message}`, { topic }));
    }
    return new Promise((resolve, reject) => {
      this.#entries.set(id, { id, topic, frame, sent: false, resolve, reject });
      this.flush();
    });
  }

  /** Sends unsent publishes in call order while the window has room and no pause runs. */
  flush() {
    if (this.#timers.has("pause")) return;
    const limit = this.#refusals > 0 ? 1 : Math.max(1, this.#o.maxInFlight);
    for (const p of this.#entries.values()) {
      if (this.#inFlight >= limit) return;
      if (p.sent) continue;
      if (!this.#send(p.frame)) return;
      p.sent = true;
      this.#inFlight++;
    }
  }

  /**
   * The server published it: resolve. False when the id is not (or no longer) queued.
   * @param {unknown} id
   * @param {number} seq
   */
  answered(id, seq) {
    const p = typeof id === "string" ? this.#entries.get(id) : undefined;
    if (!p) return false;
    this.#entries.delete(p.id);
    if (p.sent) this.#inFlight--;
    p.resolve(seq);
    this.flush();
    return true;
  }

  /**
   * The server refused it: a retry-later code keeps it in its place and
   * pauses; any other code rejects it. False when the id is not queued.
   * @param {unknown} id
   * @param {WhalesongError} err
   */
  refused(id, err) {
    const p = typeof id === "string" ? this.#entries.get(id) : undefined;
    if (!p) return false;
    if (p.sent) this.#inFlight--;
    p.sent = false;
    if (err.code === "rate_limited" || err.code === "unavailable") {
      this.#pause();
      return true;
    }
    this.#entries.delete(p.id);
    p.reject(Object.assign(err, { topic: p.topic }));
    this.flush();
    return true;
  }

  /** The connection dropped: everything goes again, with the same ids, after the next hello. */
  dropped() {
    this.#timers.stop("pause");
    for (const p of this.#entries.values()) p.sent = false;
    this.#inFlight = 0;
  }

  /**
   * Every publish rejects with an error made by makeErr (closed, kicked);
   * the queue is empty afterwards and usable again.
   * @param {() => WhalesongError} makeErr
   */
  rejectAll(makeErr) {
    this.#timers.stopAll();
    const all = [...this.#entries.values()];
    this.#entries.clear();
    this.#inFlight = 0;
    for (const p of all) p.reject(Object.assign(makeErr(), { topic: p.topic }));
  }

  #pause() {
    this.#timers.start("quiet", this.#o.rateLimitQuiet, () => {
      this.#refusals = 0;
      this.flush();
    });
    if (this.#timers.has("pause")) return;
    const d = this.#o.rateLimitDelay;
    const o = { ...this.#o, initialDelay: d, minDelay: d / 2, maxDelay: Math.min(this.#o.maxDelay, 4 * d) };
    const delay = backoffDelay(this.#refusals++, o, this.#random);
    this.#timers.start("pause", delay, () => this.flush());
  }
}

// HistoryRequests holds the history pages asked for and not yet answered, in
// call order: sent while open, kept while offline and sent again (reads are
// idempotent) after the next hello. A request whose `before` was given while
// the client knew an epoch is bound to it: `before` is a seq of that
// sequence space, so on a connection with another epoch (the server
// restarted) it rejects with code epoch_changed instead of reading a page of
// the new one.
class HistoryRequests {
  #max;
  #send;
  #newId;
  /** @type {Map<string, {id: string, pattern: string, frame: object, epoch: string|null, sent: boolean, resolve: (page: object) => void, reject: (err: Error) => void}>} */
  #entries = new Map(); // request id -> entry, in call order

  /**
   * @param {{max: number, send: (frame: object) => boolean, newId: () => string}} io
   */
  constructor(io) {
    this.#max = io.max;
    this.#send = io.send;
    this.#newId = io.newId;
  }

  /**
   * @param {{pattern: string, before?: number, limit?: number}} q
   * @param {string|null} epoch the sequence space `before` belongs to (null: unbound)
   * @param {string|null} connEpoch the open connection's epoch, or null when not open
   * @returns {Promise<{events: object[], more: boolean, epoch: string|null}>}
   */
  add(q, epoch, connEpoch) {
    if (this.#entries.size >= this.#max) {
      return Promise.reject(new WhalesongError("queue_full", `${this.#entries.size} history requests already wait for an answer`, { pattern: q.pattern }));
    }
    const id = this.#newId();
    const frame = { op: "history", id, pattern: q.pattern };
    if (q.before !== undefined) frame.before = q.before;
    if (q.limit !== undefined) frame.limit = q.limit;
    return new Promise((resolve, reject) => {
      this.#entries.set(id, { id, pattern: q.pattern, frame, epoch, sent: false, resolve, reject });
      this.flush(connEpoch);
    });
  }

  /**
   * Sends the unsent requests, on an open connection whose epoch is connEpoch.
   * @param {string|null} connEpoch
   */
  flush(connEpoch) {
    for (const r of [...this.#entries.values()]) {
      if (r.sent) continue;
      if (r.epoch && connEpoch && r.epoch !== connEpoch) {
        this.#entries.delete(r.id);
        r.reject(new WhalesongError("epoch_changed", "the server's sequence space changed since before was read: read a first page again", { pattern: r.pattern }));
        continue;
      }
      if (!this.#send(r.frame)) return;
      r.sent = true;
    }
  }

  /**
   * The server's page: resolve. False when the id is not (or no longer) pending.
   * @param {{id?: unknown, events?: unknown, more?: unknown, epoch?: unknown}} msg
   */
  answered(msg) {
    const r = typeof msg.id === "string" ? this.#entries.get(msg.id) : undefined;
    if (!r) return false;
    this.#entries.delete(r.id);
    const wire = msg.events;
    if (!Array.isArray(wire) || !wire.every((e) => e && typeof e === "object" && Number.isFinite(e.seq))) {
      r.reject(new WhalesongError("bad_frame", "page frame without a well-formed events array", { pattern: r.pattern }));
      return true;
    }
    r.resolve({ events: wire.map(toEvent), more: msg.more === true, epoch: typeof msg.epoch === "string" ? msg.epoch : null });
    return true;
  }

  /**
   * The server refused it (forbidden, invalid_pattern, bad_frame, ...):
   * reject. False when the id is not pending.
   * @param {unknown} id
   * @param {WhalesongError} err
   */
  refused(id, err) {
    const r = typeof id === "string" ? this.#entries.get(id) : undefined;
    if (!r) return false;
    this.#entries.delete(r.id);
    r.reject(Object.assign(err, { pattern: r.pattern }));
    return true;
  }

  /** The connection dropped: unanswered requests go again after the next hello. */
  dropped() {
    for (const r of this.#entries.values()) r.sent = false;
  }

  /** @param {() => WhalesongError} makeErr */
  rejectAll(makeErr) {
    const all = [...this.#entries.values()];
    this.#entries.clear();
    for (const r of all) r.reject(Object.assign(makeErr(), { pattern: r.pattern }));
  }
}

const emptyListeners = () => ({ state: new Set(), gap: new Set(), error: new Set() });

/**
 * A connection to a whalesong bridge that survives drops. Made by connect().
 *
 * The socket's life (#phase):
 *
 *   "dialing"  an attempt runs: the url function is awaited, or a socket is
 *              being opened; it has not said hello
 *   "open"     hello received: subscriptions, publishes and history requests go out
 *   "probing"  a handshake failed before hello: the probe asks the server why
 *   "waiting"  no socket; the retry timer will dial again
 *   "halted"   kicked (close code 4003): no socket, no timer; reconnect() dials
 *   "closed"   close() was called; final
 *
 *   dialing --hello--> open
 *   dialing --handshake failed (1006)--> probing --verdict--> waiting
 *   dialing, open --close event, error before hello, timeout, failed send--> waiting --retry--> dialing
 *   open --4003--> halted --reconnect()--> waiting
 *   waiting --reconnect()--> dialing (or the retry timer set to the floor)
 *   any --close()--> closed
 *
 * The reported state is "connecting" for dialing, probing and waiting,
 * "closed" for halted and closed.
 *
 * The floor: no attempt starts less than max(minDelay, 100 ms) after the
 * previous one started, whatever asks for it (reconnect(), close code 4002);
 * a reconnect() within the floor moves the retry to the floor's end. So a
 * listener that calls reconnect() on every "connecting" makes at most one
 * attempt per floor, never a tight loop, and never recurses.
 */
export class Client {
  #url = null; // the URL string, or null when #urlFn gives it
  #urlFn = null; // the url function, or null
  #attemptURL = null; // the URL the current attempt dialed
  #token = 0; // counts attempts: an answer of an earlier one (url function, probe) is stale
  #attemptStart = 0; // #now() when the current attempt started
  #o; // options merged with DEFAULTS
  #WS;
  #random;
  #now;
  #fetch;
  #crypto;
  #storage = null;
  #timers; // retry, healthy, connect, probe, ping, pong
  #retryTicket = 0; // counts retry timers started, so a report can tell its own from a newer one
  #probeAbort = null; // aborts the probe's fetch, while probing
  #pubs; // the PublishQueue
  #reads; // the HistoryRequests
  #ws = null; // the current socket while dialing or open
  /** @type {"dialing"|"open"|"probing"|"waiting"|"halted"|"closed"} */
  #phase = "dialing";
  #state = /** @type {"connecting"|"open"|"closed"} */ ("connecting"); // the state last reported
  #epoch = null;
  #attempt = 0; // failed attempts since the last healthy connection
  #listeners = emptyListeners();
  #early = []; // events emitted inside the constructor, delivered once listeners could attach; null after
  #constructing = true;
  #subs = new Map(); // subscription id -> Subscription not ended, in creation order
  #requests = new Map(); // request id -> {sub} (a sub frame) or {unsub} on this connection
  #seq = 0; // counter for request and subscription ids
  #dirty = new Set(); // subscriptions whose position is to be stored

  /**
   * @param {string|URL|(() => string|URL|Promise<string|URL>)} url
   * @param {object} options ConnectOptions (whalesong.d.ts)
   */
  constructor(url, options = {}) {
    if (typeof url === "function") this.#urlFn = url;
    else this.#url = checkURL(url);
    this.#o = { ...DEFAULTS };
    for (const [k, v] of Object.entries(options)) if (v !== undefined) this.#o[k] = v;
    this.#WS = options.WebSocket || globalThis.WebSocket;
    const set = options.setTimeout || ((fn, ms) => setTimeout(fn, ms));
    const clear = options.clearTimeout || ((t) => clearTimeout(t));
    this.#random = options.random || Math.random;
    this.#now = options.now || (() => Date.now());
    this.#fetch = pickFetch(options.fetch);
    this.#crypto = options.crypto || globalThis.crypto;
    this.#storage = pickStorage(options.storage);
    if (typeof this.#WS !== "function") {
      throw new TypeError("whalesong: no WebSocket constructor (pass options.WebSocket, or use Node 22 / --experimental-websocket)");
    }
    this.#timers = new Timers(set, clear);
    this.#pubs = new PublishQueue(this.#o, {
      send: (frame) => this.#send(frame),
      newId: () => uuidv4(this.#crypto),
      random: this.#random,
      timers: new Timers(set, clear),
    });
    this.#reads = new HistoryRequests({
      max: this.#o.maxQueue,
      send: (frame) => this.#send(frame),
      newId: () => `r${++this.#seq}`,
    });
    this.#dial();
    this.#constructing = false;
    if (this.#early.length > 0) Promise.resolve().then(() => this.#drainEarly());
    else this.#early = null;
  }

  /** @returns {"connecting"|"open"|"closed"} the current connection state */
  get state() {
    return this.#state;
  }

  /** @returns {string|null} the server's epoch from its last hello (null before any) */
  get epoch() {
    return this.#epoch;
  }

  /** @returns {number} publishes waiting for the server's answer (queued or in flight) */
  get pending() {
    return this.#pubs.size;
  }

  /**
   * Listens to "state" (state, detail), "gap" (GapInfo) or "error" (err).
   * @param {"state"|"gap"|"error"} name
   * @param {Function} fn
   * @returns {() => void} call it to stop listening
   */
  on(name, fn) {
    const set = this.#listeners[name];
    if (!set) throw new TypeError(`whalesong: unknown event ${JSON.stringify(name)}`);
    if (typeof fn !== "function") throw new TypeError("whalesong: listener must be a function");
    set.add(fn);
    return () => set.delete(fn);
  }

  /**
   * Stops a listener added with on().
   * @param {"state"|"gap"|"error"} name
   * @param {Function} fn
   */
  off(name, fn) {
    this.#listeners[name]?.delete(fn);
  }

  /**
   * Subscribes to a pattern (NATS subject syntax: `*` one token, `>` the rest).
   * @param {string} pattern e.g. "chat.>"
   * @param {(event: {topic: string, seq: number, time: Date|null, data: any, skipped?: number}) => void} handler
   * @param {{after?: number|{epoch?: string, seq: number}, last?: number, since?: Date|string|number, latest?: boolean, conflate?: boolean}} [opts]
   *   at most one of after, last, since, latest (without one the subscription
   *   starts live); conflate with any of them
   * @returns {Subscription}
   */
  subscribe(pattern, handler, opts = {}) {
    if (typeof pattern !== "string" || pattern === "") throw new TypeError("whalesong: pattern must be a non-empty string");
    if (typeof handler !== "function") throw new TypeError("whalesong: handler must be a function");
    const { intent, fallback, position, conflate } = subscribeOptions(opts);
    const key = this.#storageKey(pattern);
    const sub = new Subscription({
      client: this,
      id: `s${++this.#seq}`,
      pattern,
      key,
      handler,
      intent,
      fallback,
      conflate,
      position: this.#loadPosition(key) || position,
    });
    if (this.#phase === "closed") {
      sub._ended("closed", new WhalesongError("closed", "the client is closed"));
      return sub;
    }
    this.#subs.set(sub.id, sub);
    this.#sendSub(sub);
    return sub;
  }

  /**
   * Publishes data (anything JSON can encode) to a topic. Queued while
   * offline; resent with the same id after a reconnect; lands once.
   * @param {string} topic e.g. "chat.lobby"
   * @param {any} data
   * @returns {Promise<number>} the event's seq; rejects with a WhalesongError whose code is the server's
   */
  publish(topic, data) {
    if (this.#phase === "closed") return Promise.reject(new WhalesongError("closed", "the client is closed", { topic }));
    if (this.#phase === "halted") return Promise.reject(kickedError("", { topic }));
    if (typeof topic !== "string") return Promise.reject(new WhalesongError("invalid_topic", "topic must be a string", { topic }));
    return this.#pubs.add(topic, data);
  }

  /**
   * Reads a page of older retained events of a pattern: those with seq <
   * before (default: past the newest), the newest `limit` (default 50) of
   * them, oldest first. Sent when open, kept while offline.
   * @param {string} pattern
   * @param {{before?: number, limit?: number}} [opts]
   * @returns {Promise<{events: object[], more: boolean, epoch: string|null}>}
   * @throws {TypeError} on bad arguments
   */
  history(pattern, opts = {}) {
    if (typeof pattern !== "string" || pattern === "") throw new TypeError("whalesong: pattern must be a non-empty string");
    const o = opts ?? {};
    if (typeof o !== "object") throw new TypeError("whalesong: history options must be an object");
    const { before, limit } = o;
    if (before !== undefined && !(Number.isSafeInteger(before) && before >= 1)) throw new TypeError("whalesong: before must be a seq >= 1");
    if (limit !== undefined && !(Number.isInteger(limit) && limit >= 1 && limit <= MAX_HISTORY_LIMIT)) {
      throw new TypeError(`whalesong: limit must be an integer from 1 to ${MAX_HISTORY_LIMIT}`);
    }
    if (this.#phase === "closed") return Promise.reject(new WhalesongError("closed", "the client is closed", { pattern }));
    if (this.#phase === "halted") return Promise.reject(kickedError("", { pattern }));
    const bound = before !== undefined ? this.#epoch : null;
    return this.#reads.add({ pattern, before, limit }, bound, this.#phase === "open" ? this.#epoch : null);
  }

  /**
   * Connects now: ends the wait of the backoff (state "connecting" between
   * attempts), or connects again after a kick. No effect while open, while
   * an attempt (or its probe) is in flight, and after close(). Within the
   * floor after the previous attempt's start it dials at the floor's end.
   */
  reconnect() {
    const was = this.#phase;
    if (was !== "waiting" && was !== "halted") return;
    this.#phase = "waiting";
    const wait = this.#floorWait();
    if (wait > 0) this.#startRetry(wait);
    else this.#dial();
    if (was === "halted" && this.#phase !== "closed") this.#setState("connecting");
  }

  /**
   * Closes the client for good: no reconnect, pending publishes and history
   * requests reject with code "closed", the state becomes "closed". Stored
   * positions are kept so a reload resumes. Idempotent.
   */
  close() {
    if (this.#phase === "closed") return;
    this.#phase = "closed";
    this.#timers.stopAll();
    this.#stopProbe();
    const ws = this.#ws;
    this.#ws = null;
    if (ws) safeClose(ws, 1000, "client closed");
    this.#flushStorage();
    this.#pubs.rejectAll(() => new WhalesongError("closed", "the client was closed before the server answered"));
    this.#reads.rejectAll(() => new WhalesongError("closed", "the client was closed before the server answered"));
    for (const sub of this.#subs.values()) sub._ended("closed", new WhalesongError("closed", "the client was closed"));
    this.#subs.clear();
    this.#requests.clear();
    this.#setState("closed");
  }

  // ---- connection lifecycle ----

  // #dial starts an attempt: the url function (when there is one), then the
  // socket. The connect timeout covers both.
  #dial() {
    if (this.#phase === "closed") return;
    this.#timers.stop("retry");
    this.#phase = "dialing";
    this.#ws = null;
    this.#attemptURL = null;
    const token = ++this.#token;
    this.#attemptStart = this.#now();
    this.#timers.start("connect", this.#o.connectTimeout, () => this.#connectTimedOut(token));
    if (!this.#urlFn) {
      this.#open(this.#url);
      return;
    }
    let got;
    try {
      got = this.#urlFn();
    } catch (e) {
      this.#attemptFailed(`the url function threw: ${errText(e)}`);
      return;
    }
    if (!got || typeof got.then !== "function") {
      this.#open(got);
      return;
    }
    Promise.resolve(got).then(
      (u) => {
        if (this.#resolving(token)) this.#open(u);
      },
      (e) => {
        if (this.#resolving(token)) this.#attemptFailed(`the url function rejected: ${errText(e)}`);
      },
    );
  }

  // #resolving tells whether attempt `token` still waits for its url function.
  #resolving(token) {
    return this.#phase === "dialing" && this.#token === token && this.#ws === null;
  }

  #connectTimedOut(token) {
    if (this.#ws) this.#abandon(this.#ws, "connect timeout", false);
    else if (this.#resolving(token)) this.#attemptFailed("the url function did not settle within connectTimeout");
  }

  // #open opens the attempt's socket on raw, which must be a ws: or wss: URL.
  #open(raw) {
    let url;
    try {
      url = checkURL(raw);
    } catch (e) {
      this.#attemptFailed(`the url function gave a bad URL: ${errText(e)}`);
      return;
    }
    this.#attemptURL = url;
    let ws;
    try {
      ws = new this.#WS(url);
    } catch (e) {
      this.#attemptFailed(errText(e));
      return;
    }
    this.#ws = ws;
    ws.onmessage = (ev) => {
      if (this.#ws === ws) this.#onFrame(ev.data);
    };
    ws.onclose = (ev) => {
      if (this.#ws === ws) this.#onDrop(ev.code, ev.reason || "", true);
    };
    // A close event follows every error, except in Node 20 on a refused
    // handshake (a non-101 answer, a refused port), where none ever comes: an
    // attempt that has not said hello ends at its error, and the close that
    // may follow finds the socket detached.
    ws.onerror = () => {
      if (this.#ws === ws && this.#phase === "dialing") this.#abandon(ws, "connection failed", true);
    };
  }

  // #attemptFailed ends an attempt that opened no socket (the url function
  // failed, a bad URL, a throwing WebSocket constructor): connect_failed.
  #attemptFailed(message) {
    this.#timers.stop("connect");
    this.#wait(0, message, "backoff", new WhalesongError("connect_failed", message));
  }

  // #abandon gives up on a socket that failed or stopped answering without
  // waiting for its closing handshake (which a dead network never completes).
  #abandon(ws, reason, probe) {
    if (this.#ws !== ws) return;
    safeClose(ws, 1000, reason);
    this.#onDrop(1006, reason, probe);
  }

  // #onDrop ends the socket's life: everything on it is dropped, and the
  // close code says what comes next. probe: a 1006 before hello may be a
  // refused handshake (not set for timeouts).
  #onDrop(code, reason, probe) {
    const beforeHello = this.#phase === "dialing";
    this.#ws = null;
    if (this.#phase === "closed") return;
    this.#phase = "waiting"; // first: from here on nothing is sent, whatever user code runs
    for (const k of ["healthy", "connect", "ping", "pong"]) this.#timers.stop(k);
    this.#requests.clear();
    for (const sub of this.#subs.values()) sub._dropped();
    this.#pubs.dropped();
    this.#reads.dropped();
    this.#flushStorage();
    switch (code) {
      case 4003:
        this.#kicked(reason);
        return;
      case 4002: // credentials expired: fresh ones (the url function) and at once
        this.#wait(code, reason, "now");
        return;
      case 4001:
        this.#wait(code, reason, "abuse", new WhalesongError("abuse", `the server cut the connection for abuse: ${reason}`));
        return;
      case 4000: // resume needed: the connection itself was fine; come back promptly
        this.#wait(code, reason, "prompt");
        return;
      default:
        if (probe && beforeHello && code === 1006 && this.#fetch) this.#probe(code, reason);
        else this.#wait(code, reason, "backoff"); // 1001, 1013 and the rest
    }
  }

  // #wait schedules the next attempt after a failure: the retry timer first,
  // then the error (if any), then the state with its detail, unless a
  // listener closed the client or called reconnect() meanwhile.
  #wait(code, reason, kind, err) {
    this.#phase = "waiting";
    const delay = this.#delay(kind);
    const ticket = this.#startRetry(delay);
    if (err) this.#emitError(err);
    if (this.#phase !== "waiting" || this.#retryTicket !== ticket) return;
    this.#setState("connecting", { code, reason, retryIn: delay }); // last: a listener may close() or reconnect()
  }

  /** @param {"backoff"|"prompt"|"abuse"|"now"} kind */
  #delay(kind) {
    switch (kind) {
      case "prompt":
        this.#attempt = 0;
        return backoffDelay(0, this.#o, this.#random);
      case "abuse":
        this.#attempt++;
        return this.#o.abuseDelay * (1 + this.#random());
      case "now":
        return this.#floorWait();
      default:
        return backoffDelay(this.#attempt++, this.#o, this.#random);
    }
  }

  #startRetry(delay) {
    this.#timers.start("retry", delay, () => this.#dial());
    return ++this.#retryTicket;
  }

  // #floorWait is how long until the floor after the current attempt's start
  // has passed: 0 to floor, whatever the clock does.
  #floorWait() {
    const floor = Math.max(ABSOLUTE_MIN_DELAY, this.#o.minDelay);
    const left = this.#attemptStart + floor - this.#now();
    return Number.isFinite(left) ? Math.min(floor, Math.max(0, left)) : floor;
  }

  // #probe asks the server why the handshake failed (PROTOCOL.md "Refusals
  // a browser can see"): a plain GET of the attempt's URL with http(s):, with
  // the page's credentials and no cache. 401, 403 and 404 are refusals:
  // `error` with their code, then the long abuseDelay. Anything else, a
  // network error or no answer within connectTimeout is an ordinary failure.
  #probe(code, reason) {
    this.#phase = "probing";
    const token = this.#token;
    const ac = typeof AbortController === "function" ? new AbortController() : null;
    this.#probeAbort = ac;
    const verdict = (status) => {
      if (this.#phase !== "probing" || this.#token !== token) return;
      this.#stopProbe();
      const r = REFUSALS[status];
      if (!r) {
        this.#wait(code, reason, "backoff");
        return;
      }
      const err = new WhalesongError(r.code, `the server refused the connection: HTTP ${status}, ${r.why}`, { status });
      this.#wait(code, reason, "abuse", err);
    };
    this.#timers.start("probe", this.#o.connectTimeout, () => verdict(0));
    let answer;
    try {
      const url = probeURL(this.#attemptURL);
      answer = this.#fetch(url, { method: "GET", credentials: "include", cache: "no-store", redirect: "manual", signal: ac?.signal });
    } catch (e) {
      answer = Promise.reject(e);
    }
    Promise.resolve(answer).then(
      (res) => {
        discardBody(res);
        verdict(res && typeof res.status === "number" ? res.status : 0);
      },
      () => verdict(0),
    );
  }

  #stopProbe() {
    this.#timers.stop("probe");
    const ac = this.#probeAbort;
    this.#probeAbort = null;
    quietly(() => ac?.abort()); // a fetch still running is cancelled; an answered one is unaffected
  }

  // #kicked: close code 4003. State "closed" until reconnect(); the
  // subscriptions wait to resume then, publishes and history requests reject.
  #kicked(reason) {
    this.#phase = "halted";
    this.#pubs.rejectAll(() => kickedError(reason));
    this.#reads.rejectAll(() => kickedError(reason));
    this.#emitError(kickedError(reason));
    if (this.#phase === "halted") this.#setState("closed"); // unless a listener reconnected or closed
  }

  #onHello(msg) {
    this.#timers.stop("connect");
    this.#phase = "open";
    if (typeof msg.epoch === "string") this.#epoch = msg.epoch;
    if (msg.v !== undefined && msg.v !== PROTOCOL_VERSION) {
      this.#emitError(new WhalesongError("version", `server speaks protocol v${msg.v}, client v${PROTOCOL_VERSION}`));
      if (this.#phase !== "open") return; // a listener closed the client
    }
    this.#timers.start("healthy", this.#o.healthyAfter, () => {
      this.#attempt = 0;
    });
    this.#schedulePing();
    for (const sub of this.#subs.values()) this.#sendSub(sub);
    this.#pubs.flush();
    this.#reads.flush(this.#epoch);
    this.#setState("open"); // last: a listener may subscribe, publish or close
  }

  #schedulePing() {
    if (!(this.#o.pingInterval > 0)) return;
    this.#timers.start("ping", this.#o.pingInterval, () => {
      const ws = this.#ws;
      if (!this.#send({ op: "ping", id: `r${++this.#seq}` })) return; // dropped: the next hello pings again
      this.#timers.start("pong", this.#o.pingTimeout, () => this.#abandon(ws, "ping timeout", false));
      this.#schedulePing();
    });
  }

  // ---- frames from the server ----

  #onFrame(raw) {
    this.#timers.stop("pong"); // any frame proves the connection alive
    let msg;
    try {
      if (typeof raw !== "string") throw new Error("binary frame");
      msg = JSON.parse(raw);
      if (!msg || typeof msg !== "object" || typeof msg.op !== "string") throw new Error("no op");
    } catch (e) {
      this.#emitError(new WhalesongError("bad_frame", `unreadable frame from the server: ${e.message}`));
      return;
    }
    if (this.#phase !== "open" && msg.op !== "hello") return; // nothing precedes hello
    switch (msg.op) {
      case "hello":
        if (this.#phase === "dialing") this.#onHello(msg);
        break;
      case "subscribed":
        this.#onSubscribed(msg);
        break;
      case "events":
        this.#onEvents(msg);
        break;
      case "published":
        this.#pubs.answered(msg.id, msg.seq);
        break;
      case "page":
        this.#reads.answered(msg);
        break;
      case "unsubscribed":
        if (this.#requests.get(msg.id)?.unsub) this.#requests.delete(msg.id);
        break;
      case "error":
        this.#onError(msg);
        break;
      default: // pong, and ops of later versions need nothing
    }
    this.#flushStorage();
  }

  #onSubscribed(msg) {
    const req = this.#requests.get(msg.id);
    if (!req || !req.sub) return;
    this.#requests.delete(msg.id);
    const sub = req.sub;
    const r = sub._acknowledged(msg, this.#epoch);
    if (!r) return;
    this.#dirty.add(sub);
    if (r.gap) this.#emit("gap", r.gap);
    for (const ev of r.replay) this.#receive(sub, ev);
  }

  #onEvents(msg) {
    if (!Array.isArray(msg.events)) {
      this.#emitError(new WhalesongError("bad_frame", "events frame without an events array"));
      return;
    }
    for (const ev of msg.events) {
      if (this.#phase === "closed") return;
      if (!ev || !Array.isArray(ev.subs) || !Number.isFinite(ev.seq)) {
        this.#emitError(new WhalesongError("bad_frame", "malformed event"));
        continue;
      }
      for (const sid of ev.subs) {
        const sub = this.#subs.get(sid);
        if (sub) this.#receive(sub, ev); // none: unsubscribed meanwhile
      }
    }
  }

  // #receive runs one wire event through the subscription and hands it to
  // the handler when the subscription says so.
  #receive(sub, ev) {
    const r = sub._receive(ev);
    if (r.action !== "deliver") return;
    this.#dirty.add(sub);
    if (r.error) this.#emitError(r.error);
    try {
      sub.handler(r.event);
    } catch (e) {
      this.#emitError(new WhalesongError("handler", `handler of ${sub.pattern} threw: ${e && e.message}`, { pattern: sub.pattern, cause: e }));
    }
  }

  // #onError routes an error frame: to the publish, history request or sub
  // frame it answers (by id), to the subscription the server ended by itself
  // (sub and no id), else to the "error" listeners.
  #onError(msg) {
    const code = typeof msg.code === "string" ? msg.code : "internal";
    const err = new WhalesongError(code, typeof msg.message === "string" ? msg.message : code);
    if (msg.id !== undefined && (this.#pubs.refused(msg.id, err) || this.#reads.refused(msg.id, err))) return;
    const req = msg.id !== undefined ? this.#requests.get(msg.id) : undefined;
    if (req) {
      this.#requests.delete(msg.id);
      if (req.sub) this.#endSub(req.sub, err);
      return; // an unsub the server did not know: it is gone either way
    }
    const sub = msg.id === undefined && typeof msg.sub === "string" ? this.#subs.get(msg.sub) : undefined;
    if (sub) this.#endSub(sub, err); // the server ended a subscription (Reauthorize)
    else this.#emitError(err);
  }

  // #endSub ends a subscription the server refused or ended; the
  // subscription says whether that is reported as an "error" (ready has
  // settled) or by rejecting ready alone.
  #endSub(sub, err) {
    const r = sub._ended("refused", err);
    if (!r) return;
    this.#subs.delete(sub.id);
    this.#dirty.delete(sub);
    if (r.error) this.#emitError(r.error);
  }

  // ---- frames to the server ----

  #send(obj) {
    const ws = this.#ws;
    if (!ws || this.#phase !== "open") return false;
    try {
      ws.send(typeof obj === "string" ? obj : JSON.stringify(obj));
      return true;
    } catch (e) {
      this.#abandon(ws, `send failed: ${e && e.message}`, false);
      return false;
    }
  }

  #sendSub(sub) {
    if (this.#phase !== "open") return; // sent after the next hello
    const id = `r${++this.#seq}`;
    const frame = sub._sent(id);
    if (!frame) return;
    this.#requests.set(id, { sub });
    this.#send(frame);
  }

  /** @internal called by Subscription.unsubscribe */
  _unsubscribe(sub) {
    const r = sub._ended("unsubscribed", new WhalesongError("unsubscribed", "unsubscribed before the server acknowledged"));
    if (!r) return;
    this.#subs.delete(sub.id);
    this.#dirty.delete(sub);
    if (this.#storage) quietly(() => this.#storage.removeItem(sub._key));
    if (r.unsub) {
      const id = `r${++this.#seq}`;
      this.#requests.set(id, { unsub: sub });
      this.#send({ op: "unsub", id, sub: sub.id });
    }
  }

  // ---- positions in storage ----

  // #storageKey is where a new subscription of pattern keeps its position:
  // prefix + pattern for the first live one, then prefix + pattern + " 2",
  // " 3"... (a pattern has no space) for more at the same time, the
  // smallest number no live one holds. So two subscriptions of one pattern
  // neither overwrite nor forget each other's position, and a page that
  // makes them in the same order after a reload finds each its own.
  #storageKey(pattern) {
    const taken = new Set();
    for (const s of this.#subs.values()) if (s.pattern === pattern) taken.add(s._key);
    const base = this.#o.storagePrefix + pattern;
    let key = base;
    for (let n = 2; taken.has(key); n++) key = `${base} ${n}`;
    return key;
  }

  #loadPosition(key) {
    if (!this.#storage) return null;
    const raw = quietly(() => this.#storage.getItem(key));
    if (typeof raw !== "string") return null;
    try {
      const p = JSON.parse(raw);
      if (p && typeof p.epoch === "string" && Number.isFinite(p.seq) && p.seq >= 0) return { epoch: p.epoch, seq: p.seq };
    } catch {
      // a corrupt entry is ignored: the subscription starts as asked
    }
    return null;
  }

  #flushStorage() {
    if (this.#dirty.size === 0) return;
    const dirty = [...this.#dirty];
    this.#dirty.clear();
    if (!this.#storage) return;
    for (const sub of dirty) {
      const p = sub.position;
      if (sub.state === "ended" || !p || !p.epoch) continue;
      const value = JSON.stringify({ epoch: p.epoch, seq: p.seq });
      quietly(() => this.#storage.setItem(sub._key, value));
    }
  }

  // ---- small helpers ----

  // #setState reports a change of state, and "connecting" again each time a
  // retry is scheduled (its detail says when).
  /**
   * @param {"connecting"|"open"|"closed"} state
   * @param {object} [detail]
   */
  #setState(state, detail) {
    if (this.#state === state && !detail) return;
    this.#state = state;
    this.#emit("state", state, detail);
  }

  #emitError(err) {
    this.#emit("error", err);
  }

  // #emit calls the listeners of name. Inside the constructor none can be
  // attached yet, so what the first attempt reports there (a url function
  // that throws at once) is held and delivered a microtask later, or before
  // anything emitted sooner, in order.
  #emit(name, ...args) {
    if (this.#early) {
      if (this.#constructing) {
        this.#early.push([name, args]);
        return;
      }
      this.#drainEarly();
    }
    this.#fire(name, args);
  }

  #drainEarly() {
    const early = this.#early;
    this.#early = null;
    for (const [name, args] of early || []) this.#fire(name, args);
  }

  #fire(name, args) {
    for (const fn of [...this.#listeners[name]]) {
      try {
        fn(...args);
      } catch (e) {
        if (name !== "error") this.#emitError(new WhalesongError("handler", `${name} listener threw: ${e && e.message}`, { cause: e }));
      }
    }
  }
}

// kickedError is the error of close code 4003 (Bridge.Kick), with the
// server's reason.
function kickedError(reason, extra) {
  const why = reason ? `: ${reason}` : "";
  return new WhalesongError("kicked", `the server closed this client's connection for good (kicked)${why}; reconnect() connects again`, {
    reason,
    ...extra,
  });
}

// subscribeOptions turns the user's options into the subscription's intent
// (the after/last/since/latest fields of a sub frame without a position), the
// fallback (the intent re-applied when a resume cannot be complete: last,
// since, latest; after has none, its resume replays everything retained), a
// position when after names an epoch, and conflate.
function subscribeOptions(opts) {
  const o = opts ?? {};
  if (typeof o !== "object") throw new TypeError("whalesong: subscribe options must be an object");
  for (const k of ["latest", "conflate"]) {
    if (o[k] !== undefined && typeof o[k] !== "boolean") throw new TypeError(`whalesong: ${k} must be true or false`);
  }
  const conflate = o.conflate === true;
  const given = ["after", "last", "since"].filter((k) => o[k] !== undefined);
  if (o.latest === true) given.push("latest");
  if (given.length > 1) throw new TypeError(`whalesong: give at most one of after, last, since, latest (got ${given.join(", ")})`);
  const none = { intent: null, fallback: null, position: null, conflate };
  if (given.length === 0) return none;
  if (o.after !== undefined) {
    const a = o.after;
    const seq = typeof a === "object" && a !== null ? a.seq : a;
    if (!Number.isInteger(seq) || seq < 0) throw new TypeError("whalesong: after must be a seq >= 0 or {epoch, seq}");
    if (typeof a === "object" && typeof a.epoch === "string") return { ...none, position: { epoch: a.epoch, seq } };
    return { ...none, intent: { after: { seq } } };
  }
  let intent;
  if (o.latest === true) intent = { latest: true };
  else if (o.last !== undefined) {
    if (!Number.isInteger(o.last) || o.last < 0) throw new TypeError("whalesong: last must be an integer >= 0");
    intent = { last: o.last };
  } else {
    intent = { since: sinceTime(o.since) };
  }
  return { ...none, intent, fallback: intent };
}

// sinceTime is the RFC 3339 time a since option names. An RFC 3339 string
// goes as it is, so that a time the server wrote with nanoseconds keeps
// them (a Date holds milliseconds: earlier events of the same millisecond
// would be replayed); any other date string, a Date or milliseconds go
// through Date.
const rfc3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;
function sinceTime(since) {
  if (typeof since === "string" && rfc3339.test(since) && parseTime(since) !== null) return since;
  const t = new Date(since);
  if (Number.isNaN(t.getTime())) throw new TypeError("whalesong: since must be a Date, a date string or milliseconds");
  return t.toISOString();
}

// parseTime reads an RFC 3339 time with up to nanoseconds (Go's format);
// some engines parse at most milliseconds, so the rest is cut.
function parseTime(s) {
  if (typeof s !== "string") return null;
  const d = new Date(s.replace(/(\.\d{3})\d+/, "$1"));
  return Number.isNaN(d.getTime()) ? null : d;
}

// pickFetch chooses the probe's fetch: the option (null or false: no probe),
// else the global one called as a method (some browsers refuse a detached
// fetch), else none.
function pickFetch(opt) {
  if (opt === null || opt === false) return null;
  if (opt !== undefined) {
    if (typeof opt !== "function") throw new TypeError("whalesong: fetch must be a function, or null for no probe");
    return opt;
  }
  return typeof globalThis.fetch === "function" ? (url, init) => globalThis.fetch(url, init) : null;
}

// discardBody lets go of a probe answer's body: only the status matters.
function discardBody(res) {
  try {
    const p = res?.body?.cancel?.();
    if (p && typeof p.catch === "function") p.catch(() => {});
  } catch {
    // nothing to release
  }
}

function pickStorage(opt) {
  if (!opt) return null;
  if (opt === "session") {
    const s = quietly(() => globalThis.sessionStorage);
    return s && typeof s.getItem === "function" ? s : null;
  }
  if (typeof opt === "object" && typeof opt.getItem === "function" && typeof opt.setItem === "function") return opt;
  throw new TypeError('whalesong: storage must be "session" or a Storage-like object');
}

// quietly runs a call that may throw (storage: quota, privacy modes,
// sandboxed frames; an abort): best effort, delivery never depends on it.
function quietly(fn) {
  try {
    return fn();
  } catch {
    return undefined;
  }
}

function safeClose(ws, code, reason) {
  ws.onmessage = null;
  ws.onclose = null;
  ws.onerror = null;
  try {
    ws.close(code, String(reason).slice(0, 60));
  } catch {
    try {
      ws.close();
    } catch {
      // already closing or closed
    }
  }
}
