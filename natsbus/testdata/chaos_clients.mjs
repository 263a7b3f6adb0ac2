// The clients of natsbus's chaos runs (chaos_test.go): one Node process runs
// every client, each a whalesong.js client (the module the bridge serves)
// with one subscription, some also publishing. It talks JSON lines with the
// Go test: its parameters come in a JSON file (argv[2]), commands on stdin,
// results on stdout. It judges nothing itself: it records what every handler
// got and the Go side checks that against the stream.
//
// Parameters: {
//   client:  file: URL of whalesong.mjs,
//   url:     the WebSocket URL (the balancer); client k dials url + "?c=" + k,
//   options: connect() options (backoff),
//   clients: [{ pattern, after?: seq | {epoch, seq}, publish?: {topic, every} }]
// }
//
// Commands (one JSON object a line):
//   {"cmd":"publish","on":true}    publishing clients publish {id:"c<k>-<n>"} every `every` ms
//   {"cmd":"publish","on":false,"settleMs":n}
//        stop, wait (at most settleMs) until every publish has settled, print "stopped"
//   {"cmd":"wait","epoch":e,"targets":{pattern: seq},"waitMs":n}
//        wait (at most waitMs) until every client's handler has had an event of epoch e
//        with seq >= targets[pattern] (0: nothing to wait for), print "caught"
//   {"cmd":"report"}  print one "client" line per client, then "done"; close every client
//
// Steps printed: "ready" (every subscription acknowledged, or the failures),
// "stopped", "caught", "client" (per client), "done".
import { createInterface } from "node:readline";
import { readFileSync } from "node:fs";

const params = JSON.parse(readFileSync(process.argv[2], "utf8"));
const { connect } = await import(params.client);
const t0 = Date.now();
const now = () => Date.now(); // times in the results are Unix milliseconds, the Go side's clock
const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const count = (m, key) => (m[key] = (m[key] || 0) + 1);

let publishing = false;
const stallMs = 250; // a time without events on one connection worth listing

// One client: its subscription's events by epoch, its connections, its publishes.
function start(k, spec) {
  const c = {
    k,
    pattern: spec.pattern,
    segments: [], // {epoch, first, last, deltas, n}: the handler's events, one segment per epoch
    gaps: [], // gap events, with how many events came before
    errors: {}, // error codes emitted
    opens: 0,
    drops: 0,
    dropCodes: {}, // close code of each drop of an open connection
    failedAttempts: {}, // close code of each attempt that failed before hello
    reconnectMs: [], // drop -> open
    resumeMs: [], // drop -> the next event handed over
    serveMs: [], // hello -> the next event handed over (the server's part of a resume)
    maxStallMs: 0, // longest time between two events on one connection while the load runs
    maxStallAt: 0,
    stalls: [], // [ms, end] of every such time of stallMs or more (the first 50)
    conns: [], // {at, events}: when each connection opened, events handed over before it
    pubs: [], // [n, seq]
    pubFails: [], // [n, code]
    pubPending: 0,
    ready: null,
  };
  let open = false;
  let gen = 0; // counts opens
  let dropAt = 0;
  let openAt = 0;
  let lastAt = 0;
  let lastGen = -1;
  let events = 0;
  const client = connect(`${params.url}?c=${k}`, params.options || {});
  c.client = client;
  client.on("state", (s, detail) => {
    if (s === "open") {
      c.opens++;
      gen++;
      open = true;
      openAt = Date.now();
      c.conns.push({ at: openAt, events });
      if (dropAt) c.reconnectMs.push(openAt - dropAt);
    } else if (s === "connecting" && detail) {
      if (open) {
        c.drops++;
        count(c.dropCodes, detail.code);
        dropAt = Date.now();
        open = false;
      } else {
        count(c.failedAttempts, detail.code);
      }
    }
  });
  client.on("gap", (g) => c.gaps.push({ ...g, events, at: now() }));
  client.on("error", (e) => count(c.errors, e.code || String(e)));
  const opts = {};
  if (spec.after !== undefined && spec.after !== null) opts.after = spec.after;
  const sub = client.subscribe(
    spec.pattern,
    (ev) => {
      const t = Date.now();
      const epoch = sub.position ? sub.position.epoch : "";
      let seg = c.segments[c.segments.length - 1];
      if (!seg || seg.epoch !== epoch) {
        seg = { epoch, first: ev.seq, last: ev.seq, deltas: [], n: 1 };
        c.segments.push(seg);
      } else {
        seg.deltas.push(ev.seq - seg.last);
        seg.last = ev.seq;
        seg.n++;
      }
      events++;
      if (dropAt) {
        c.resumeMs.push(t - dropAt);
        c.serveMs.push(t - openAt);
        dropAt = 0;
      } else if (publishing && lastGen === gen) {
        const stall = t - lastAt;
        if (stall > c.maxStallMs) {
          c.maxStallMs = stall;
          c.maxStallAt = t;
        }
        if (stall >= stallMs && c.stalls.length < 50) c.stalls.push([stall, t]);
      }
      lastAt = t;
      lastGen = gen;
    },
    opts,
  );
  c.sub = sub;
  c.readyP = sub.ready.then(
    (r) => (c.ready = { recovered: r.recovered, at: now() }),
    (e) => (c.ready = { error: e.code || String(e), at: now() }),
  );
  if (spec.publish) {
    let n = 0;
    c.timer = setInterval(() => {
      if (!publishing) return;
      const i = ++n;
      c.pubPending++;
      client.publish(spec.publish.topic, { id: `c${k}-${i}` }).then(
        (seq) => {
          c.pubs.push([i, seq]);
          c.pubPending--;
        },
        (e) => {
          c.pubFails.push([i, e.code || String(e)]);
          c.pubPending--;
        },
      );
    }, spec.publish.every);
  }
  return c;
}

const clients = params.clients.map((spec, k) => start(k, spec));

// until polls cond every 50 ms until it holds or ms pass; it reports which.
const until = (cond, ms) =>
  new Promise((resolve) => {
    const end = Date.now() + ms;
    const tick = () => {
      if (cond()) resolve(true);
      else if (Date.now() > end) resolve(false);
      else setTimeout(tick, 50);
    };
    tick();
  });

const readyTimeout = new Promise((resolve) => setTimeout(resolve, 60000).unref());
await Promise.race([Promise.all(clients.map((c) => c.readyP)), readyTimeout]);
out({
  step: "ready",
  ms: now() - t0,
  failed: clients.filter((c) => !c.ready || c.ready.error).map((c) => ({ k: c.k, ready: c.ready })),
});

function reached(c, epoch, targets) {
  const want = targets[c.pattern] || 0;
  if (want === 0) return true;
  const seg = c.segments[c.segments.length - 1];
  return !!seg && seg.epoch === epoch && seg.last >= want;
}

async function run(cmd) {
  switch (cmd.cmd) {
    case "publish":
      if (cmd.on) {
        publishing = true;
        return;
      }
      publishing = false;
      for (const c of clients) clearInterval(c.timer);
      await until(() => clients.every((c) => c.pubPending === 0), cmd.settleMs);
      out({
        step: "stopped",
        ms: now() - t0,
        published: clients.reduce((s, c) => s + c.pubs.length + c.pubFails.length + c.pubPending, 0),
        resolved: clients.reduce((s, c) => s + c.pubs.length, 0),
        rejected: clients.reduce((s, c) => s + c.pubFails.length, 0),
        pending: clients.reduce((s, c) => s + c.pubPending, 0),
      });
      return;
    case "wait": {
      const started = Date.now();
      await until(() => clients.every((c) => reached(c, cmd.epoch, cmd.targets)), cmd.waitMs);
      const behind = clients
        .filter((c) => !reached(c, cmd.epoch, cmd.targets))
        .map((c) => {
          const seg = c.segments[c.segments.length - 1];
          return { k: c.k, pattern: c.pattern, want: cmd.targets[c.pattern], epoch: seg && seg.epoch, last: seg && seg.last, state: c.client.state, sub: c.sub.state };
        });
      out({ step: "caught", ms: Date.now() - started, behind });
      return;
    }
    case "report":
      for (const c of clients) {
        const { client, sub, readyP, timer, ...rest } = c;
        out({ step: "client", ...rest, state: client.state, subState: sub.state });
        client.close();
      }
      await new Promise((resolve) => process.stdout.write(JSON.stringify({ step: "done", ms: now() - t0, cpuMs: Math.round((process.cpuUsage().user + process.cpuUsage().system) / 1000) }) + "\n", resolve));
      process.exit(0);
    default:
      throw new Error(`unknown command ${JSON.stringify(cmd)}`);
  }
}

for await (const line of createInterface({ input: process.stdin })) {
  if (line.trim() === "") continue;
  await run(JSON.parse(line));
}
process.exit(0);
