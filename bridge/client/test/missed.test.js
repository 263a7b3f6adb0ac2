// Missed events you can act on: { latest }, { conflate }, the fallback a
// resume carries, event.skipped, the gap info and sub.caughtUp.
import { test } from "node:test";
import assert from "node:assert/strict";
import { setup, flush, FakeStorage, EPOCH, EPOCH2 } from "./fakes.js";

// settled tells whether a promise has settled, and how.
async function settled(p) {
  let r = "pending";
  p.then(
    () => (r = "resolved"),
    (e) => (r = { rejected: e.code }),
  );
  await flush();
  return r;
}

// live makes a client with one subscription on an open connection, its
// sub frame sent and not yet answered.
function live(opts, subOpts) {
  const s = setup(opts);
  const seen = [];
  const sub = s.client.subscribe(
    "t.>",
    (ev) => {
      seen.push(ev.seq);
      s.log.order.push(`ev:${ev.seq}`);
    },
    subOpts,
  );
  s.ws().hello();
  return { ...s, sub, seen };
}

// reconnect drops the connection and opens the next one (hello in epoch).
function reconnect(s, epoch = EPOCH) {
  s.ws().serverClose(1006);
  s.clock.advance(s.clock.delays()[0]);
  s.ws().hello(epoch);
}

// ---- latest and conflate ----

test("{ latest: true } sends latest; it excludes after, last and since; conflate combines with any", () => {
  const table = [
    { opts: { latest: true }, want: { latest: true } },
    { opts: { latest: false }, want: {} },
    { opts: { conflate: true }, want: { conflate: true } },
    { opts: { conflate: false }, want: {} },
    { opts: { latest: true, conflate: true }, want: { latest: true, conflate: true } },
    { opts: { last: 5, conflate: true }, want: { last: 5, conflate: true } },
    { opts: { after: 7, conflate: true }, want: { after: { seq: 7 }, conflate: true } },
    { opts: { since: "2026-11-27T17:00:00Z", conflate: true }, want: { since: "2026-11-27T17:00:00Z", conflate: true } },
    { opts: { after: { epoch: EPOCH, seq: 3 }, conflate: true }, want: { after: { epoch: EPOCH, seq: 3 }, conflate: true } },
  ];
  for (const c of table) {
    const { ws } = live({}, c.opts);
    const { op, id, sub, pattern, ...rest } = ws().frames("sub")[0];
    assert.deepEqual(rest, c.want, JSON.stringify(c.opts));
  }
});

test("bad latest or conflate options throw at once", () => {
  const { client } = setup();
  for (const other of [{ after: 1 }, { last: 2 }, { since: new Date() }, { after: { epoch: EPOCH, seq: 1 } }]) {
    assert.throws(() => client.subscribe("a", () => {}, { latest: true, ...other }), /at most one of after, last, since, latest/);
  }
  assert.throws(() => client.subscribe("a", () => {}, { latest: "yes" }), /latest must be true or false/);
  assert.throws(() => client.subscribe("a", () => {}, { conflate: 1 }), /conflate must be true or false/);
  assert.throws(() => client.subscribe("a", () => {}, "last"), /options must be an object/);
});

test("conflate is sent again on every resume", () => {
  const s = live({}, { conflate: true });
  s.ws().ack(s.sub.id, { from: 9 });
  reconnect(s);
  assert.deepEqual(s.ws().frames("sub")[0].conflate, true);
  assert.deepEqual(s.ws().frames("sub")[0].after, { epoch: EPOCH, seq: 9 });
});

test("event.skipped carries the entry's skipped count; absent, zero or malformed: no field", () => {
  const s = live({}, { latest: true, conflate: true });
  const got = [];
  s.sub.handler = (ev) => got.push(ev);
  s.ws().ack(s.sub.id, { from: 0 });
  const entry = (seq, extra) => ({ subs: [s.sub.id], topic: "price.eur", seq, time: "2026-11-27T17:32:30Z", data: { bid: seq }, ...extra });
  s.ws().serverSend({
    op: "events",
    events: [entry(1), entry(19, { skipped: 17 }), entry(20, { skipped: 0 }), entry(21, { skipped: -3 }), entry(22, { skipped: "9" }), entry(23, { skipped: 1.5 })],
  });
  assert.deepEqual(got.map((e) => [e.seq, e.skipped]), [[1, undefined], [19, 17], [20, undefined], [21, undefined], [22, undefined], [23, undefined]]);
  assert.equal("skipped" in got[0], false);
  assert.deepEqual(got[1].data, { bid: 19 });
});

// ---- the fallback: a resume re-applies the intent ----

test("a resume carries the intent as fallback next to after: last, latest, since; after and live carry none", () => {
  const table = [
    { opts: { last: 20 }, fallback: { last: 20 } },
    { opts: { latest: true }, fallback: { latest: true } },
    { opts: { since: new Date("2026-11-27T17:00:00Z") }, fallback: { since: "2026-11-27T17:00:00.000Z" } },
    { opts: { after: 0 }, fallback: undefined },
    { opts: { after: { epoch: EPOCH, seq: 2 } }, fallback: undefined },
    { opts: {}, fallback: undefined },
  ];
  for (const c of table) {
    const s = live({}, c.opts);
    assert.equal(s.ws().frames("sub")[0].fallback, undefined, `${JSON.stringify(c.opts)}: the first frame carries the intent itself`);
    s.ws().ack(s.sub.id, { from: 30 });
    s.ws().events([[s.sub.id], 31, 0]);
    reconnect(s);
    const f = s.ws().frames("sub")[0];
    assert.deepEqual(f.after, { epoch: EPOCH, seq: 31 });
    assert.deepEqual(f.fallback, c.fallback, JSON.stringify(c.opts));
    for (const k of ["last", "latest", "since"]) assert.equal(f[k], undefined, `${k} only as fallback on a resume`);
  }
});

test("a reload resuming from a stored position carries the fallback too", () => {
  const storage = new FakeStorage();
  storage.setItem("whalesong:t.>", JSON.stringify({ epoch: EPOCH, seq: 77 }));
  const s = live({ storage }, { last: 20 });
  const f = s.ws().frames("sub")[0];
  assert.deepEqual(f.after, { epoch: EPOCH, seq: 77 });
  assert.deepEqual(f.fallback, { last: 20 });
});

test("an incomplete resume (restart with { last: 20 }): gap first, then what the server hands under the fallback", () => {
  const s = live({}, { last: 20 });
  s.ws().ack(s.sub.id, { from: 100, replayed: 0, until: 0 });
  s.ws().events([[s.sub.id], 101, 0]);
  reconnect(s, EPOCH2);
  s.ws().events([[s.sub.id], 1781, 0]); // before the answer: must wait behind the gap
  s.ws().ack(s.sub.id, { epoch: EPOCH2, recovered: false, reason: "reset", missing: { after: 101, before: 1781 }, from: 1780, replayed: 20, until: 1800 });
  for (let seq = 1782; seq <= 1800; seq++) s.ws().events([[s.sub.id], seq, 0]);
  assert.equal(s.log.order[1], "gap:t.>");
  assert.deepEqual(s.log.gaps, [{ pattern: "t.>", reason: "reset", after: 101, before: 1781 }]);
  assert.deepEqual(s.seen, [101, ...Array.from({ length: 20 }, (_, i) => 1781 + i)]);
});

// ---- the gap info ----

test("gap info: the server's reason and range when it sends them", () => {
  const cases = [
    { msg: { recovered: false, reason: "evicted", missing: { after: 12, before: 30 }, from: 29 }, want: { reason: "evicted", after: 12, before: 30 } },
    { msg: { recovered: false, reason: "reset", missing: { after: 950, before: 1 }, from: 0, epoch: EPOCH2 }, want: { reason: "reset", after: 950, before: 1 } },
  ];
  for (const c of cases) {
    const s = live({}, { after: 0 });
    s.ws().ack(s.sub.id, { from: 0 });
    s.ws().events([[s.sub.id], 12, 0]);
    reconnect(s, c.msg.epoch || EPOCH);
    s.ws().ack(s.sub.id, c.msg);
    assert.deepEqual(s.log.gaps, [{ pattern: "t.>", ...c.want }]);
  }
});

test("gap info from an older server (no reason, no missing): reset if the epoch changed, else evicted, after = old position, before = from + 1", () => {
  const cases = [
    { name: "same epoch", epoch: EPOCH, msg: { recovered: false, from: 40 }, want: { reason: "evicted", after: 12, before: 41 } },
    { name: "new epoch, server says recovered", epoch: EPOCH2, msg: { epoch: EPOCH2, recovered: true, from: 0 }, want: { reason: "reset", after: 12, before: 1 } },
    { name: "new epoch", epoch: EPOCH2, msg: { epoch: EPOCH2, recovered: false, from: 5 }, want: { reason: "reset", after: 12, before: 6 } },
    { name: "malformed missing", epoch: EPOCH, msg: { recovered: false, reason: "evicted", missing: { after: "x", before: 3 }, from: 40 }, want: { reason: "evicted", after: 12, before: 41 } },
    { name: "unknown reason", epoch: EPOCH, msg: { recovered: false, reason: "mystery", from: 40 }, want: { reason: "evicted", after: 12, before: 41 } },
  ];
  for (const c of cases) {
    const s = live({}, { after: 0 });
    s.ws().ack(s.sub.id, { from: 0 });
    s.ws().events([[s.sub.id], 12, 0]);
    reconnect(s, c.epoch);
    s.ws().ack(s.sub.id, c.msg);
    assert.deepEqual(s.log.gaps, [{ pattern: "t.>", ...c.want }], c.name);
  }
  const first = live({}, { after: 41 });
  first.ws().ack(first.sub.id, { recovered: false, from: 60 });
  assert.deepEqual(first.log.gaps, [{ pattern: "t.>", reason: "evicted", after: 41, before: 61 }], "a first subscribe after a seq: from there");
});

// ---- caughtUp ----

test("caughtUp resolves once the event at until has been handed to the handler, not before", async () => {
  const s = live({}, { last: 3 });
  let handedAtResolve = null;
  s.sub.caughtUp.then(() => (handedAtResolve = [...s.seen]));
  s.ws().ack(s.sub.id, { from: 40, replayed: 3, until: 44 });
  s.ws().events([[s.sub.id], 41, 0], [[s.sub.id], 43, 0]);
  assert.equal(await settled(s.sub.caughtUp), "pending", "two of three replayed");
  s.ws().events([[s.sub.id], 44, 0], [[s.sub.id], 45, 0]);
  await flush();
  assert.deepEqual(handedAtResolve, [41, 43, 44, 45], "resolved after the frame's handlers ran, 44 among them");
});

test("caughtUp resolves at the acknowledgement when nothing was replayed, or the server does not say (older server)", async () => {
  for (const extra of [{ replayed: 0, until: 0 }, {}, { until: "x" }, { replayed: 0, until: 9 }]) {
    const s = live({}, { latest: true });
    assert.equal(await settled(s.sub.caughtUp), "pending", "not before the acknowledgement");
    s.ws().ack(s.sub.id, { from: 9, ...extra });
    assert.equal(await settled(s.sub.caughtUp), "resolved", JSON.stringify(extra));
  }
});

test("caughtUp counts events buffered before the acknowledgement, and positions already past until", async () => {
  const s = live({}, { after: 0 });
  s.ws().events([[s.sub.id], 1, 0], [[s.sub.id], 2, 0]);
  s.ws().ack(s.sub.id, { from: 0, replayed: 2, until: 2 });
  assert.equal(await settled(s.sub.caughtUp), "resolved");
  const storage = new FakeStorage();
  storage.setItem("whalesong:t.>", JSON.stringify({ epoch: EPOCH, seq: 50 }));
  const ahead = live({ storage }, { last: 5 });
  ahead.ws().ack(ahead.sub.id, { from: 45, replayed: 5, until: 50 });
  assert.equal(await settled(ahead.sub.caughtUp), "resolved", "every replayed seq is at or below the position");
});

test("caughtUp across a drop mid-replay: the resumed replay continues it, the first until still ends it", async () => {
  const s = live({}, { last: 10 });
  s.ws().ack(s.sub.id, { from: 90, replayed: 10, until: 100 });
  s.ws().events([[s.sub.id], 91, 0], [[s.sub.id], 92, 0]);
  reconnect(s);
  assert.equal(await settled(s.sub.caughtUp), "pending", "a drop never settles it");
  s.ws().ack(s.sub.id, { from: 92, replayed: 15, until: 105 }); // 93..100 and 5 published meanwhile
  for (let seq = 93; seq < 100; seq++) s.ws().events([[s.sub.id], seq, 0]);
  assert.equal(await settled(s.sub.caughtUp), "pending");
  s.ws().events([[s.sub.id], 100, 0]);
  assert.equal(await settled(s.sub.caughtUp), "resolved", "at the first until, not at the resumed one");
});

test("caughtUp across a gap in the same epoch: the nearer end wins; a resumed replay of nothing resolves it", async () => {
  const s = live({}, { last: 10 });
  s.ws().ack(s.sub.id, { from: 90, replayed: 10, until: 100 });
  s.ws().events([[s.sub.id], 91, 0]);
  reconnect(s);
  // evicted meanwhile and the topic went quiet: the server still has up to 96
  s.ws().ack(s.sub.id, { recovered: false, reason: "evicted", missing: { after: 91, before: 95 }, from: 94, replayed: 2, until: 96 });
  s.ws().events([[s.sub.id], 95, 0]);
  assert.equal(await settled(s.sub.caughtUp), "pending");
  s.ws().events([[s.sub.id], 96, 0]);
  assert.equal(await settled(s.sub.caughtUp), "resolved");
  assert.deepEqual(s.log.order, ["ev:91", "gap:t.>", "ev:95", "ev:96"], "the gap came first");

  const quiet = live({}, { last: 10 });
  quiet.ws().ack(quiet.sub.id, { from: 90, replayed: 10, until: 100 });
  reconnect(quiet);
  quiet.ws().ack(quiet.sub.id, { recovered: false, from: 100, replayed: 0, until: 0 });
  assert.equal(await settled(quiet.sub.caughtUp), "resolved", "nothing left to replay: caught up with what exists");
});

test("caughtUp across a new epoch: only the new stream's until counts", async () => {
  const s = live({}, { last: 10 });
  s.ws().ack(s.sub.id, { from: 990, replayed: 10, until: 1000 });
  reconnect(s, EPOCH2);
  s.ws().ack(s.sub.id, { epoch: EPOCH2, recovered: false, reason: "reset", missing: { after: 990, before: 1 }, from: 0, replayed: 10, until: 10 });
  for (let seq = 1; seq < 10; seq++) s.ws().events([[s.sub.id], seq, 0]);
  assert.equal(await settled(s.sub.caughtUp), "pending", "old-epoch 1000 is no bound here, nor is min(1000, 10) reached yet");
  s.ws().events([[s.sub.id], 10, 0]);
  assert.equal(await settled(s.sub.caughtUp), "resolved");
});

test("caughtUp rejects, like ready, when the subscription ends before: unsubscribe, close, refusal, server end", async () => {
  const ends = {
    unsubscribed: (s) => s.sub.unsubscribe(),
    closed: (s) => s.client.close(),
    forbidden: (s) => {
      const req = s.ws().frames("sub")[0];
      s.ws().serverSend({ op: "error", id: req.id, sub: s.sub.id, code: "forbidden", message: "no" });
    },
  };
  for (const [code, end] of Object.entries(ends)) {
    const s = live({}, { last: 5 });
    end(s);
    assert.deepEqual(await settled(s.sub.caughtUp), { rejected: code }, `${code} before the ack`);
    assert.deepEqual(await settled(s.sub.ready), { rejected: code });
  }
  for (const [code, end] of Object.entries({ ...ends, forbidden: (s) => s.ws().serverSend({ op: "error", sub: s.sub.id, code: "forbidden", message: "no longer" }) })) {
    const s = live({}, { last: 5 });
    s.ws().ack(s.sub.id, { from: 5, replayed: 5, until: 10 });
    end(s);
    assert.deepEqual(await settled(s.sub.caughtUp), { rejected: code }, `${code} mid-replay`);
    assert.equal(await settled(s.sub.ready), "resolved");
  }
  const done = live({}, { last: 1 });
  done.ws().ack(done.sub.id, { from: 5, replayed: 1, until: 6 });
  done.ws().events([[done.sub.id], 6, 0]);
  done.sub.unsubscribe();
  assert.equal(await settled(done.sub.caughtUp), "resolved", "settled once: a later end changes nothing");
});

// ---- a subscription ended by the server (Reauthorize) ----

test("a subscription the server ends mid-stream: no more events, error forbidden with the pattern, the connection and others stay", async () => {
  const s = live({}, { after: 0 });
  const other = [];
  const sub2 = s.client.subscribe("u.>", (ev) => other.push(ev.seq));
  s.ws().ack(s.sub.id, { from: 0 });
  s.ws().ack(sub2.id, { from: 0 });
  s.ws().events([[s.sub.id], 1, 0]);
  s.ws().serverSend({ op: "error", sub: s.sub.id, code: "forbidden", message: 'subscribe to "t.>" denied: not a member any more' });
  s.ws().events([[s.sub.id, sub2.id], 2, 0]);
  assert.deepEqual(s.seen, [1]);
  assert.deepEqual(other, [2]);
  assert.deepEqual(s.log.errors.map((e) => [e.code, e.pattern, e.message]), [["forbidden", "t.>", 'subscribe to "t.>" denied: not a member any more']]);
  assert.equal(s.client.state, "open");
  reconnect(s);
  assert.deepEqual(s.ws().frames("sub").map((f) => f.sub), [sub2.id], "an ended subscription is not resubscribed");
});

test("the server ends a resubscription while its answer is pending: buffered events are dropped; error or ready, as the earlier rule says", async () => {
  const s = live({}, { after: 0 });
  s.ws().ack(s.sub.id, { from: 0 });
  reconnect(s);
  s.ws().events([[s.sub.id], 3, 0]); // buffered, before the answer
  s.ws().serverSend({ op: "error", sub: s.sub.id, code: "forbidden", message: "no" });
  s.ws().ack(s.sub.id, { from: 0 }); // a late answer finds the subscription ended
  s.ws().events([[s.sub.id], 4, 0]);
  assert.deepEqual(s.seen, []);
  assert.deepEqual(s.log.errors.map((e) => e.code), ["forbidden"], "ready had resolved: an error event");

  const p = live({}, { after: 0 });
  p.ws().serverSend({ op: "error", sub: p.sub.id, code: "forbidden", message: "no" });
  assert.deepEqual(await settled(p.sub.ready), { rejected: "forbidden" });
  assert.deepEqual(p.log.errors, [], "ready pending: its rejection is the only report");
});
