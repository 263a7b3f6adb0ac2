// Publishing: ids, the offline queue and its bound, resend with the same id
// after a drop, error codes, rate_limited backoff, close().
import { test } from "node:test";
import assert from "node:assert/strict";
import { uuidv4 } from "../whalesong.js";
import { setup } from "./fakes.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

test("uuidv4: randomUUID when present, else a v4 from getRandomValues, else Math.random", () => {
  assert.equal(uuidv4({ randomUUID: () => "from-randomUUID" }), "from-randomUUID");
  const zeros = uuidv4({ getRandomValues: (a) => a.fill(0) });
  assert.equal(zeros, "00000000-0000-4000-8000-000000000000");
  const ones = uuidv4({ getRandomValues: (a) => a.fill(255) });
  assert.equal(ones, "ffffffff-ffff-4fff-bfff-ffffffffffff");
  assert.match(uuidv4({}), UUID);
  assert.match(uuidv4(), UUID);
  const ids = new Set(Array.from({ length: 1000 }, () => uuidv4({ getRandomValues: (a) => globalThis.crypto.getRandomValues(a) })));
  assert.equal(ids.size, 1000);
});

test("publish while open sends a pub frame and resolves to the seq", async () => {
  const { client, ws } = setup();
  ws().hello();
  const p = client.publish("chat.lobby", { text: "hi" });
  const [f] = ws().frames("pub");
  assert.match(f.id, UUID);
  assert.deepEqual({ ...f, id: "" }, { op: "pub", id: "", topic: "chat.lobby", data: { text: "hi" } });
  assert.equal(client.pending, 1);
  ws().serverSend({ op: "published", id: f.id, seq: 124 });
  assert.equal(await p, 124);
  assert.equal(client.pending, 0);
});

test("undefined data is sent as null; unencodable data rejects with invalid_data", async () => {
  const { client, ws } = setup();
  ws().hello();
  client.publish("a.b");
  assert.equal(ws().frames("pub")[0].data, null);
  const cyclic = {};
  cyclic.self = cyclic;
  await assert.rejects(client.publish("a.b", cyclic), { code: "invalid_data" });
  await assert.rejects(client.publish("a.b", 1n), { code: "invalid_data" });
  await assert.rejects(client.publish(42, 1), { code: "invalid_topic" });
});

test("publishes made offline are sent in order after hello", async () => {
  const { client, ws } = setup();
  const ps = [client.publish("a.b", 1), client.publish("a.b", 2), client.publish("a.c", 3)];
  assert.equal(ws().frames("pub").length, 0);
  ws().hello();
  const frames = ws().frames("pub");
  assert.deepEqual(frames.map((f) => f.data), [1, 2, 3]);
  frames.forEach((f, i) => ws().serverSend({ op: "published", id: f.id, seq: 10 + i }));
  assert.deepEqual(await Promise.all(ps), [10, 11, 12]);
});

test("a publish unanswered when the connection drops is resent with the same id and resolves once", async () => {
  const { client, clock, ws } = setup();
  ws().hello();
  let settled = 0;
  const p = client.publish("a.b", "x").finally(() => settled++);
  const first = ws().frames("pub")[0];
  ws().serverClose(1006);
  clock.advance(clock.delays()[0]);
  assert.equal(ws().frames("pub").length, 0, "nothing sent before hello");
  ws().hello();
  const again = ws().frames("pub");
  assert.equal(again.length, 1);
  assert.deepEqual(again[0], first, "same id, same frame");
  ws().serverSend({ op: "published", id: first.id, seq: 5 });
  ws().serverSend({ op: "published", id: first.id, seq: 5 }); // a duplicate answer changes nothing
  assert.equal(await p, 5);
  assert.equal(settled, 1);
  ws().serverClose(1006);
  clock.advance(clock.delays()[0]);
  ws().hello();
  assert.equal(ws().frames("pub").length, 0, "an answered publish is never sent again");
});

test("the queue is bounded: beyond maxQueue publish rejects with queue_full", async () => {
  const { client, ws } = setup({ maxQueue: 3 });
  const ps = [1, 2, 3].map((i) => client.publish("a.b", i));
  const all = Promise.allSettled(ps);
  await assert.rejects(client.publish("a.b", 4), (e) => e.code === "queue_full" && e.topic === "a.b");
  ws().hello();
  const f = ws().frames("pub")[0];
  ws().serverSend({ op: "published", id: f.id, seq: 1 });
  await ps[0];
  const p5 = client.publish("a.b", 5); // room again
  assert.equal(ws().frames("pub").length, 4);
  assert.equal(client.pending, 3);
  client.close();
  await assert.rejects(p5, { code: "closed" });
  assert.deepEqual((await all).map((r) => r.status), ["fulfilled", "rejected", "rejected"]);
});

test("the default queue bound is 1000", async () => {
  const { client } = setup();
  const ps = Array.from({ length: 1000 }, (_, i) => client.publish("a.b", i));
  await assert.rejects(client.publish("a.b", "x"), { code: "queue_full" });
  client.close();
  const results = await Promise.allSettled(ps);
  assert.ok(results.every((r) => r.status === "rejected" && r.reason.code === "closed"));
});

test("server refusals reject with the server's code and message", async () => {
  const table = ["forbidden", "invalid_topic", "too_large", "internal", "some_future_code"];
  for (const code of table) {
    const { client, ws } = setup();
    ws().hello();
    const p = client.publish("x.y", 1);
    const f = ws().frames("pub")[0];
    ws().serverSend({ op: "error", id: f.id, code, message: `said ${code}` });
    await assert.rejects(p, (e) => e instanceof Error && e.code === code && e.message === `said ${code}` && e.topic === "x.y");
    assert.equal(client.pending, 0);
  }
});

test("rate_limited and unavailable pause publishing with growing backoff, then resend the same id first, one at a time", async () => {
  for (const code of ["rate_limited", "unavailable"]) {
    const { client, clock, ws } = setup({ random: () => 1 });
    ws().hello();
    const p1 = client.publish("a.b", 1);
    const p2 = client.publish("a.b", 2);
    const [f1, f2] = ws().frames("pub");
    ws().serverSend({ op: "published", id: f2.id, seq: 7 });
    ws().serverSend({ op: "error", id: f1.id, code, message: "retry later" });
    assert.equal(await p2, 7);
    const p3 = client.publish("a.b", 3);
    const p4 = client.publish("a.b", 4);
    assert.equal(ws().frames("pub").length, 2, "paused: nothing new goes out");
    clock.advance(999);
    assert.equal(ws().frames("pub").length, 2);
    clock.advance(1);
    assert.deepEqual(ws().frames("pub").slice(2).map((f) => f.id), [f1.id], "careful: the refused one first, alone");
    // refused again: the pause doubles
    ws().serverSend({ op: "error", id: f1.id, code });
    clock.advance(1999);
    assert.equal(ws().frames("pub").length, 3);
    clock.advance(1);
    assert.equal(ws().frames("pub").length, 4);
    assert.equal(ws().frames("pub").at(-1).id, f1.id);
    // and doubles again, but no further than 4 x rateLimitDelay
    for (const pause of [4000, 4000]) {
      const n = ws().frames("pub").length;
      ws().serverSend({ op: "error", id: f1.id, code });
      clock.advance(pause - 1);
      assert.equal(ws().frames("pub").length, n, `paused ${pause}`);
      clock.advance(1);
      assert.equal(ws().frames("pub").length, n + 1);
    }
    ws().serverSend({ op: "published", id: f1.id, seq: 9 });
    const f3 = ws().frames("pub").at(-1);
    assert.equal(f3.data, 3, "one at a time while careful");
    assert.equal(ws().frames("pub").length, 7);
    ws().serverSend({ op: "published", id: f3.id, seq: 10 });
    ws().serverSend({ op: "published", id: ws().frames("pub").at(-1).id, seq: 11 });
    assert.deepEqual(await Promise.all([p1, p3, p4]), [9, 10, 11]);
    // a quiet period ends careful mode: the full window again
    clock.advance(30000);
    const before = ws().frames("pub").length;
    const more = Array.from({ length: 20 }, (_, i) => client.publish("a.b", i));
    assert.equal(ws().frames("pub").length, before + 16);
    client.close();
    await Promise.allSettled(more);
  }
});

test("at most maxInFlight publishes are unanswered; answers let the next ones go", async () => {
  const { client, ws } = setup({ maxInFlight: 3 });
  const ps = Array.from({ length: 7 }, (_, i) => client.publish("a.b", i));
  ws().hello();
  assert.deepEqual(ws().frames("pub").map((f) => f.data), [0, 1, 2]);
  ws().serverSend({ op: "published", id: ws().frames("pub")[1].id, seq: 2 });
  assert.deepEqual(ws().frames("pub").map((f) => f.data), [0, 1, 2, 3]);
  ws().serverSend({ op: "error", id: ws().frames("pub")[0].id, code: "forbidden" });
  assert.deepEqual(ws().frames("pub").map((f) => f.data), [0, 1, 2, 3, 4]);
  for (let i = 2; i < 7; i++) {
    const f = ws().frames("pub").find((x) => x.data === i);
    ws().serverSend({ op: "published", id: f.id, seq: i + 1 });
  }
  const r = await Promise.allSettled(ps);
  assert.deepEqual(r.map((x) => x.status), ["rejected", "fulfilled", "fulfilled", "fulfilled", "fulfilled", "fulfilled", "fulfilled"]);
  assert.deepEqual(r.slice(1).map((x) => x.value), [2, 3, 4, 5, 6, 7]);
});

test("close() rejects every pending publish with code closed; later publishes too", async () => {
  const { client, ws } = setup();
  ws().hello();
  const inflight = client.publish("a.b", 1);
  client.close();
  await assert.rejects(inflight, (e) => e.code === "closed" && e.name === "WhalesongError");
  await assert.rejects(client.publish("a.b", 2), { code: "closed" });
});

test("a drop during a rate-limit pause: after the reconnect the refused publish goes first and alone, with its id", async () => {
  const { client, clock, ws } = setup({ random: () => 1 });
  ws().hello();
  const p1 = client.publish("a.b", 1);
  const p2 = client.publish("a.b", 2);
  const [f1, f2] = ws().frames("pub");
  ws().serverSend({ op: "error", id: f1.id, code: "rate_limited" });
  ws().serverClose(1006); // f2 was in flight, unanswered
  clock.advance(clock.delays()[0]);
  ws().hello();
  assert.deepEqual(ws().frames("pub").map((f) => f.id), [f1.id], "no pause on a new connection, but careful: one at a time, in call order");
  ws().serverSend({ op: "published", id: f1.id, seq: 8 });
  assert.deepEqual(ws().frames("pub").map((f) => f.id), [f1.id, f2.id]);
  ws().serverSend({ op: "published", id: f2.id, seq: 9 });
  assert.deepEqual(await Promise.all([p1, p2]), [8, 9]);
  assert.equal(client.pending, 0);
  client.close();
});
