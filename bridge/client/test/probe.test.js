// The refusal probe (PROTOCOL.md "Refusals a browser can see"): after a
// handshake that failed before hello, a plain GET of the attempt's URL tells
// a refusal (401, 403, 404) from a network failure.
import { test } from "node:test";
import assert from "node:assert/strict";
import { DEFAULTS } from "../whalesong.js";
import { setup, flush, FakeFetch } from "./fakes.js";

// refusedOnce makes a client whose first handshake fails before hello and
// returns it with its fake fetch (the probe is out, unanswered).
function refusedOnce(opts = {}) {
  const fake = new FakeFetch();
  const s = setup({ fetch: fake.fetch, random: () => 1, ...opts });
  s.sockets[0].serverError();
  return { ...s, fake };
}

test("a handshake that fails before hello is probed once: a GET of the http(s) URL, with credentials, no-store", () => {
  const table = [
    ["ws://h:8080/ws?token=abc", "http://h:8080/ws?token=abc"],
    ["wss://app.example.com/bus/ws?t=1&u=2", "https://app.example.com/bus/ws?t=1&u=2"],
  ];
  for (const [url, want] of table) {
    const { client, fake, log } = refusedOnce({ url });
    assert.equal(fake.calls.length, 1);
    const { url: got, init } = fake.calls[0];
    assert.equal(got, want);
    assert.equal(init.method, "GET");
    assert.equal(init.credentials, "include");
    assert.equal(init.cache, "no-store");
    assert.equal(init.redirect, "manual", "never follows a redirect elsewhere with the page's credentials");
    assert.ok(init.signal, "abortable");
    assert.equal(client.state, "connecting");
    assert.deepEqual(log.states, [], "the drop is reported once the verdict is in");
    client.close();
  }
});

test("401, 403, 404 are refusals: error unauthorized, forbidden, not_found, then the abuse delay", async () => {
  const table = { 401: "unauthorized", 403: "forbidden", 404: "not_found" };
  for (const [status, code] of Object.entries(table)) {
    for (const r of [0, 0.999]) {
      const { client, clock, sockets, fake, log } = refusedOnce({ random: () => r });
      fake.calls[0].respond(Number(status));
      await flush();
      assert.deepEqual(log.errors.map((e) => [e.code, e.status]), [[code, Number(status)]], status);
      assert.deepEqual(log.order, [`error:${code}`], "error first");
      const d = log.states.at(-1);
      assert.deepEqual([d.s, d.code], ["connecting", 1006]);
      assert.ok(d.retryIn >= DEFAULTS.abuseDelay && d.retryIn <= 2 * DEFAULTS.abuseDelay, `${status}: retry in ${d.retryIn}`);
      assert.deepEqual(clock.delays(), [d.retryIn], "only the retry timer");
      clock.advance(d.retryIn - 1);
      assert.equal(sockets.length, 1, `${status}: nothing before the abuse delay`);
      clock.advance(1);
      assert.equal(sockets.length, 2);
      client.close();
    }
  }
});

test("each refused attempt is probed and reported; a later ordinary failure is ordinary again", async () => {
  const { client, clock, sockets, fake, log } = refusedOnce({ abuseDelay: 5000 });
  fake.calls[0].respond(401);
  await flush();
  clock.advance(log.states.at(-1).retryIn);
  sockets[1].serverError();
  fake.calls[1].respond(401);
  await flush();
  assert.deepEqual(log.errors.map((e) => e.code), ["unauthorized", "unauthorized"]);
  clock.advance(log.states.at(-1).retryIn);
  sockets[2].serverError();
  fake.calls[2].fail(); // the server is gone now: a network failure
  await flush();
  assert.equal(log.errors.length, 2, "no error for a network failure");
  assert.ok(log.states.at(-1).retryIn <= DEFAULTS.maxDelay && log.states.at(-1).retryIn < 5000, "the backoff, not the abuse delay");
  client.close();
});

test("any other answer, a network error, a throwing or odd fetch: an ordinary failure with the usual backoff", async () => {
  const answers = {
    200: (c) => c.respond(200),
    400: (c) => c.respond(400),
    426: (c) => c.respond(426),
    500: (c) => c.respond(500),
    503: (c) => c.respond(503),
    "opaque redirect": (c) => c.respond(0),
    "network error": (c) => c.fail(),
  };
  for (const [name, answer] of Object.entries(answers)) {
    const { client, fake, log } = refusedOnce();
    answer(fake.calls[0]);
    await flush();
    assert.deepEqual(log.errors, [], name);
    assert.deepEqual(log.states, [{ s: "connecting", code: 1006, reason: "connection failed", retryIn: 500 }], name);
    client.close();
  }
  const odd = {
    throws: () => {
      throw new TypeError("no fetch here");
    },
    "not a promise": () => 42,
    "no status": () => Promise.resolve({}),
  };
  for (const [name, fetch] of Object.entries(odd)) {
    const { client, sockets, log } = setup({ fetch, random: () => 1 });
    sockets[0].serverError();
    await flush();
    assert.deepEqual(log.errors, [], name);
    assert.equal(log.states.at(-1).retryIn, 500, name);
    client.close();
  }
});

test("a probe with no answer within connectTimeout is aborted and counts as an ordinary failure", async () => {
  const { client, clock, fake, log } = refusedOnce({ connectTimeout: 4000 });
  clock.advance(3999);
  assert.deepEqual(log.states, []);
  clock.advance(1);
  assert.equal(fake.calls[0].aborted, true);
  assert.deepEqual(log.states.map((s) => [s.s, s.retryIn]), [["connecting", 500]]);
  fake.calls[0].respond(401); // too late
  await flush();
  assert.deepEqual(log.errors, []);
  client.close();
});

test("close() during the probe aborts it; a late answer changes nothing and no timer is left", async () => {
  const { client, clock, fake, log } = refusedOnce();
  client.close();
  assert.equal(fake.calls[0].aborted, true);
  fake.calls[0].respond(403);
  await flush();
  assert.deepEqual(log.errors, []);
  assert.deepEqual(clock.delays(), []);
  assert.equal(client.state, "closed");
});

test("reconnect() during the probe does nothing (the attempt is in flight); after a refusal it skips the abuse delay", async () => {
  const { client, clock, sockets, fake, log } = refusedOnce();
  clock.advance(1000);
  client.reconnect();
  assert.equal(sockets.length, 1);
  fake.calls[0].respond(401);
  await flush();
  assert.equal(log.errors[0].code, "unauthorized");
  client.reconnect();
  assert.equal(sockets.length, 2, "dialed now, not after a minute");
  client.close();
});

test("not probed: a connect timeout, a close before hello with a code other than 1006, a throwing constructor, fetch: null", async () => {
  const cases = {
    timeout: (s) => s.clock.advance(DEFAULTS.connectTimeout),
    "going away before hello": (s) => s.sockets[0].serverClose(1001, "going away"),
    "abuse before hello": (s) => s.sockets[0].serverClose(4001, "abuse"),
  };
  for (const [name, fail] of Object.entries(cases)) {
    const fake = new FakeFetch();
    const s = setup({ fetch: fake.fetch });
    fail(s);
    await flush();
    assert.equal(fake.calls.length, 0, name);
    s.client.close();
  }
  const fake = new FakeFetch();
  class Throwing {
    constructor() {
      throw new Error("boom");
    }
  }
  const s = setup({ fetch: fake.fetch, WebSocket: Throwing });
  await flush();
  assert.equal(fake.calls.length, 0, "throwing constructor");
  s.client.close();
  const none = setup({ fetch: null });
  none.sockets[0].serverError();
  assert.equal(none.log.states.length, 1, "fetch: null: an ordinary failure at once");
  none.client.close();
});

test("a close event with 1006 before hello (a browser without error first) is probed too", async () => {
  const fake = new FakeFetch();
  const { client, sockets, log } = setup({ fetch: fake.fetch });
  sockets[0].serverClose(1006, "");
  assert.equal(fake.calls.length, 1);
  fake.calls[0].respond(404);
  await flush();
  assert.equal(log.errors[0].code, "not_found");
  client.close();
});

test("without a fetch option the global fetch is used, called as a method of globalThis", async () => {
  const saved = globalThis.fetch;
  const calls = [];
  globalThis.fetch = function (url, init) {
    calls.push({ self: this, url, init });
    return Promise.resolve({ status: 403 });
  };
  try {
    const { client, sockets, log } = setup({ fetch: undefined });
    sockets[0].serverError();
    await flush();
    assert.equal(calls.length, 1);
    assert.equal(calls[0].self, globalThis, "a detached fetch throws Illegal invocation in some browsers");
    assert.equal(log.errors[0].code, "forbidden");
    client.close();
    delete globalThis.fetch;
    const bare = setup({ fetch: undefined });
    bare.sockets[0].serverError();
    assert.equal(bare.log.states.length, 1, "no fetch at all: no probe, an ordinary failure");
    bare.client.close();
  } finally {
    globalThis.fetch = saved;
  }
});

test("a fetch option that is not a function is a TypeError", () => {
  assert.throws(() => setup({ fetch: "yes" }), /fetch must be a function/);
});
