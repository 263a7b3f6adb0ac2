// client.history(pattern, { before, limit }): the history frame, the page
// answer, the offline queue, refusals, close, and a restart in between.
import { test } from "node:test";
import assert from "node:assert/strict";
import { setup, settled, EPOCH, EPOCH2 } from "./fakes.js";

const page = (id, events, more = false, epoch = EPOCH) => ({ op: "page", id, epoch, more, events });
const entry = (seq, extra = {}) => ({ topic: "chat.lobby", seq, time: "2026-11-27T17:30:01.123456789Z", data: { text: `m${seq}` }, ...extra });

test("history sends a history frame when open and resolves to events shaped like a handler's, oldest first", async () => {
  const { client, ws } = setup();
  ws().hello();
  const p = client.history("chat.lobby", { before: 318, limit: 2 });
  const [f] = ws().frames("history");
  assert.deepEqual({ ...f, id: "" }, { op: "history", id: "", pattern: "chat.lobby", before: 318, limit: 2 });
  assert.match(f.id, /^.{1,64}$/);
  ws().serverSend(page(f.id, [entry(311), entry(317, { data: null, error: "codec: NaN" })], true));
  const got = await p;
  assert.equal(got.more, true);
  assert.equal(got.epoch, EPOCH);
  assert.deepEqual(
    got.events.map((e) => [e.topic, e.seq, e.time.toISOString(), e.data, e.error]),
    [
      ["chat.lobby", 311, "2026-11-27T17:30:01.123Z", { text: "m311" }, undefined],
      ["chat.lobby", 317, "2026-11-27T17:30:01.123Z", null, "codec: NaN"],
    ],
  );
  assert.equal("skipped" in got.events[0], false, "history events carry no skipped");
});

test("without before and limit the frame leaves them to the server (the newest 50); more defaults to false", async () => {
  const { client, ws } = setup();
  ws().hello();
  const p = client.history("chat.>");
  const { op, id, ...rest } = ws().frames("history")[0];
  assert.deepEqual(rest, { pattern: "chat.>" });
  ws().serverSend({ op: "page", id, events: [] });
  assert.deepEqual(await p, { events: [], more: false, epoch: null });
});

test("history made offline is sent after hello; one unanswered at a drop is sent again after the next", async () => {
  const { client, clock, ws } = setup();
  const p = client.history("a.>", { limit: 10 });
  assert.equal(ws().frames("history").length, 0);
  ws().hello();
  const first = ws().frames("history")[0];
  ws().serverClose(1006);
  clock.advance(clock.delays()[0]);
  ws().hello();
  const again = ws().frames("history");
  assert.deepEqual(again, [first], "sent again, same request");
  ws().serverSend(page(first.id, [entry(1)]));
  ws().serverSend(page(first.id, [entry(2)])); // a duplicate answer changes nothing
  assert.deepEqual((await p).events.map((e) => e.seq), [1]);
  ws().serverClose(1006);
  clock.advance(clock.delays()[0]);
  ws().hello();
  assert.equal(ws().frames("history").length, 0, "an answered request is never sent again");
});

test("an error frame answering it rejects with the server's code, the pattern on it, and no error event", async () => {
  for (const code of ["forbidden", "invalid_pattern", "bad_frame", "unavailable"]) {
    const { client, ws, log } = setup();
    ws().hello();
    const p = client.history("admin.>");
    ws().serverSend({ op: "error", id: ws().frames("history")[0].id, code, message: `said ${code}` });
    await assert.rejects(p, (e) => e.code === code && e.message === `said ${code}` && e.pattern === "admin.>");
    assert.deepEqual(log.errors, []);
  }
});

test("close() rejects pending history with code closed; after close() it rejects at once", async () => {
  const { client, ws } = setup();
  const offline = client.history("a.>");
  ws().hello();
  const sent = client.history("b.>");
  client.close();
  await assert.rejects(offline, { code: "closed", pattern: "a.>" });
  await assert.rejects(sent, { code: "closed", pattern: "b.>" });
  await assert.rejects(client.history("c.>"), { code: "closed" });
});

test("bad arguments throw a TypeError at once: pattern, limit 1..1000, before a seq >= 1", () => {
  const { client, ws } = setup();
  ws().hello();
  const bad = [
    ["", {}],
    [42, {}],
    ["a", { limit: 0 }],
    ["a", { limit: 1001 }],
    ["a", { limit: 1.5 }],
    ["a", { limit: "10" }],
    ["a", { limit: -1 }],
    ["a", { before: 0 }],
    ["a", { before: -5 }],
    ["a", { before: 2.5 }],
    ["a", { before: "318" }],
    ["a", { before: Number.MAX_SAFE_INTEGER + 2 }],
    ["a", "limit=5"],
  ];
  for (const [pattern, opts] of bad) assert.throws(() => client.history(pattern, opts), TypeError, JSON.stringify([pattern, opts]));
  assert.equal(ws().frames("history").length, 0, "nothing sent for bad arguments");
  const ok = [1, 1000].map((limit) => client.history("a", { limit, before: 1 }));
  ok.push(client.history("a", null));
  assert.deepEqual(ws().frames("history").map((f) => f.limit), [1, 1000, undefined]);
  client.close();
  return Promise.allSettled(ok);
});

test("a page before a seq of one epoch is not read in another: epoch_changed after a restart; unbound ones go on", async () => {
  const { client, clock, ws } = setup();
  ws().hello(EPOCH);
  ws().serverClose(1006);
  const bound = client.history("chat.lobby", { before: 318 });
  const unbound = client.history("chat.lobby", { limit: 5 });
  clock.advance(clock.delays()[0]);
  ws().hello(EPOCH2);
  const b = await settled(bound);
  assert.deepEqual([b.error?.code, b.error?.pattern], ["epoch_changed", "chat.lobby"]);
  const frames = ws().frames("history");
  assert.deepEqual(frames.map((f) => f.limit), [5], "only the unbound request went out");
  ws().serverSend(page(frames[0].id, [entry(3)], false, EPOCH2));
  assert.equal((await unbound).epoch, EPOCH2);
  // sent in one epoch and unanswered at a restart: the same check on resend
  const sent = client.history("chat.lobby", { before: 3 });
  assert.equal(ws().frames("history").length, 2);
  ws().serverClose(1001);
  clock.advance(clock.delays()[0]);
  ws().hello(EPOCH);
  assert.equal((await settled(sent)).error?.code, "epoch_changed");
});

test("history requests are bounded by maxQueue: one more rejects with queue_full", async () => {
  const { client } = setup({ maxQueue: 2 });
  const ps = [client.history("a"), client.history("b")];
  await assert.rejects(client.history("c"), { code: "queue_full", pattern: "c" });
  client.close();
  await Promise.allSettled(ps);
});

test("a malformed page rejects that request with bad_frame; other frames go on", async () => {
  const { client, ws } = setup();
  ws().hello();
  const a = client.history("a");
  const b = client.history("b");
  const [fa, fb] = ws().frames("history");
  ws().serverSend({ op: "page", id: fa.id, events: [{ topic: "a", seq: "x" }] });
  ws().serverSend({ op: "page", id: fb.id, events: "nope" });
  await assert.rejects(a, { code: "bad_frame" });
  await assert.rejects(b, { code: "bad_frame" });
  assert.equal(client.state, "open");
});
