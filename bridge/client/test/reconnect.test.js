// Reconnect policy: backoff growth, jitter bounds, cap, floor, reset after a
// healthy connection, close codes, timeouts, and close() stopping it all.
import { test } from "node:test";
import assert from "node:assert/strict";
import { backoffDelay, DEFAULTS } from "../whalesong.js";
import { setup, FakeWebSocket, EPOCH } from "./fakes.js";

test("backoffDelay: full jitter between the floor and a cap that grows by the factor", () => {
  const cases = [
    // attempt, random, want
    { attempt: 0, r: 0, want: 250 },
    { attempt: 0, r: 1, want: 500 },
    { attempt: 1, r: 1, want: 1000 },
    { attempt: 2, r: 1, want: 2000 },
    { attempt: 5, r: 1, want: 16000 },
    { attempt: 6, r: 1, want: 30000 }, // capped
    { attempt: 60, r: 1, want: 30000 },
    { attempt: 3, r: 0.5, want: 250 + 0.5 * (4000 - 250) },
    { attempt: 3, r: 0, want: 250 },
  ];
  for (const c of cases) {
    assert.equal(backoffDelay(c.attempt, {}, () => c.r), c.want, `attempt ${c.attempt} random ${c.r}`);
  }
});

test("backoffDelay: jitter stays inside [floor, cap] for many random draws", () => {
  for (let attempt = 0; attempt < 12; attempt++) {
    const cap = Math.min(DEFAULTS.maxDelay, DEFAULTS.initialDelay * 2 ** attempt);
    for (let i = 0; i < 200; i++) {
      const d = backoffDelay(attempt);
      assert.ok(d >= DEFAULTS.minDelay && d <= cap, `attempt ${attempt}: ${d} outside [${DEFAULTS.minDelay}, ${cap}]`);
    }
  }
});

test("backoffDelay: options change it, but never below the 100 ms floor", () => {
  const opts = { initialDelay: 0, minDelay: 0, maxDelay: 0, backoffFactor: 0 };
  assert.equal(backoffDelay(0, opts, () => 0), 100);
  assert.equal(backoffDelay(9, opts, () => 1), 100);
  assert.equal(backoffDelay(2, { initialDelay: 1000, minDelay: 500, backoffFactor: 3 }, () => 1), 9000);
  assert.equal(backoffDelay(2, { maxDelay: 700 }, () => 1), 700);
});

test("failed connects back off exponentially up to the cap, never in a tight loop", () => {
  const { clock, ws, sockets, log } = setup({ random: () => 1 });
  assert.equal(sockets.length, 1, "connect dials at once");
  const want = [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000];
  for (const d of want) {
    ws().serverClose(1006);
    assert.deepEqual(clock.delays().slice(0, 1), [d]);
    clock.advance(d - 1);
    const n = sockets.length;
    clock.advance(1);
    assert.equal(sockets.length, n + 1, `redial after ${d} ms`);
  }
  assert.equal(log.states.at(-1).s, "connecting");
  assert.equal(log.states.at(-1).retryIn, 30000);
});

test("with random 0 every retry still waits the floor", () => {
  const { clock, ws, sockets } = setup({ random: () => 0 });
  for (let i = 0; i < 20; i++) {
    ws().serverClose(1006);
    assert.equal(clock.delays()[0], 250);
    clock.advance(250);
  }
  assert.equal(sockets.length, 21);
});

test("a healthy connection resets the backoff; a short-lived one does not", () => {
  const { clock, ws } = setup({ random: () => 1 });
  ws().serverClose(1006);
  clock.advance(500);
  ws().serverClose(1006);
  clock.advance(1000);
  ws().hello();
  clock.advance(DEFAULTS.healthyAfter - 1); // open, but not yet healthy
  ws().serverClose(1006);
  assert.equal(clock.delays()[0], 2000, "short-lived connection keeps growing");
  clock.advance(2000);
  ws().hello();
  clock.advance(DEFAULTS.healthyAfter);
  ws().serverClose(1006);
  assert.equal(clock.delays()[0], 500, "healthy connection resets to the first step");
});

test("close codes: 4000 resumes promptly, 4001 waits long, 1001 backs off", () => {
  const table = [
    { code: 4000, min: 250, max: 500 },
    { code: 4001, min: DEFAULTS.abuseDelay, max: 2 * DEFAULTS.abuseDelay },
    { code: 1001, min: 250, max: 8000 },
  ];
  for (const c of table) {
    for (const r of [0, 0.999]) {
      const { clock, ws, log } = setup({ random: () => r });
      // grow the backoff first: three failed attempts
      for (let i = 0; i < 3; i++) {
        ws().serverClose(1006);
        clock.advance(clock.delays()[0]);
      }
      ws().hello();
      ws().serverClose(c.code, "why");
      const d = clock.delays()[0];
      assert.ok(d >= c.min && d <= c.max, `code ${c.code} random ${r}: delay ${d} not in [${c.min}, ${c.max}]`);
      if (c.code === 4001) assert.equal(log.errors.at(-1).code, "abuse");
      assert.deepEqual(log.states.slice(-2).map((s) => s.s), ["open", "connecting"]);
      assert.equal(log.states.at(-1).code, c.code);
    }
  }
});

test("state events: connecting, open, connecting after a drop, open, closed", () => {
  const { client, clock, ws, log } = setup();
  assert.equal(client.state, "connecting");
  ws().hello();
  assert.equal(client.state, "open");
  assert.equal(client.epoch, EPOCH);
  ws().serverClose(1006);
  clock.advance(clock.delays()[0]);
  ws().hello();
  client.close();
  assert.deepEqual(log.states.map((s) => s.s), ["open", "connecting", "open", "closed"]);
  assert.equal(log.states[1].code, 1006);
  assert.ok(log.states[1].retryIn >= 250);
});

test("close() stops reconnecting for good and leaves no timer", () => {
  const { client, clock, ws, sockets, log } = setup();
  ws().hello();
  const first = ws();
  client.close();
  assert.equal(first.closed.code, 1000);
  first.serverClose(1000); // a late close event changes nothing
  clock.advance(10 * 60 * 1000);
  assert.equal(sockets.length, 1);
  assert.deepEqual(clock.delays(), []);
  assert.equal(client.state, "closed");
  client.close(); // idempotent
  assert.equal(log.states.filter((s) => s.s === "closed").length, 1);
});

test("close() while waiting to reconnect cancels the retry", () => {
  const { client, clock, ws, sockets } = setup();
  ws().serverClose(1006);
  assert.equal(clock.delays().length, 1);
  client.close();
  assert.deepEqual(clock.delays(), []);
  clock.advance(60000);
  assert.equal(sockets.length, 1);
});

test("no hello within connectTimeout abandons the socket and retries", () => {
  const { clock, sockets } = setup({ connectTimeout: 3000 });
  clock.advance(2999);
  assert.equal(sockets.length, 1);
  clock.advance(1);
  assert.ok(sockets[0].closed, "abandoned socket is closed");
  clock.advance(clock.delays()[0]);
  assert.equal(sockets.length, 2);
  sockets[0].serverSend({ op: "hello", v: 1, epoch: "x" }); // the old socket is ignored
  assert.equal(sockets[1].onmessage !== null, true);
});

test("an error before hello ends the attempt at once, exactly once, whether a close follows or not", () => {
  for (const closeAfter of [false, true]) {
    const { clock, sockets, log } = setup({ random: () => 1, connectTimeout: 60000 });
    sockets[0].serverError(); // Node 20: a refused handshake fires error and never close
    assert.ok(sockets[0].closed, "the failed socket is closed and detached");
    assert.deepEqual(log.states, [{ s: "connecting", code: 1006, reason: "connection failed", retryIn: 500 }]);
    assert.deepEqual(clock.delays(), [500], "the retry, and no connect timeout left");
    if (closeAfter) sockets[0].serverClose(1006); // a browser: close follows error
    sockets[0].serverError();
    assert.equal(log.states.length, 1, "one drop per attempt");
    clock.advance(500);
    assert.equal(sockets.length, 2, "the next attempt comes after the backoff, not the connect timeout");
    sockets[1].serverError();
    assert.deepEqual(clock.delays(), [1000], "the backoff grows as for any failed attempt");
    assert.equal(log.states.length, 2);
  }
});

test("an error on an open connection waits for its close event", () => {
  const { client, clock, ws, sockets, log } = setup();
  ws().hello();
  ws().serverError();
  assert.equal(client.state, "open");
  assert.equal(ws().closed, null);
  ws().serverClose(1006);
  assert.equal(log.states.at(-1).s, "connecting");
  clock.advance(clock.delays()[0]);
  assert.equal(sockets.length, 2);
});

test("keepalive: a ping every pingInterval, no answer within pingTimeout drops the connection", () => {
  const { clock, ws, sockets } = setup({ pingInterval: 1000, pingTimeout: 500 });
  ws().hello();
  clock.advance(1000);
  assert.equal(ws().frames("ping").length, 1);
  ws().serverSend({ op: "pong", id: ws().frames("ping")[0].id });
  clock.advance(1000);
  assert.equal(ws().frames("ping").length, 2);
  clock.advance(499);
  assert.equal(sockets.length, 1);
  clock.advance(1);
  assert.ok(sockets[0].closed, "unanswered ping abandons the socket");
  clock.advance(clock.delays()[0]);
  assert.equal(sockets.length, 2);
});

test("a WebSocket constructor that throws is retried with backoff", () => {
  let calls = 0;
  class Throwing extends FakeWebSocket {
    constructor(url) {
      calls++;
      if (calls < 3) throw new Error("boom");
      super(url);
    }
  }
  const { clock, log } = setup({ WebSocket: Throwing, random: () => 1 });
  assert.equal(calls, 1);
  clock.advance(clock.delays()[0]);
  assert.equal(calls, 2);
  assert.equal(log.errors.at(-1)?.code, "connect_failed");
  assert.equal(clock.delays()[0], 1000);
  clock.advance(1000);
  assert.equal(calls, 3);
});

test("unreadable frames are reported as errors and do not break the connection", () => {
  const { client, ws, log } = setup();
  ws().hello();
  ws().serverSend("{not json");
  ws().serverSend(JSON.stringify({ no: "op" }));
  assert.deepEqual(log.errors.map((e) => e.code), ["bad_frame", "bad_frame"]);
  ws().serverSend({ op: "error", code: "bad_frame", message: "x" });
  assert.equal(log.errors.at(-1).code, "bad_frame");
  assert.equal(client.state, "open");
});

test("on() returns a function that stops the listener; off() does too; unknown names throw", () => {
  const { client, clock, ws } = setup();
  const a = [];
  const b = [];
  const stopA = client.on("state", (s) => a.push(s));
  const fb = (s) => b.push(s);
  client.on("state", fb);
  ws().hello();
  stopA();
  client.off("state", fb);
  ws().serverClose(1006);
  clock.advance(clock.delays()[0]);
  assert.deepEqual(a, ["open"]);
  assert.deepEqual(b, ["open"]);
  assert.throws(() => client.on("message", () => {}), TypeError);
  assert.throws(() => client.on("state", "nope"), TypeError);
});

test("a throwing state or gap listener is reported as an error and others still run", () => {
  const { client, ws, log } = setup();
  const seen = [];
  client.on("state", () => {
    throw new Error("bad listener");
  });
  client.on("state", (s) => seen.push(s));
  ws().hello();
  assert.deepEqual(seen, ["open"]);
  assert.equal(log.errors.at(-1).code, "handler");
});

test("close() from a listener while a failure is reported leaves no timer and dials nothing more", () => {
  const cases = {
    // the retry's constructor throws: "error" connect_failed
    connect_failed: { listen: "error", fail: (ws, clock) => (ws().serverClose(1006), clock.advance(clock.delays()[0])) },
    abuse: { listen: "error", fail: (ws) => (ws().hello(), ws().serverClose(4001, "abuse")) },
    drop: { listen: "state", fail: (ws) => (ws().hello(), ws().serverClose(1006)) },
  };
  for (const [name, c] of Object.entries(cases)) {
    let calls = 0;
    class SecondThrows extends FakeWebSocket {
      constructor(url) {
        if (++calls === 2) throw new Error("boom");
        super(url);
      }
    }
    const { client, clock, ws, sockets, log } = setup({ WebSocket: name === "connect_failed" ? SecondThrows : FakeWebSocket });
    client.on(c.listen, (s) => {
      if (c.listen === "error" || s === "connecting") client.close();
    });
    c.fail(ws, clock);
    if (name !== "drop") assert.equal(log.errors.at(-1).code, name, name);
    assert.equal(client.state, "closed", name);
    assert.deepEqual(clock.delays(), [], `${name}: no timer left`);
    const n = sockets.length;
    clock.advance(10 * 60 * 1000);
    assert.equal(sockets.length, n, `${name}: nothing dialed after close`);
  }
});

test("a ping that cannot be sent leaves no keepalive timer running while waiting", () => {
  const { clock, ws, sockets } = setup({ pingInterval: 1000, pingTimeout: 500, random: () => 1, initialDelay: 60000, maxDelay: 60000 });
  ws().hello();
  ws().send = () => {
    throw new Error("socket is gone");
  };
  clock.advance(1000); // the ping's send fails: the socket is abandoned
  assert.ok(sockets[0].closed);
  assert.deepEqual(clock.delays(), [60000], "only the retry timer: no ping or pong re-armed on the dead socket");
});
