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
