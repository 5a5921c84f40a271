// Run a sluice hook natively, under plain node (`node --test`), without
// building a component: the config it reads and the caller it sees are
// yours to give, and the log lines it writes come back with its verdict.
// (Built into a component, the hook talks to the proxy instead;
// `sluice hook test FILE.wasm` runs the component itself offline.)
//
//   import { test } from "node:test";
//   import assert from "node:assert/strict";
//   import { Call, Verdict, load } from "./sluice-hook/testing.js";
//
//   const { handler } = await load("./hook.js", import.meta.url);
//
//   test("deny", () => {
//     const out = new Call().config('{"deny": ["rm"]}').request(handler, {
//       jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "rm" },
//     });
//     assert.deepEqual(out.verdict, Verdict.reject(-31000, "rm is not allowed"));
//     assert.deepEqual(out.logs, [["info", "refused rm"]]);
//   });
//
// How: a hook imports `sluice:hook/host@0.2.0`, which only a component
// has. Importing this module registers a node module-resolution hook
// (node:module's register, Node 20.6 or newer) that serves that import from
// a stand-in whose config() and log() are the ones a Call sets up. A hook
// module must therefore be imported after this one has run: through
// `load()` (a dynamic import), never with a static `import` in the test
// file (static imports are all resolved before any module runs). The hook
// gets the same checks the component's boundary makes: a verdict the WIT
// cannot carry, a log level it does not know, or a host call at the
// module's top level (where a component cannot call the host either) is an
// exception that says so.

import { register } from "node:module";

const HOST = "sluice:hook/host@0.2.0";
const STATE = Symbol.for("sluice-hook.testing.host");
const LEVELS = ["trace", "debug", "info", "warn", "error"];
const SCHEMES = ["jwt", "introspection", "api-key"];

if (typeof register !== "function") {
  throw new Error(`sluice-hook testing needs node:module's register (Node 20.6 or newer); this is Node ${process.version}`);
}

// The stand-in for the host interface, as a module of its own (the hook
// and the SDK import it by the WIT's name); its state lives here.
const host = `
const state = () => globalThis[Symbol.for("sluice-hook.testing.host")];
export function config() { return state().config(); }
export function log(level, message) { state().log(level, message); }
`;
const loader = `
export async function resolve(specifier, context, next) {
  if (specifier === ${JSON.stringify(HOST)}) {
    return { url: ${JSON.stringify(`data:text/javascript,${encodeURIComponent(host)}`)}, shortCircuit: true };
  }
  return next(specifier, context);
}
`;
register(`data:text/javascript,${encodeURIComponent(loader)}`);

let current = null; // the call under way: {config, logs}

globalThis[STATE] = {
  config() {
    return running("config()").config;
  },
  log(level, message) {
    const call = running("log()");
    if (!LEVELS.includes(level)) {
      throw new TypeError(`host log(): the level must be one of ${LEVELS.join(", ")} (the component traps on ${JSON.stringify(level)})`);
    }
    if (typeof message !== "string") {
      throw new TypeError(`host log(): the message must be a string (the component traps on a ${typeof message})`);
    }
    call.logs.push([level, message]);
  },
};

function running(what) {
  if (current === null) {
    throw new Error(
      `${what} called outside a hook call (at the module's top level?): a component cannot call the host there either`,
    );
  }
  return current;
}

// The SDK, for the test's expectations (and hooks written in the test
// itself): imported only now, after the stand-in is in place.
export const { Verdict, Message, Context, Identity, Phase, exportHook, config, log } = await import("./sluice-hook.js");

/**
 * Import the hook module `specifier` (relative to `parentURL`, usually
 * `import.meta.url`) with the host stand-in in place: its namespace, whose
 * `handler` is what a Call runs.
 */
export function load(specifier, parentURL) {
  return import(new URL(specifier, parentURL).href);
}

function text(json, what) {
  const t = typeof json === "string" ? json : JSON.stringify(json);
  let value;
  try {
    value = JSON.parse(t);
  } catch (e) {
    throw new TypeError(`${what}: not JSON (${e.message}): ${t}`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new TypeError(`${what}: not one JSON-RPC message (an object): ${t}`);
  }
  return { json: t, method: typeof value.method === "string" ? value.method : undefined };
}

/**
 * One call of a hook, set up as the proxy would: a config, a session, a
 * caller, the headers the hook may see. Each setter returns a new Call, so
 * a test can branch from a common one. Then one of methods(), request(),
 * response(), serverMessage(), clientAnswer() on the hook's `handler` (or
 * its module) gives {verdict, logs}: the Verdict, and the lines logged
 * meanwhile as [level, message] pairs.
 */
export class Call {
  #config = "";
  #ctx = { sessionId: undefined, protocolVersion: undefined, upstream: "upstream", headers: [], identity: undefined };

  #with(change) {
    const next = new Call();
    next.#config = this.#config;
    next.#ctx = { ...this.#ctx, headers: [...this.#ctx.headers] };
    change(next);
    return next;
  }

  /** The hook's config string (an object is given as its JSON text). */
  config(value) {
    const t = typeof value === "string" ? value : JSON.stringify(value);
    return this.#with((c) => {
      c.#config = t;
    });
  }

  /**
   * The caller: {subject, scopes?, claims?, scheme? ("api-key" by default,
   * "jwt" when there are claims), issuer?, clientId?}; claims as an object
   * or its JSON text.
   */
  identity({ subject, scopes = [], claims, scheme, issuer, clientId }) {
    if (typeof subject !== "string") throw new TypeError("Call.identity: subject must be a string");
    scheme ??= claims === undefined ? "api-key" : "jwt";
    if (!SCHEMES.includes(scheme)) throw new TypeError(`Call.identity: scheme must be one of ${SCHEMES.join(", ")}`);
    if (!Array.isArray(scopes) || !scopes.every((s) => typeof s === "string")) {
      throw new TypeError("Call.identity: scopes must be an array of strings");
    }
    const identity = {
      scheme,
      subject,
      issuer,
      clientId,
      scopes: [...scopes],
      claims: claims === undefined || typeof claims === "string" ? claims : JSON.stringify(claims),
    };
    return this.#with((c) => {
      c.#ctx.identity = identity;
    });
  }

  /** The client's Mcp-Session-Id. */
  session(id) {
    return this.#with((c) => {
      c.#ctx.sessionId = id;
    });
  }

  /** The client's MCP-Protocol-Version. */
  protocolVersion(version) {
    return this.#with((c) => {
      c.#ctx.protocolVersion = version;
    });
  }

  /** The route's name ("upstream" unless given). */
  upstream(name) {
    return this.#with((c) => {
      c.#ctx.upstream = name;
    });
  }

  /** A request header the hook may see (the name in lower case, as the proxy gives it). */
  header(name, value) {
    return this.#with((c) => {
      c.#ctx.headers.push([name.toLowerCase(), value]);
    });
  }

  /** The hook's methods() under this call's config. */
  methods(hook) {
    const { result } = this.#run(hook, "methods", []);
    if (!Array.isArray(result) || !result.every((m) => typeof m === "string")) {
      throw new TypeError(`methods() must return an array of strings, got ${JSON.stringify(result)}`);
    }
    return result;
  }

  /** onRequest on the client's `request` (JSON text or a value). */
  request(hook, request) {
    const req = text(request, "request");
    return this.#verdict(hook, "onRequest", "request", [msg(req, "")]);
  }

  /** onResponse on the upstream's `response` to `request`. */
  response(hook, request, response) {
    const req = text(request, "request");
    const res = text(response, "response");
    return this.#verdict(hook, "onResponse", "response", [msg(req, ""), msg(res, req.method ?? "")]);
  }

  /** onServerMessage on a server request or notification. */
  serverMessage(hook, message) {
    const m = text(message, "server message");
    return this.#verdict(hook, "onServerMessage", "server-message", [msg(m, "")]);
  }

  /** onClientAnswer on the client's `answer` to the server's `request`. */
  clientAnswer(hook, request, answer) {
    const req = text(request, "request");
    const ans = text(answer, "answer");
    return this.#verdict(hook, "onClientAnswer", "client-answer", [msg(req, ""), msg(ans, req.method ?? "")]);
  }

  #verdict(hook, name, phase, messages) {
    const ctx = { ...this.#ctx, headers: this.#ctx.headers.map((h) => [...h]), phase };
    const { result, logs } = this.#run(hook, name, [ctx, ...messages]);
    let verdict;
    try {
      verdict = Verdict.fromWit(result);
    } catch (e) {
      throw new TypeError(`${name}() returned ${e.message}`);
    }
    return { verdict, logs };
  }

  #run(hook, name, args) {
    const handler = hook !== null && typeof hook === "object" && "handler" in hook ? hook.handler : hook;
    if (handler === null || typeof handler !== "object" || typeof handler[name] !== "function") {
      throw new TypeError(
        `the hook has no ${name}(): give a Call the module's \`handler\` export (a component exports all five functions; exportHook fills in the ones left out)`,
      );
    }
    if (current !== null) throw new Error("a hook call is already under way");
    current = { config: this.#config, logs: [] };
    try {
      const result = handler[name](...args);
      return { result, logs: current.logs };
    } finally {
      current = null;
    }
  }
}

function msg({ json, method }, fallback) {
  return { method: method ?? fallback, json };
}
