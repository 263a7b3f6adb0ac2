// Persisted positions: with the storage option a reload resumes from the
// last seen (epoch, seq); without it storage is never touched.
import { test } from "node:test";
import assert from "node:assert/strict";
import { setup, FakeStorage, EPOCH, EPOCH2 } from "./fakes.js";

test("positions are stored per pattern and a new client (a reload) resumes from them", () => {
  const storage = new FakeStorage();
  const one = setup({ storage });
  const sub = one.client.subscribe("chat.>", () => {}, { last: 50 });
  one.ws().hello();
  one.ws().ack(sub.id, { from: 10 });
  assert.deepEqual(JSON.parse(storage.getItem("whalesong:chat.>")), { epoch: EPOCH, seq: 10 });
  one.ws().events([[sub.id], 11, 0], [[sub.id], 12, 0]);
  assert.deepEqual(JSON.parse(storage.getItem("whalesong:chat.>")), { epoch: EPOCH, seq: 12 });
  one.client.close();
  assert.ok(storage.getItem("whalesong:chat.>"), "close keeps positions for the next page");

  const two = setup({ storage });
  const seen = [];
  const sub2 = two.client.subscribe("chat.>", (ev) => seen.push(ev.seq), { last: 50 });
  two.ws().hello();
  const f = two.ws().frames("sub")[0];
  assert.deepEqual(f.after, { epoch: EPOCH, seq: 12 }, "the stored position wins over last");
  assert.equal(f.last, undefined);
  two.ws().ack(sub2.id, { from: 12 });
  two.ws().events([[sub2.id], 12, 0], [[sub2.id], 13, 0]);
  assert.deepEqual(seen, [13]);
  assert.deepEqual(two.log.gaps, []);
});

test("a stored position from another epoch gives a gap", () => {
  const storage = new FakeStorage();
  storage.setItem("app/t.>", JSON.stringify({ epoch: EPOCH, seq: 99 }));
  const { client, ws, log } = setup({ storage, storagePrefix: "app/" });
  const sub = client.subscribe("t.>", () => {});
  ws().hello(EPOCH2);
  assert.deepEqual(ws().frames("sub")[0].after, { epoch: EPOCH, seq: 99 });
  ws().ack(sub.id, { epoch: EPOCH2, from: 0, recovered: false });
  assert.deepEqual(log.gaps, [{ pattern: "t.>", reason: "reset", after: 99, before: 1 }]);
  assert.deepEqual(JSON.parse(storage.getItem("app/t.>")), { epoch: EPOCH2, seq: 0 });
});

test("corrupt stored entries are ignored; unsubscribe forgets the position", () => {
  const storage = new FakeStorage();
  storage.setItem("whalesong:a", "{nope");
  storage.setItem("whalesong:b", JSON.stringify({ epoch: 5, seq: "x" }));
  const { client, ws } = setup({ storage });
  const a = client.subscribe("a", () => {}, { last: 3 });
  client.subscribe("b", () => {});
  ws().hello();
  const [fa, fb] = ws().frames("sub");
  assert.equal(fa.last, 3);
  assert.equal(fa.after, undefined);
  assert.equal(fb.after, undefined);
  ws().ack(a.id, { from: 4 });
  assert.ok(storage.getItem("whalesong:a"));
  a.unsubscribe();
  assert.equal(storage.getItem("whalesong:a"), null);
});

test("a storage that throws (quota, privacy mode) never breaks delivery", () => {
  const storage = {
    getItem() {
      throw new Error("denied");
    },
    setItem() {
      throw new Error("quota");
    },
    removeItem() {
      throw new Error("denied");
    },
  };
  const { client, ws, log } = setup({ storage });
  const seen = [];
  const sub = client.subscribe("t", (ev) => seen.push(ev.seq));
  ws().hello();
  ws().ack(sub.id);
  ws().events([[sub.id], 1, 0]);
  sub.unsubscribe();
  assert.deepEqual(seen, [1]);
  assert.deepEqual(log.errors, []);
});

test('storage "session" uses globalThis.sessionStorage; without the option it is never touched', () => {
  const fake = new FakeStorage();
  let touched = 0;
  Object.defineProperty(globalThis, "sessionStorage", {
    configurable: true,
    get() {
      touched++;
      return fake;
    },
  });
  try {
    const off = setup();
    const s = off.client.subscribe("t", () => {});
    off.ws().hello();
    off.ws().ack(s.id);
    off.ws().events([[s.id], 1, 0]);
    off.client.close();
    assert.equal(touched, 0, "no storage option: sessionStorage untouched");

    const on = setup({ storage: "session" });
    const s2 = on.client.subscribe("t", () => {});
    on.ws().hello();
    on.ws().ack(s2.id);
    on.ws().events([[s2.id], 1, 0]);
    assert.deepEqual(JSON.parse(fake.getItem("whalesong:t")), { epoch: EPOCH, seq: 1 });
  } finally {
    delete globalThis.sessionStorage;
  }
  assert.throws(() => setup({ storage: "local" }), TypeError);
});

test('storage "session" where there is no sessionStorage (Node) just does not persist', () => {
  const { client, ws } = setup({ storage: "session" });
  const s = client.subscribe("t", () => {});
  ws().hello();
  ws().ack(s.id);
  ws().events([[s.id], 1, 0]);
  assert.equal(s.lastSeq, 1);
});

test("two subscriptions of one pattern keep a position each, and unsubscribing one leaves the other's", () => {
  const storage = new FakeStorage();
  const one = setup({ storage });
  const a = one.client.subscribe("t.>", () => {}, { after: 0 });
  const b = one.client.subscribe("t.>", () => {});
  one.ws().hello();
  one.ws().ack(a.id, { from: 0 });
  one.ws().ack(b.id, { from: 5 });
  one.ws().events([[a.id], 1, 0], [[a.id, b.id], 6, 0]);
  assert.deepEqual(JSON.parse(storage.getItem("whalesong:t.>")), { epoch: EPOCH, seq: 6 });
  assert.deepEqual(JSON.parse(storage.getItem("whalesong:t.> 2")), { epoch: EPOCH, seq: 6 });
  one.ws().events([[b.id], 7, 0]);
  assert.deepEqual(JSON.parse(storage.getItem("whalesong:t.>")), { epoch: EPOCH, seq: 6 }, "b's event moves only b's position");
  assert.deepEqual(JSON.parse(storage.getItem("whalesong:t.> 2")), { epoch: EPOCH, seq: 7 });
  b.unsubscribe();
  assert.equal(storage.getItem("whalesong:t.> 2"), null);
  assert.ok(storage.getItem("whalesong:t.>"), "a's position stays while a lives");
  one.client.close();

  const two = setup({ storage }); // a reload that makes them again, in the same order
  two.client.subscribe("t.>", () => {}, { after: 0 });
  two.client.subscribe("t.>", () => {});
  two.ws().hello();
  const [fa, fb] = two.ws().frames("sub");
  assert.deepEqual(fa.after, { epoch: EPOCH, seq: 6 }, "the first resumes from its own position");
  assert.equal(fb.after, undefined, "the second, unsubscribed before, starts as asked");
});
