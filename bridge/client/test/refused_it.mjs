// Integration script driven by bridge/clientjs_it_test.go: the served client
// against handshakes a real bridge refuses (401 from WithAuthenticate, 403 for
// a foreign Origin, 404 from the mux). For each path it connects with a
// connect timeout of a minute and prints how long the first attempt took to
// end (Node 20 fires error and never close on a refused handshake, so the
// client must end the attempt at the error), the errors the refusal probe
// produced, and the wait it chose; then it calls reconnect(), which must skip
// that long wait, and prints the second attempt the same way. /auth is dialed
// through a url function that gives a new token for every attempt. Run by
// `node --test` alone (no WHALESONG_WS_BASE) it only registers a skipped test.
import { test } from "node:test";

const base = process.env.WHALESONG_WS_BASE;
if (!base) {
  test("refused handshakes against a real bridge (run by go test ./bridge)", { skip: "needs WHALESONG_WS_BASE" }, () => {});
} else {
  const { connect } = await import(process.env.WHALESONG_CLIENT_URL);
  // A browser sends its page's Origin on the handshake and on the probe's
  // cross-origin fetch; Node sends none unless told (undici's headers option).
  const origin = "http://evil.example";
  class ForeignOrigin extends WebSocket {
    constructor(url) {
      super(url, { headers: { Origin: origin } });
    }
  }
  const foreignFetch = (url, init) => fetch(url, { ...init, headers: { Origin: origin } });
  let token = 0;
  const cases = [
    { path: "/auth", url: () => `${base}/auth?token=${++token}` },
    { path: "/origin", WebSocket: ForeignOrigin, fetch: foreignFetch },
    { path: "/missing" },
  ];
  for (const c of cases) {
    const client = connect(c.url || base + c.path, { connectTimeout: 60000, WebSocket: c.WebSocket, fetch: c.fetch });
    const states = [];
    const errors = [];
    let next = null; // resolves with the next retry's detail
    client.on("error", (e) => errors.push({ code: e.code, status: e.status }));
    client.on("state", (s, d) => {
      states.push(s);
      if (d && next) next(d);
    });
    const attempt = async () => {
      const started = Date.now();
      const detail = await new Promise((resolve) => (next = resolve));
      return { ms: Date.now() - started, code: detail.code, retryIn: detail.retryIn, errors: errors.splice(0) };
    };
    const first = await attempt();
    const second = attempt();
    client.reconnect(); // skips the abuse delay
    const again = await second;
    const seen = [...states];
    client.close();
    process.stdout.write(JSON.stringify({ step: "refused", path: c.path, first, again, states: seen }) + "\n");
  }
  process.exit(0);
}
