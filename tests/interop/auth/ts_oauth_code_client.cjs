#!/usr/bin/env node
// The TypeScript SDK's authorization code flow with PKCE through sluice,
// the user's part played by this script: the SDK gets sluice's 401, reads
// the metadata, registers a native client (RFC 7591), and hands over the
// authorization URL; the "browser" here follows it, signs in and consents
// on oidc-provider's pages, and takes the code from the redirect; the SDK
// exchanges it (with its code verifier and the resource) and calls tools.
//
//   node ts_oauth_code_client.cjs '{"url": ..., "issuer": ...}'
//
// One JSON line per check on stdout: {check, status, detail}.
"use strict";

const { Client } = require("@modelcontextprotocol/sdk/client/index.js");
const { StreamableHTTPClientTransport } = require("@modelcontextprotocol/sdk/client/streamableHttp.js");
const { UnauthorizedError } = require("@modelcontextprotocol/sdk/client/auth.js");

const cfg = JSON.parse(process.argv[2]);
const REDIRECT = "http://127.0.0.1:9/callback"; // never listened on: the code is read from the redirect
const report = (check, ok, detail) =>
  console.log(JSON.stringify({ check, status: ok ? "pass" : "fail", detail }));

/** A browser, just enough: manual redirects, a cookie jar, forms. */
async function playUser(authorizationUrl) {
  const jar = new Map();
  const cookies = () => [...jar].map(([k, v]) => `${k}=${v}`).join("; ");
  const keep = (res) => {
    for (const c of res.headers.getSetCookie?.() ?? []) {
      const [pair] = c.split(";");
      const i = pair.indexOf("=");
      jar.set(pair.slice(0, i), pair.slice(i + 1));
    }
  };
  const steps = [];
  let url = authorizationUrl.href;
  let init = { method: "GET" };
  for (let hop = 0; hop < 20; hop++) {
    if (url.startsWith(REDIRECT)) {
      const got = new URL(url);
      if (got.searchParams.get("error")) throw new Error(`authorization refused: ${url}`);
      return { code: got.searchParams.get("code"), steps };
    }
    const res = await fetch(url, { ...init, redirect: "manual", headers: { ...(init.headers ?? {}), cookie: cookies() } });
    keep(res);
    steps.push(`${init.method} ${new URL(url).pathname} ${res.status}`);
    if (res.status >= 300 && res.status < 400) {
      url = new URL(res.headers.get("location"), url).href;
      init = { method: "GET" };
      continue;
    }
    const html = await res.text();
    const action = /<form[^>]*action="([^"]+)"/.exec(html)?.[1];
    const prompt = /name="prompt" value="([^"]+)"/.exec(html)?.[1];
    if (res.status !== 200 || !action || !prompt) throw new Error(`no form at ${url}: ${res.status} ${html.slice(0, 300)}`);
    const form = new URLSearchParams({ prompt });
    if (prompt === "login") {
      form.set("login", "alice");
      form.set("password", "any");
    }
    url = new URL(action, url).href;
    init = { method: "POST", body: form.toString(), headers: { "content-type": "application/x-www-form-urlencoded" } };
  }
  throw new Error(`too many hops: ${steps.join(", ")}`);
}

class AuthorizationCode {
  constructor() {
    this.info = undefined;
    this.saved = undefined;
    this.verifier = undefined;
    this.code = undefined;
    this.steps = [];
  }
  get redirectUrl() {
    return REDIRECT;
  }
  get clientMetadata() {
    return {
      client_name: "sluice interop (authorization code)",
      application_type: "native",
      redirect_uris: [REDIRECT],
      grant_types: ["authorization_code"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
      scope: "mcp:tools",
    };
  }
  clientInformation() {
    return this.info;
  }
  saveClientInformation(info) {
    this.info = info;
  }
  tokens() {
    return this.saved;
  }
  saveTokens(tokens) {
    this.saved = tokens;
  }
  saveCodeVerifier(v) {
    this.verifier = v;
  }
  codeVerifier() {
    return this.verifier;
  }
  async redirectToAuthorization(url) {
    this.pkce = url.searchParams.get("code_challenge_method");
    this.resource = url.searchParams.get("resource");
    const { code, steps } = await playUser(url);
    this.code = code;
    this.steps = steps;
  }
}

async function main() {
  const provider = new AuthorizationCode();
  let client = new Client({ name: "sluice-interop-code", version: "1.0.0" });
  let transport = new StreamableHTTPClientTransport(new URL(cfg.url), { authProvider: provider });
  try {
    await client.connect(transport);
    report("code-flow-redirect", false, "connected without authorizing");
    return;
  } catch (e) {
    const ok = e instanceof UnauthorizedError && !!provider.code;
    report(
      "code-flow-redirect",
      ok && provider.pkce === "S256" && provider.resource === cfg.url,
      `${e?.constructor?.name}: code ${provider.code ? "received" : "missing"}, PKCE ${provider.pkce}, resource ${provider.resource}; ${provider.steps.join(", ")}`,
    );
    if (!ok) return;
  }
  await transport.finishAuth(provider.code);
  const token = provider.saved?.access_token ?? "";
  const claims = JSON.parse(Buffer.from(token.split(".")[1] ?? "", "base64url").toString() || "{}");
  report(
    "code-flow-token",
    claims.aud === cfg.url && claims.iss === cfg.issuer && claims.sub === "alice",
    `aud ${JSON.stringify(claims.aud)} iss ${claims.iss} sub ${claims.sub} scope ${claims.scope}`,
  );
  client = new Client({ name: "sluice-interop-code", version: "1.0.0" });
  transport = new StreamableHTTPClientTransport(new URL(cfg.url), { authProvider: provider });
  await client.connect(transport);
  const result = await client.callTool({ name: "echo", arguments: { text: "alice through sluice" } });
  report("code-flow-tools-call", JSON.stringify(result.content).includes("alice through sluice"), JSON.stringify(result.content));
  await client.close();
}

main().then(
  () => process.exit(0),
  (e) => {
    report("driver", false, String(e?.stack ?? e));
    process.exit(1);
  },
);
