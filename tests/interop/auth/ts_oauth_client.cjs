#!/usr/bin/env node
// The TypeScript SDK's own OAuth flow through sluice, unmodified: the client
// gets sluice's 401, reads the RFC 9728 metadata it names, registers itself
// at the authorization server (RFC 7591), obtains a token with the client
// credentials grant for the resource (RFC 8707), and calls tools.
//
//   node ts_oauth_client.cjs '{"url": "http://127.0.0.1:P/mcp", "issuer": "http://127.0.0.1:Q"}'
//
// One JSON line per check on stdout: {check, status: "pass"|"fail", detail}.
"use strict";

const { Client } = require("@modelcontextprotocol/sdk/client/index.js");
const { StreamableHTTPClientTransport } = require("@modelcontextprotocol/sdk/client/streamableHttp.js");

const cfg = JSON.parse(process.argv[2]);
const report = (check, ok, detail) =>
  console.log(JSON.stringify({ check, status: ok ? "pass" : "fail", detail }));

/** A non-interactive client: no redirect URL, so the SDK registers and asks
 * for a token itself (`prepareTokenRequest`). Everything lives in memory. */
class ClientCredentials {
  constructor() {
    this.info = undefined;
    this.saved = undefined;
    this.registrations = 0;
  }
  get redirectUrl() {
    return undefined;
  }
  get clientMetadata() {
    return {
      client_name: "sluice interop (client credentials)",
      redirect_uris: [],
      grant_types: ["client_credentials"],
      response_types: [],
      token_endpoint_auth_method: "client_secret_basic",
      scope: "mcp:tools",
    };
  }
  clientInformation() {
    return this.info;
  }
  saveClientInformation(info) {
    this.registrations += 1;
    this.info = info;
  }
  tokens() {
    return this.saved;
  }
  saveTokens(tokens) {
    this.saved = tokens;
  }
  prepareTokenRequest(scope) {
    const params = new URLSearchParams({ grant_type: "client_credentials" });
    if (scope) params.set("scope", scope);
    return params;
  }
  redirectToAuthorization() {
    throw new Error("a client credentials flow never redirects");
  }
  saveCodeVerifier() {}
  codeVerifier() {
    throw new Error("no code verifier in a client credentials flow");
  }
}

const initialize = JSON.stringify({
  jsonrpc: "2.0",
  id: 1,
  method: "initialize",
  params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "raw", version: "1" } },
});
const post = (headers) =>
  fetch(cfg.url, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...headers },
    body: initialize,
  });

async function main() {
  const metadataUrl = new URL(cfg.url);
  metadataUrl.pathname = `/.well-known/oauth-protected-resource${metadataUrl.pathname}`;

  // 1. No token: 401 naming the metadata.
  let r = await post({});
  let challenge = r.headers.get("www-authenticate") ?? "";
  report(
    "no-token-401",
    r.status === 401 && challenge === `Bearer resource_metadata="${metadataUrl.href}"`,
    `${r.status} ${challenge}`,
  );

  // 2. The metadata document.
  r = await fetch(metadataUrl);
  const doc = r.status === 200 ? await r.json() : {};
  report(
    "metadata",
    doc.resource === cfg.url && JSON.stringify(doc.authorization_servers) === JSON.stringify([cfg.issuer]),
    JSON.stringify(doc),
  );

  // 3. The SDK's own flow, end to end.
  const provider = new ClientCredentials();
  const client = new Client({ name: "sluice-interop-oauth", version: "1.0.0" });
  const transport = new StreamableHTTPClientTransport(new URL(cfg.url), { authProvider: provider });
  try {
    await client.connect(transport);
    const token = provider.saved?.access_token ?? "";
    const claims = JSON.parse(Buffer.from(token.split(".")[1] ?? "", "base64url").toString() || "{}");
    report(
      "sdk-oauth-connect",
      provider.registrations >= 1 && claims.aud === cfg.url && claims.iss === cfg.issuer,
      `registered ${provider.registrations}×, token aud ${JSON.stringify(claims.aud)} iss ${claims.iss}`,
    );
    const tools = await client.listTools();
    report("tools-list", tools.tools.some((t) => t.name === "echo"), tools.tools.map((t) => t.name).join(","));
    const result = await client.callTool({ name: "echo", arguments: { text: "through sluice" } });
    report("tools-call", JSON.stringify(result.content).includes("through sluice"), JSON.stringify(result.content));

    // 4. The token works by hand too; a forged one does not.
    r = await post({ authorization: `Bearer ${token}` });
    report("token-by-hand", r.status === 200, String(r.status));
    const [h, p] = token.split(".");
    r = await post({ authorization: `Bearer ${h}.${p}.AAAA` });
    challenge = r.headers.get("www-authenticate") ?? "";
    report(
      "forged-token-401",
      r.status === 401 && challenge.endsWith('error="invalid_token"'),
      `${r.status} ${challenge}`,
    );
    await client.close();
  } catch (e) {
    report("sdk-oauth-connect", false, String(e?.stack ?? e));
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    report("driver", false, String(e?.stack ?? e));
    process.exit(1);
  },
);
