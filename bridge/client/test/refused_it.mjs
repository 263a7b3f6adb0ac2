// Integration script driven by bridge/clientjs_it_test.go: the served client
// against handshakes a real bridge refuses (401 from WithAuthenticate, 403 for
// a foreign Origin, 404 from the mux). For each path it connects with a
// connect timeout of a minute and prints how long the first attempt took to
// end: Node 20 fires error and never close on a refused handshake, so the
// client must end the attempt at the error. Run by `node --test` alone (no
// WHALESONG_WS_BASE) it only registers a skipped test.
import { test } from "node:test";

const base = process.env.WHALESONG_WS_BASE;
if (!base) {
  test("refused handshakes against a real bridge (run by go test ./bridge)", { skip: "needs WHALESONG_WS_BASE" }, () => {});
} else {
  const { connect } = await import(process.env.WHALESONG_CLIENT_URL);
  // A browser sends its page's Origin; Node sends none unless told (undici's headers option).
  class ForeignOrigin extends WebSocket {
    constructor(url) {
      super(url, { headers: { Origin: "http://evil.example" } });
    }
  }
  const cases = [{ path: "/auth" }, { path: "/origin", WebSocket: ForeignOrigin }, { path: "/missing" }];
  for (const c of cases) {
    const started = Date.now();
    const client = connect(base + c.path, { connectTimeout: 60000, minDelay: 60000, initialDelay: 60000, maxDelay: 60000, WebSocket: c.WebSocket });
    const states = [];
    const errors = [];
    client.on("error", (e) => errors.push(e.code));
    const detail = await new Promise((resolve) => {
      client.on("state", (s, d) => {
        states.push(s);
        if (d) resolve(d);
      });
    });
    const ms = Date.now() - started;
    const seen = [...states];
    client.close();
    process.stdout.write(JSON.stringify({ step: "refused", path: c.path, code: detail.code, ms, states: seen, errors }) + "\n");
  }
  process.exit(0);
}
