// The life of a connection beyond the backoff: reconnect() and its floor,
// close codes 4002 (credentials expired), 4003 (kicked) and 1013 (try again
// later).
import { test } from "node:test";
import assert from "node:assert/strict";
import { DEFAULTS } from "../whalesong.js";
import { setup, flush, settled, FakeWebSocket, FakeFetch, EPOCH } from "./fakes.js";

const FLOOR = DEFAULTS.minDelay; // 250: max(minDelay, 100)

// ---- reconnect() ----

test("reconnect() ends the backoff wait and dials now; the retry timer is gone", () => {
  const { client, clock, sockets, log } = setup({ random: () => 1, initialDelay: 30000, maxDelay: 30000 });
  clock.advance(1000);
  sockets[0].serverClose(1006);
  assert.deepEqual(clock.delays(), [30000]);
  client.reconnect();
  assert.equal(sockets.length, 2, "dialed at once");
  assert.deepEqual(clock.delays(), [DEFAULTS.connectTimeout], "only the new attempt's connect timeout");
  sockets[1].hello();
  assert.equal(client.state, "open");
  assert.deepEqual(log.states.map((s) => s.s), ["connecting", "open"]);
});

test("reconnect() does nothing while open, while an attempt is in flight (url function included), and after close()", async () => {
  const { client, clock, sockets } = setup();
  client.reconnect(); // dialing
  assert.equal(sockets.length, 1);
  sockets[0].hello();
  client.reconnect(); // open
  assert.equal(sockets.length, 1);
  assert.equal(sockets[0].closed, null, "the open socket is untouched");
  client.close();
  client.reconnect();
  clock.advance(60000);
  assert.equal(sockets.length, 1);
  assert.equal(client.state, "closed");

  let resolve;
  const pending = setup({ url: () => new Promise((r) => (resolve = r)) });
  pending.clock.advance(5000);
  pending.client.reconnect(); // the url function is still running
  resolve("ws://h/ws");
  await flush();
  assert.equal(pending.sockets.length, 1, "one socket: reconnect() did not start a second attempt");
  pending.client.close();
});

test("the floor: a reconnect() sooner than max(minDelay, 100) after the previous attempt started dials at the floor's end", () => {
  for (const [minDelay, floor] of [
    [250, 250],
    [0, 100],
    [1000, 1000],
  ]) {
    const { client, clock, sockets } = setup({ random: () => 1, minDelay, initialDelay: 60000, maxDelay: 60000 });
    clock.advance(40);
    sockets[0].serverError(); // refused 40 ms after the attempt started
    client.reconnect();
    assert.equal(sockets.length, 1, `minDelay ${minDelay}: not at once`);
    assert.deepEqual(clock.delays(), [floor - 40], `minDelay ${minDelay}: the retry moved to the floor's end`);
    clock.advance(floor - 41);
    assert.equal(sockets.length, 1);
    clock.advance(1);
    assert.equal(sockets.length, 2, `minDelay ${minDelay}: dialed at the floor`);
  }
});

test("a listener that calls reconnect() on every connecting makes one attempt per floor, never a tight loop", () => {
  for (const failure of ["error", "throwing constructor"]) {
    let dials = 0;
    class Failing extends FakeWebSocket {
      constructor(url) {
        dials++;
        if (failure === "throwing constructor") throw new Error("refused at once");
        super(url);
      }
    }
    const { client, clock, sockets } = setup({ WebSocket: Failing, random: () => 1 });
    client.on("state", (s) => {
      if (s === "connecting") client.reconnect();
    });
    const fail = () => {
      if (failure === "error") sockets.at(-1)?.serverError();
    };
    fail();
    for (let t = 0; t < 10000; t += 10) {
      clock.advance(10);
      fail();
    }
    // 10 s at one attempt per 250 ms: 40 attempts after the first (and not the
    // backoff's 14 or so either: reconnect() skips the backoff, only the floor holds)
    assert.ok(dials >= 40 && dials <= 42, `${failure}: ${dials} attempts in 10 s`);
    client.close();
  }
});

test("reconnect() skips the wait but not the count: the automatic backoff goes on growing", () => {
  const { client, clock, sockets } = setup({ random: () => 1 });
  sockets[0].serverClose(1006); // attempt 0 failed: 500
  clock.advance(500);
  sockets[1].serverClose(1006); // 1000
  clock.advance(FLOOR);
  client.reconnect();
  sockets[2].serverClose(1006);
  assert.deepEqual(clock.delays(), [2000]);
});

test("a listener calling reconnect() on the connect_failed error of a url function", () => {
  let calls = 0;
  const { client, clock, log } = setup({
    url: () => {
      calls++;
      throw new Error("no token yet");
    },
    random: () => 1,
  });
  client.on("error", () => client.reconnect());
  for (let i = 0; i < 100; i++) clock.advance(10);
  assert.ok(calls >= 4 && calls <= 6, `${calls} calls in 1 s: one per floor`);
  assert.ok(log.errors.length >= 4);
  client.close();
});

// ---- 4003 kicked ----

test("4003 kicked: error kicked with the reason, state closed, no timer, nothing dialed by itself", async () => {
  const { client, clock, sockets, log } = setup();
  const sub = client.subscribe("t.>", () => {});
  sockets[0].hello();
  sockets[0].ack(sub.id, { from: 4 });
  const pub = client.publish("t.a", 1);
  const page = client.history("t.>");
  sockets[0].serverClose(4003, "banned by an admin");
  assert.equal(client.state, "closed");
  assert.deepEqual(log.errors.map((e) => e.code), ["kicked"]);
  assert.match(log.errors[0].message, /banned by an admin/);
  assert.equal(log.errors[0].reason, "banned by an admin");
  assert.deepEqual(log.states.map((s) => s.s), ["open", "closed"]);
  assert.deepEqual(clock.delays(), [], "no retry, no keepalive");
  const [p1, p2, p3, p4] = await Promise.all([pub, page, client.publish("t.a", 2), client.history("t.>")].map(settled));
  assert.deepEqual([p1.error?.code, p1.error?.topic], ["kicked", "t.a"], "a pending publish rejects at the kick");
  assert.deepEqual([p2.error?.code, p2.error?.pattern], ["kicked", "t.>"], "a pending history request too");
  assert.equal(p3.error?.code, "kicked", "a publish while kicked rejects at once");
  assert.equal(p4.error?.code, "kicked", "a history request while kicked too");
  clock.advance(24 * 3600 * 1000);
  assert.equal(sockets.length, 1);
  assert.equal(sub.state, "waiting", "the subscription waits for a reconnect()");
});

test("after a kick only reconnect() connects again, and the subscriptions resume from their positions", () => {
  const { client, clock, sockets, log } = setup();
  const seen = [];
  const sub = client.subscribe("t.>", (ev) => seen.push(ev.seq));
  sockets[0].hello();
  sockets[0].ack(sub.id, { from: 4 });
  sockets[0].events([[sub.id], 5, 0]);
  clock.advance(1000);
  sockets[0].serverClose(4003, "kicked");
  client.reconnect();
  assert.equal(sockets.length, 2);
  assert.equal(client.state, "connecting");
  sockets[1].hello();
  assert.deepEqual(sockets[1].frames("sub")[0].after, { epoch: EPOCH, seq: 5 });
  sockets[1].ack(sub.id, { from: 5 });
  sockets[1].events([[sub.id], 6, 0]);
  assert.deepEqual(seen, [5, 6]);
  assert.deepEqual(log.states.map((s) => s.s), ["open", "closed", "connecting", "open"]);
  assert.deepEqual(log.gaps, []);
});

test("a kick right after the attempt started: reconnect() still keeps the floor", () => {
  const { client, clock, sockets } = setup();
  sockets[0].hello();
  clock.advance(50);
  sockets[0].serverClose(4003, "");
  client.reconnect();
  assert.equal(sockets.length, 1);
  assert.equal(client.state, "connecting");
  clock.advance(FLOOR - 50);
  assert.equal(sockets.length, 2);
});

test("an error listener may reconnect() at the kick or close(): no closed state is reported after it", () => {
  for (const then of ["reconnect", "close"]) {
    const { client, clock, sockets, log } = setup();
    sockets[0].hello();
    clock.advance(1000);
    client.on("error", (e) => (e.code === "kicked" ? client[then]() : null));
    sockets[0].serverClose(4003, "x");
    const states = log.states.map((s) => s.s);
    if (then === "reconnect") {
      assert.deepEqual(states, ["open", "connecting"], then);
      assert.equal(sockets.length, 2);
    } else {
      assert.deepEqual(states, ["open", "closed"], then);
      assert.deepEqual(clock.delays(), []);
    }
  }
});

test("close() after a kick ends the subscriptions; state stays closed without a second report", async () => {
  const { client, sockets, log } = setup();
  const sub = client.subscribe("t.>", () => {});
  sockets[0].hello();
  sockets[0].serverClose(4003, "");
  client.close();
  await assert.rejects(sub.ready, { code: "closed" });
  assert.deepEqual(log.states.map((s) => s.s), ["open", "closed"]);
  client.reconnect();
  assert.equal(sockets.length, 1, "reconnect() after close() does nothing");
});

// ---- 4002 credentials expired ----

test("4002: the url function is called again and the client reconnects at once, resuming with nothing missed", async () => {
  let token = 0;
  const { client, clock, sockets, log } = setup({ url: () => `ws://h/ws?token=${++token}`, random: () => 1 });
  const seen = [];
  const sub = client.subscribe("t.>", (ev) => seen.push(ev.seq));
  // grow the backoff first: it must not apply
  sockets[0].serverClose(1006);
  clock.advance(500);
  sockets[1].serverClose(1006);
  clock.advance(1000);
  sockets[2].hello();
  sockets[2].ack(sub.id, { from: 10 });
  sockets[2].events([[sub.id], 11, 0]);
  const p = client.publish("t.a", "in flight");
  const pub = sockets[2].frames("pub")[0];
  clock.advance(60000);
  sockets[2].serverClose(4002, "credentials expired");
  assert.deepEqual(log.states.at(-1), { s: "connecting", code: 4002, reason: "credentials expired", retryIn: 0 });
  assert.deepEqual(log.errors, [], "an expiry is no error");
  clock.advance(0);
  assert.equal(sockets.length, 4);
  assert.equal(sockets[3].url, "ws://h/ws?token=4", "fresh credentials");
  sockets[3].hello();
  assert.deepEqual(sockets[3].frames("sub")[0].after, { epoch: EPOCH, seq: 11 });
  assert.deepEqual(sockets[3].frames("pub")[0], pub, "the unanswered publish goes again with its id");
  sockets[3].ack(sub.id, { from: 11 });
  sockets[3].events([[sub.id], 12, 0], [[sub.id], 13, 0]);
  sockets[3].serverSend({ op: "published", id: pub.id, seq: 13 });
  assert.equal(await p, 13);
  assert.deepEqual(seen, [11, 12, 13]);
  assert.deepEqual(log.gaps, []);
});

test("4002 soon after the attempt started waits out the floor: a server expiring at once is no tight loop", () => {
  const { clock, sockets, log } = setup();
  for (let i = 0; i < 5; i++) {
    clock.advance(10);
    sockets.at(-1).hello();
    sockets.at(-1).serverClose(4002, "expired");
    assert.equal(log.states.at(-1).retryIn, FLOOR - 10, `round ${i}`);
    clock.advance(FLOOR - 10);
  }
  assert.equal(sockets.length, 6);
});

// ---- other codes ----

test("1013 try again later backs off like any drop, with no error", () => {
  const { clock, sockets, log } = setup({ random: () => 1 });
  for (const want of [500, 1000, 2000]) {
    sockets.at(-1).hello();
    sockets.at(-1).serverClose(1013, "behind the stream");
    assert.deepEqual(log.states.at(-1), { s: "connecting", code: 1013, reason: "behind the stream", retryIn: want });
    clock.advance(want);
  }
  assert.deepEqual(log.errors, []);
});

test("close codes after hello are never probed; 4001, 4002, 4003 are not either", async () => {
  for (const code of [1001, 1006, 1013, 4000, 4001, 4002, 4003]) {
    const fake = new FakeFetch();
    const { client, sockets } = setup({ fetch: fake.fetch });
    sockets[0].hello();
    sockets[0].serverClose(code, "");
    await flush();
    assert.equal(fake.calls.length, 0, `code ${code}`);
    client.close();
  }
});
