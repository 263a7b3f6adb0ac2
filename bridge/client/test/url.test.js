// connect() checks its URL at once: only an absolute ws: or wss: URL can
// ever connect, so anything else is a TypeError, not an endless retry.
import { test } from "node:test";
import assert from "node:assert/strict";
import { connect } from "../whalesong.js";
import { FakeClock, FakeWebSocket } from "./fakes.js";

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
