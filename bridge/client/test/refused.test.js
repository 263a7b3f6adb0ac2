// A refused handshake over a real socket, with the runtime's own WebSocket
// and fetch (Node 20 with --experimental-websocket fires error and never
// close on it): each attempt ends when the refusal comes, not at the connect
// timeout, and is reported once; the probe (a plain GET of the same URL)
// tells a refusal from a network failure. The server is node:http on
// 127.0.0.1 answering the upgrade to /<status> with that status, and a plain
// request to /<status> with that status too, as the bridge does for its
// probe and a mux does for a path nothing serves.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { connect } from "../whalesong.js";

const skip = typeof globalThis.WebSocket !== "function" && "needs a WebSocket global (Node 22, or Node 20 with --experimental-websocket)";

// refusingServer answers every request to /<status> with that status and
// records each one: "upgrade" for a handshake, else its method and headers.
async function refusingServer() {
  const seen = [];
  const srv = createServer((req, res) => {
    seen.push({ kind: req.method, url: req.url, headers: req.headers });
    res.writeHead(Number(req.url.slice(1).split("?")[0]) || 404).end();
  });
  srv.on("upgrade", (req, socket) => {
    seen.push({ kind: "upgrade", url: req.url });
    const status = Number(req.url.slice(1).split("?")[0]);
    socket.end(`HTTP/1.1 ${status} Refused\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
  });
  await new Promise((resolve) => srv.listen(0, "127.0.0.1", resolve));
  return {
    seen,
    base: `ws://127.0.0.1:${srv.address().port}`,
    close: () => new Promise((resolve) => (srv.closeAllConnections(), srv.close(resolve))),
  };
}

// untilDrops connects and collects "connecting" details and errors until n
// drops were reported; the bound is not a synchronisation, only a limit on a
// broken client (without the fixes nothing happens for minutes).
async function untilDrops(url, n, opts) {
  const drops = [];
  const errors = [];
  let done;
  const finished = new Promise((resolve) => (done = resolve));
  const client = connect(url, opts);
  client.on("error", (e) => errors.push(e));
  client.on("state", (s, detail) => {
    if (!detail) return;
    drops.push(detail);
    if (drops.length === n) done();
  });
  const bound = setTimeout(done, 10000);
  await finished;
  clearTimeout(bound);
  client.close();
  assert.equal(client.state, "closed");
  return { drops, errors };
}

test("a refused handshake ends each attempt at once (not at connectTimeout), reported once per attempt", { skip }, async () => {
  const srv = await refusingServer();
  try {
    for (const status of [401, 403, 404]) {
      srv.seen.length = 0;
      const counts = []; // for each reported drop: how many upgrades the server had seen by then
      const client = connect(`${srv.base}/${status}`, {
        connectTimeout: 120000,
        minDelay: 100,
        initialDelay: 100,
        maxDelay: 100,
        fetch: null, // no probe: the attempt's own end is under test
      });
      let done;
      const finished = new Promise((resolve) => (done = resolve));
      client.on("state", (s, detail) => {
        if (!detail) return;
        counts.push(srv.seen.filter((r) => r.kind === "upgrade").length);
        if (counts.length === 3) done();
      });
      const bound = setTimeout(done, 10000); // a bound, not a synchronisation: without the fix nothing happens for 120 s
      await finished;
      clearTimeout(bound);
      client.close();
      assert.deepEqual(counts, [1, 2, 3], `status ${status}: one drop per refused attempt, each as the refusal came`);
    }
  } finally {
    await srv.close();
  }
});

test("the probe turns 401, 403 and 404 into unauthorized, forbidden and not_found, then waits abuseDelay", { skip }, async () => {
  const srv = await refusingServer();
  try {
    const table = { 401: "unauthorized", 403: "forbidden", 404: "not_found" };
    for (const [status, code] of Object.entries(table)) {
      srv.seen.length = 0;
      const abuseDelay = 150;
      const { drops, errors } = await untilDrops(`${srv.base}/${status}?token=t1`, 2, { abuseDelay, minDelay: 100, initialDelay: 100, maxDelay: 100 });
      assert.deepEqual(errors.map((e) => [e.code, e.status]), [[code, Number(status)], [code, Number(status)]], `status ${status}: one error per refused attempt`);
      assert.ok(!errors[0].message.includes("t1"), "the error does not repeat the URL (it may carry credentials)");
      for (const d of drops) assert.ok(d.retryIn >= abuseDelay && d.retryIn <= 2 * abuseDelay, `status ${status}: retry in ${d.retryIn}, want the abuse delay`);
      const kinds = srv.seen.map((r) => r.kind);
      assert.deepEqual(kinds.slice(0, 4), ["upgrade", "GET", "upgrade", "GET"], `status ${status}: each handshake, then its probe`);
      const probe = srv.seen[1];
      assert.equal(probe.url, `/${status}?token=t1`, "the probe asks at the attempt's own URL");
      assert.equal(probe.headers.upgrade, undefined);
      assert.match(probe.headers["cache-control"] || "", /no-cache|no-store/);
    }
  } finally {
    await srv.close();
  }
});

test("any other probe answer, or none, is an ordinary failure: no error, the usual backoff", { skip }, async () => {
  const srv = await refusingServer();
  try {
    for (const url of [`${srv.base}/426`, `${srv.base}/400`, "ws://127.0.0.1:1/ws"]) {
      const { drops, errors } = await untilDrops(url, 2, { abuseDelay: 60000, minDelay: 100, initialDelay: 100, maxDelay: 100 });
      assert.deepEqual(errors, [], url);
      for (const d of drops) assert.equal(d.retryIn, 100, `${url}: the ordinary backoff`);
    }
  } finally {
    await srv.close();
  }
});
