// The module itself: portable (no window, no document), every export
// declared in whalesong.d.ts, and a clear error without any WebSocket.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import * as ws from "../whalesong.js";

const src = readFileSync(new URL("../whalesong.js", import.meta.url), "utf8");
const dts = readFileSync(new URL("../whalesong.d.ts", import.meta.url), "utf8");
const code = src.replace(/\/\/.*$/gm, "").replace(/\/\*[\s\S]*?\*\//g, ""); // comments may name them

test("the module touches no window, document or localStorage, and sessionStorage only in one place", () => {
  for (const name of ["window", "document", "localStorage", "require(", "process."]) {
    assert.equal(code.includes(name), false, `whalesong.js uses ${name}`);
  }
  assert.equal(code.match(/sessionStorage/g)?.length, 1, "sessionStorage is read only where the option is handled");
  assert.equal(/^\s*import\s/m.test(code), false, "no dependencies");
});

test("every export is declared in whalesong.d.ts", () => {
  for (const name of Object.keys(ws)) {
    assert.match(dts, new RegExp(`export (declare )?(const|function|class|interface|type) ${name}\\b`), `${name} missing from whalesong.d.ts`);
  }
  for (const [k, v] of Object.entries(ws.DEFAULTS)) {
    assert.ok(dts.includes(`@default ${JSON.stringify(v)}`) || dts.includes(`@default ${v}`), `default of ${k} (${v}) not documented`);
  }
});

test("without any WebSocket, connect fails with a clear TypeError", () => {
  const saved = globalThis.WebSocket;
  try {
    delete globalThis.WebSocket;
    assert.throws(() => ws.connect("ws://x/ws"), /no WebSocket constructor/);
  } finally {
    if (saved) globalThis.WebSocket = saved;
  }
});

test("every error code the module makes, and every server code of PROTOCOL.md, is in the ErrorCode union", () => {
  const union = dts.match(/export type ErrorCode =([^;]+);/);
  assert.ok(union, "ErrorCode type missing");
  const declared = new Set([...union[1].matchAll(/"([a-z_]+)"/g)].map((m) => m[1]));
  const made = new Set([
    ...[...code.matchAll(/new WhalesongError\("([a-z_]+)"/g)].map((m) => m[1]),
    ...[...code.matchAll(/code: "([a-z_]+)"/g)].map((m) => m[1]), // the probe's verdicts
    ...(code.includes("function kickedError") ? ["kicked"] : []),
  ]);
  assert.ok(made.size >= 15, `found only ${[...made]}`);
  for (const c of made) assert.ok(declared.has(c), `code ${c} made by whalesong.js is not in ErrorCode`);
  const protocol = readFileSync(new URL("../../PROTOCOL.md", import.meta.url), "utf8");
  const table = protocol.slice(protocol.indexOf("## Error codes"), protocol.indexOf("## Limits"));
  const server = [...table.matchAll(/^\| `([a-z_]+)` \|/gm)].map((m) => m[1]);
  assert.ok(server.length >= 10, `found only ${server} in PROTOCOL.md`);
  for (const c of server) assert.ok(declared.has(c), `server code ${c} (PROTOCOL.md) is not in ErrorCode`);
});

test("every option connect() reads is documented in ConnectOptions", () => {
  const read = new Set([...code.matchAll(/options\.([A-Za-z]+)/g)].map((m) => m[1]));
  const opts = dts.slice(dts.indexOf("export interface ConnectOptions"), dts.indexOf("export interface Position"));
  for (const name of [...read, ...Object.keys(ws.DEFAULTS)]) {
    assert.match(opts, new RegExp(`\\n\\s+${name}\\?:`), `option ${name} missing from ConnectOptions`);
  }
  for (const name of ["fetch", "now", "setTimeout", "WebSocket"]) assert.ok(read.has(name), `${name} is read`);
});
