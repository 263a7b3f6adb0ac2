// Integration script driven by bridge/clientjs_it_test.go: publishes far faster
// than the bridge's WithPublishRate allows and prints the seqs its promises
// resolved to, with the states and errors seen. The client must back off on
// rate_limited (never spending the server's malformed-frame budget, which
// would close the connection with 4001) and land each publish once.
// Run by `node --test` alone (no WHALESONG_WS_URL) it only registers a
// skipped test.
import { test } from "node:test";

const url = process.env.WHALESONG_WS_URL;
if (!url) {
  test("rate-limited publishing against a real bridge (run by go test ./bridge)", { skip: "needs WHALESONG_WS_URL" }, () => {});
} else {
  const { connect } = await import(process.env.WHALESONG_CLIENT_URL);
  const n = Number(process.env.WHALESONG_PUBLISHES);
  const client = connect(url);
  const states = [];
  const errors = [];
  client.on("state", (s) => states.push(s));
  client.on("error", (e) => errors.push(e.code));
  const started = Date.now();
  const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error("publishes still pending after 20 s")), 20000).unref());
  const pubs = await Promise.race([Promise.all(Array.from({ length: n }, (_, i) => client.publish("rl.x", { n: i }))), timeout]);
  client.close();
  process.stdout.write(JSON.stringify({ step: "published", pubs, states, errors, ms: Date.now() - started }) + "\n");
  process.exit(0);
}
