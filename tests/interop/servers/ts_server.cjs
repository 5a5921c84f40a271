#!/usr/bin/env node
// Fixture MCP server on the TypeScript SDK (low-level `Server`, so a throwing
// handler becomes a JSON-RPC error and tools/list pagination is ours).
//
//   node ts_server.cjs --mode sessions|stateless [--port N]
//
// sessions:  one transport per session, SSE answers, in-memory event store
//            (resumability), GET stream, DELETE.
// stateless: no session id, a fresh server per request, JSON answers.
// Prints `READY http://127.0.0.1:PORT/mcp` once listening (port 0 = any).
"use strict";

const http = require("node:http");
const { randomUUID } = require("node:crypto");
const { Server } = require("@modelcontextprotocol/sdk/server/index.js");
const { StreamableHTTPServerTransport } = require("@modelcontextprotocol/sdk/server/streamableHttp.js");
const {
  ListToolsRequestSchema,
  CallToolRequestSchema,
  ListResourcesRequestSchema,
  ListResourceTemplatesRequestSchema,
  ReadResourceRequestSchema,
  ListPromptsRequestSchema,
  GetPromptRequestSchema,
  CreateMessageResultSchema,
  ElicitResultSchema,
  ListRootsResultSchema,
  McpError,
} = require("@modelcontextprotocol/sdk/types.js");

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const MODE = opt("--mode", "sessions");
const PORT = Number(opt("--port", "0"));
// The tool set all our fixture servers share.
const FIXTURE = require("./tools.json");
const TOOLS = FIXTURE.tools;
const RESOURCES = FIXTURE.resources;
const ITEM = /^sluice:\/\/fixture\/items\/([^/]+)$/;
const PAGE_SIZE = FIXTURE.page_size;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const text = (t) => [{ type: "text", text: t }];

function makeServer() {
  const server = new Server(
    { name: "sluice-interop-ts", version: "1.0.0" },
    { capabilities: { tools: { listChanged: true }, logging: {}, resources: {}, prompts: {} } },
  );
  server.setRequestHandler(ListResourcesRequestSchema, async () => ({
    resources: RESOURCES.map(({ text: _text, ...r }) => r),
  }));
  server.setRequestHandler(ListResourceTemplatesRequestSchema, async () => ({
    resourceTemplates: FIXTURE.resource_templates,
  }));
  server.setRequestHandler(ReadResourceRequestSchema, async (req) => {
    const uri = req.params.uri;
    const r = RESOURCES.find((x) => x.uri === uri);
    if (r) return { contents: [{ uri, mimeType: r.mimeType, text: r.text }] };
    const m = ITEM.exec(uri);
    if (m) return { contents: [{ uri, mimeType: "text/plain", text: `item ${decodeURIComponent(m[1])}` }] };
    throw new McpError(-32002, `resource not found: ${uri}`);
  });
  server.setRequestHandler(ListPromptsRequestSchema, async () => ({ prompts: FIXTURE.prompts }));
  server.setRequestHandler(GetPromptRequestSchema, async (req) => {
    if (req.params.name !== "greet") throw new McpError(-32602, `unknown prompt ${req.params.name}`);
    const name = (req.params.arguments || {}).name;
    if (!name) throw new McpError(-32602, "argument name is required");
    return {
      description: "A greeting",
      messages: [{ role: "user", content: { type: "text", text: `Hello, ${name}!` } }],
    };
  });
  server.setRequestHandler(ListToolsRequestSchema, async (req) => {
    const start = req.params && req.params.cursor ? Number(req.params.cursor) : 0;
    if (!Number.isInteger(start) || start < 0 || start >= TOOLS.length) {
      throw new McpError(-32602, "invalid cursor");
    }
    const end = start + PAGE_SIZE;
    const page = { tools: TOOLS.slice(start, end) };
    if (end < TOOLS.length) page.nextCursor = String(end);
    return page;
  });
  server.setRequestHandler(CallToolRequestSchema, async (req, extra) => {
    const a = req.params.arguments || {};
    switch (req.params.name) {
      case "echo":
        return { content: text(a.text), structuredContent: { text: a.text, echoed: true } };
      case "add": {
        const sum = a.a + a.b;
        return { content: text(String(sum)), structuredContent: { sum } };
      }
      case "progress": {
        const token = req.params._meta && req.params._meta.progressToken;
        const steps = a.steps || 5;
        for (let i = 1; i <= steps; i++) {
          await sleep(a.interval_ms || 80);
          if (token !== undefined) {
            await extra.sendNotification({
              method: "notifications/progress",
              params: { progressToken: token, progress: i, total: steps, message: `${a.tag || ""} ${i}` },
            });
          }
        }
        return { content: text(`done ${a.tag || ""}`) };
      }
      case "fail_result":
        return { content: text("deliberate tool error"), isError: true };
      case "fail_throw":
        throw new McpError(FIXTURE.error_code, "deliberate protocol error");
      case "notify":
        // No relatedRequestId: the transport routes these to the standalone GET stream.
        await server.sendLoggingMessage({ level: "info", data: `notify:${a.tag || ""}` }, extra.sessionId);
        await server.sendToolListChanged();
        return { content: text("sent") };
      case "sample": {
        const r = await extra.sendRequest(
          {
            method: "sampling/createMessage",
            params: { messages: [{ role: "user", content: { type: "text", text: a.prompt } }], maxTokens: 20 },
          },
          CreateMessageResultSchema,
        );
        return { content: text(`sampled: ${r.content.text}`) };
      }
      case "elicit": {
        const r = await extra.sendRequest(
          { method: "elicitation/create", params: { message: "Your name?", requestedSchema: FIXTURE.elicit_schema } },
          ElicitResultSchema,
        );
        return { content: text(`elicited: ${r.action} ${(r.content || {}).name}`) };
      }
      case "roots": {
        const r = await extra.sendRequest({ method: "roots/list" }, ListRootsResultSchema);
        return { content: text(`roots: ${r.roots.map((x) => x.uri).join(" ")}`) };
      }
      case "whoami": {
        const h = extra.requestInfo && extra.requestInfo.headers ? extra.requestInfo.headers.authorization : undefined;
        const v = h === undefined ? null : String(h);
        return { content: text(JSON.stringify(v)), structuredContent: { authorization: v } };
      }
      default:
        if (req.params.name.startsWith("filler_")) return { content: text("ok") };
        throw new McpError(-32602, `unknown tool ${req.params.name}`);
    }
  });
  return server;
}

// Event ids are `<stream>_<seq>` so a replay only sends later events of the same stream.
class MemoryEventStore {
  constructor() {
    this.events = [];
    this.seq = 0;
  }
  async storeEvent(streamId, message) {
    const id = `${streamId}_${++this.seq}`;
    this.events.push({ id, streamId, message });
    return id;
  }
  async getStreamIdForEventId(eventId) {
    const e = this.events.find((x) => x.id === eventId);
    return e ? e.streamId : undefined;
  }
  async replayEventsAfter(lastEventId, { send }) {
    const idx = this.events.findIndex((x) => x.id === lastEventId);
    if (idx < 0) return "";
    const streamId = this.events[idx].streamId;
    for (const e of this.events.slice(idx + 1)) {
      if (e.streamId === streamId) await send(e.id, e.message);
    }
    return streamId;
  }
}

const sessions = new Map();

function jsonError(res, status, code, message) {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify({ jsonrpc: "2.0", error: { code, message }, id: null }));
}

async function handleSessions(req, res) {
  const sid = req.headers["mcp-session-id"];
  if (sid !== undefined) {
    const t = sessions.get(sid);
    if (!t) return jsonError(res, 404, -32001, "Session not found");
    return t.handleRequest(req, res);
  }
  if (req.method !== "POST") return jsonError(res, 400, -32000, "Bad Request: no session id");
  const transport = new StreamableHTTPServerTransport({
    sessionIdGenerator: () => randomUUID(),
    eventStore: new MemoryEventStore(),
    onsessioninitialized: (id) => sessions.set(id, transport),
    onsessionclosed: (id) => sessions.delete(id),
  });
  transport.onclose = () => {
    if (transport.sessionId) sessions.delete(transport.sessionId);
  };
  await makeServer().connect(transport);
  return transport.handleRequest(req, res);
}

async function handleStateless(req, res) {
  if (req.method !== "POST") return jsonError(res, 405, -32000, "Method not allowed");
  const server = makeServer();
  const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
  res.on("close", () => {
    transport.close();
    server.close();
  });
  await server.connect(transport);
  return transport.handleRequest(req, res);
}

const httpServer = http.createServer((req, res) => {
  const path = req.url.split("?")[0];
  if (path !== "/mcp") {
    res.writeHead(404).end();
    return;
  }
  const h = MODE === "stateless" ? handleStateless : handleSessions;
  h(req, res).catch((err) => {
    console.error("request failed:", err);
    if (!res.headersSent) jsonError(res, 500, -32603, "internal error");
    else res.destroy();
  });
});
// Required by ts_sse_server.cjs for the same tools: export, do not listen.
if (require.main === module) {
  httpServer.listen(PORT, "127.0.0.1", () => {
    process.stdout.write(`READY http://127.0.0.1:${httpServer.address().port}/mcp\n`);
  });
}
module.exports = { makeServer };
