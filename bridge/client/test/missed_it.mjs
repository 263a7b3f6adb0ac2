// Integration script driven by bridge/clientjs_missed_it_test.go against a
// real bridge (issue 8's wire: latest, replayed/until, reason/missing,
// fallback, history/page). JSON lines: stdout results, stdin commands.
// Run by `node --test` alone (no WHALESONG_WS_URL) it only registers a
// skipped test.
//
//   1. subscribe "px.*" { latest: true } and "room.1" { last: 20 }; await each
//      caughtUp and print what the handler had then; read two history pages
//      of room.1 before the oldest event shown, and one of a forbidden
//      pattern; print "joined".
//   2. on "restart <n>" (the Go side swapped in a new bus holding n events on
//      room.1 and closed the old bridge): wait for room.1's event seq n of the
//      new epoch; print "restarted" with the gaps and what the handler got.
//   3. close.
import { test } from "node:test";
import { createInterface } from "node:readline";

const url = process.env.WHALESONG_WS_URL;
if (!url) {
  test("missed events against a real bridge (run by go test ./bridge)", { skip: "needs WHALESONG_WS_URL" }, () => {});
} else {
  await main();
}

async function main() {
  const { connect } = await import(process.env.WHALESONG_CLIENT_URL);
  const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
  const commands = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
  const command = async () => {
    const { value, done } = await commands.next();
    if (done) throw new Error("stdin closed");
    return value.trim().split(" ");
  };
  const deadline = (ms, what) => new Promise((_, reject) => setTimeout(() => reject(new Error(`timeout waiting for ${what}`)), ms).unref());
  const within = (p, what) => Promise.race([p, deadline(10000, what)]);
  const brief = (ev) => ({ seq: ev.seq, topic: ev.topic, data: ev.data });

  const client = connect(url, { minDelay: 100, initialDelay: 200, maxDelay: 1000 });
  const order = [];
  const gaps = [];
  const errors = [];
  client.on("gap", (g) => {
    gaps.push(g);
    order.push(`gap:${g.pattern}`);
  });
  client.on("error", (e) => errors.push(e.code));
  const got = { "px.*": [], "room.1": [] };
  let waiter = null;
  const check = () => {
    if (waiter && waiter.pred()) {
      waiter.resolve();
      waiter = null;
    }
  };
  const until = (pred, what) => within(new Promise((resolve) => ((waiter = { pred, resolve }), check())), what);
  const subscribe = (pattern, opts) =>
    client.subscribe(
      pattern,
      (ev) => {
        got[pattern].push(brief(ev));
        order.push(`ev:${ev.topic}:${ev.seq}`);
        check();
      },
      opts,
    );

  const px = subscribe("px.*", { latest: true });
  await within(px.caughtUp, "px.* caughtUp");
  const latest = [...got["px.*"]];
  const room = subscribe("room.1", { last: 20 });
  await within(room.caughtUp, "room.1 caughtUp");
  const last = [...got["room.1"]];
  const page1 = await within(client.history("room.1", { before: last[0].seq, limit: 25 }), "history page 1");
  const page2 = await within(client.history("room.1", { before: page1.events[0].seq, limit: 25 }), "history page 2");
  let forbidden = null;
  try {
    await within(client.history("deny.x"), "forbidden history");
  } catch (e) {
    forbidden = e.code;
  }
  const pages = [page1, page2].map((p) => ({ more: p.more, epoch: p.epoch, events: p.events.map(brief) }));
  out({ step: "joined", latest, last, pages, forbidden, ready: await px.ready, errors });

  const [word, n] = await command();
  if (word !== "restart") throw new Error(`expected restart, got ${word}`);
  const before = got["room.1"].length;
  const newest = Number(n);
  await until(() => client.epoch !== pages[0].epoch && got["room.1"].at(-1)?.seq === newest, "the new epoch's newest room.1 event");
  out({ step: "restarted", gaps, events: got["room.1"].slice(before), order, epoch: client.epoch, errors });

  client.close();
  process.exit(0);
}
