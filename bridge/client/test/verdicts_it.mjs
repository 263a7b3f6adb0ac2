// Integration script driven by bridge/clientjs_trust_it_test.go: the served
// client in Node 20 against every refusal a real bridge makes, through the
// refusal probe. WHALESONG_CASES is a JSON list of {name, url, origin}; for
// each, the script connects (with that Origin on the handshake and on the
// probe, as a browser would send), waits for the first "error", "open" or
// drop (a "state" with a retry delay: an ordinary failure), closes the
// client and prints what its handlers saw. Run by
// `node --test` alone (no WHALESONG_CASES) it only registers a skipped test.
import { test } from "node:test";

const cases = process.env.WHALESONG_CASES;
if (!cases) {
  test("refusal verdicts against a real bridge (run by go test ./bridge)", { skip: "needs WHALESONG_CASES" }, () => {});
} else {
  const { connect } = await import(process.env.WHALESONG_CLIENT_URL);
  for (const c of JSON.parse(cases)) {
    const headers = c.origin ? { Origin: c.origin } : {};
    class WithOrigin extends WebSocket {
      constructor(url) {
        super(url, { headers });
      }
    }
    const seen = { step: "case", name: c.name, errors: [], states: [] };
    await new Promise((resolve) => {
      const client = connect(c.url, {
        connectTimeout: 10000,
        WebSocket: WithOrigin,
        fetch: (url, init) => fetch(url, { ...init, headers }),
      });
      const done = () => {
        client.close();
        resolve();
      };
      client.on("error", (e) => {
        seen.errors.push({ code: e.code, status: e.status || 0 });
        done();
      });
      client.on("state", (s, d) => {
        seen.states.push(s);
        if (d && typeof d.retryIn === "number") seen.retryIn = d.retryIn; // a drop: the wait it chose
        if (s === "open" || seen.retryIn !== undefined) done();
      });
      setTimeout(done, 10000).unref();
    });
    process.stdout.write(JSON.stringify(seen) + "\n");
  }
  process.exit(0);
}
