#!/usr/bin/env node
// Client driver on the TypeScript SDK (`Client` + `StreamableHTTPClientTransport`,
// or `StdioClientTransport` when the config names a command instead of a URL).
//
//   node ts_client.cjs '<json config>'
//
// Same contract as py_client.py: config {url | stdio: {command, args, env, cwd},
// checks, profile, token}; one JSON line per check on stdout: {check, status:
// "pass"|"fail", detail, ms}; the `script` check's detail is what each of its
// steps got back. With `stdio` every session spawns the server itself.
// Resumption and the request on a deleted session speak raw HTTP (fetch).
"use strict";

const { Client } = require("@modelcontextprotocol/sdk/client/index.js");
const { StreamableHTTPClientTransport } = require("@modelcontextprotocol/sdk/client/streamableHttp.js");
const { StdioClientTransport } = require("@modelcontextprotocol/sdk/client/stdio.js");
const {
  LoggingMessageNotificationSchema,
  McpError,
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  ListRootsRequestSchema,
} = require("@modelcontextprotocol/sdk/types.js");

const LEGACY_VERSION = "2025-11-25";
const cfg = JSON.parse(process.argv[2]);
const P = cfg.profile;

class CheckFailed extends Error {}
const need = (cond, msg) => {
  if (!cond) throw new CheckFailed(msg);
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const now = () => performance.now();
const same = (a, b) => JSON.stringify(sortKeys(a)) === JSON.stringify(sortKeys(b));
function sortKeys(v) {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === "object") {
    return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys(v[k])]));
  }
  return v;
}

// What this client answers to server requests (the checks look for these).
const SAMPLED = "sampled by ts-sdk";
const ELICITED_NAME = "sluice-user";
const ROOT = "file:///sluice/interop";
// A profile may name its own roots (for a server that acts on the roots it gets)
// and the text that shows the server used them.
const rootUris = () => (P.roots && P.roots.roots) || [ROOT];

async function connect({ token, logs, serverRequests, seen } = {}) {
  const capabilities = serverRequests ? { sampling: {}, elicitation: {}, roots: { listChanged: false } } : {};
  const client = new Client({ name: "sluice-interop-ts", version: "1.0.0" }, { capabilities });
  if (serverRequests) {
    const note = (m) => seen && seen.push(m);
    client.setRequestHandler(CreateMessageRequestSchema, async () => {
      note("sampling/createMessage");
      return { role: "assistant", content: { type: "text", text: SAMPLED }, model: "interop-model" };
    });
    client.setRequestHandler(ElicitRequestSchema, async () => {
      note("elicitation/create");
      return { action: "accept", content: { name: ELICITED_NAME } };
    });
    client.setRequestHandler(ListRootsRequestSchema, async () => {
      note("roots/list");
      return { roots: rootUris().map((uri) => ({ uri, name: "interop" })) };
    });
  }
  if (logs) {
    client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => logs.push(n.params.data));
  }
  const transport = cfg.stdio ? stdioTransport() : httpTransport(token);
  await client.connect(transport);
  return { client, transport };
}

function httpTransport(token) {
  const requestInit = token ? { headers: { Authorization: token } } : undefined;
  return new StreamableHTTPClientTransport(new URL(cfg.url), { requestInit });
}

// The server as a child of this process; its stderr joins ours (the harness shows
// it when a check fails).
function stdioTransport() {
  const { command, args, env, cwd } = cfg.stdio;
  const transport = new StdioClientTransport({ command, args, env: env || {}, cwd: cwd || undefined, stderr: "inherit" });
  // The HTTP transport keeps the negotiated version; this one has nowhere to put it.
  transport.setProtocolVersion = (v) => {
    transport.protocolVersion = v;
  };
  return transport;
}

async function withClient(opts, fn) {
  const c = await connect(opts);
  try {
    return await fn(c.client, c.transport);
  } finally {
    await c.client.close().catch(() => {});
  }
}

const checks = {
  async initialize() {
    return withClient({}, async (client, transport) => {
      const info = client.getServerVersion();
      need(info && info.name, "no serverInfo");
      const session = cfg.stdio ? "stdio" : transport.sessionId ? "yes" : "no";
      return `protocol ${transport.protocolVersion || "?"}, server ${info.name}, session ${session}`;
    });
  },

  // Runs cfg.script in one session ({op: "list"}, {op: "call", name, args}, or {op:
  // "seen"}: the server requests this client answered so far, when cfg.server_requests
  // says it answers them) and reports what came back, for the harness to judge (the
  // hook checks).
  async script() {
    const asked = [];
    return withClient({ serverRequests: !!cfg.server_requests, seen: asked }, async (client) => {
      const seen = [];
      for (const step of cfg.script) {
        try {
          if (step.op === "seen") {
            seen.push({ server_requests: [...asked] });
          } else if (step.op === "list") {
            const r = await client.listTools();
            seen.push({ tools: r.tools.map((t) => ({ name: t.name, description: t.description })) });
          } else {
            const r = await client.callTool({ name: step.name, arguments: step.args || {} });
            const text = (r.content || []).map((b) => b.text || "").join(" ");
            seen.push({ result: { isError: !!r.isError, text } });
          }
        } catch (e) {
          if (!(e instanceof McpError)) throw e;
          seen.push({ error: { code: e.code, message: e.message, data: e.data ?? null } });
        }
      }
      return seen;
    });
  },

  async tools_list() {
    return withClient({}, async (client) => {
      const names = [];
      let pages = 0;
      let cursor;
      do {
        const r = await client.listTools(cursor ? { cursor } : {});
        pages++;
        names.push(...r.tools.map((t) => t.name));
        cursor = r.nextCursor;
      } while (cursor && pages < 50);
      const missing = P.expected_tools.filter((n) => !names.includes(n));
      need(missing.length === 0, `missing tools ${missing}`);
      if (P.paginated) need(pages >= 2, `expected several pages, got ${pages}`);
      need(new Set(names).size === names.length, "a tool listed twice across pages");
      return `${names.length} tools in ${pages} pages`;
    });
  },

  async tools_call() {
    return withClient({}, async (client) => {
      // The SDK validates structuredContent against outputSchema of listed tools.
      await listAll(client);
      for (const spec of P.calls) {
        const key = spec.name;
        const r = await client.callTool({ name: spec.name, arguments: spec.args });
        need(!r.isError, `${key}: isError ${JSON.stringify(r.content)}`);
        if (spec.structured !== undefined) {
          need(same(r.structuredContent, spec.structured),
            `${key}: structuredContent ${JSON.stringify(r.structuredContent)} != ${JSON.stringify(spec.structured)}`);
        }
        if (spec.structured_keys !== undefined) {
          const keys = Object.keys(r.structuredContent || {}).sort();
          need(same(keys, [...spec.structured_keys].sort()), `${key}: structuredContent keys ${keys}`);
        }
        if (spec.text_contains !== undefined) {
          const texts = (r.content || []).map((b) => b.text || "").join(" ");
          need(texts.includes(spec.text_contains), `${key}: text ${JSON.stringify(texts)}`);
        }
      }
      return `ok: ${P.calls.map((c) => c.name).join(", ")}`;
    });
  },

  async progress() {
    const spec = P.progress;
    return withClient({}, async (client) => {
      const seen = [];
      const t0 = now();
      const r = await client.callTool({ name: spec.name, arguments: spec.args }, undefined, {
        onprogress: (p) => seen.push([(now() - t0) / 1000, p.progress]),
        timeout: 20000,
      });
      const tEnd = (now() - t0) / 1000;
      need(!r.isError, `isError ${JSON.stringify(r.content)}`);
      // MCP-NOTES: this client drops a progress event that shares a read with the answer.
      return judgeProgress(spec, seen, tEnd, 1);
    });
  },

  async is_error() {
    const spec = P.fail_result;
    return withClient({}, async (client) => {
      const r = await client.callTool({ name: spec.name, arguments: spec.args || {} });
      need(r.isError === true, `isError is ${r.isError}`);
      return "isError: true";
    });
  },

  async jsonrpc_error() {
    const spec = P.fail_throw;
    return withClient({}, async (client) => {
      let r;
      try {
        r = spec.prompt
          ? await client.getPrompt({ name: spec.prompt })
          : await client.callTool({ name: spec.name, arguments: spec.args || {} });
      } catch (e) {
        need(e instanceof McpError, `not a JSON-RPC error: ${e}`);
        need(e.code === spec.code, `code ${e.code} != ${spec.code} (${e.message})`);
        return `error ${e.code}: ${e.message}`;
      }
      throw new CheckFailed(`no JSON-RPC error; result ${JSON.stringify(r).slice(0, 300)}`);
    });
  },

  async resources() {
    const spec = P.resources;
    return withClient({}, async (client) => {
      const listed = await client.listResources();
      const uris = listed.resources.map((r) => r.uri);
      // `listed: false`: a server whose resources are only reachable by template.
      need(spec.listed === false || uris.includes(spec.uri), `resources/list lacks ${spec.uri}: ${uris}`);
      const read = await client.readResource({ uri: spec.uri });
      const text = read.contents.map((c) => c.text || "").join(" ");
      need(text.includes(spec.text_contains), `resources/read ${spec.uri}: ${JSON.stringify(text.slice(0, 200))}`);
      const done = ["list", "read"];
      if (spec.template) {
        const t = await client.listResourceTemplates();
        const templates = t.resourceTemplates.map((r) => r.uriTemplate);
        need(templates.includes(spec.template), `resources/templates/list lacks ${spec.template}: ${templates}`);
        const r = await client.readResource({ uri: spec.template_uri });
        const got = r.contents.map((c) => c.text || "").join(" ");
        need(got.includes(spec.template_text), `resources/read ${spec.template_uri}: ${JSON.stringify(got.slice(0, 200))}`);
        done.push("templates/list", "read of a templated URI");
      }
      return `resources/${done.join(", ")}: ok`;
    });
  },

  async prompts() {
    const spec = P.prompts;
    return withClient({}, async (client) => {
      const listed = await client.listPrompts();
      const names = listed.prompts.map((p) => p.name);
      need(names.includes(spec.name), `prompts/list lacks ${spec.name}: ${names}`);
      const got = await client.getPrompt({ name: spec.name, arguments: spec.args });
      const text = got.messages.map((m) => (m.content && m.content.text) || "").join(" ");
      need(text.includes(spec.text_contains), `prompts/get: ${JSON.stringify(text)}`);
      return `prompts/list (${names.length}), prompts/get ${spec.name}: ${JSON.stringify(text)}`;
    });
  },

  sampling: () => serverRequest("sampling", "sampling/createMessage", SAMPLED),
  elicitation: () => serverRequest("elicitation", "elicitation/create", ELICITED_NAME),
  roots: () => serverRequest("roots", "roots/list", (P.roots && P.roots.want) || ROOT),

  async ping() {
    return withClient({}, async (client) => {
      await client.ping();
      return "pong";
    });
  },

  async get_stream() {
    const spec = P.notify;
    const logs = [];
    return withClient({ logs }, async (client) => {
      const want = "notify:get-stream";
      // The transport opens the GET stream in the background after initialize.
      for (let attempt = 1; attempt <= 5; attempt++) {
        await client.callTool({ name: spec.name, arguments: { tag: "get-stream" } });
        const deadline = now() + 1000;
        while (now() < deadline) {
          if (logs.includes(want)) return `log notification arrived (attempt ${attempt})`;
          await sleep(20);
        }
      }
      throw new CheckFailed(`no ${want} notification; got ${JSON.stringify(logs)}`);
    });
  },

  async bearer() {
    const spec = P.whoami;
    return withClient({ token: cfg.token }, async (client) => {
      await listAll(client);
      const r = await client.callTool({ name: spec.name, arguments: {} });
      const got = (r.structuredContent || {}).authorization;
      need(got === cfg.token, `server saw ${JSON.stringify(got)}, sent ${JSON.stringify(cfg.token)}`);
      return "Authorization arrived unchanged";
    });
  },

  async delete() {
    const { client, transport } = await connect();
    const sid = transport.sessionId;
    need(sid, "no session id");
    await transport.terminateSession();
    await client.close().catch(() => {});
    const r = await fetch(cfg.url, {
      method: "POST",
      headers: rawHeaders(sid),
      body: JSON.stringify({ jsonrpc: "2.0", id: 9, method: "ping" }),
    });
    await r.arrayBuffer();
    const want = P.unknown_session_status || 404;
    need(r.status === want, `request on the deleted session got ${r.status}, want ${want}`);
    return `terminateSession ok, then ${r.status}`;
  },

  async resume() {
    const spec = P.progress;
    const sid = await rawOpenSession();
    // The Python SDKs key their event streams by request id alone, across
    // sessions, so a fixed id would mix in another client's replay.
    const callId = 1 + Math.floor(Math.random() * 2 ** 40);
    try {
      const call = {
        jsonrpc: "2.0", id: callId, method: "tools/call",
        params: { name: spec.name, arguments: spec.resume_args, _meta: { progressToken: "resume-1" } },
      };
      const first = [];
      let lastId;
      const ac = new AbortController();
      const r = await fetch(cfg.url, { method: "POST", headers: rawHeaders(sid), body: JSON.stringify(call), signal: ac.signal });
      need(r.status === 200, `tools/call status ${r.status}`);
      need((r.headers.get("content-type") || "").startsWith("text/event-stream"), `tools/call answered ${r.headers.get("content-type")}`);
      for await (const ev of sseEvents(r)) {
        if (ev.json && ev.json.method === "notifications/progress") {
          first.push(ev.json.params.progress);
          lastId = ev.id;
          if (first.length === 2) break;
        }
      }
      ac.abort();
      need(lastId, `no event id on progress events (got ${first})`);
      // Let the server notice the closed stream before resuming (see harness.py).
      await sleep(spec.resume_pause_ms === undefined ? 300 : spec.resume_pause_ms);
      const later = [];
      let answer;
      // 409 = the server has not yet seen the POST stream close; ask again shortly.
      let g;
      for (let attempt = 0; attempt < 20; attempt++) {
        g = await fetch(cfg.url, {
          method: "GET",
          headers: { ...rawHeaders(sid), "Last-Event-ID": lastId, Accept: "text/event-stream" },
        });
        if (g.status !== 409) break;
        await g.arrayBuffer();
        await sleep(50);
      }
      need(g.status === 200, `resume GET status ${g.status}`);
      for await (const ev of sseEvents(g)) {
        if (!ev.json) continue;
        if (ev.json.method === "notifications/progress") later.push(ev.json.params.progress);
        else if (ev.json.id === callId) {
          answer = ev.json;
          break;
        }
      }
      need(answer && answer.result, `no answer after resume: ${JSON.stringify(answer)}`);
      const all = [...first, ...later];
      const sorted = [...new Set(all)].sort((a, b) => a - b);
      need(same(all, sorted), `progress repeated or out of order: ${first} + ${later}`);
      if (spec.resume_gap_ok && later.length) {
        const lost = spec.resume_args.steps - all.length;
        return `before [${first}], after resume [${later}], answer received (${lost} lost: known SDK window)`;
      }
      need(all.length === spec.resume_args.steps, `expected ${spec.resume_args.steps} progress events, got ${first} + ${later}`);
      return `before [${first}], after resume [${later}], answer received`;
    } finally {
      await fetch(cfg.url, { method: "DELETE", headers: rawHeaders(sid) }).then((r) => r.arrayBuffer()).catch(() => {});
    }
  },
};

// A tool that sends the server request `method` to this client, whose
// answer (containing `want`) must come back in the tool's result.
async function serverRequest(key, method, want) {
  const spec = P[key];
  const seen = [];
  return withClient({ serverRequests: true, seen }, async (client) => {
    if (spec.await_first) {
      const until = Date.now() + 10000;
      while (!seen.includes(spec.await_first) && Date.now() < until) await sleep(20);
    }
    const r = await client.callTool({ name: spec.name, arguments: spec.args || {} });
    need(!r.isError, `isError ${JSON.stringify(r.content)}`);
    need(seen.includes(method), `the client never got ${method} (got ${seen})`);
    const text = (r.content || []).map((b) => b.text || "").join(" ");
    need(text.includes(want), `the result lacks the client's answer ${JSON.stringify(want)}: ${JSON.stringify(text.slice(0, 200))}`);
    return `${method} answered by the client, tool result carries it`;
  });
}

async function listAll(client) {
  let cursor;
  let pages = 0;
  do {
    const r = await client.listTools(cursor ? { cursor } : {});
    cursor = r.nextCursor;
  } while (cursor && ++pages < 50);
}

function judgeProgress(spec, seen, tEnd, slack) {
  const steps = spec.steps;
  const interval = spec.interval_ms / 1000;
  if (spec.streams === false) {
    return `server answers with JSON: ${seen.length} progress events, answer at ${(tEnd * 1000).toFixed(0)} ms`;
  }
  need(seen.length >= steps - slack, `${seen.length} of ${steps} progress events`);
  const values = seen.map((s) => s[1]);
  need(same(values, [...values].sort((a, b) => a - b)), `progress out of order ${values}`);
  const times = seen.map((s) => s[0]);
  const spread = times[times.length - 1] - times[0];
  need(spread >= (seen.length - 1) * interval * 0.5, `progress bunched: ${seen.length} events within ${(spread * 1000).toFixed(0)} ms`);
  need(tEnd - times[0] >= (steps - 1) * interval * 0.5,
    `first progress only ${((tEnd - times[0]) * 1000).toFixed(0)} ms before the answer: buffered?`);
  return `${seen.length}/${steps} events at [${times.map((t) => (t * 1000).toFixed(0)).join(", ")}] ms, answer at ${(tEnd * 1000).toFixed(0)} ms`;
}

function rawHeaders(sid) {
  const h = {
    Accept: "application/json, text/event-stream",
    "Content-Type": "application/json",
    "MCP-Protocol-Version": LEGACY_VERSION,
  };
  if (sid) h["Mcp-Session-Id"] = sid;
  return h;
}

async function rawOpenSession() {
  const init = {
    jsonrpc: "2.0", id: 1, method: "initialize",
    params: { protocolVersion: LEGACY_VERSION, capabilities: {}, clientInfo: { name: "sluice-interop-raw", version: "1" } },
  };
  const h = rawHeaders();
  delete h["MCP-Protocol-Version"];
  const r = await fetch(cfg.url, { method: "POST", headers: h, body: JSON.stringify(init) });
  need(r.status === 200, `initialize status ${r.status}`);
  const sid = r.headers.get("mcp-session-id");
  need(sid, "no Mcp-Session-Id on the initialize answer");
  if ((r.headers.get("content-type") || "").startsWith("text/event-stream")) {
    for await (const ev of sseEvents(r)) if (ev.json && ev.json.id === 1) break;
  } else {
    await r.arrayBuffer();
  }
  const n = await fetch(cfg.url, {
    method: "POST", headers: rawHeaders(sid), body: JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }),
  });
  await n.arrayBuffer();
  need(n.status === 202, `initialized notification status ${n.status}`);
  return sid;
}

// Minimal event-stream reader: yields {id, data, json} per event.
async function* sseEvents(resp) {
  const decoder = new TextDecoder();
  let buf = "";
  const reader = resp.body.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
      let cut;
      while ((cut = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        const ev = {};
        const data = [];
        for (const line of block.split("\n")) {
          if (!line || line.startsWith(":")) continue;
          const i = line.indexOf(":");
          const field = i < 0 ? line : line.slice(0, i);
          let value = i < 0 ? "" : line.slice(i + 1);
          if (value.startsWith(" ")) value = value.slice(1);
          if (field === "data") data.push(value);
          else if (field === "id") ev.id = value;
        }
        if (data.length) {
          ev.data = data.join("\n");
          if (ev.data.trim()) ev.json = JSON.parse(ev.data);
        }
        if (Object.keys(ev).length) yield ev;
      }
    }
  } finally {
    reader.releaseLock();
  }
}

async function main() {
  let failed = 0;
  for (const check of cfg.checks) {
    const t0 = now();
    let status = "pass";
    let detail;
    try {
      const fn = checks[check];
      if (!fn) throw new CheckFailed(`unknown check ${check}`);
      detail = await Promise.race([
        fn(),
        sleep((cfg.timeout || 30) * 1000).then(() => {
          throw new CheckFailed("timed out");
        }),
      ]);
    } catch (e) {
      status = "fail";
      detail = e instanceof CheckFailed ? e.message : `${e.name || "Error"}: ${e.message}`;
    }
    if (status !== "pass") failed++;
    process.stdout.write(JSON.stringify({ check, status, detail, ms: Math.round(now() - t0) }) + "\n");
  }
  process.exit(failed ? 1 : 0);
}

main();
