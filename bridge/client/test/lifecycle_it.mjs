// Integration script driven by bridge/clientjs_next_it_test.go against a
// real bridge (issue 9: WithExpiry, Kick, Reauthorize). WHALESONG_MODE picks
// the scenario; JSON lines: stdout results, stdin commands. Run by
// `node --test` alone (no WHALESONG_WS_URL) it only registers a skipped test.
//
// expiry:      connect through a url function (?token=1, 2, ...), subscribe
//              "x.>" { after: 0 } and publish 10 times while the server
//              expires the first two tokens (close 4002); on "done <seq>"
//              print every seq handed over, the publishes' seqs, and how long
//              each reconnect after 4002 took.
// kick:        subscribe "x.>" { after: 0 }; print "kicked" at the kick; on
//              "reconnect" call reconnect(); on "done <seq>" print the seqs.
// reauthorize: subscribe "team.red.>" and "team.blue.>" { after: 0 }; on
//              "done <seq>" (the newest blue event) print what each got.
import { test } from "node:test";
import { createInterface } from "node:readline";

const url = process.env.WHALESONG_WS_URL;
if (!url) {
  test("expiry, kick and reauthorize against a real bridge (run by go test ./bridge)", { skip: "needs WHALESONG_WS_URL" }, () => {});
} else {
  await main(process.env.WHALESONG_MODE);
}

async function main(mode) {
  const { connect } = await import(process.env.WHALESONG_CLIENT_URL);
  const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
  const commands = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
  const command = async () => {
    const { value, done } = await commands.next();
    if (done) throw new Error("stdin closed");
    return value.trim().split(" ");
  };
  const within = (p, what) =>
    Promise.race([p, new Promise((_, reject) => setTimeout(() => reject(new Error(`timeout waiting for ${what}`)), 10000).unref())]);

  let token = 0;
  const client = connect(() => `${url}?token=${++token}`, { minDelay: 100, initialDelay: 200, maxDelay: 1000 });
  const states = [];
  const errors = [];
  const gaps = [];
  const reconnects = []; // ms from a 4002 drop to the next open
  let droppedAt = null;
  let waiter = null;
  const check = () => {
    if (waiter && waiter.pred()) {
      waiter.resolve();
      waiter = null;
    }
  };
  const until = (pred, what) => within(new Promise((resolve) => ((waiter = { pred, resolve }), check())), what);
  client.on("state", (s, d) => {
    states.push(s);
    if (d && d.code === 4002) droppedAt = Date.now();
    if (s === "open" && droppedAt !== null) {
      reconnects.push(Date.now() - droppedAt);
      droppedAt = null;
    }
    check();
  });
  client.on("error", (e) => {
    errors.push({ code: e.code, pattern: e.pattern, message: e.message });
    check();
  });
  client.on("gap", (g) => gaps.push(g));
  const got = {};
  const subscribe = (pattern) => {
    got[pattern] = [];
    return client.subscribe(
      pattern,
      (ev) => {
        got[pattern].push(ev.seq);
        check();
      },
      { after: 0 },
    );
  };

  if (mode === "expiry") {
    const sub = subscribe("x.>");
    await within(sub.ready, "ready");
    const pubs = [];
    for (let i = 0; i < 10; i++) {
      pubs.push(client.publish("x.js", { n: i }));
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const seqs = await within(Promise.all(pubs), "publishes");
    const [, seq] = await command();
    await until(() => sub.lastSeq >= Math.max(Number(seq), ...seqs), "every event, the client's own too");
    out({ step: "done", seqs: got["x.>"], pubs: seqs, reconnects, states, errors, gaps, tokens: token });
  } else if (mode === "kick") {
    const sub = subscribe("x.>");
    await within(sub.ready, "ready");
    out({ step: "ready" });
    await until(() => errors.some((e) => e.code === "kicked"), "the kick");
    out({ step: "kicked", state: client.state, errors });
    if ((await command())[0] !== "reconnect") throw new Error("expected reconnect");
    client.reconnect();
    const [, seq] = await command();
    await until(() => sub.lastSeq >= Number(seq), "every event after the reconnect");
    out({ step: "done", seqs: got["x.>"], states, errors, gaps, tokens: token });
  } else if (mode === "reauthorize") {
    const red = subscribe("team.red.>");
    const blue = subscribe("team.blue.>");
    await within(Promise.all([red.ready, blue.ready]), "ready");
    out({ step: "ready" });
    const [, seq] = await command();
    await until(() => blue.lastSeq >= Number(seq) && errors.length > 0, "the newest blue event and the error");
    out({ step: "done", red: got["team.red.>"], blue: got["team.blue.>"], redState: red.state, states, errors, gaps });
  } else {
    throw new Error(`unknown WHALESONG_MODE ${mode}`);
  }
  client.close();
  process.exit(0);
}
