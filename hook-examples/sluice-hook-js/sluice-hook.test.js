// The SDK's own tests, under plain node: `./test.sh` (or `node --test
// sluice-hook.test.js`). runtime/tests/hook_sdk.rs runs them in CI.

import assert from "node:assert/strict";
import { test } from "node:test";

import { Call, Message, Verdict, config, exportHook, log } from "./testing.js";

const Guard = exportHook({
  methods() {
    const m = ["tools/call@request", "tools/list@response"];
    if (config().includes("sampling")) m.push("sampling/createMessage@server-message");
    return m;
  },

  onRequest(ctx, request) {
    const call = request.toolCall();
    if (call === undefined) return Verdict.continue;
    const admin = ctx.identity?.hasScope("admin") ?? false;
    if (call.name === "deploy" && !admin) {
      log.info(`refused deploy for ${ctx.sessionId}`);
      return Verdict.reject(-31001, "deploy needs the admin scope").withData({ tool: call.name });
    }
    if (call.arguments.path !== undefined) {
      return request.edited((m) => {
        m.params.arguments.path = "/sandbox";
      });
    }
    return Verdict.continue;
  },

  onResponse(_ctx, _request, response) {
    return response.keepTools((t) => t.name !== "deploy");
  },

  onServerMessage(_ctx, m) {
    return Verdict.reject(-31002, `no ${m.method}`);
  },
});

const DEPLOY = { jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "deploy" } };

test("a hook runs natively with its config, caller and log", () => {
  let out = new Call().session("s-1").request(Guard, DEPLOY);
  assert.deepEqual(out.verdict, Verdict.reject(-31001, "deploy needs the admin scope").withData({ tool: "deploy" }));
  assert.deepEqual(out.verdict.error, { code: -31001, message: "deploy needs the admin scope", data: '{"tool":"deploy"}' });
  assert.deepEqual(out.logs, [["info", "refused deploy for s-1"]]);

  out = new Call().identity({ subject: "ops", scopes: ["admin"] }).request(Guard, JSON.stringify(DEPLOY));
  assert.equal(out.verdict, Verdict.continue);
  assert.deepEqual(out.logs, []);

  assert.equal(new Call().methods(Guard).length, 2);
  assert.equal(new Call().config("sampling").methods(Guard).length, 3);
  // A handler left out lets everything through.
  const answer = { jsonrpc: "2.0", id: 0, result: {} };
  assert.equal(new Call().clientAnswer(Guard, { jsonrpc: "2.0", id: 0, method: "roots/list" }, answer).verdict, Verdict.continue);
});

test("typed views and edits", () => {
  const call = { jsonrpc: "2.0", id: "a", method: "tools/call", params: { name: "read", arguments: { path: "/etc" } } };
  const out = new Call().request(Guard, call);
  assert.equal(out.verdict.tag, "replace");
  const sent = JSON.parse(out.verdict.json);
  assert.equal(sent.id, "a");
  assert.equal(sent.params.arguments.path, "/sandbox");

  const req = { jsonrpc: "2.0", id: 2, method: "tools/list" };
  const list = { jsonrpc: "2.0", id: 2, result: { tools: [{ name: "read" }, { name: "deploy" }], nextCursor: "c" } };
  const kept = new Call().response(Guard, req, list).verdict;
  assert.equal(kept.tag, "replace", "deploy is hidden");
  const m = new Message("tools/list", kept.json);
  assert.deepEqual(m.tools(), [{ name: "read" }]);
  assert.equal(m.result.nextCursor, "c", "the rest of the result is kept");
  const onlyRead = { jsonrpc: "2.0", id: 2, result: { tools: [{ name: "read" }] } };
  assert.equal(new Call().response(Guard, req, onlyRead).verdict, Verdict.continue);
  const failed = { jsonrpc: "2.0", id: 2, error: { code: -32603, message: "down" } };
  assert.equal(new Call().response(Guard, req, failed).verdict, Verdict.continue);

  const text = new Message(
    "tools/call",
    '{"jsonrpc":"2.0","id":3,"result":{"content":[{"type":"text","text":"a"},{"type":"image"},{"type":"text","text":"b"}]}}',
  );
  assert.equal(text.text(), "a\nb");
  assert.equal(text.id, 3);
  assert.equal(text.toolCall(), undefined, "an answer is no call");
  const e = new Message("x", '{"jsonrpc":"2.0","id":3,"error":{"code":-1,"message":"no","data":{"k":1}}}');
  assert.deepEqual(e.error, { code: -1, message: "no", data: '{"k":1}' });
  assert.equal(e.result, undefined);
  const noArgs = new Message("tools/call", '{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"ping"}}');
  assert.deepEqual(noArgs.toolCall(), { name: "ping", arguments: {} });
  const broken = new Message("tools/call", "{not json");
  assert.equal(broken.value, undefined);
  assert.equal(broken.edited(() => ({})), Verdict.continue);
});

test("the message is parsed once, and stays as it came after an edit", () => {
  const m = new Message("tools/list", '{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"}]}}');
  assert.equal(m.value, m.value);
  assert.equal(m.tools(), m.result.tools);
  const v = m.edited((x) => {
    x.result.tools[0].name = "b";
  });
  assert.equal(JSON.parse(v.json).result.tools[0].name, "b");
  assert.equal(m.tools()[0].name, "a", "the views read the text again");
  assert.equal(m.json, '{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"}]}}');
  const returned = m.edited(() => ({ jsonrpc: "2.0", id: 1, result: { tools: [] } }));
  assert.equal(returned.json, '{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}', "or the edit returns the new message");
});

test("server messages", () => {
  const sampling = { jsonrpc: "2.0", id: 0, method: "sampling/createMessage", params: {} };
  assert.deepEqual(new Call().serverMessage(Guard, sampling).verdict, Verdict.reject(-31002, "no sampling/createMessage"));
});

test("the context the hook sees", () => {
  let seen;
  const spy = exportHook({
    methods: () => ["*"],
    onClientAnswer(ctx, request, answer) {
      seen = { ctx, request, answer };
      return Verdict.respond({ ok: ctx.identity?.claim("role") ?? null });
    },
  });
  const out = new Call()
    .session("s-9")
    .protocolVersion("2025-11-25")
    .upstream("everything")
    .header("X-Tenant", "acme")
    .identity({ subject: "alice", scopes: ["tools"], claims: { role: "admin" }, issuer: "https://idp" })
    .clientAnswer(spy, { jsonrpc: "2.0", id: 5, method: "elicitation/create", params: {} }, { jsonrpc: "2.0", id: 5, result: {} });
  assert.deepEqual(out.verdict, Verdict.respond({ ok: "admin" }));
  const { ctx, request, answer } = seen;
  assert.equal(ctx.phase, "client-answer");
  assert.equal(ctx.sessionId, "s-9");
  assert.equal(ctx.protocolVersion, "2025-11-25");
  assert.equal(ctx.upstream, "everything");
  assert.equal(ctx.header("x-TENANT"), "acme");
  assert.equal(ctx.header("authorization"), undefined);
  assert.equal(ctx.identity.scheme, "jwt");
  assert.equal(ctx.identity.issuer, "https://idp");
  assert.ok(ctx.identity.hasScope("tools") && !ctx.identity.hasScope("admin"));
  assert.equal(ctx.identity.claim("nope"), undefined);
  assert.equal(request.method, "elicitation/create");
  assert.equal(answer.method, "elicitation/create", "an answer carries its request's method");
  // Without auth, no identity; an API key has no claims.
  const ping = [{ jsonrpc: "2.0", id: 1, method: "ping" }, { jsonrpc: "2.0", id: 1, result: {} }];
  assert.deepEqual(new Call().clientAnswer(spy, ...ping).verdict, Verdict.respond({ ok: null }));
  assert.equal(seen.ctx.identity, undefined);
  assert.equal(seen.ctx.upstream, "upstream");
  new Call().identity({ subject: "k1" }).clientAnswer(spy, ...ping);
  assert.equal(seen.ctx.identity.scheme, "api-key");
  assert.equal(seen.ctx.identity.claims, undefined);
});

test("verdict builders check what the WIT can carry", () => {
  assert.throws(() => Verdict.reject(1.5, "x"), /integer within/);
  assert.throws(() => Verdict.reject(2 ** 53, "x"), /integer within/);
  assert.deepEqual(Verdict.reject(-31000n, "x"), Verdict.reject(-31000, "x"), "a BigInt becomes a number");
  assert.throws(() => Verdict.reject(-31000), /message must be a string/);
  assert.throws(() => Verdict.replace('{"jsonrpc":"2.0"}'), /as an object/);
  assert.throws(() => Verdict.respond(undefined), /not a JSON value/);
  assert.throws(() => Verdict.respond({ n: 1n }), /not a JSON value/);
  assert.throws(() => new Verdict("continue"), /build verdicts with/);
  assert.equal(Verdict.continue.withData({ a: 1 }), Verdict.continue);
  assert.deepEqual(Verdict.replace({ jsonrpc: "2.0", id: 1, result: {} }).toWit(), {
    tag: "replace",
    val: '{"jsonrpc":"2.0","id":1,"result":{}}',
  });
  assert.ok(Object.isFrozen(Verdict.continue));
  const shared = Verdict.reject(-31000, "x");
  assert.throws(() => {
    shared.error.code = 1;
  }, TypeError, "a verdict cannot be changed under a test's feet");
});

test("a hook that breaks the contract gets an exception that says how", () => {
  const req = { jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "x" } };
  const returning = (v) => exportHook({ methods: () => ["*"], onRequest: () => v });
  assert.throws(() => new Call().request(returning(undefined), req), /onRequest\(\) must return a Verdict \(Verdict.continue to let the message through\), got undefined/);
  assert.throws(() => new Call().request(returning({ tag: "continue" }), req), /must return a Verdict.*got \{"tag":"continue"\}/);
  assert.throws(() => exportHook({ onRequest() {} }), /needs a methods\(\) function/);
  assert.throws(() => new Call().methods(exportHook({ methods: () => "tools/call" })), /array of strings, got "tools\/call"/);
  // The failure is in the proxy's log too, not only a trap.
  const bad = exportHook({ methods: () => ["*"], onRequest: () => log("warning", "x") });
  assert.throws(() => new Call().request(bad, req), /level must be one of trace, debug, info, warn, error, got "warning"/);

  // A hook on the bare WIT (no SDK) is checked the same way.
  const bare = (verdict) => ({ handler: { methods: () => ["*"], onRequest: () => verdict } });
  assert.equal(new Call().request(bare({ tag: "continue" }), req).verdict, Verdict.continue);
  assert.deepEqual(
    new Call().request(bare({ tag: "reject", val: { code: -31000, message: "no", data: "[1]" } }), req).verdict,
    Verdict.reject(-31000, "no").withData([1]),
  );
  assert.throws(() => new Call().request(bare({ tag: "reject", val: { code: -31000n, message: "no" } }), req), /BigInt \(the QuickJS backend traps/);
  assert.throws(() => new Call().request(bare({ tag: "replace", val: { id: 1 } }), req), /replace carries JSON text/);
  assert.throws(() => new Call().request(bare({ tag: "respond", val: "{" }), req), /respond's val is not JSON/);
  assert.throws(() => new Call().request(bare({ tag: "allow" }), req), /tag must be continue, replace, reject or respond/);
  assert.throws(() => new Call().request(bare({ tag: "reject", val: { code: 1, message: "m", data: "x y" } }), req), /data is not JSON/);
  assert.throws(() => new Call().request({ handler: {} }, req), /the hook has no onRequest\(\)/);
  const logsBadly = { handler: { methods: () => ["*"], onRequest: () => (config(), log.error(7), Verdict.continue.toWit()) } };
  assert.doesNotThrow(() => new Call().request(logsBadly, req), "the SDK's log makes a string of anything");
});

test("the host is only there during a call", () => {
  assert.throws(() => config(), /outside a hook call/);
  assert.throws(() => log.info("x"), /outside a hook call/);
  assert.throws(() => new Call().request(Guard, "{nope"), /request: not JSON/);
});

test("a class is a hook too, made once", () => {
  let made = 0;
  class Counter {
    constructor() {
      made++;
      this.calls = 0;
    }
    methods() {
      return ["tools/call"];
    }
    onRequest() {
      this.calls++;
      return Verdict.respond({ calls: this.calls });
    }
  }
  const h = exportHook(Counter);
  const req = { jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "x" } };
  new Call().request(h, req);
  assert.deepEqual(new Call().request(h, req).verdict, Verdict.respond({ calls: 2 }));
  assert.equal(made, 1);
});
