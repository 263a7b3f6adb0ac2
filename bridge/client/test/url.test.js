// connect() checks its URL at once: only an absolute ws: or wss: URL can
// ever connect, so anything else is a TypeError, not an endless retry.
import { test } from "node:test";
import assert from "node:assert/strict";
import { connect } from "../whalesong.js";
import { FakeClock, FakeWebSocket, setup, flush } from "./fakes.js";

function tryConnect(url) {
  FakeWebSocket.instances = [];
  const clock = new FakeClock();
  const opts = { WebSocket: FakeWebSocket, setTimeout: clock.setTimeout, clearTimeout: clock.clearTimeout, pingInterval: 0 };
  return { clock, run: () => connect(url, opts) };
}

test("a URL that is not an absolute ws: or wss: URL throws a TypeError at once, and nothing is dialed", () => {
  const table = [
    { url: "/ws", why: /absolute/ },
    { url: "ws", why: /absolute/ },
    { url: "//example.com/ws", why: /absolute/ },
    { url: "", why: /absolute/ },
    { url: "http://example.com/ws", why: /"http:" \(use "ws:"\)/ },
    { url: "https://example.com/ws?token=secret", why: /"https:" \(use "wss:"\)/ },
    { url: "ftp://example.com/ws", why: /"ftp:"/ },
    { url: "example.com:8080/ws", why: /"example\.com:"/ },
    { url: undefined, why: /absolute/ },
    { url: null, why: /absolute/ },
    { url: 42, why: /absolute/ },
  ];
  for (const c of table) {
    const { clock, run } = tryConnect(c.url);
    assert.throws(run, (e) => e instanceof TypeError && c.why.test(e.message) && !e.message.includes("secret"), String(c.url));
    assert.equal(FakeWebSocket.instances.length, 0, `${c.url}: no socket`);
    assert.deepEqual(clock.delays(), [], `${c.url}: no timer`);
  }
});

test("ws: and wss: URLs, in any case and as URL objects, connect", () => {
  for (const url of ["ws://127.0.0.1:8080/ws", "wss://example.com/ws?token=x", "WSS://Example.com/ws", new URL("ws://h/ws")]) {
    const { run } = tryConnect(url);
    const client = run();
    assert.equal(FakeWebSocket.instances.length, 1, String(url));
    assert.equal(FakeWebSocket.instances[0].url, String(url));
    client.close();
  }
});

// ---- a url function: called before every attempt ----

test("a url function is called before every attempt, and each socket dials what it returned", () => {
  let calls = 0;
  const { clock, sockets } = setup({ url: () => `wss://h/ws?token=t${++calls}`, random: () => 1 });
  assert.equal(calls, 1, "called for the first attempt, at once");
  assert.equal(sockets[0].url, "wss://h/ws?token=t1");
  sockets[0].serverClose(1006);
  assert.equal(calls, 1, "not called again before the retry");
  clock.advance(clock.delays()[0]);
  assert.equal(calls, 2);
  assert.equal(sockets[1].url, "wss://h/ws?token=t2");
  sockets[1].hello();
  sockets[1].serverClose(1001);
  clock.advance(clock.delays()[0]);
  assert.deepEqual(sockets.map((s) => s.url), ["wss://h/ws?token=t1", "wss://h/ws?token=t2", "wss://h/ws?token=t3"]);
});

test("a url function may return a promise (or a URL); the socket dials when it resolves", async () => {
  let resolve;
  const { client, sockets } = setup({ url: () => new Promise((r) => (resolve = r)) });
  assert.equal(sockets.length, 0, "nothing dialed before the url is known");
  assert.equal(client.state, "connecting");
  resolve(new URL("ws://h/ws?token=fresh"));
  await flush();
  assert.equal(sockets.length, 1);
  assert.equal(sockets[0].url, "ws://h/ws?token=fresh");
  sockets[0].hello();
  assert.equal(client.state, "open");
});

test("a url function that throws, rejects or gives a bad URL is a failed attempt: connect_failed, then the usual backoff", async () => {
  const bad = {
    throws: () => {
      throw new Error("no token");
    },
    rejects: () => Promise.reject(new Error("token service down")),
    http: () => "https://h/ws?token=secret",
    relative: () => "/ws?token=secret",
    number: () => 42,
    undefined: () => undefined,
  };
  for (const [name, fn] of Object.entries(bad)) {
    let calls = 0;
    const { client, clock, sockets, log } = setup({
      url: () => {
        calls++;
        return fn();
      },
      random: () => 1,
    });
    for (const want of [500, 1000, 2000]) {
      await flush();
      assert.equal(log.errors.at(-1)?.code, "connect_failed", name);
      assert.ok(!log.errors.at(-1).message.includes("secret"), `${name}: the message does not repeat the URL`);
      assert.equal(log.states.at(-1).s, "connecting", name);
      assert.equal(log.states.at(-1).retryIn, want, `${name}: the backoff grows as for any failed attempt`);
      assert.deepEqual(clock.delays(), [want], `${name}: only the retry timer`);
      clock.advance(want);
    }
    await flush();
    assert.equal(calls, 4, `${name}: called for each attempt`);
    assert.equal(sockets.length, 0, name);
    assert.equal(log.errors.length, 4, `${name}: one error per attempt`);
    client.close();
  }
  assert.match(String((await errorOf(() => "http://h/ws")).message), /"http:" \(use "ws:"\)/);
});

// errorOf returns the first error a client on url emits.
async function errorOf(url) {
  const { client, log } = setup({ url });
  await flush();
  client.close();
  return log.errors[0];
}

test("a failure of the first attempt inside connect() reaches listeners added right after it, in order", async () => {
  FakeWebSocket.instances = [];
  const clock = new FakeClock();
  const client = connect(
    () => {
      throw new Error("boom");
    },
    { WebSocket: FakeWebSocket, setTimeout: clock.setTimeout, clearTimeout: clock.clearTimeout, now: () => clock.now, random: () => 1, fetch: null },
  );
  const seen = [];
  client.on("error", (e) => seen.push(`error:${e.code}`));
  client.on("state", (s, d) => seen.push(`state:${s}:${d?.retryIn}`));
  assert.deepEqual(seen, [], "nothing inside connect() itself");
  await flush();
  assert.deepEqual(seen, ["error:connect_failed", "state:connecting:500"]);
  client.close();
  assert.deepEqual(seen, ["error:connect_failed", "state:connecting:500", "state:closed:undefined"]);
});

test("what happens before the microtask is delivered first: held events never come after later ones", () => {
  FakeWebSocket.instances = [];
  const clock = new FakeClock();
  const client = connect(
    () => {
      throw new Error("boom");
    },
    { WebSocket: FakeWebSocket, setTimeout: clock.setTimeout, clearTimeout: clock.clearTimeout, now: () => clock.now, fetch: null },
  );
  const seen = [];
  client.on("error", (e) => seen.push(e.code));
  client.on("state", (s) => seen.push(s));
  client.close(); // synchronously, before the microtask
  assert.deepEqual(seen, ["connect_failed", "connecting", "closed"]);
});

test("a url function that never settles is bounded by connectTimeout; a late answer opens nothing", async () => {
  const resolvers = [];
  const { client, clock, sockets, log } = setup({ url: () => new Promise((r) => resolvers.push(r)), connectTimeout: 3000, random: () => 1 });
  clock.advance(2999);
  assert.equal(log.errors.length, 0);
  clock.advance(1);
  assert.equal(log.errors.at(-1).code, "connect_failed");
  assert.match(log.errors.at(-1).message, /did not settle/);
  resolvers[0]("ws://h/late");
  await flush();
  assert.equal(sockets.length, 0, "the answer of an abandoned attempt is ignored");
  clock.advance(500);
  assert.equal(resolvers.length, 2, "the next attempt calls the function again");
  resolvers[1]("ws://h/second");
  await flush();
  assert.deepEqual(sockets.map((s) => s.url), ["ws://h/second"]);
  client.close();
});

test("close() while the url function is pending: nothing is dialed when it resolves, no timer is left", async () => {
  let resolve;
  const { client, clock, sockets, log } = setup({ url: () => new Promise((r) => (resolve = r)) });
  client.close();
  resolve("ws://h/ws");
  await flush();
  assert.equal(sockets.length, 0);
  assert.deepEqual(clock.delays(), []);
  assert.deepEqual(log.errors, []);
  assert.equal(client.state, "closed");
});
