#!/usr/bin/env node
// Fixture MCP server on the TypeScript SDK speaking the legacy HTTP+SSE
// transport (2024-11-05): `SSEServerTransport` (GET /sse announces
// `/messages?sessionId=…`, POSTs there are answered 202), with the tools of
// ts_server.cjs.
//
//   node ts_sse_server.cjs [--port N]
//
// Prints `READY http://127.0.0.1:PORT/sse` once listening (port 0 = any).
"use strict";

const http = require("node:http");
const { SSEServerTransport } = require("@modelcontextprotocol/sdk/server/sse.js");
const { makeServer } = require("./ts_server.cjs");

const args = process.argv.slice(2);
const i = args.indexOf("--port");
const PORT = i >= 0 ? Number(args[i + 1]) : 0;
const transports = new Map();

const httpServer = http.createServer((req, res) => {
  const url = new URL(req.url, "http://localhost");
  (async () => {
    if (req.method === "GET" && url.pathname === "/sse") {
      const transport = new SSEServerTransport("/messages", res);
      transports.set(transport.sessionId, transport);
      res.on("close", () => transports.delete(transport.sessionId));
      await makeServer().connect(transport);
    } else if (req.method === "POST" && url.pathname === "/messages") {
      const transport = transports.get(url.searchParams.get("sessionId"));
      if (!transport) {
        res.writeHead(404).end("Session not found");
        return;
      }
      await transport.handlePostMessage(req, res);
    } else {
      res.writeHead(404).end();
    }
  })().catch((err) => {
    console.error("request failed:", err);
    if (!res.headersSent) res.writeHead(500).end();
    else res.destroy();
  });
});
httpServer.listen(PORT, "127.0.0.1", () => {
  process.stdout.write(`READY http://127.0.0.1:${httpServer.address().port}/sse\n`);
});
