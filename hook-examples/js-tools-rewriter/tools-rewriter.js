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

import { Verdict, config, exportHook, log } from "./sluice-hook/sluice-hook.js";

// Parsed once per instance; an instance serves one message (fresh mode) or a
// few hundred (warm mode).
let settings = null;

function loadSettings() {
  if (settings !== null) return settings;
  const text = config();
  const raw = text.trim() === "" ? {} : JSON.parse(text);
  if (!isObject(raw)) throw new Error("config must be a JSON object");
  const prefix = raw.prefix ?? "";
  const describe = raw.describe ?? {};
  if (typeof prefix !== "string") throw new Error("config.prefix must be a string");
  if (!isObject(describe) || !Object.values(describe).every((d) => typeof d === "string")) {
    throw new Error("config.describe must be an object of tool name -> description");
  }
  settings = { prefix, describe };
  return settings;
}

function isObject(v) {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

export const handler = exportHook({
  // Called once at load: a bad config fails the load, not every message.
  methods() {
    loadSettings();
    // Lists are rewritten on the way out, calls routed back on the way in.
    return ["tools/list@response", "tools/call@request"];
  },

  onRequest(_ctx, request) {
    const { prefix } = loadSettings();
    const name = request.toolCall()?.name;
    if (prefix === "" || !name?.startsWith(prefix)) return Verdict.continue;
    return request.edited((m) => {
      m.params.name = name.slice(prefix.length);
    });
  },

  onResponse(_ctx, _request, response) {
    const { prefix, describe } = loadSettings();
    const renamed = (tool) => isObject(tool) && typeof tool.name === "string";
    const changes = (tool) => renamed(tool) && (prefix !== "" || Object.hasOwn(describe, tool.name));
    const tools = response.tools();
    if (!tools?.some(changes)) return Verdict.continue;
    log.debug(`rewrote ${tools.length} tools`);
    return response.edited((m) => {
      for (const tool of m.result.tools.filter(changes)) {
        if (Object.hasOwn(describe, tool.name)) tool.description = describe[tool.name];
        tool.name = prefix + tool.name;
      }
    });
  },
});
