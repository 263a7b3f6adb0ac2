// The subscription state machine on its own: each transition of
// Subscription (_sent, _acknowledged, _receive, _dropped, _ended) from each
// state, what it tells the client to do, and a random walk over all of them
// checked against the promises (each seq at most once, increasing within an
// epoch, only while live; ready settles once; gap before a lost stream).
import { test } from "node:test";
import assert from "node:assert/strict";
import { Subscription, WhalesongError } from "../whalesong.js";
import { EPOCH, EPOCH2 } from "./fakes.js";

const STATES = ["waiting", "subscribing", "live", "ended"];

function newSub({ intent = null, fallback = null, position = null, conflate = false } = {}) {
  return new Subscription({ client: null, id: "s1", pattern: "t.>", handler: () => {}, intent, fallback, position, conflate });
}

const ev = (seq, extra = {}) => ({ subs: ["s1"], seq, topic: "t.a", time: "2026-11-27T17:32:28Z", data: seq, ...extra });

// inState brings a fresh subscription to the named state by transitions.
function inState(state, opts) {
  const sub = newSub(opts);
  if (state === "waiting") return sub;
  sub._sent("r1");
  if (state === "subscribing") return sub;
  if (state === "live") {
    sub._acknowledged({ id: "r1", epoch: EPOCH, recovered: true, from: 10 }, EPOCH);
    return sub;
  }
  sub._ended("unsubscribed", new WhalesongError("unsubscribed"));
  return sub;
}

// settled tells whether a promise has settled, and how: setImmediate runs
// after every pending promise reaction.
async function settled(p) {
  let r = "pending";
  p.then(
    (v) => (r = { v }),
    (e) => (r = { e }),
  );
  await new Promise((resolve) => setImmediate(resolve));
  return r;
}

test("a new subscription is waiting, with the given position and ready pending", async () => {
  const sub = newSub({ position: { epoch: EPOCH, seq: 4 } });
  assert.equal(sub.state, "waiting");
  assert.deepEqual(sub.position, { epoch: EPOCH, seq: 4 });
  assert.equal(sub.lastSeq, 0);
  assert.equal(await settled(sub.ready), "pending");
});

test("_sent: only from waiting, to subscribing; the frame resumes from the position, else carries the intent", () => {
  const table = [
    { name: "live only", opts: {}, want: {} },
    { name: "intent last", opts: { intent: { last: 5 } }, want: { last: 5 } },
    { name: "intent after seq", opts: { intent: { after: { seq: 0 } } }, want: { after: { seq: 0 } } },
    { name: "position wins", opts: { intent: { last: 5 }, position: { epoch: EPOCH, seq: 9 } }, want: { after: { epoch: EPOCH, seq: 9 } } },
    {
      name: "position with a fallback",
      opts: { intent: { latest: true }, fallback: { latest: true }, position: { epoch: EPOCH, seq: 9 } },
      want: { after: { epoch: EPOCH, seq: 9 }, fallback: { latest: true } },
    },
    { name: "no position: the intent, never the fallback", opts: { intent: { last: 5 }, fallback: { last: 5 } }, want: { last: 5 } },
    { name: "conflate", opts: { intent: { latest: true }, conflate: true }, want: { latest: true, conflate: true } },
    { name: "conflate on a resume", opts: { conflate: true, position: { epoch: EPOCH, seq: 2 } }, want: { after: { epoch: EPOCH, seq: 2 }, conflate: true } },
  ];
  for (const c of table) {
    const sub = newSub(c.opts);
    const { op, id, sub: sid, pattern, ...rest } = sub._sent("r7");
    assert.deepEqual([op, id, sid, pattern], ["sub", "r7", "s1", "t.>"], c.name);
    assert.deepEqual(rest, c.want, c.name);
    assert.equal(sub.state, "subscribing");
  }
  for (const state of ["subscribing", "live", "ended"]) {
    const sub = inState(state);
    assert.equal(sub._sent("r9"), null, `no second sub frame from ${state}`);
    assert.equal(sub.state, state);
  }
});

test("_receive: buffer while subscribing, deliver new seqs while live, drop otherwise", () => {
  const want = { waiting: "drop", subscribing: "buffer", live: "deliver", ended: "drop" };
  for (const state of STATES) {
    const sub = inState(state);
    assert.equal(sub._receive(ev(11)).action, want[state], state);
    assert.equal(sub.state, state, `${state}: receiving changes no state`);
  }
  const live = inState("live");
  const r = live._receive(ev(12, { topic: "t.b" }));
  assert.equal(r.action, "deliver");
  assert.deepEqual({ ...r.event, time: r.event.time.toISOString() }, { topic: "t.b", seq: 12, time: "2026-11-27T17:32:28.000Z", data: 12 });
  assert.equal(r.error, null);
  assert.deepEqual(live.position, { epoch: EPOCH, seq: 12 });
  assert.equal(live.lastSeq, 12);
  for (const seq of [12, 11, 10, 3]) assert.equal(live._receive(ev(seq)).action, "drop", `seq ${seq} is not after 12`);
  const bad = live._receive(ev(13, { data: null, error: "codec: NaN" }));
  assert.equal(bad.event.error, "codec: NaN");
  assert.equal(bad.error.code, "codec");
  assert.equal(bad.error.pattern, "t.>");
});

test("_acknowledged: only the awaited answer, from subscribing, makes it live", () => {
  for (const state of ["waiting", "live", "ended"]) {
    const sub = inState(state);
    assert.equal(sub._acknowledged({ id: "r1", epoch: EPOCH, from: 0 }, EPOCH), null, state);
    assert.equal(sub.state, state);
  }
  const sub = inState("subscribing");
  assert.equal(sub._acknowledged({ id: "r0", epoch: EPOCH, from: 0 }, EPOCH), null, "an answer to another request");
  assert.equal(sub.state, "subscribing");
});

test("_acknowledged: the position, the gap and ready, case by case", async () => {
  const table = [
    { name: "first, live", prev: null, msg: { recovered: true, from: 10 }, pos: { epoch: EPOCH, seq: 10 }, gap: false },
    { name: "first, lost", prev: null, msg: { recovered: false, from: 10 }, pos: { epoch: EPOCH, seq: 10 }, gap: { reason: "evicted", after: 0, before: 11 } },
    { name: "resume, never back", prev: { epoch: EPOCH, seq: 12 }, msg: { recovered: true, from: 10 }, pos: { epoch: EPOCH, seq: 12 }, gap: false },
    { name: "resume, server ahead", prev: { epoch: EPOCH, seq: 5 }, msg: { recovered: false, from: 10 }, pos: { epoch: EPOCH, seq: 10 }, gap: { reason: "evicted", after: 5, before: 11 } },
    { name: "new epoch even if recovered", prev: { epoch: EPOCH, seq: 50 }, msg: { epoch: EPOCH2, recovered: true, from: 0 }, pos: { epoch: EPOCH2, seq: 0 }, gap: { reason: "reset", after: 50, before: 1 } },
    { name: "no epoch in the answer: the connection's", prev: null, msg: { recovered: true, from: 3, epoch: undefined }, conn: EPOCH2, pos: { epoch: EPOCH2, seq: 3 }, gap: false },
    { name: "no from: 0", prev: null, msg: { recovered: true, from: "x" }, pos: { epoch: EPOCH, seq: 0 }, gap: false },
  ];
  for (const c of table) {
    const sub = newSub({ position: c.prev });
    sub._sent("r1");
    const r = sub._acknowledged({ id: "r1", epoch: EPOCH, ...c.msg }, c.conn || EPOCH);
    assert.equal(sub.state, "live", c.name);
    assert.deepEqual(sub.position, c.pos, c.name);
    assert.deepEqual(r.gap, c.gap ? { pattern: "t.>", ...c.gap } : null, c.name);
    assert.deepEqual(await sub.ready, { recovered: !c.gap }, c.name);
  }
});

test("_acknowledged hands back what was buffered, in order, for _receive to sort out", () => {
  const sub = inState("subscribing");
  for (const seq of [9, 11, 12]) sub._receive(ev(seq));
  const r = sub._acknowledged({ id: "r1", epoch: EPOCH, recovered: true, from: 10 }, EPOCH);
  assert.deepEqual(r.replay.map((e) => e.seq), [9, 11, 12]);
  assert.deepEqual(r.replay.map((e) => sub._receive(e).action), ["drop", "deliver", "deliver"]);
});

test("ready settles once: a later gap after a reconnect does not change it", async () => {
  const sub = inState("live");
  sub._dropped();
  sub._sent("r2");
  const r = sub._acknowledged({ id: "r2", epoch: EPOCH, recovered: false, from: 10 }, EPOCH);
  assert.deepEqual(r.gap, { pattern: "t.>", reason: "evicted", after: 10, before: 11 });
  assert.deepEqual(await sub.ready, { recovered: true });
});

test("_dropped: subscribing and live go back to waiting, the buffer is discarded; waiting and ended stay", () => {
  for (const state of STATES) {
    const sub = inState(state);
    sub._dropped();
    assert.equal(sub.state, state === "ended" ? "ended" : "waiting", state);
  }
  const sub = inState("subscribing");
  sub._receive(ev(1));
  sub._dropped();
  sub._sent("r2");
  const r = sub._acknowledged({ id: "r2", epoch: EPOCH, recovered: true, from: 0 }, EPOCH);
  assert.deepEqual(r.replay, [], "events of the dropped connection are not replayed; the server resends them");
  const live = inState("live");
  live._receive(ev(11));
  live._dropped();
  assert.deepEqual(live.position, { epoch: EPOCH, seq: 11 }, "the position survives the drop");
  assert.deepEqual(live._sent("r3").after, { epoch: EPOCH, seq: 11 });
});

test("_ended: unsub only when the server may have it, error only for a refusal after ready, ready rejects otherwise", async () => {
  const causes = ["unsubscribed", "closed", "refused"];
  for (const state of ["waiting", "subscribing", "live"]) {
    for (const cause of causes) {
      const sub = inState(state);
      const err = new WhalesongError(cause === "refused" ? "forbidden" : cause);
      const r = sub._ended(cause, err);
      const name = `${cause} from ${state}`;
      assert.equal(sub.state, "ended", name);
      assert.equal(err.pattern, "t.>", name);
      assert.equal(r.unsub, cause === "unsubscribed" && state !== "waiting", name);
      assert.equal(r.error, cause === "refused" && state === "live" ? err : null, name);
      const ready = await settled(sub.ready);
      if (state === "live") assert.deepEqual(ready, { v: { recovered: true } }, name);
      else assert.equal(ready.e, err, `${name}: ready rejects with the reason`);
      assert.equal(sub._ended(cause, new WhalesongError("again")), null, `${name}: idempotent`);
      assert.equal(sub._receive(ev(99)).action, "drop", name);
      assert.equal(sub._sent("r9"), null, name);
    }
  }
});

// A seeded random walk: the client's possible calls in any order, checked
// against the promises. mulberry32 keeps failures reproducible.
function mulberry32(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test("random walks over every transition keep the promises", async () => {
  for (let seed = 1; seed <= 300; seed++) {
    const rnd = mulberry32(seed);
    const pick = (n) => Math.floor(rnd() * n);
    const sub = newSub({ intent: pick(2) ? { last: 3 } : null });
    let epoch = EPOCH;
    let req = 0;
    let busSeq = 0;
    const handed = []; // [epoch, seq] handed to the handler, and "gap" where one was emitted
    let acked = false;
    for (let step = 0; step < 60; step++) {
      const before = sub.state;
      switch (pick(7)) {
        case 0: {
          const f = sub._sent(`r${req + 1}`);
          assert.equal(f !== null, before === "waiting", `seed ${seed}: _sent from ${before}`);
          if (f) req++;
          break;
        }
        case 1: {
          if (pick(6) === 0) {
            epoch = epoch === EPOCH ? EPOCH2 : EPOCH; // a restart: a new sequence space starting over
            busSeq = pick(3);
          }
          const from = Math.max(0, busSeq - pick(4));
          const recovered = pick(4) > 0;
          const r = sub._acknowledged({ id: `r${req}`, epoch, recovered, from }, epoch);
          assert.equal(r !== null, before === "subscribing", `seed ${seed}: _acknowledged from ${before}`);
          if (r) {
            acked = true;
            if (r.gap) handed.push("gap");
            for (const e of r.replay) {
              const d = sub._receive(e);
              if (d.action === "deliver") handed.push([sub.position.epoch, d.event.seq]);
            }
          }
          break;
        }
        case 2:
        case 3: {
          busSeq += 1 + pick(2);
          const seq = pick(5) === 0 ? Math.max(1, busSeq - pick(4)) : busSeq; // sometimes a replayed duplicate
          const d = sub._receive(ev(seq));
          const want = before === "live" ? ["deliver", "drop"] : before === "subscribing" ? ["buffer"] : ["drop"];
          assert.ok(want.includes(d.action), `seed ${seed}: ${d.action} from ${before}`);
          if (d.action === "deliver") handed.push([sub.position.epoch, seq]);
          break;
        }
        case 4:
        case 5:
          sub._dropped();
          break;
        default:
          if (pick(4) === 0) sub._ended(["unsubscribed", "closed", "refused"][pick(3)], new WhalesongError("x"));
      }
      assert.ok(STATES.includes(sub.state));
      if (before === "ended") assert.equal(sub.state, "ended", `seed ${seed}: ended is final`);
    }
    let prev = null;
    let gapSince = false;
    for (const h of handed) {
      if (h === "gap") {
        gapSince = true;
        continue;
      }
      if (prev && prev[0] === h[0]) assert.ok(h[1] > prev[1], `seed ${seed}: seq ${h[1]} after ${prev[1]} in one epoch`);
      if (prev && prev[0] !== h[0]) assert.ok(gapSince, `seed ${seed}: an event of a new epoch without a gap before it`);
      prev = h;
      gapSince = false;
    }
    const ready = await settled(sub.ready);
    assert.equal(ready === "pending", !acked && sub.state !== "ended", `seed ${seed}: ready ${JSON.stringify(ready)}`);
    if (acked) assert.equal(typeof ready.v.recovered, "boolean", `seed ${seed}`);
    // these acks say nothing of until (an older server): caughtUp resolves at the first one
    const caughtUp = await settled(sub.caughtUp);
    if (acked) assert.deepEqual(caughtUp, { v: undefined }, `seed ${seed}: caughtUp at the first ack`);
    else if (sub.state === "ended") assert.ok(caughtUp.e, `seed ${seed}: ended before an ack, caughtUp rejects`);
    else assert.equal(caughtUp, "pending", `seed ${seed}`);
  }
});
