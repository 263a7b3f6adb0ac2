// whalesong.js: the browser client of a whalesong bridge (wire protocol v1,
// bridge/PROTOCOL.md). One ES module, no dependencies, no build step. It runs
// wherever a WebSocket global exists (browsers, Node 22, Node 20 with
// --experimental-websocket) and touches no window or document; it touches
// sessionStorage only when the `storage` option asks for it.
//
// What it promises (see whalesong.d.ts for every option and its default):
//   - connect() returns at once; the client connects, and reconnects after any
//     drop with exponential backoff and full jitter, never in a tight loop;
//   - every subscription keeps a resume position (epoch, seq) and is
//     resubscribed after each reconnect from that position, so its handler
//     sees each event at most once and, within one epoch, in increasing seq;
//   - when events were lost (the server says recovered:false, or it runs a new
//     epoch) the client emits "gap" before any event of the new stream;
//   - a publish made offline, or sent but unanswered when the connection
//     dropped, is sent again with the same id; the server deduplicates it, so
//     it lands once and its promise resolves to that one seq.

/** The wire protocol version this client speaks (the `v` of the server's hello). */
export const PROTOCOL_VERSION = 1;

/**
 * The documented defaults of every numeric option of {@link connect}
 * (milliseconds unless named otherwise). Frozen; pass options to override.
 */
export const DEFAULTS = Object.freeze({
  initialDelay: 500, // cap of the first reconnect delay (full jitter between minDelay and it)
  minDelay: 250, // floor of every reconnect delay
  maxDelay: 30000, // cap of any reconnect delay
  backoffFactor: 2, // the cap grows by this factor per failed attempt
  healthyAfter: 5000, // an open connection this old resets the backoff
  abuseDelay: 60000, // after close code 4001, wait between this and twice it
  connectTimeout: 10000, // from dialing to the server's hello
  pingInterval: 25000, // a ping this often while open; 0 disables keepalive
  pingTimeout: 10000, // no frame for this long after a ping drops the connection
  rateLimitDelay: 1000, // first pause of publishing after a rate_limited answer
  rateLimitQuiet: 30000, // careful publishing ends after this long without a refusal
  maxQueue: 1000, // publishes waiting for an answer (offline or in flight)
  maxInFlight: 16, // publishes sent and not yet answered
  storagePrefix: "whalesong:", // sessionStorage key prefix (key = prefix + pattern)
});

/** No reconnect delay is ever shorter than this, whatever the options say. */
const ABSOLUTE_MIN_DELAY = 100;

/**
 * The Error every rejection and "error" event of this client carries. `code`
 * is machine-readable: the server's code (e.g. "forbidden", "rate_limited",
 * "invalid_topic") or one of the client's own: "closed", "queue_full",
 * "invalid_data", "unsubscribed", "bad_frame", "handler", "abuse".
 */
export class WhalesongError extends Error {
  /**
   * @param {string} code machine-readable error code
   * @param {string} [message] human-readable detail
   * @param {object} [extra] more fields copied onto the error (e.g. pattern, topic)
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
 * reconnects after every drop, by itself until close().
 * @param {string} url the WebSocket URL of the bridge, e.g. "wss://host/ws"
 * @param {object} [options] ConnectOptions: every one and its default is in whalesong.d.ts
 * @returns {Client}
 */
export function connect(url, options = {}) {
  return new Client(url, options);
}

/**
 * A subscription made by Client.subscribe: its handler gets every matching
 * event at most once and, within one epoch, in increasing seq.
 */
export class Subscription {
  #client;
  #resolve;
  #reject;
  /** @param {object} init internal; made by Client.subscribe only */
  constructor(init) {
    this.#client = init.client;
    /** @type {string} the subscription's pattern */
    this.pattern = init.pattern;
    /** @type {string} the client-chosen subscription id on the wire */
    this.id = init.id;
    this.handler = init.handler;
    this.initial = init.initial; // the after/last/since wire fields of the first sub frame
    this.position = init.position; // {epoch, seq} or null before the first ack
    this.live = true;
    this.acked = false; // acknowledged on the current connection
    this.everAcked = false;
    this.reqId = null; // the request id of the outstanding sub frame
    this.buffer = []; // events that arrived before the ack on this connection
    /** @type {number} seq of the last event handed to the handler (0 before any) */
    this.lastSeq = 0;
    /** @type {Promise<{recovered: boolean}>} resolves on the server's first acknowledgement */
    this.ready = new Promise((res, rej) => {
      this.#resolve = res;
      this.#reject = rej;
    });
    this.ready.catch(() => {}); // a rejection nobody awaits is not an unhandled one
  }

  /** Ends the subscription: its handler is never called again. Idempotent. */
  unsubscribe() {
    this.#client._unsubscribe(this);
  }

  /** @internal settles `ready` once */
  _settle(err, value) {
    if (err) this.#reject(err);
    else this.#resolve(value);
  }
}

const emptyListeners = () => ({ state: new Set(), gap: new Set(), error: new Set() });

/**
 * A connection to a whalesong bridge that survives drops. Made by connect().
 */
export class Client {
  #url;
  #o; // options merged with DEFAULTS
  #WS;
  #setTimeout;
  #clearTimeout;
  #random;
  #crypto;
  #storage = null;
  #ws = null;
  #open = false; // the current socket said hello
  #state = /** @type {"connecting"|"open"|"closed"} */ ("connecting");
  #closed = false;
  #epoch = null;
  #attempt = 0;
  #timers = { retry: null, healthy: null, connect: null, ping: null, pong: null, pubPause: null, rateQuiet: null };
  #rateAttempt = 0; // refusals (rate_limited, unavailable) since the last quiet period
  #inFlight = 0; // publishes sent on this connection and not yet answered
  #listeners = emptyListeners();
  #subs = new Map(); // subscription id -> Subscription (live ones, in creation order)
  #reqs = new Map(); // sub request id -> Subscription (this connection)
  #unsubReqs = new Set(); // unsub request ids (this connection)
  #pubs = new Map(); // publish id -> {frame, sent, resolve, reject} (in call order)
  #seq = 0; // counter for request and subscription ids
  #dirty = new Set(); // subscriptions whose position is to be stored

  /**
   * @param {string} url
   * @param {object} options ConnectOptions (whalesong.d.ts)
   */
  constructor(url, options = {}) {
    this.#url = url;
    this.#o = { ...DEFAULTS };
    for (const [k, v] of Object.entries(options)) if (v !== undefined) this.#o[k] = v;
    this.#WS = options.WebSocket || globalThis.WebSocket;
    this.#setTimeout = options.setTimeout || ((fn, ms) => setTimeout(fn, ms));
    this.#clearTimeout = options.clearTimeout || ((t) => clearTimeout(t));
    this.#random = options.random || Math.random;
    this.#crypto = options.crypto || globalThis.crypto;
    this.#storage = pickStorage(options.storage);
    if (typeof this.#WS !== "function") {
      throw new TypeError("whalesong: no WebSocket constructor (pass options.WebSocket, or use Node 22 / --experimental-websocket)");
    }
    this.#dial();
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
   * Listens to "state" (state, detail), "gap" ({pattern}) or "error" (err).
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
   * @param {(event: {topic: string, seq: number, time: Date|null, data: any}) => void} handler
   * @param {{after?: number|{epoch?: string, seq: number}, last?: number, since?: Date|string|number}} [opts]
   *   at most one; without one the subscription starts live
   * @returns {Subscription}
   */
  subscribe(pattern, handler, opts = {}) {
    if (typeof pattern !== "string" || pattern === "") throw new TypeError("whalesong: pattern must be a non-empty string");
    if (typeof handler !== "function") throw new TypeError("whalesong: handler must be a function");
    const { initial, position } = resumeOption(opts);
    const sub = new Subscription({
      client: this,
      id: `s${++this.#seq}`,
      pattern,
      handler,
      initial,
      position: this.#loadPosition(pattern) || position,
    });
    if (this.#closed) {
      sub.live = false;
      sub._settle(new WhalesongError("closed", "the client is closed", { pattern }));
      return sub;
    }
    this.#subs.set(sub.id, sub);
    if (this.#open) this.#sendSub(sub);
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
    if (this.#closed) return Promise.reject(new WhalesongError("closed", "the client is closed", { topic }));
    if (typeof topic !== "string") return Promise.reject(new WhalesongError("invalid_topic", "topic must be a string", { topic }));
    if (this.#pubs.size >= this.#o.maxQueue) {
      return Promise.reject(new WhalesongError("queue_full", `${this.#pubs.size} publishes already wait for an answer`, { topic }));
    }
    const id = uuidv4(this.#crypto);
    let frame;
    try {
      frame = JSON.stringify({ op: "pub", id, topic, data: data === undefined ? null : data });
    } catch (e) {
      return Promise.reject(new WhalesongError("invalid_data", `data cannot be encoded as JSON: ${e.message}`, { topic }));
    }
    return new Promise((resolve, reject) => {
      const entry = { id, topic, frame, sent: false, resolve, reject };
      this.#pubs.set(id, entry);
      this.#flushPubs();
    });
  }

  /**
   * Closes the client for good: no reconnect, pending publishes reject with
   * code "closed", the state becomes "closed". Stored positions are kept so a
   * reload resumes. Idempotent.
   */
  close() {
    if (this.#closed) return;
    this.#closed = true;
    for (const k of Object.keys(this.#timers)) this.#stopTimer(k);
    const ws = this.#ws;
    this.#ws = null;
    this.#open = false;
    if (ws) safeClose(ws, 1000, "client closed");
    this.#flushStorage();
    const pubs = [...this.#pubs.values()];
    this.#pubs.clear();
    for (const p of pubs) p.reject(new WhalesongError("closed", "the client was closed before the server answered", { topic: p.topic }));
    for (const sub of this.#subs.values()) {
      sub.live = false;
      if (!sub.everAcked) sub._settle(new WhalesongError("closed", "the client was closed", { pattern: sub.pattern }));
    }
    this.#subs.clear();
    this.#reqs.clear();
    this.#setState("closed");
  }

  // ---- connection lifecycle ----

  #dial() {
    this.#timers.retry = null;
    if (this.#closed) return;
    let ws;
    try {
      ws = new this.#WS(this.#url);
    } catch (e) {
      this.#emitError(new WhalesongError("connect_failed", String(e && e.message)));
      this.#scheduleReconnect(0, "");
      return;
    }
    this.#ws = ws;
    this.#open = false;
    ws.onmessage = (ev) => {
      if (this.#ws === ws) this.#onFrame(ev.data);
    };
    ws.onclose = (ev) => {
      if (this.#ws === ws) this.#onDrop(ev.code, ev.reason || "");
    };
    ws.onerror = () => {}; // a close event always follows
    this.#startTimer("connect", this.#o.connectTimeout, () => this.#abandon(ws, "connect timeout"));
  }

  // #abandon gives up on a socket that stopped answering without waiting for
  // its closing handshake (which a dead network never completes).
  #abandon(ws, reason) {
    if (this.#ws !== ws) return;
    safeClose(ws, 1000, reason);
    this.#onDrop(1006, reason);
  }

  #onDrop(code, reason) {
    this.#ws = null;
    this.#open = false;
    for (const k of ["healthy", "connect", "ping", "pong", "pubPause"]) this.#stopTimer(k);
    this.#reqs.clear();
    this.#unsubReqs.clear();
    for (const sub of this.#subs.values()) {
      sub.acked = false;
      sub.reqId = null;
      sub.buffer = [];
    }
    for (const p of this.#pubs.values()) p.sent = false;
    this.#inFlight = 0;
    this.#flushStorage();
    if (this.#closed) return;
    if (code === 4001) {
      this.#emitError(new WhalesongError("abuse", `the server cut the connection for abuse: ${reason}`));
    }
    this.#scheduleReconnect(code, reason);
  }

  #scheduleReconnect(code, reason) {
    let delay;
    if (code === 4000) {
      this.#attempt = 0; // resume needed: the connection itself was fine; come back promptly
      delay = backoffDelay(0, this.#o, this.#random);
    } else if (code === 4001) {
      delay = this.#o.abuseDelay * (1 + this.#random());
      this.#attempt++;
    } else {
      delay = backoffDelay(this.#attempt, this.#o, this.#random);
      this.#attempt++;
    }
    this.#setState("connecting", { code, reason, retryIn: delay });
    this.#startTimer("retry", delay, () => this.#dial());
  }

  #onHello(msg) {
    this.#stopTimer("connect");
    this.#open = true;
    if (typeof msg.epoch === "string") this.#epoch = msg.epoch;
    if (msg.v !== undefined && msg.v !== PROTOCOL_VERSION) {
      this.#emitError(new WhalesongError("version", `server speaks protocol v${msg.v}, client v${PROTOCOL_VERSION}`));
    }
    this.#startTimer("healthy", this.#o.healthyAfter, () => {
      this.#attempt = 0;
    });
    this.#schedulePing();
    for (const sub of this.#subs.values()) this.#sendSub(sub);
    this.#flushPubs();
    this.#setState("open"); // last: a listener may subscribe, publish or close
  }

  #schedulePing() {
    if (!(this.#o.pingInterval > 0)) return;
    this.#startTimer("ping", this.#o.pingInterval, () => {
      const ws = this.#ws;
      this.#send({ op: "ping", id: `r${++this.#seq}` });
      this.#startTimer("pong", this.#o.pingTimeout, () => this.#abandon(ws, "ping timeout"));
      this.#schedulePing();
    });
  }

  // ---- frames from the server ----

  #onFrame(raw) {
    this.#stopTimer("pong"); // any frame proves the connection alive
    let msg;
    try {
      if (typeof raw !== "string") throw new Error("binary frame");
      msg = JSON.parse(raw);
      if (!msg || typeof msg !== "object" || typeof msg.op !== "string") throw new Error("no op");
    } catch (e) {
      this.#emitError(new WhalesongError("bad_frame", `unreadable frame from the server: ${e.message}`));
      return;
    }
    if (!this.#open && msg.op !== "hello") return; // nothing precedes hello
    switch (msg.op) {
      case "hello":
        if (!this.#open) this.#onHello(msg);
        break;
      case "subscribed":
        this.#onSubscribed(msg);
        break;
      case "events":
        this.#onEvents(msg);
        break;
      case "published":
        this.#onPublished(msg);
        break;
      case "error":
        this.#onError(msg);
        break;
      default: // pong, unsubscribed, and ops of later versions need nothing
    }
    this.#flushStorage();
  }

  #onSubscribed(msg) {
    const sub = this.#reqs.get(msg.id);
    if (!sub) return;
    this.#reqs.delete(msg.id);
    if (!sub.live || sub.reqId !== msg.id) return;
    const epoch = typeof msg.epoch === "string" ? msg.epoch : this.#epoch;
    const from = Number.isFinite(msg.from) ? msg.from : 0;
    const prev = sub.position;
    const newEpoch = !!(prev && prev.epoch && prev.epoch !== epoch);
    const lost = msg.recovered === false || newEpoch;
    const keep = prev && !newEpoch && prev.seq > from; // never move backwards within an epoch
    sub.position = { epoch, seq: keep ? prev.seq : from };
    sub.acked = true;
    sub.reqId = null;
    this.#dirty.add(sub);
    if (lost) this.#emit("gap", { pattern: sub.pattern });
    if (!sub.everAcked) {
      sub.everAcked = true;
      sub._settle(null, { recovered: !lost });
    }
    const buffered = sub.buffer;
    sub.buffer = [];
    for (const ev of buffered) if (sub.live && !this.#closed) this.#deliver(sub, ev);
  }

  #onEvents(msg) {
    if (!Array.isArray(msg.events)) {
      this.#emitError(new WhalesongError("bad_frame", "events frame without an events array"));
      return;
    }
    for (const ev of msg.events) {
      if (!ev || !Array.isArray(ev.subs) || !Number.isFinite(ev.seq)) {
        this.#emitError(new WhalesongError("bad_frame", "malformed event"));
        continue;
      }
      for (const sid of ev.subs) {
        if (this.#closed) return;
        const sub = this.#subs.get(sid);
        if (!sub) continue; // unsubscribed meanwhile
        if (!sub.acked) sub.buffer.push(ev);
        else this.#deliver(sub, ev);
      }
    }
  }

  #deliver(sub, ev) {
    if (sub.position && ev.seq <= sub.position.seq) return; // seen already
    sub.position = { epoch: sub.position ? sub.position.epoch : this.#epoch, seq: ev.seq };
    sub.lastSeq = ev.seq;
    this.#dirty.add(sub);
    const event = { topic: ev.topic, seq: ev.seq, time: parseTime(ev.time), data: ev.data };
    if (typeof ev.error === "string") {
      event.error = ev.error; // the server could not encode this event's data
      this.#emitError(new WhalesongError("codec", `event ${ev.seq} on ${ev.topic}: ${ev.error}`, { pattern: sub.pattern }));
    }
    try {
      sub.handler(event);
    } catch (e) {
      this.#emitError(new WhalesongError("handler", `handler of ${sub.pattern} threw: ${e && e.message}`, { pattern: sub.pattern, cause: e }));
    }
  }

  #onPublished(msg) {
    const p = this.#pubs.get(msg.id);
    if (!p) return;
    this.#pubs.delete(msg.id);
    if (p.sent) this.#inFlight--;
    p.resolve(msg.seq);
    this.#flushPubs();
  }

  #onError(msg) {
    const code = typeof msg.code === "string" ? msg.code : "internal";
    const err = new WhalesongError(code, typeof msg.message === "string" ? msg.message : code);
    const p = msg.id !== undefined ? this.#pubs.get(msg.id) : undefined;
    if (p) {
      if (p.sent) this.#inFlight--;
      if (code === "rate_limited" || code === "unavailable") {
        p.sent = false; // not published: keep it (in its place) and try again after a pause
        this.#pausePublishing();
        return;
      }
      p.sent = false;
      this.#pubs.delete(msg.id);
      p.reject(Object.assign(err, { topic: p.topic }));
      this.#flushPubs();
      return;
    }
    let sub = msg.id !== undefined ? this.#reqs.get(msg.id) : undefined;
    if (sub) this.#reqs.delete(msg.id);
    else if (msg.id === undefined && typeof msg.sub === "string") sub = this.#subs.get(msg.sub);
    if (sub) {
      this.#failSub(sub, err);
      return;
    }
    if (msg.id !== undefined && this.#unsubReqs.delete(msg.id)) return; // unsub of a sub the server no longer had
    this.#emitError(err);
  }

  #failSub(sub, err) {
    Object.assign(err, { pattern: sub.pattern });
    sub.live = false;
    this.#subs.delete(sub.id);
    if (!sub.everAcked) sub._settle(err);
    this.#emitError(err);
  }

  // ---- frames to the server ----

  #send(obj) {
    const ws = this.#ws;
    if (!ws || !this.#open) return false;
    try {
      ws.send(typeof obj === "string" ? obj : JSON.stringify(obj));
      return true;
    } catch (e) {
      this.#abandon(ws, `send failed: ${e && e.message}`);
      return false;
    }
  }

  #sendSub(sub) {
    const id = `r${++this.#seq}`;
    const frame = { op: "sub", id, sub: sub.id, pattern: sub.pattern };
    if (sub.position) {
      frame.after = sub.position.epoch ? { epoch: sub.position.epoch, seq: sub.position.seq } : { seq: sub.position.seq };
    } else if (sub.initial) {
      Object.assign(frame, sub.initial);
    }
    sub.acked = false;
    sub.buffer = [];
    sub.reqId = id;
    this.#reqs.set(id, sub);
    this.#send(frame);
  }

  // #flushPubs sends queued publishes in call order, keeping at most
  // maxInFlight unanswered (one while careful after a refusal), so a long
  // offline queue does not hit the server's rate limit as one burst: every
  // refusal spends the connection's malformed-frame budget.
  #flushPubs() {
    if (!this.#open || this.#timers.pubPause !== null) return;
    const limit = this.#rateAttempt > 0 ? 1 : Math.max(1, this.#o.maxInFlight);
    for (const p of this.#pubs.values()) {
      if (this.#inFlight >= limit) return;
      if (p.sent) continue;
      if (!this.#send(p.frame)) return;
      p.sent = true;
      this.#inFlight++;
    }
  }

  // #pausePublishing stops sending publishes for a backoff that grows with
  // each refusal (up to 4 x rateLimitDelay: each cycle then costs one unit
  // of the server's budget per several seconds while using most of the
  // allowed rate), and goes careful (one in flight) until rateLimitQuiet
  // passes without a refusal.
  #pausePublishing() {
    this.#startTimer("rateQuiet", this.#o.rateLimitQuiet, () => {
      this.#rateAttempt = 0;
      this.#flushPubs();
    });
    if (this.#timers.pubPause !== null) return;
    const d = this.#o.rateLimitDelay;
    const o = { ...this.#o, initialDelay: d, minDelay: d / 2, maxDelay: Math.min(this.#o.maxDelay, 4 * d) };
    const delay = backoffDelay(this.#rateAttempt++, o, this.#random);
    this.#startTimer("pubPause", delay, () => this.#flushPubs());
  }

  /** @internal called by Subscription.unsubscribe */
  _unsubscribe(sub) {
    if (!sub.live) return;
    sub.live = false;
    this.#subs.delete(sub.id);
    if (sub.reqId) this.#reqs.delete(sub.reqId);
    if (this.#open && (sub.acked || sub.reqId)) {
      const id = `r${++this.#seq}`;
      this.#unsubReqs.add(id);
      this.#send({ op: "unsub", id, sub: sub.id });
    }
    sub.reqId = null;
    sub.buffer = [];
    this.#dirty.delete(sub);
    if (this.#storage) safeStorage(() => this.#storage.removeItem(this.#o.storagePrefix + sub.pattern));
    if (!sub.everAcked) sub._settle(new WhalesongError("unsubscribed", "unsubscribed before the server acknowledged", { pattern: sub.pattern }));
  }

  // ---- positions in storage ----

  #loadPosition(pattern) {
    if (!this.#storage) return null;
    const raw = safeStorage(() => this.#storage.getItem(this.#o.storagePrefix + pattern));
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
      if (!sub.live || !sub.position || !sub.position.epoch) continue;
      const value = JSON.stringify({ epoch: sub.position.epoch, seq: sub.position.seq });
      safeStorage(() => this.#storage.setItem(this.#o.storagePrefix + sub.pattern, value));
    }
  }

  // ---- small helpers ----

  #startTimer(name, ms, fn) {
    this.#stopTimer(name);
    this.#timers[name] = this.#setTimeout(() => {
      this.#timers[name] = null;
      fn();
    }, ms);
  }

  #stopTimer(name) {
    if (this.#timers[name] !== null) {
      this.#clearTimeout(this.#timers[name]);
      this.#timers[name] = null;
    }
  }

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

  #emit(name, ...args) {
    for (const fn of [...this.#listeners[name]]) {
      try {
        fn(...args);
      } catch (e) {
        if (name !== "error") this.#emitError(new WhalesongError("handler", `${name} listener threw: ${e && e.message}`, { cause: e }));
      }
    }
  }
}

// resumeOption turns the user's {after|last|since} into the first sub frame's
// fields, or a position when after names an epoch.
function resumeOption(opts) {
  const given = ["after", "last", "since"].filter((k) => opts && opts[k] !== undefined);
  if (given.length > 1) throw new TypeError(`whalesong: give at most one of after, last, since (got ${given.join(", ")})`);
  if (given.length === 0) return { initial: null, position: null };
  if (opts.after !== undefined) {
    const a = opts.after;
    const seq = typeof a === "object" && a !== null ? a.seq : a;
    if (!Number.isInteger(seq) || seq < 0) throw new TypeError("whalesong: after must be a seq >= 0 or {epoch, seq}");
    if (typeof a === "object" && typeof a.epoch === "string") return { initial: null, position: { epoch: a.epoch, seq } };
    return { initial: { after: { seq } }, position: null };
  }
  if (opts.last !== undefined) {
    if (!Number.isInteger(opts.last) || opts.last < 0) throw new TypeError("whalesong: last must be an integer >= 0");
    return { initial: { last: opts.last }, position: null };
  }
  const t = new Date(opts.since);
  if (Number.isNaN(t.getTime())) throw new TypeError("whalesong: since must be a Date, a date string or milliseconds");
  return { initial: { since: t.toISOString() }, position: null };
}

// parseTime reads an RFC 3339 time with up to nanoseconds (Go's format);
// some engines parse at most milliseconds, so the rest is cut.
function parseTime(s) {
  if (typeof s !== "string") return null;
  const d = new Date(s.replace(/(\.\d{3})\d+/, "$1"));
  return Number.isNaN(d.getTime()) ? null : d;
}

function pickStorage(opt) {
  if (!opt) return null;
  if (opt === "session") {
    const s = safeStorage(() => globalThis.sessionStorage);
    return s && typeof s.getItem === "function" ? s : null;
  }
  if (typeof opt === "object" && typeof opt.getItem === "function" && typeof opt.setItem === "function") return opt;
  throw new TypeError('whalesong: storage must be "session" or a Storage-like object');
}

// safeStorage runs a storage call that may throw (quota, privacy modes,
// sandboxed frames): persistence is best effort, delivery never depends on it.
function safeStorage(fn) {
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
