// A refused handshake over a real socket, with the runtime's own WebSocket
// (Node 20 with --experimental-websocket fires error and never close on it):
// each attempt ends when the refusal comes, not at the connect timeout, and
// is reported once. The server is node:http on 127.0.0.1 answering the
// upgrade with 401, 403 or 404, as the bridge and a mux do.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { connect } from "../whalesong.js";

const skip = typeof globalThis.WebSocket !== "function" && "needs a WebSocket global (Node 22, or Node 20 with --experimental-websocket)";

// refusingServer answers every upgrade to /<status> with that status,
// calling onUpgrade first.
async function refusingServer(onUpgrade) {
  const srv = createServer((req, res) => res.writeHead(404).end());
  srv.on("upgrade", (req, socket) => {
    onUpgrade();
    const status = Number(req.url.slice(1));
    socket.end(`HTTP/1.1 ${status} Refused\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
  });
  await new Promise((resolve) => srv.listen(0, "127.0.0.1", resolve));
  return { base: `ws://127.0.0.1:${srv.address().port}`, close: () => new Promise((resolve) => srv.close(resolve)) };
}

test("a refused handshake ends each attempt at once (not at connectTimeout), reported once per attempt", { skip }, async () => {
  let upgrades = 0;
  const srv = await refusingServer(() => upgrades++);
  try {
    for (const status of [401, 403, 404]) {
      upgrades = 0;
      const drops = []; // for each reported drop: how many upgrades the server had seen by then
      let done;
      const finished = new Promise((resolve) => (done = resolve));
      const client = connect(`${srv.base}/${status}`, { connectTimeout: 120000, minDelay: 100, initialDelay: 100, maxDelay: 100 });
      client.on("state", (s, detail) => {
        if (!detail) return;
        drops.push(upgrades);
        if (drops.length === 3) done();
      });
      const bound = setTimeout(done, 10000); // a bound, not a synchronisation: without the fix nothing happens for 120 s
      await finished;
      clearTimeout(bound);
      client.close();
      assert.deepEqual(drops, [1, 2, 3], `status ${status}: one drop per refused attempt, each as the refusal came`);
      assert.equal(client.state, "closed");
    }
  } finally {
    await srv.close();
  }
});
