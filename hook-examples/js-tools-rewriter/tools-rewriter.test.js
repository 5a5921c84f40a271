// The rewriter under plain node, through the SDK's harness: `./test.sh`.
// (runtime/tests/hooks_guests.rs runs the built component on the same
// messages.) Each load() is a fresh module: its settings are per instance.

import assert from "node:assert/strict";
import { test } from "node:test";

import { Call, Message, Verdict, load } from "./sluice-hook/testing.js";

const fresh = async () => (await load(`./tools-rewriter.js?${Math.random()}`, import.meta.url)).handler;

const CONFIG = { prefix: "acme_", describe: { echo: "Echo text back (via sluice)" } };
const LIST = { jsonrpc: "2.0", id: 9, method: "tools/list", params: { cursor: "page-1" } };
const TOOLS = {
  jsonrpc: "2.0",
  id: 9,
  result: {
    tools: [
      { name: "echo", description: "Echoes", inputSchema: { type: "object" } },
      { name: "add", description: "Adds two numbers", annotations: { readOnlyHint: true } },
      "not a tool",
    ],
    nextCursor: "page-2",
    resultType: "complete",
    ttlMs: 60000,
    _meta: { x: 1 },
  },
};
const call = (id, name) => ({ jsonrpc: "2.0", id, method: "tools/call", params: { name, arguments: { text: "hi" } } });

test("tools are prefixed and re-described, everything else kept", async () => {
  const hook = await fresh();
  const on = new Call().config(CONFIG);
  assert.deepEqual(on.methods(hook), ["tools/list@response", "tools/call@request"]);
  const out = on.response(hook, LIST, TOOLS);
  assert.equal(out.verdict.tag, "replace");
  const want = structuredClone(TOOLS);
  want.result.tools[0].name = "acme_echo";
  want.result.tools[0].description = "Echo text back (via sluice)";
  want.result.tools[1].name = "acme_add";
  assert.deepEqual(new Message("tools/list", out.verdict.json).value, want);
  assert.deepEqual(out.logs, [["debug", "rewrote 3 tools"]]);
});

test("a call by the advertised name reaches the upstream by its own", async () => {
  const hook = await fresh();
  const on = new Call().config(CONFIG);
  assert.deepEqual(on.request(hook, call(3, "acme_echo")).verdict, Verdict.replace(call(3, "echo")));
  assert.equal(on.request(hook, call(4, "echo")).verdict, Verdict.continue, "an old name passes as it is");
});

test("only descriptions: the names stay", async () => {
  const hook = await fresh();
  const on = new Call().config({ describe: { add: "Sum" } });
  const got = new Message("tools/list", on.response(hook, LIST, TOOLS).verdict.json);
  assert.deepEqual(
    got.tools().map((t) => [t.name, t.description]),
    [["echo", "Echoes"], ["add", "Sum"], [undefined, undefined]],
  );
  assert.equal(on.request(hook, call(5, "add")).verdict, Verdict.continue);
});

test("nothing to change, nothing replaced", async () => {
  const hook = await fresh();
  const none = new Call();
  assert.equal(none.response(hook, LIST, TOOLS).verdict, Verdict.continue, "no config: no rewrite");
  assert.equal(none.request(hook, call(6, "acme_echo")).verdict, Verdict.continue);
  const failed = { jsonrpc: "2.0", id: 9, error: { code: -32603, message: "down" } };
  assert.equal(new Call().config(CONFIG).response(await fresh(), LIST, failed).verdict, Verdict.continue);
});

test("a bad config fails methods(), so the load", async () => {
  for (const [config, why] of [
    [{ prefix: 7 }, /config.prefix must be a string/],
    ["[1]", /config must be a JSON object/],
    [{ describe: { echo: 1 } }, /config.describe must be an object/],
    ["{not json", /JSON/],
  ]) {
    const hook = await fresh();
    assert.throws(() => new Call().config(config).methods(hook), why);
  }
});
