#!/usr/bin/env node
// An OAuth 2.1 authorization server for sluice's auth interop test: the
// OpenID-certified `oidc-provider` from npm, configured as the MCP
// authorization spec expects an authorization server to be:
//
//   - RFC 8414 metadata (and OpenID discovery), a JWKS;
//   - dynamic client registration (RFC 7591), open;
//   - the client credentials grant, and the authorization code grant with
//     PKCE through oidc-provider's development login and consent pages
//     (any login; the test's client fills them in as a user would);
//   - resource indicators (RFC 8707): a token asked for `resource=R` is a
//     JWT access token (RFC 9068) whose `aud` is R, signed RS256;
//   - with --opaque-resource O: a token asked for O is opaque, and sluice
//     learns about it by introspection (RFC 7662, oidc-provider's own
//     `features.introspection`) as the static client --sluice-client;
//   - with --upstream-resource U: RFC 8693 token exchange, a minimal honest
//     grant handler registered with `registerGrantType`: the subject token
//     must be a valid access token issued for O, the target U; it issues
//     an opaque access token for U on the subject's behalf and prints
//     `TOKEN-EXCHANGE ok …`.
//
//   node oidc_as.mjs --port N --resource URL [--scope "mcp:tools"]
//        [--opaque-resource URL --upstream-resource URL --sluice-client ID:SECRET]
//
// Prints `READY http://127.0.0.1:PORT` once listening. oidc-provider is an
// ES module: it is imported from $OIDC_PROVIDER_DIR (the interop install's
// node_modules/oidc-provider), since NODE_PATH does not reach ES imports.
import { pathToFileURL } from "node:url";
import path from "node:path";
import fs from "node:fs";

const args = process.argv.slice(2);
const arg = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : fallback;
};
const port = Number(arg("port", "0"));
const resource = arg("resource");
const scope = arg("scope", "mcp:tools");
const opaqueResource = arg("opaque-resource");
const upstreamResource = arg("upstream-resource");
const [sluiceId, sluiceSecret] = (arg("sluice-client", "") || ":").split(":");
const TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token";
if (!port || !resource) {
  console.error("usage: oidc_as.mjs --port N --resource URL [--scope S]");
  process.exit(2);
}

const dir = process.env.OIDC_PROVIDER_DIR;
const pkg = JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8"));
const entry = typeof pkg.exports === "string" ? pkg.exports : pkg.exports?.["."]?.import ?? pkg.exports?.["."] ?? pkg.main;
const { default: Provider, errors } = await import(pathToFileURL(path.join(dir, entry)).href);

// The claims of tokens issued by the token exchange, by token.
const exchanged = new WeakMap();

// What each resource (RFC 8707) gets: the JWT one, the opaque one, the upstream's.
const resourceServers = new Map([[resource, "jwt"]]);
if (opaqueResource) resourceServers.set(opaqueResource, "opaque");
if (upstreamResource) resourceServers.set(upstreamResource, "opaque");
const serverInfo = (indicator) => {
  const format = resourceServers.get(indicator);
  if (!format) {
    throw new errors.InvalidTarget(`unknown resource ${indicator}`);
  }
  return {
    scope,
    audience: indicator,
    accessTokenTTL: 300,
    accessTokenFormat: format,
    ...(format === "jwt" ? { jwt: { sign: { alg: "RS256" } } } : {}),
  };
};

const issuer = `http://127.0.0.1:${port}`;
const provider = new Provider(issuer, {
  features: {
    devInteractions: { enabled: true },
    registration: { enabled: true },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resource,
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx, indicator) => serverInfo(indicator),
    },
  },
  scopes: scope.split(" "),
  extraTokenClaims: (_ctx, token) => exchanged.get(token),
  // sluice's own client: introspection, and the token exchange grant.
  clients: sluiceId
    ? [{
      client_id: sluiceId,
      client_secret: sluiceSecret,
      grant_types: upstreamResource ? [TOKEN_EXCHANGE] : [],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: "client_secret_basic",
    }]
    : [],
  clientDefaults: {
    grant_types: ["client_credentials"],
    response_types: [],
    token_endpoint_auth_method: "client_secret_basic",
  },
});
// Plain http on loopback is what a test has.
provider.proxy = false;
provider.on("server_error", (_ctx, err) => console.error(`SERVER-ERROR ${err?.stack ?? err}`));

if (upstreamResource) {
  // RFC 8693 §2: trade a valid access token issued for the opaque resource
  // (sluice's) for one issued for the upstream, on the subject's behalf.
  provider.registerGrantType(TOKEN_EXCHANGE, async (ctx) => {
    const { params, client } = ctx.oidc;
    if (params.subject_token_type !== ACCESS_TOKEN_TYPE) {
      throw new errors.InvalidRequest("subject_token_type must be an access token");
    }
    if (params.requested_token_type && params.requested_token_type !== ACCESS_TOKEN_TYPE) {
      throw new errors.InvalidRequest("only access tokens are issued");
    }
    const subject = (await provider.AccessToken.find(params.subject_token))
      ?? (await provider.ClientCredentials.find(params.subject_token));
    if (!subject?.isValid) {
      throw new errors.InvalidGrant("subject_token is not a valid access token");
    }
    if (![].concat(subject.aud ?? []).includes(opaqueResource)) {
      throw new errors.InvalidGrant("subject_token was not issued for the gateway");
    }
    const target = params.resource ?? params.audience;
    if (target !== upstreamResource) {
      throw new errors.InvalidTarget(`cannot issue tokens for ${target}`);
    }
    const token = new provider.ClientCredentials({ client, scope: subject.scope });
    token.resourceServer = new provider.ResourceServer(target, serverInfo(target));
    // Who it acts for (RFC 8693 §4.1 `act`): the subject, through sluice;
    // extraTokenClaims puts it in the token at save.
    const onBehalfOf = subject.accountId ?? subject.clientId;
    exchanged.set(token, { sub: onBehalfOf, act: { sub: client.clientId } });
    const value = await token.save();
    console.log(`TOKEN-EXCHANGE ok subject=${onBehalfOf} actor=${client.clientId} aud=${target}`);
    ctx.body = {
      access_token: value,
      issued_token_type: ACCESS_TOKEN_TYPE,
      token_type: "Bearer",
      expires_in: token.expiration,
      scope: token.scope,
    };
  }, ["subject_token", "subject_token_type", "requested_token_type", "resource", "audience", "scope"]);
}

const server = provider.listen(port, "127.0.0.1", () => {
  console.log(`READY ${issuer}`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
