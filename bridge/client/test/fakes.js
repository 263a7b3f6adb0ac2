// Fakes for the client's unit tests: a WebSocket the test drives by hand, a
// clock whose timers run only when the test advances it, and a Storage. This
// file also tests the fakes themselves (node --test runs every file here).
import { test } from "node:test";
import assert from "node:assert/strict";
import { connect } from "../whalesong.js";

export const EPOCH = "11111111-1111-4111-8111-111111111111";
export const EPOCH2 = "22222222-2222-4222-8222-222222222222";

// FakeClock runs timers in due order when advanced; nothing runs by itself.
export class FakeClock {
  now = 0;
  #timers = new Map();
  #next = 1;

  setTimeout = (fn, ms) => {
    const id = this.#next++;
    this.#timers.set(id, { at: this.now + Math.max(0, ms), fn });
    return id;
  };

  clearTimeout = (id) => {
    this.#timers.delete(id);
  };

  // delays lists the pending timers' remaining times, soonest first.
  delays() {
    return [...this.#timers.values()].map((t) => t.at - this.now).sort((a, b) => a - b);
  }

  // advance moves time forward by ms, running each timer that falls due.
  advance(ms) {
    const end = this.now + ms;
    for (;;) {
      let best = null;
      for (const [id, t] of this.#timers) if (t.at <= end && (!best || t.at < best.t.at || (t.at === best.t.at && id < best.id))) best = { id, t };
      if (!best) break;
      this.#timers.delete(best.id);
      this.now = best.t.at;
      best.t.fn();
    }
    this.now = end;
  }
}

// FakeWebSocket records what the client sends; the test plays the server.
export class FakeWebSocket {
  static instances = [];
  sent = [];
  closed = null; // {code, reason} once the client closed it
  onmessage = null;
  onclose = null;
  onerror = null;

  constructor(url) {
    this.url = url;
    FakeWebSocket.instances.push(this);
  }

  send(s) {
    if (this.closed) throw new Error("send on a closed socket");
    this.sent.push(JSON.parse(s));
  }

  close(code, reason) {
    this.closed = { code, reason };
  }

  // frames returns what the client sent, optionally only one op.
  frames(op) {
    return op ? this.sent.filter((f) => f.op === op) : this.sent;
  }

  serverSend(obj) {
    this.onmessage?.({ data: typeof obj === "string" ? obj : JSON.stringify(obj) });
  }

  hello(epoch = EPOCH, seq = 0) {
    this.serverSend({ op: "hello", v: 1, session: "sess", epoch, seq });
  }

  serverClose(code = 1006, reason = "") {
    this.onclose?.({ code, reason });
  }

  // serverError fires the socket's error event (a browser follows it with
  // close; Node 20 on a refused handshake never does).
  serverError() {
    this.onerror?.({ type: "error" });
  }

  // ack answers the latest sub frame for sub id `sub`; extra fields (replayed,
  // until, reason, missing) go into the answer as given.
  ack(sub, { epoch = EPOCH, recovered = true, from = 0, ...extra } = {}) {
    const req = this.frames("sub").filter((f) => f.sub === sub).at(-1);
    assert.ok(req, `no sub frame for ${sub}`);
    this.serverSend({ op: "subscribed", id: req.id, sub, epoch, recovered, from, ...extra });
  }

  events(...evs) {
    this.serverSend({
      op: "events",
      events: evs.map(([subs, seq, data, topic = "t.a"]) => ({ subs, seq, topic, time: "2026-11-27T17:32:28.123456789Z", data })),
    });
  }
}

// FakeFetch records the probe's requests; the test answers each one with
// respond(status), fail() (a network error) or leaves it pending.
export class FakeFetch {
  calls = []; // {url, init, respond, fail}
  fetch = (url, init) =>
    new Promise((resolve, reject) => {
      const call = {
        url,
        init,
        respond: (status) => resolve({ status, body: { cancel: () => Promise.resolve() } }),
        fail: (msg = "fetch failed") => reject(new TypeError(msg)),
      };
      init?.signal?.addEventListener("abort", () => {
        call.aborted = true;
        reject(new DOMException("aborted", "AbortError"));
      });
      this.calls.push(call);
    });
}

// flush lets every pending promise reaction run (a fetch answer, a url
// function's promise): setImmediate comes after all of them.
export function flush() {
  return new Promise((resolve) => setImmediate(resolve));
}

// settled tells whether a promise has settled after every pending reaction
// ran: "pending", {value} or {error} (a test that awaits a promise a broken
// client never settles would hang instead of failing).
export async function settled(p) {
  let r = "pending";
  p.then(
    (value) => (r = { value }),
    (error) => (r = { error }),
  );
  await flush();
  return r;
}

// FakeStorage is a Storage-like map.
export class FakeStorage {
  map = new Map();
  getItem(k) {
    return this.map.has(k) ? this.map.get(k) : null;
  }
  setItem(k, v) {
    this.map.set(k, String(v));
  }
  removeItem(k) {
    this.map.delete(k);
  }
}

// setup makes a client on fakes with a fixed random (default 1: the top of
// each jitter range) and returns the pieces plus a record of its events.
// opts.url (default "ws://test/ws") is connect's first argument.
export function setup({ url = "ws://test/ws", ...opts } = {}) {
  FakeWebSocket.instances = [];
  const clock = new FakeClock();
  const log = { states: [], gaps: [], errors: [], order: [] };
  const client = connect(url, {
    WebSocket: FakeWebSocket,
    setTimeout: clock.setTimeout,
    clearTimeout: clock.clearTimeout,
    now: () => clock.now,
    random: () => 0.999999,
    pingInterval: 0,
    fetch: null, // no refusal probe unless a test gives a fetch
    ...opts,
  });
  client.on("state", (s, d) => log.states.push(d ? { s, ...d } : { s }));
  client.on("gap", (g) => {
    log.gaps.push(g);
    log.order.push(`gap:${g.pattern}`);
  });
  client.on("error", (e) => {
    log.errors.push(e);
    log.order.push(`error:${e.code}`);
  });
  const ws = () => FakeWebSocket.instances.at(-1);
  return { client, clock, log, ws, sockets: FakeWebSocket.instances };
}

test("fake clock runs timers in due order and only when advanced", () => {
  const c = new FakeClock();
  const seen = [];
  c.setTimeout(() => seen.push("b"), 20);
  c.setTimeout(() => seen.push("a"), 10);
  const x = c.setTimeout(() => seen.push("x"), 15);
  c.clearTimeout(x);
  assert.deepEqual(c.delays(), [10, 20]);
  c.advance(5);
  assert.deepEqual(seen, []);
  c.advance(20);
  assert.deepEqual(seen, ["a", "b"]);
});
