// Integration script driven by bridge/clientjs_missed_it_test.go against a
// real bridge (issue 8's wire: conflate and skipped). A reader that cannot
// keep up on a conflated subscription: it blocks its event loop while the
// server publishes far more than the socket buffers and the bridge's backlog
// hold; it must end with the newest value of every topic, never be cut off
// (no 4000), and account for every event (handed over, or counted in the
// skipped of the next one handed over). Run by `node --test` alone (no
// WHALESONG_WS_URL) it only registers a skipped test.
//
//   1. subscribe "px.*" { conflate: true }; print "ready".
//   2. on "stall": print "stalling" and block the event loop for
//      WHALESONG_STALL_MS (the Go side publishes meanwhile).
//   3. on "done <seq>": wait until the handler got the event <seq>; print
//      "caught" with the newest value per topic, the count handed over, the
//      sum of skipped and the states seen.
import { test } from "node:test";
import { createInterface } from "node:readline";

const url = process.env.WHALESONG_WS_URL;
if (!url) {
  test("a conflated subscription that cannot keep up, against a real bridge (run by go test ./bridge)", { skip: "needs WHALESONG_WS_URL" }, () => {});
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
  const client = connect(url, { minDelay: 100, initialDelay: 200, maxDelay: 1000 });
  const states = [];
  const errors = [];
  client.on("state", (s) => states.push(s));
  client.on("error", (e) => errors.push(e.code));
  const newest = {}; // topic -> {seq, n}
  let handed = 0;
  let skipped = 0;
  let withSkipped = 0;
  let waiter = null;
  const sub = client.subscribe(
    "px.*",
    (ev) => {
      handed++;
      if (ev.skipped) {
        skipped += ev.skipped;
        withSkipped++;
      }
      newest[ev.topic] = { seq: ev.seq, n: ev.data.n };
      if (waiter && sub.lastSeq >= waiter.seq) waiter.resolve();
    },
    { conflate: true },
  );
  const ready = await sub.ready;
  out({ step: "ready", ready, from: sub.position.seq });

  if ((await command())[0] !== "stall") throw new Error("expected stall");
  out({ step: "stalling" });
  const end = Date.now() + Number(process.env.WHALESONG_STALL_MS);
  while (Date.now() < end) {
    // blocking on purpose: nothing is read from the socket meanwhile
  }

  const [word, seq] = await command();
  if (word !== "done") throw new Error(`expected done, got ${word}`);
  if (sub.lastSeq < Number(seq)) {
    await Promise.race([
      new Promise((resolve) => (waiter = { seq: Number(seq), resolve })),
      new Promise((_, reject) => setTimeout(() => reject(new Error("timeout waiting for the newest event")), 15000).unref()),
    ]);
  }
  out({ step: "caught", newest, handed, skipped, withSkipped, states, errors, lastSeq: sub.lastSeq });
  client.close();
  process.exit(0);
}
