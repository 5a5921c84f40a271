// sluice hook: rewrite the tools an MCP server advertises.
//
// Config (JSON, all keys optional):
//   {"prefix": "acme_", "describe": {"echo": "Echo text back (via sluice)"}}
//
// On a tools/list response every tool gets `prefix` in front of its name and,
// where `describe` names it (by its upstream name), a new description. Every
// other field of the result (nextCursor, resultType, ttlMs, cacheScope, ...)
// and of each tool is kept as it was. On a tools/call request the prefix is
// taken off again, so the upstream sees the names it knows.

import { log, config } from "sluice:hook/host@0.1.0";

const CONTINUE = { tag: "continue" };

// Parsed once per instance; an instance serves one message (fresh mode) or a
// few hundred (warm mode).
let settings = null;

function loadSettings() {
  if (settings !== null) return settings;
  const text = config();
  const raw = text.trim() === "" ? {} : JSON.parse(text);
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw new Error("config must be a JSON object");
  }
  const prefix = raw.prefix ?? "";
  const describe = raw.describe ?? {};
  if (typeof prefix !== "string") throw new Error("config.prefix must be a string");
  if (describe === null || typeof describe !== "object" || Array.isArray(describe)) {
    throw new Error("config.describe must be an object of tool name -> description");
  }
  for (const [name, text] of Object.entries(describe)) {
    if (typeof text !== "string") throw new Error(`config.describe.${name} must be a string`);
  }
  settings = { prefix, describe };
  return settings;
}

function isObject(v) {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

export const handler = {
  // Called once at load: a bad config fails the load, not every message.
  methods() {
    loadSettings();
    // Lists are rewritten on the way out, calls routed back on the way in.
    return ["tools/list@response", "tools/call@request"];
  },

  onRequest(_ctx, request) {
    const { prefix } = loadSettings();
    if (request.method !== "tools/call" || prefix === "") return CONTINUE;
    const msg = JSON.parse(request.json);
    const name = msg?.params?.name;
    if (typeof name !== "string" || !name.startsWith(prefix)) return CONTINUE;
    msg.params.name = name.slice(prefix.length);
    return { tag: "replace", val: JSON.stringify(msg) };
  },

  onResponse(_ctx, request, response) {
    if (request.method !== "tools/list") return CONTINUE;
    const { prefix, describe } = loadSettings();
    const msg = JSON.parse(response.json);
    const tools = msg?.result?.tools;
    if (!Array.isArray(tools)) return CONTINUE;
    let changed = 0;
    for (const tool of tools) {
      if (!isObject(tool) || typeof tool.name !== "string") continue;
      const upstreamName = tool.name;
      if (Object.hasOwn(describe, upstreamName)) {
        tool.description = describe[upstreamName];
        changed++;
      }
      if (prefix !== "") {
        tool.name = prefix + upstreamName;
        changed++;
      }
    }
    if (changed === 0) return CONTINUE;
    log("debug", `rewrote ${tools.length} tools`);
    return { tag: "replace", val: JSON.stringify(msg) };
  },
};
