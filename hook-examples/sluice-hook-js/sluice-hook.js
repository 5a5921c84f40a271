// Write sluice hooks (sluice:hook@0.2.0) in JavaScript, for jco /
// componentize-js: a hook is an object (or a class) with `methods()` and the
// handlers it needs; `exportHook` turns it into the component's `handler`
// export. Messages come as `Message` (the method and the exact JSON text,
// parsed once on first use, with views of the MCP shapes hooks look at
// most), verdicts are built with `Verdict`, the exchange is a `Context`.
// `testing.js` beside this file runs a hook under plain node, with the
// config and caller a test gives it, and hands back the verdict and the log
// lines.
//
//   import { Verdict, exportHook } from "./sluice-hook/sluice-hook.js";
//
//   export const handler = exportHook({
//     methods() {
//       return ["tools/call@request"];
//     },
//     onRequest(ctx, request) {
//       const call = request.toolCall();
//       if (call?.name.startsWith("delete")) {
//         return Verdict.reject(-31001, `${call.name} is not allowed`);
//       }
//       return Verdict.continue;
//     },
//   });
//
// The same shape as the Rust SDK (hook-examples/sluice-hook), in
// JavaScript's spelling: on_request is onRequest, tool_call() toolCall().
// A hook written against the bare WIT keeps working: this only wraps it.

import { config as hostConfig, log as hostLog } from "sluice:hook/host@0.2.0";

// ---- verdicts ----

const VERDICT = Symbol("sluice-hook verdict");

// A JSON value as JSON text, refusing what JSON cannot carry (undefined, a
// function, a BigInt) with a message that says where it came from.
function jsonText(value, what) {
  let text;
  try {
    text = JSON.stringify(value);
  } catch (e) {
    throw new TypeError(`${what}: not a JSON value (${e.message})`);
  }
  if (text === undefined) throw new TypeError(`${what}: not a JSON value (${typeof value})`);
  return text;
}

/** What the proxy should do with a message. Build one with the statics. */
export class Verdict {
  constructor(token, tag, fields) {
    if (token !== VERDICT) {
      throw new TypeError(
        "build verdicts with Verdict.continue, Verdict.reject(), Verdict.replace() or Verdict.respond()",
      );
    }
    this.tag = tag;
    Object.assign(this, fields);
    if (fields.error) Object.freeze(fields.error);
    Object.freeze(this);
  }

  /**
   * Stop the message and answer with the JSON-RPC error `code` (an integer
   * outside -32768..=-32000, or one of JSON-RPC's predefined codes) and
   * `message`.
   */
  static reject(code, message) {
    if (typeof code === "bigint" && code >= BigInt(Number.MIN_SAFE_INTEGER) && code <= BigInt(Number.MAX_SAFE_INTEGER)) {
      code = Number(code);
    }
    if (!Number.isSafeInteger(code)) {
      throw new TypeError(`Verdict.reject: the code must be an integer within ±(2^53 - 1), got ${String(code)}`);
    }
    if (typeof message !== "string") {
      throw new TypeError(`Verdict.reject: the message must be a string, got ${typeof message}`);
    }
    return new Verdict(VERDICT, "reject", { error: { code, message, data: undefined } });
  }

  /** Send `message` (the whole JSON-RPC message, an object) instead. */
  static replace(message) {
    if (message === null || typeof message !== "object" || Array.isArray(message)) {
      throw new TypeError(
        "Verdict.replace: give the whole JSON-RPC message as an object (not JSON text; see Message.edited)",
      );
    }
    return new Verdict(VERDICT, "replace", { json: jsonText(message, "Verdict.replace") });
  }

  /** Stop the message and answer with a success whose result is `result`. */
  static respond(result) {
    return new Verdict(VERDICT, "respond", { json: jsonText(result, "Verdict.respond") });
  }

  /**
   * This rejection with `data` (any JSON value) attached; any other verdict
   * is returned as it is.
   */
  withData(data) {
    if (this.tag !== "reject") return this;
    const error = { ...this.error, data: jsonText(data, "Verdict.withData") };
    return new Verdict(VERDICT, "reject", { error });
  }

  /** The verdict as the WIT types it (what the component returns). */
  toWit() {
    switch (this.tag) {
      case "continue":
        return CONTINUE_WIT;
      case "reject":
        return { tag: "reject", val: { ...this.error } };
      default:
        return { tag: this.tag, val: this.json };
    }
  }

  /**
   * A WIT verdict as a Verdict, checked as the component's return would be:
   * a clear TypeError for anything the proxy could not take.
   */
  static fromWit(v) {
    const bad = (why) => new TypeError(`not a verdict: ${why}: ${describe(v)}`);
    if (v === null || typeof v !== "object") throw bad("expected {tag, val}");
    switch (v.tag) {
      case "continue":
        return Verdict.continue;
      case "replace":
      case "respond":
        if (typeof v.val !== "string") throw bad(`${v.tag} carries JSON text (val must be a string)`);
        try {
          JSON.parse(v.val);
        } catch (e) {
          throw bad(`${v.tag}'s val is not JSON (${e.message})`);
        }
        return new Verdict(VERDICT, v.tag, { json: v.val });
      case "reject": {
        const e = v.val;
        if (e === null || typeof e !== "object") throw bad("reject carries {code, message, data?}");
        if (typeof e.code === "bigint") {
          throw bad("reject's code is a BigInt (the QuickJS backend traps on one: use a number)");
        }
        let verdict = Verdict.reject(e.code, e.message);
        if (e.data !== undefined && e.data !== null) {
          if (typeof e.data !== "string") throw bad("reject's data is JSON text (a string)");
          try {
            JSON.parse(e.data);
          } catch (err) {
            throw bad(`reject's data is not JSON (${err.message})`);
          }
          verdict = new Verdict(VERDICT, "reject", { error: { ...verdict.error, data: e.data } });
        }
        return verdict;
      }
      default:
        throw bad("tag must be continue, replace, reject or respond");
    }
  }
}

/** Let the message through unchanged. */
Verdict.continue = new Verdict(VERDICT, "continue", {});

function describe(v) {
  if (v === undefined) return "undefined";
  if (v instanceof Verdict) return `Verdict.${v.tag}`;
  try {
    return JSON.stringify(v, (_k, x) => (typeof x === "bigint" ? `${x}n` : x)) ?? String(v);
  } catch {
    return String(v);
  }
}

// ---- messages ----

const NOT_JSON = Symbol("not JSON");

/**
 * One JSON-RPC message: its method (a response's is its request's) and its
 * JSON text, exactly as it travels. The text is parsed once, on first use.
 */
export class Message {
  #parsed = undefined;

  constructor(method, json) {
    /** The JSON-RPC method (for an answer: of the request it answers). */
    this.method = method;
    /** The whole message as JSON text. */
    this.json = json;
  }

  /** The message parsed (once); undefined if it is not JSON (the proxy never hands such over). */
  get value() {
    if (this.#parsed === undefined) {
      try {
        this.#parsed = JSON.parse(this.json);
      } catch {
        this.#parsed = NOT_JSON;
      }
    }
    return this.#parsed === NOT_JSON ? undefined : this.#parsed;
  }

  #field(name) {
    const v = this.value;
    return v !== null && typeof v === "object" && Object.hasOwn(v, name) ? v[name] : undefined;
  }

  /** `id`, for a request or an answer. */
  get id() {
    return this.#field("id");
  }

  /** `params`, for a request or a notification. */
  get params() {
    return this.#field("params");
  }

  /** `result`, for a successful answer. */
  get result() {
    return this.#field("result");
  }

  /** `error` of a failed answer, as {code, message, data} (data as JSON text). */
  get error() {
    const e = this.#field("error");
    if (!isObject(e) || !Number.isInteger(e.code) || typeof e.message !== "string") return undefined;
    return { code: e.code, message: e.message, data: e.data === undefined ? undefined : JSON.stringify(e.data) };
  }

  /** The tool and arguments of a `tools/call` request: {name, arguments} (arguments {} when absent). */
  toolCall() {
    if (this.method !== "tools/call") return undefined;
    const p = this.params;
    if (!isObject(p) || typeof p.name !== "string") return undefined;
    return { name: p.name, arguments: p.arguments ?? {} };
  }

  /** The tools of a `tools/list` result (the parsed array: read it, edit with keepTools/edited). */
  tools() {
    const r = this.result;
    return isObject(r) && Array.isArray(r.tools) ? r.tools : undefined;
  }

  /** The text of a result's `content` blocks joined with newlines (a tools/call result, a sampling answer's one block). */
  text() {
    const r = this.result;
    if (!isObject(r) || r.content === undefined) return undefined;
    const blocks = Array.isArray(r.content) ? r.content : [r.content];
    return blocks
      .filter((b) => isObject(b) && typeof b.text === "string")
      .map((b) => b.text)
      .join("\n");
  }

  /**
   * A `tools/list` answer keeping only the tools `keep(tool)` accepts:
   * Verdict.continue when it keeps them all (or there are none), else the
   * replacement.
   */
  keepTools(keep) {
    const tools = this.tools();
    if (tools === undefined) return Verdict.continue;
    const kept = tools.map((t) => Boolean(keep(t)));
    if (kept.every(Boolean)) return Verdict.continue;
    return this.edited((m) => {
      m.result.tools = m.result.tools.filter((_t, i) => kept[i]);
    });
  }

  /**
   * This message changed by `edit`, as a replacement: `edit` gets the
   * parsed message to change in place (or returns the new message). The
   * message itself stays as it came (its views read the text again after
   * an edit), but what `value`, `params`, `tools()` … returned before the
   * edit is the edited object. The id and the method stay as they were
   * unless `edit` changes them, which the proxy refuses.
   */
  edited(edit) {
    const value = this.value;
    if (value === undefined) return Verdict.continue;
    // The parsed value itself, not a second parse (a message is parsed once);
    // the views read the text afresh afterwards.
    this.#parsed = undefined;
    const out = edit(value);
    return Verdict.replace(out === undefined ? value : out);
  }
}

function isObject(v) {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

// ---- the exchange ----

/** Which way the message travels (the WIT's phase names). */
export const Phase = Object.freeze({
  request: "request",
  response: "response",
  serverMessage: "server-message",
  clientAnswer: "client-answer",
});

/** Who is calling, on a route with `[route.auth]`. */
export class Identity {
  constructor({ scheme, subject, issuer, clientId, scopes, claims }) {
    /** "jwt", "introspection" or "api-key". */
    this.scheme = scheme;
    /** The token's `sub` (else its client id); an API key's `subject`. */
    this.subject = subject;
    /** The token's `iss` (undefined for an API key). */
    this.issuer = issuer ?? undefined;
    /** The token's `client_id` (else `azp`). */
    this.clientId = clientId ?? undefined;
    /** The scopes granted, in the order given. */
    this.scopes = scopes ?? [];
    /** The token's claims as the issuer wrote them (parsed); undefined for an API key. */
    this.claims = claims ?? undefined;
  }

  /** Whether the caller holds `scope`. */
  hasScope(scope) {
    return this.scopes.includes(scope);
  }

  /** The claim `name`, if the token has it. */
  claim(name) {
    return isObject(this.claims) && Object.hasOwn(this.claims, name) ? this.claims[name] : undefined;
  }
}

/** What the host knows about the exchange a message belongs to. */
export class Context {
  constructor({ sessionId, protocolVersion, upstream, headers, phase, identity }) {
    /** The client's `Mcp-Session-Id`, if it sent one. */
    this.sessionId = sessionId ?? undefined;
    /** The client's `MCP-Protocol-Version`, if it sent one. */
    this.protocolVersion = protocolVersion ?? undefined;
    /** The route's name. */
    this.upstream = upstream;
    /** The request headers the operator lets this hook see: [name, value] pairs, lower-case names in arrival order. */
    this.headers = headers ?? [];
    /** Which call this is: a Phase value. */
    this.phase = phase;
    /** The caller (an Identity), when the route authenticates its clients. */
    this.identity = identity ?? undefined;
  }

  /** The first value of the header `name` (any case), if the hook may see it. */
  header(name) {
    const lower = name.toLowerCase();
    return this.headers.find(([n]) => n.toLowerCase() === lower)?.[1];
  }

  /** The WIT context record as a Context. */
  static fromWit(ctx) {
    const id = ctx.identity;
    let identity;
    if (id !== undefined && id !== null) {
      let claims;
      if (typeof id.claims === "string") {
        try {
          claims = JSON.parse(id.claims);
        } catch {
          claims = undefined;
        }
      }
      identity = new Identity({ ...id, claims });
      return new Context({ ...ctx, identity });
    }
    return new Context(ctx);
  }
}

// ---- the host ----

const LEVELS = ["trace", "debug", "info", "warn", "error"];

/** The hook's configuration string, as the operator wrote it ("" when none). */
export function config() {
  return hostConfig();
}

/**
 * A line in the proxy's log, attributed to the hook: `log(level, message)`
 * with level "trace", "debug", "info", "warn" or "error", or
 * `log.info(message)` and its siblings.
 */
export function log(level, message) {
  if (!LEVELS.includes(level)) {
    throw new TypeError(`log: the level must be one of ${LEVELS.join(", ")}, got ${describe(level)}`);
  }
  hostLog(level, String(message));
}
for (const level of LEVELS) log[level] = (message) => log(level, message);

// ---- the export ----

// Each handler, and whether it gets a pair of messages (a request and its answer).
const HANDLERS = [
  ["onRequest", false],
  ["onResponse", true],
  ["onServerMessage", false],
  ["onClientAnswer", true],
];

const CONTINUE_WIT = Object.freeze({ tag: "continue" });

// A failed call, in the proxy's log: a trap says nothing of its cause.
function report(label, e) {
  try {
    hostLog("error", `${label}: ${e instanceof Error ? e.message : String(e)}`);
  } catch {
    // The host is gone; the exception the caller rethrows still fails the call.
  }
}

/**
 * The component's `handler` export for `hook`: an object with `methods()`
 * and any of onRequest(ctx, request), onResponse(ctx, request, response),
 * onServerMessage(ctx, message), onClientAnswer(ctx, request, answer), or a
 * class with those methods (made once, when the module is evaluated: at
 * build time in a component, so its constructor must not call the host;
 * read config() in methods() or the handlers). A handler left out
 * lets the message through. Each must return a Verdict: anything else, or
 * an exception, fails the hook (the proxy's `on_error` decides), with the
 * reason in the proxy's log.
 *
 *   export const handler = exportHook(MyHook);
 */
export function exportHook(hook) {
  const h = typeof hook === "function" ? new hook() : hook;
  if (h === null || typeof h !== "object" || typeof h.methods !== "function") {
    throw new TypeError("exportHook: the hook needs a methods() function");
  }
  const out = {
    methods() {
      try {
        const m = h.methods();
        if (!Array.isArray(m) || !m.every((x) => typeof x === "string")) {
          throw new TypeError(`methods() must return an array of strings, got ${describe(m)}`);
        }
        return m;
      } catch (e) {
        report("methods()", e);
        throw e;
      }
    },
  };
  // Written out per arity, no closures or arrays per call: the wrapper
  // costs a few microseconds in an interpreted guest, not tens.
  for (const [name, pair] of HANDLERS) {
    const handle = h[name];
    if (handle === undefined) {
      out[name] = () => CONTINUE_WIT;
      continue;
    }
    if (typeof handle !== "function") throw new TypeError(`exportHook: ${name} must be a function`);
    const label = `${name}()`;
    const answer = (verdict) => {
      if (!(verdict instanceof Verdict)) {
        throw new TypeError(
          `${label} must return a Verdict (Verdict.continue to let the message through), got ${describe(verdict)}`,
        );
      }
      return verdict.toWit();
    };
    out[name] = pair
      ? (ctx, a, b) => {
          try {
            const verdict = handle.call(h, Context.fromWit(ctx), new Message(a.method, a.json), new Message(b.method, b.json));
            return answer(verdict);
          } catch (e) {
            report(label, e);
            throw e;
          }
        }
      : (ctx, a) => {
          try {
            return answer(handle.call(h, Context.fromWit(ctx), new Message(a.method, a.json)));
          } catch (e) {
            report(label, e);
            throw e;
          }
        };
  }
  return out;
}
