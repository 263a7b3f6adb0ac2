// Subscriptions: the sub frame, ready, lastSeq, resume positions across
// reconnects, dedup by seq, gap before a new stream, unsubscribe, errors.
import { test } from "node:test";
import assert from "node:assert/strict";
import { setup, EPOCH, EPOCH2 } from "./fakes.js";

// collect subscribes with a handler that records seqs (and the shared order log).
function collect(client, log, pattern, opts) {
  const seen = [];
  const sub = client.subscribe(
    pattern,
    (ev) => {
      seen.push(ev.seq);
      log.order.push(`ev:${ev.seq}`);
    },
    opts,
  );
  return { sub, seen };
}

test("subscribe sends one sub frame per resume option after hello", () => {
  const table = [
    { name: "live", opts: undefined, want: {} },
    { name: "after number", opts: { after: 41 }, want: { after: { seq: 41 } } },
    { name: "after zero", opts: { after: 0 }, want: { after: { seq: 0 } } },
    { name: "after position", opts: { after: { epoch: EPOCH, seq: 7 } }, want: { after: { epoch: EPOCH, seq: 7 } } },
    { name: "last", opts: { last: 50 }, want: { last: 50 } },
    { name: "since date", opts: { since: new Date("2026-11-27T17:00:00Z") }, want: { since: "2026-11-27T17:00:00.000Z" } },
    { name: "since string", opts: { since: "2026-11-27T17:00:00Z" }, want: { since: "2026-11-27T17:00:00Z" } },
    { name: "since string with nanoseconds", opts: { since: "2026-11-27T17:00:00.123456789+01:00" }, want: { since: "2026-11-27T17:00:00.123456789+01:00" } },
    { name: "since other date string", opts: { since: "27 Nov 2026 17:00:00 GMT" }, want: { since: "2026-11-27T17:00:00.000Z" } },
    { name: "since milliseconds", opts: { since: Date.UTC(2026, 10, 27, 17) }, want: { since: "2026-11-27T17:00:00.000Z" } },
  ];
  for (const c of table) {
    const { client, ws } = setup();
    client.subscribe("chat.>", () => {}, c.opts);
    assert.equal(ws().frames("sub").length, 0, `${c.name}: nothing before hello`);
    ws().hello();
    const [f] = ws().frames("sub");
    const { op, id, sub, pattern, ...rest } = f;
    assert.equal(op, "sub");
    assert.match(id, /^.{1,64}$/);
    assert.match(sub, /^.{1,64}$/);
    assert.equal(pattern, "chat.>");
    assert.deepEqual(rest, c.want, c.name);
  }
});

test("subscribe rejects bad arguments at once", () => {
  const { client } = setup();
  assert.throws(() => client.subscribe("", () => {}), TypeError);
  assert.throws(() => client.subscribe("a", null), TypeError);
  assert.throws(() => client.subscribe("a", () => {}, { after: 1, last: 2 }), /at most one/);
  assert.throws(() => client.subscribe("a", () => {}, { after: -1 }), TypeError);
  assert.throws(() => client.subscribe("a", () => {}, { last: 1.5 }), TypeError);
  assert.throws(() => client.subscribe("a", () => {}, { since: "not a date" }), TypeError);
});

test("ready resolves with recovered on the first ack; events reach the handler with a Date", async () => {
  const { client, ws } = setup();
  const got = [];
  const sub = client.subscribe("chat.>", (ev) => got.push(ev), { last: 2 });
  ws().hello();
  assert.equal(sub.lastSeq, 0);
  ws().ack(sub.id, { from: 40 });
  assert.deepEqual(await sub.ready, { recovered: true });
  ws().events([[sub.id], 41, { text: "a" }, "chat.lobby"], [[sub.id], 42, { text: "b" }, "chat.x"]);
  assert.equal(got.length, 2);
  assert.deepEqual(got[0].data, { text: "a" });
  assert.equal(got[0].topic, "chat.lobby");
  assert.ok(got[0].time instanceof Date);
  assert.equal(got[0].time.toISOString(), "2026-11-27T17:32:28.123Z");
  assert.equal(sub.lastSeq, 42);
  assert.deepEqual(sub.position, { epoch: EPOCH, seq: 42 });
});

test("one event for two subscriptions reaches both handlers", () => {
  const { client, ws, log } = setup();
  const a = collect(client, log, "chat.>");
  const b = collect(client, log, "chat.lobby");
  ws().hello();
  ws().ack(a.sub.id);
  ws().ack(b.sub.id);
  ws().events([[a.sub.id, b.sub.id], 1, "x"]);
  assert.deepEqual(a.seen, [1]);
  assert.deepEqual(b.seen, [1]);
});

test("dedup: an event at or below the position is never handed over twice", () => {
  const { client, ws, log } = setup();
  const { sub, seen } = collect(client, log, "t.>");
  ws().hello();
  ws().ack(sub.id, { from: 10 });
  ws().events([[sub.id], 9, 0], [[sub.id], 10, 0], [[sub.id], 11, 0], [[sub.id], 11, 0], [[sub.id], 12, 0], [[sub.id], 12, 0]);
  assert.deepEqual(seen, [11, 12]);
});

test("reconnect resubscribes from the last seen (epoch, seq) and drops replayed duplicates", () => {
  const { client, clock, ws, log } = setup();
  const { sub, seen } = collect(client, log, "t.>", { last: 5 });
  ws().hello();
  ws().ack(sub.id, { from: 0 });
  ws().events([[sub.id], 1, 0], [[sub.id], 2, 0], [[sub.id], 3, 0]);
  ws().serverClose(1006);
  clock.advance(clock.delays()[0]);
  ws().hello(EPOCH, 5);
  const [f] = ws().frames("sub");
  assert.equal(f.sub, sub.id, "same subscription id on the new connection");
  assert.deepEqual(f.after, { epoch: EPOCH, seq: 3 });
  assert.equal(f.last, undefined);
  ws().ack(sub.id, { from: 3 });
  ws().events([[sub.id], 2, 0], [[sub.id], 3, 0], [[sub.id], 4, 0], [[sub.id], 5, 0]);
  assert.deepEqual(seen, [1, 2, 3, 4, 5]);
  assert.deepEqual(log.gaps, []);
});

test("a subscription that saw no event resumes from the ack's from", () => {
  const { client, clock, ws, log } = setup();
  const { sub, seen } = collect(client, log, "t.>");
  ws().hello(EPOCH, 77);
  ws().ack(sub.id, { from: 77 });
  ws().serverClose(4000, "resume needed");
  clock.advance(clock.delays()[0]);
  ws().hello(EPOCH, 80);
  assert.deepEqual(ws().frames("sub")[0].after, { epoch: EPOCH, seq: 77 });
  ws().ack(sub.id, { from: 77 });
  ws().events([[sub.id], 78, 0], [[sub.id], 79, 0], [[sub.id], 80, 0]);
  assert.deepEqual(seen, [78, 79, 80]);
});

test("events that arrive before the ack wait for it and are still deduplicated", () => {
  const { client, clock, ws, log } = setup();
  const { sub, seen } = collect(client, log, "t.>");
  ws().hello();
  ws().ack(sub.id, { from: 0 });
  ws().events([[sub.id], 1, 0], [[sub.id], 2, 0]);
  ws().serverClose(1006);
  clock.advance(clock.delays()[0]);
  ws().hello();
  ws().events([[sub.id], 2, 0], [[sub.id], 3, 0]);
  assert.deepEqual(seen, [1, 2], "nothing handed over before the ack");
  ws().ack(sub.id, { from: 2 });
  assert.deepEqual(seen, [1, 2, 3]);
});

test("recovered:false fires gap before any event of the new stream, and ready says so", async () => {
  const { client, clock, ws, log } = setup();
  const { sub, seen } = collect(client, log, "t.>", { after: 0 });
  ws().hello();
  ws().ack(sub.id, { from: 0 });
  ws().events([[sub.id], 1, 0]);
  assert.deepEqual(await sub.ready, { recovered: true });
  ws().serverClose(1006);
  clock.advance(clock.delays()[0]);
  ws().hello();
  ws().events([[sub.id], 5, 0]); // before the ack: must wait behind the gap
  ws().ack(sub.id, { from: 1, recovered: false });
  ws().events([[sub.id], 6, 0]);
  assert.deepEqual(log.order, ["ev:1", "gap:t.>", "ev:5", "ev:6"]);
  assert.deepEqual(seen, [1, 5, 6]);
});

test("a first ack with recovered:false resolves ready {recovered:false} after a gap", async () => {
  const { client, ws, log } = setup();
  const { sub } = collect(client, log, "t.>", { last: 50 });
  ws().hello();
  ws().ack(sub.id, { from: 10, recovered: false });
  assert.deepEqual(await sub.ready, { recovered: false });
  assert.deepEqual(log.gaps, [{ pattern: "t.>", reason: "evicted", after: 0, before: 11 }]);
});

test("a new epoch (server restart) fires gap, then the new stream starts over at low seqs", () => {
  const { client, clock, ws, log } = setup();
  const { sub, seen } = collect(client, log, "t.>");
  ws().hello(EPOCH, 100);
  ws().ack(sub.id, { from: 100 });
  ws().events([[sub.id], 101, 0], [[sub.id], 102, 0]);
  ws().serverClose(1001, "going away");
  clock.advance(clock.delays()[0]);
  ws().hello(EPOCH2, 3);
  assert.deepEqual(ws().frames("sub")[0].after, { epoch: EPOCH, seq: 102 });
  ws().events([[sub.id], 1, 0]);
  // even if a server wrongly said recovered:true, the epoch change is a gap
  ws().ack(sub.id, { epoch: EPOCH2, from: 0, recovered: true });
  ws().events([[sub.id], 2, 0], [[sub.id], 3, 0]);
  assert.deepEqual(log.order, ["ev:101", "ev:102", "gap:t.>", "ev:1", "ev:2", "ev:3"]);
  assert.deepEqual(seen, [101, 102, 1, 2, 3]);
  assert.deepEqual(sub.position, { epoch: EPOCH2, seq: 3 });
  assert.equal(client.epoch, EPOCH2);
});

test("unsubscribe sends unsub, stops the handler, and is idempotent", () => {
  const { client, clock, ws, log } = setup();
  const { sub, seen } = collect(client, log, "t.>");
  ws().hello();
  ws().ack(sub.id);
  ws().events([[sub.id], 1, 0]);
  sub.unsubscribe();
  sub.unsubscribe();
  const unsubs = ws().frames("unsub");
  assert.equal(unsubs.length, 1);
  assert.equal(unsubs[0].sub, sub.id);
  ws().events([[sub.id], 2, 0]); // in flight before the server saw unsub
  ws().serverSend({ op: "unsubscribed", id: unsubs[0].id, sub: sub.id });
  assert.deepEqual(seen, [1]);
  ws().serverClose(1006);
  clock.advance(clock.delays()[0]);
  ws().hello();
  assert.equal(ws().frames("sub").length, 0, "not resubscribed after a reconnect");
});

test("unsubscribe before the ack rejects ready with code unsubscribed", async () => {
  const { client, ws } = setup();
  const sub = client.subscribe("t.>", () => {});
  sub.unsubscribe();
  await assert.rejects(sub.ready, { code: "unsubscribed" });
  ws().hello();
  assert.equal(ws().frames("sub").length, 0);
});

test("a refused first subscription rejects ready with the server's code, and that is the only report", async () => {
  const { client, ws, log } = setup();
  const sub = client.subscribe("secret.>", () => {});
  ws().hello();
  const req = ws().frames("sub")[0];
  ws().serverSend({ op: "error", id: req.id, sub: req.sub, code: "forbidden", message: "no" });
  await assert.rejects(sub.ready, (e) => e.code === "forbidden" && e.pattern === "secret.>" && e.message === "no");
  assert.deepEqual(log.errors, [], "no error event besides the rejection");
  assert.equal(sub.state, "ended");
});

test("a refusal while ready is still pending (a resubscribe before any ack) rejects ready only", async () => {
  const { client, clock, ws, log } = setup();
  const sub = client.subscribe("t.>", () => {});
  ws().hello();
  ws().serverClose(1006); // dropped before the server answered
  clock.advance(clock.delays()[0]);
  ws().hello();
  const req = ws().frames("sub")[0];
  ws().serverSend({ op: "error", id: req.id, sub: req.sub, code: "too_many_subscriptions", message: "at most 128" });
  await assert.rejects(sub.ready, { code: "too_many_subscriptions", pattern: "t.>" });
  assert.deepEqual(log.errors, []);
});

test("a live subscription the server ends (error naming its sub, no id) emits error; no more events; the connection stays", async () => {
  const { client, ws, log } = setup();
  const seen = [];
  const sub = client.subscribe("room.>", (ev) => seen.push(ev.seq));
  const other = client.subscribe("other.>", (ev) => seen.push(-ev.seq));
  ws().hello();
  ws().ack(sub.id);
  ws().ack(other.id);
  assert.deepEqual(await sub.ready, { recovered: true });
  ws().events([[sub.id], 1, 0]);
  ws().serverSend({ op: "error", sub: sub.id, code: "forbidden", message: "subscribe to \"room.>\" denied" });
  assert.deepEqual(log.errors.map((e) => [e.code, e.pattern]), [["forbidden", "room.>"]]);
  assert.equal(sub.state, "ended");
  ws().events([[sub.id, other.id], 2, 0]);
  assert.deepEqual(seen, [1, -2]);
  assert.equal(client.state, "open");
  assert.equal(ws().closed, null);
});

test("the answer to the sub frame of a subscription unsubscribed meanwhile is ignored, refusal or not", async () => {
  for (const answer of ["error", "subscribed"]) {
    const { client, ws, log } = setup();
    const seen = [];
    const sub = client.subscribe("t.>", (ev) => seen.push(ev.seq));
    ws().hello();
    const req = ws().frames("sub")[0];
    sub.unsubscribe();
    await assert.rejects(sub.ready, { code: "unsubscribed" });
    const unsub = ws().frames("unsub")[0];
    assert.equal(unsub.sub, sub.id, "unsub sent: the server may have the subscription");
    if (answer === "error") {
      ws().serverSend({ op: "error", id: req.id, sub: sub.id, code: "forbidden", message: "no" });
      ws().serverSend({ op: "error", id: unsub.id, sub: sub.id, code: "unknown_subscription", message: "no" });
    } else {
      ws().serverSend({ op: "subscribed", id: req.id, sub: sub.id, epoch: "e", recovered: true, from: 0 });
      ws().events([[sub.id], 1, 0]);
      ws().serverSend({ op: "unsubscribed", id: unsub.id, sub: sub.id });
    }
    assert.deepEqual(log.errors, [], answer);
    assert.deepEqual(seen, []);
    assert.equal(sub.state, "ended");
  }
});

test("a socket that fails while resubscribing leaves every subscription to be resent on the next connection", () => {
  const { client, clock, ws, sockets } = setup();
  const a = client.subscribe("a.>", () => {});
  const b = client.subscribe("b.>", () => {});
  ws().hello();
  ws().ack(a.id, { from: 3 });
  ws().ack(b.id, { from: 3 });
  ws().serverClose(1006);
  clock.advance(clock.delays()[0]);
  const broken = ws();
  broken.send = () => {
    throw new Error("socket is gone");
  };
  broken.hello();
  assert.ok(broken.closed, "the failed socket is abandoned");
  assert.deepEqual([a.state, b.state], ["waiting", "waiting"]);
  clock.advance(clock.delays()[0]);
  assert.equal(sockets.length, 3);
  ws().hello();
  assert.deepEqual(ws().frames("sub").map((f) => [f.sub, f.after.seq]), [[a.id, 3], [b.id, 3]]);
});

test("a throwing handler is reported as an error and later events still flow", () => {
  const { client, ws, log } = setup();
  const seen = [];
  const sub = client.subscribe("t.>", (ev) => {
    seen.push(ev.seq);
    if (ev.seq === 1) throw new Error("oops");
  });
  ws().hello();
  ws().ack(sub.id);
  ws().events([[sub.id], 1, 0], [[sub.id], 2, 0]);
  assert.deepEqual(seen, [1, 2]);
  assert.equal(log.errors[0].code, "handler");
});

test("close() rejects ready of unacknowledged subscriptions with code closed", async () => {
  const { client, ws } = setup();
  const sub = client.subscribe("t.>", () => {});
  client.close();
  await assert.rejects(sub.ready, { code: "closed" });
  const late = client.subscribe("t.>", () => {});
  await assert.rejects(late.ready, { code: "closed" });
  assert.equal(ws().frames().length, 0);
});

test("a handler may unsubscribe or close mid-frame; nothing more is handed over", () => {
  const { client, ws } = setup();
  const seen = [];
  const sub = client.subscribe("t.>", (ev) => {
    seen.push(ev.seq);
    if (ev.seq === 2) sub.unsubscribe();
  });
  ws().hello();
  ws().ack(sub.id);
  ws().events([[sub.id], 1, 0], [[sub.id], 2, 0], [[sub.id], 3, 0]);
  assert.deepEqual(seen, [1, 2]);
  const seen2 = [];
  const sub2 = client.subscribe("u.>", (ev) => {
    seen2.push(ev.seq);
    client.close();
  });
  ws().ack(sub2.id);
  ws().events([[sub2.id], 4, 0], [[sub2.id], 5, 0]);
  assert.deepEqual(seen2, [4]);
});

test("an event the server could not encode arrives with its error, keeps its seq, and reports codec", () => {
  const { client, ws, log } = setup();
  const got = [];
  const sub = client.subscribe("t.>", (ev) => got.push(ev));
  ws().hello();
  ws().ack(sub.id);
  ws().serverSend({ op: "events", events: [{ subs: [sub.id], topic: "t.a", seq: 44, time: "2026-11-27T17:32:29Z", data: null, error: "codec: NaN" }] });
  ws().events([[sub.id], 45, 1]);
  assert.deepEqual(got.map((e) => [e.seq, e.data, e.error]), [[44, null, "codec: NaN"], [45, 1, undefined]]);
  assert.equal(log.errors[0].code, "codec");
});

test("subscribing and publishing from a state listener on open sends each frame once", () => {
  const { client, ws } = setup();
  let sub = null;
  client.on("state", (s) => {
    if (s === "open" && !sub) {
      sub = client.subscribe("late.>", () => {});
      client.publish("late.x", 1);
    }
  });
  client.subscribe("early.>", () => {});
  ws().hello();
  assert.deepEqual(ws().frames("sub").map((f) => f.pattern), ["early.>", "late.>"]);
  assert.equal(ws().frames("pub").length, 1);
});

test("a resubscribe the server refuses ends the subscription with an error naming its pattern", async () => {
  const { client, clock, ws, log } = setup();
  const seen = [];
  const sub = client.subscribe("t.>", (ev) => seen.push(ev.seq));
  ws().hello();
  ws().ack(sub.id);
  assert.deepEqual(await sub.ready, { recovered: true });
  ws().serverClose(1006);
  clock.advance(clock.delays()[0]);
  ws().hello();
  const req = ws().frames("sub")[0];
  ws().serverSend({ op: "error", id: req.id, sub: req.sub, code: "too_many_subscriptions", message: "at most 128" });
  assert.equal(log.errors.at(-1).code, "too_many_subscriptions");
  assert.equal(log.errors.at(-1).pattern, "t.>");
  ws().events([[sub.id], 1, 0]);
  assert.deepEqual(seen, []);
  ws().serverClose(1006);
  clock.advance(clock.delays()[0]);
  ws().hello();
  assert.equal(ws().frames("sub").length, 0, "an ended subscription is not retried");
});
