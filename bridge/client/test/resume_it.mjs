// Integration script driven by bridge/clientjs_it_test.go against a real bridge:
// it talks JSON lines with the Go test (stdout: results; stdin: commands).
// Run by `node --test` alone (no WHALESONG_WS_URL) it only registers a
// skipped test.
//
//   1. connect, subscribe "it.>", publish 3, a forbidden publish; print "ready".
//   2. on "drop" (the Go side has cut the TCP connection and published 5 on the
//      bus): publish 2 more at once (offline or in flight), wait until every
//      event up to the newest seq was handed over; print "resumed".
//   3. on "restart" (the Go side swapped in a new bus and closed the old
//      bridge): wait for the new epoch's event; print "restarted"; close.
import { test } from "node:test";
import { createInterface } from "node:readline";

const url = process.env.WHALESONG_WS_URL;
if (!url) {
  test("resume against a real bridge (run by go test ./bridge)", { skip: "needs WHALESONG_WS_URL" }, () => {});
} else {
  await main();
}

async function main() {
  const { connect } = await import(process.env.WHALESONG_CLIENT_URL);
  const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
  const commands = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
  const expect = async (word) => {
    const { value, done } = await commands.next();
    if (done || value.trim() !== word) throw new Error(`expected command ${word}, got ${done ? "EOF" : value}`);
  };
  const deadline = (ms, what) =>
    new Promise((_, reject) => setTimeout(() => reject(new Error(`timeout waiting for ${what}`)), ms).unref());

  const client = connect(url, { minDelay: 100, initialDelay: 200, maxDelay: 1000 });
  const states = [];
  const order = [];
  const errors = [];
  const events = [];
  let waiter = null; // {pred, resolve}
  const check = () => {
    if (waiter && waiter.pred()) {
      waiter.resolve();
      waiter = null;
    }
  };
  const until = (pred, what) =>
    Promise.race([new Promise((resolve) => ((waiter = { pred, resolve }), check())), deadline(10000, what)]);
  client.on("state", (s) => {
    states.push(s);
    check();
  });
  client.on("gap", (g) => order.push(`gap:${g.pattern}`));
  client.on("error", (e) => errors.push(e.code));

  const sub = client.subscribe("it.>", (ev) => {
    events.push({ seq: ev.seq, topic: ev.topic, data: ev.data, time: ev.time && ev.time.toISOString() });
    order.push(`ev:${ev.topic}:${ev.seq}`);
    check();
  });
  const ready = await Promise.race([sub.ready, deadline(10000, "sub.ready")]);
  const pubs = [];
  for (let i = 0; i < 3; i++) pubs.push(await client.publish("it.js", { from: "js", n: i }));
  let forbidden = null;
  try {
    await client.publish("deny.x", { n: 0 });
  } catch (e) {
    forbidden = e.code;
  }
  await until(() => sub.lastSeq >= Math.max(...pubs), "own events");
  out({ step: "ready", ready, pubs, forbidden });

  await expect("drop");
  const more = [client.publish("it.js", { from: "js", n: 3 }), client.publish("it.js", { from: "js", n: 4 })];
  pubs.push(...(await Promise.race([Promise.all(more), deadline(10000, "publishes after the drop")])));
  await until(() => sub.lastSeq >= Math.max(...pubs), "every event after the drop");
  out({ step: "resumed", pubs, events, states, order, errors, lastSeq: sub.lastSeq });

  await expect("restart");
  const before = events.length;
  await until(() => events.length > before, "the new epoch's event");
  out({ step: "restarted", events: events.slice(before), order, epoch: client.epoch, states });

  client.close();
  out({ step: "closed", state: client.state, states });
  process.exit(0);
}
