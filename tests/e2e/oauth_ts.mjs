// End-to-end OAuth with an official TypeScript SDK client against `portcullis serve`:
// unauthenticated request (401) -> discovery -> registration (DCR, or a client metadata
// document) -> login and consent in headless Chromium -> token exchange -> tools/list and
// tools/call -> refresh -> revocation -> 401 afterwards.
//
// Usage: node oauth_ts.mjs v1|v2 MCP_URL dcr|cimd [CIMD_URL]
//   v1 = @modelcontextprotocol/sdk 1.x, v2 = @modelcontextprotocol/client 2.x
//
// External authorization server mode (tests/e2e/oidc.sh): E2E_ISSUER is the provider's
// issuer (tests/oidc), E2E_SUB the sub of the user who logs in there, E2E_TOKEN_FORMAT jwt or
// opaque, and E2E_LOGIN_PAGE=oidc-provider for browser.mjs. Then the SDK must find that
// issuer through Portcullis's metadata, register and log in there, and hold the provider's
// token; refresh is checked only when the provider issued a refresh token, and revocation is
// not (Portcullis cannot see a revoked JWT before it expires, nor an introspected token
// before its cached answer does).
import assert from 'node:assert/strict';
import { authorizeInBrowser } from './browser.mjs';

const [sdk, mcpUrl, registration, cimdUrl] = process.argv.slice(2);
const REDIRECT = 'http://127.0.0.1:53683/callback';
const external = process.env.E2E_ISSUER;
if (external) assert.ok(process.env.E2E_SUB && ['jwt', 'opaque'].includes(process.env.E2E_TOKEN_FORMAT), 'E2E_ISSUER needs E2E_SUB and E2E_TOKEN_FORMAT=jwt|opaque');

let Client, StreamableHTTPClientTransport, UnauthorizedError, auth;
if (sdk === 'v1') {
  ({ Client } = await import('@modelcontextprotocol/sdk/client/index.js'));
  ({ StreamableHTTPClientTransport } = await import('@modelcontextprotocol/sdk/client/streamableHttp.js'));
  ({ UnauthorizedError, auth } = await import('@modelcontextprotocol/sdk/client/auth.js'));
} else if (sdk === 'v2') {
  ({ Client, StreamableHTTPClientTransport, UnauthorizedError, auth } = await import('@modelcontextprotocol/client'));
} else {
  throw new Error(`unknown sdk ${sdk}`);
}

const s = {};
let pendingAuthUrl;
const provider = {
  get redirectUrl() { return REDIRECT; },
  clientMetadataUrl: registration === 'cimd' ? cimdUrl : undefined,
  get clientMetadata() {
    return {
      client_name: `portcullis e2e (ts ${sdk})`, redirect_uris: [REDIRECT],
      grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  },
  state() { return (s.state = crypto.randomUUID()); },
  clientInformation() { return s.client; },
  saveClientInformation(ci) { s.client = ci; },
  tokens() { return s.tokens; },
  saveTokens(t) { s.tokens = t; },
  redirectToAuthorization(url) { pendingAuthUrl = url; },
  saveCodeVerifier(v) { s.verifier = v; },
  codeVerifier() { return s.verifier; },
  saveDiscoveryState(d) { s.discovery = d; },
  discoveryState() { return s.discovery; },
  invalidateCredentials(scope) {
    if (scope === 'all' || scope === 'tokens') delete s.tokens;
    if (scope === 'all' || scope === 'client') delete s.client;
    if (scope === 'all' || scope === 'discovery') delete s.discovery;
  },
};

// 1. Without a token: 401 with an absolute resource_metadata pointer.
const bare = await fetch(mcpUrl, {
  method: 'POST',
  headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
  body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'probe', version: '0' } } }),
});
assert.equal(bare.status, 401);
const challenge = bare.headers.get('www-authenticate');
const origin = new URL(mcpUrl).origin;
assert.match(challenge, new RegExp(`resource_metadata="${origin}/\\.well-known/oauth-protected-resource/mcp"`));
// The authorization server: Portcullis's own origin, or the external issuer.
const issuer = external ?? origin;

// 2. The SDK discovers, registers and hands us the authorization URL.
const client = new Client({ name: `portcullis-e2e-${sdk}`, version: '0.0.0' });
let transport = new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider });
await assert.rejects(client.connect(transport), (e) => e instanceof UnauthorizedError);
assert.ok(pendingAuthUrl, 'the SDK asked for a browser redirect');
assert.equal(pendingAuthUrl.searchParams.get('resource'), mcpUrl, 'resource (RFC 8707) is the MCP URL');
assert.equal(pendingAuthUrl.origin, issuer, `the login is at the authorization server ${issuer}`);
if (registration === 'cimd') assert.equal(s.client.client_id, cimdUrl, 'CIMD: client_id is the document URL');
else assert.ok(s.client.client_id && !s.client.client_id.startsWith('https://'), 'DCR issued a client_id');

// 3. The browser logs in and approves; we get code, state and iss back.
const cb = await authorizeInBrowser(pendingAuthUrl, REDIRECT);
assert.equal(cb.searchParams.get('state'), s.state, 'state comes back unchanged');
assert.equal(cb.searchParams.get('iss'), issuer, 'iss (RFC 9207) is the issuer');
if (sdk === 'v1') await transport.finishAuth(cb.searchParams.get('code'));
else await transport.finishAuth(cb.searchParams);
if (external) assert.ok(s.tokens.access_token, 'access token issued');
else assert.ok(s.tokens.access_token && s.tokens.refresh_token, 'access and refresh tokens issued');
// External: the token the client holds is the provider's. A JWT names its issuer; an opaque
// one cannot be Portcullis's, which issues only JWTs.
const jwtClaims = (t) => {
  const parts = t.split('.');
  return parts.length === 3 ? JSON.parse(Buffer.from(parts[1], 'base64url').toString()) : undefined;
};
if (external) {
  const claims = jwtClaims(s.tokens.access_token);
  if (process.env.E2E_TOKEN_FORMAT === 'opaque') {
    assert.equal(claims, undefined, 'the provider issued an opaque access token');
  } else {
    assert.ok(claims, 'the access token is a JWT');
    assert.equal(claims.iss, external, 'the access token comes from the external issuer');
    assert.equal(claims.aud, mcpUrl, 'the access token is for this MCP server (RFC 8707 resource)');
    assert.equal(claims.sub, process.env.E2E_SUB, 'the access token is the provider user\'s');
  }
} else {
  // Portcullis's own token, also after a federated login (never the upstream provider's).
  const claims = jwtClaims(s.tokens.access_token);
  assert.equal(claims?.iss, origin, 'the access token is Portcullis\'s own');
  if (process.env.E2E_UPSTREAM_SUB) assert.notEqual(claims.sub, process.env.E2E_UPSTREAM_SUB, 'the token names the local account, not the provider\'s subject');
}

// 4. Use the tools with the token.
transport = new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider });
await client.connect(transport);
const { tools } = await client.listTools();
assert.ok(tools.some((t) => t.name === 'whoami'), 'tools/list shows whoami');
const who = await client.callTool({ name: 'whoami', arguments: {} });
assert.equal(who.structuredContent.authenticated, true);
assert.equal(who.structuredContent.client_id, s.client.client_id, 'the tool sees the calling client');
if (external) assert.equal(who.structuredContent.user, process.env.E2E_SUB, 'the user is the provider\'s sub');
assert.deepEqual(who.structuredContent.scopes, ['mcp', 'notes:read'], 'the baseline the 401 challenge asked for');
const search = await client.callTool({ name: 'notes_search', arguments: { query: 'anything' } });
assert.notEqual(search.isError, true, 'notes:read is enough to search');
assert.deepEqual(search.structuredContent.results, []);

// 4b. Step-up: writing needs notes:write, which the first login did not grant. The server
// answers 403 insufficient_scope; the SDK asks for the union of scopes, the browser approves
// the new one on the consent page, and the retry succeeds.
pendingAuthUrl = undefined;
let stepUpError;
await assert.rejects(
  client.callTool({ name: 'notes_create', arguments: { title: 'from e2e', body: 'step-up' } }),
  (e) => { stepUpError = e; return e instanceof UnauthorizedError || /insufficient_scope|403/.test(String(e)); },
);
if (sdk === 'v1' && external && !s.tokens.refresh_token) {
  // Without a refresh token (1.x does not ask for offline_access, so oidc-provider issues
  // none) 1.x goes straight to a new authorization for the wider scope.
  assert.ok(stepUpError instanceof UnauthorizedError, `v1 without a refresh token re-authorizes: ${stepUpError}`);
} else if (sdk === 'v1') {
  // @modelcontextprotocol/sdk 1.x answers a 403 by refreshing, which cannot add a scope (a
  // refresh may narrow, never widen), and then gives up: the server's answer is right, the
  // client's recovery is missing. Check the refusal and re-authorize as a user would.
  assert.match(String(stepUpError), /403/);
  delete s.tokens;
  await assert.rejects(auth(provider, { serverUrl: new URL(mcpUrl), scope: 'mcp notes:read notes:write' }).then((r) => { if (r === 'REDIRECT') throw new UnauthorizedError('redirect'); }));
}
assert.ok(pendingAuthUrl, `the SDK started a new authorization for the missing scope (it threw: ${stepUpError})`);
const asked = pendingAuthUrl.searchParams.get('scope') ?? '';
assert.ok(asked.split(' ').includes('notes:write'), `scope asked: ${asked}`);
if (external) {
  // The SDK registered (DCR) with the scope of the first challenge, and oidc-provider holds
  // a client to its registered scope (RFC 7591 `scope`): it would refuse this authorization
  // with invalid_scope, and the SDK does not register again. Do what a user would (sign in
  // again from scratch): a new registration for the wider scope, then the authorization.
  const narrow = s.client.client_id;
  delete s.client;
  delete s.tokens;
  pendingAuthUrl = undefined;
  assert.equal(await auth(provider, { serverUrl: new URL(mcpUrl), scope: asked }), 'REDIRECT');
  assert.ok(pendingAuthUrl && s.client.client_id !== narrow, 'registered again for the wider scope');
  assert.ok((pendingAuthUrl.searchParams.get('scope') ?? '').split(' ').includes('notes:write'));
}
const cb2 = await authorizeInBrowser(pendingAuthUrl, REDIRECT);
assert.equal(cb2.searchParams.get('iss'), issuer);
if (sdk === 'v1') await transport.finishAuth(cb2.searchParams.get('code'));
else await transport.finishAuth(cb2.searchParams);
await client.close();
transport = new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider });
await client.connect(transport);
const created = await client.callTool({ name: 'notes_create', arguments: { title: 'from e2e', body: 'step-up' } });
assert.notEqual(created.isError, true, JSON.stringify(created));
assert.equal(created.structuredContent.title, 'from e2e', 'the retry succeeds with the new scope');
const stepped = await client.callTool({ name: 'whoami', arguments: {} });
assert.deepEqual(stepped.structuredContent.scopes, ['mcp', 'notes:read', 'notes:write']);

// 4c. Confirmation before a destructive tool: notes_delete asks the person. SDK v1 speaks
// the 2025 protocol, so the question is an elicitation/create request on the call's stream;
// v2 pinned to 2026-07-28 gets an input_required result and retries with the answer (MRTR).
// Decline keeps the note; accept deletes it.
{
  const questions = [];
  let answer = { action: 'decline' };
  const reply = async (req) => { questions.push((req.params ?? req).message); return answer; };
  const options = { capabilities: { elicitation: { form: {} } } };
  if (sdk === 'v2') options.versionNegotiation = { mode: { pin: '2026-07-28' } };
  const asker = new Client({ name: `portcullis-e2e-${sdk}-confirm`, version: '0.0.0' }, options);
  if (sdk === 'v1') {
    const { ElicitRequestSchema } = await import('@modelcontextprotocol/sdk/types.js');
    asker.setRequestHandler(ElicitRequestSchema, reply);
  } else {
    asker.setRequestHandler('elicitation/create', reply);
  }
  await asker.connect(new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider }));
  const era = asker.getNegotiatedProtocolVersion?.() ?? '2025';
  assert.ok(sdk === 'v1' ? !era.startsWith('2026') : era === '2026-07-28', `era: ${era}`);
  const doomed = await asker.callTool({ name: 'notes_create', arguments: { title: 'delete me', body: 'x' } });
  const id = doomed.structuredContent.id;
  const declined = await asker.callTool({ name: 'notes_delete', arguments: { id } });
  assert.equal(declined.isError, true, JSON.stringify(declined));
  assert.match(declined.content[0].text, /declined; nothing was changed/);
  assert.equal(questions.length, 1, 'the person was asked once');
  assert.match(questions[0], /delete me/, 'the question names the note');
  const kept = await asker.callTool({ name: 'notes_get', arguments: { id } });
  assert.notEqual(kept.isError, true, 'declined: the note is still there');
  answer = { action: 'accept', content: { confirm: true } };
  const deleted = await asker.callTool({ name: 'notes_delete', arguments: { id } });
  assert.notEqual(deleted.isError, true, JSON.stringify(deleted));
  assert.ok(deleted.structuredContent.restorable_until, 'accepted: deleted, restorable');
  assert.equal(questions.length, 2);
  const gone = await asker.callTool({ name: 'notes_get', arguments: { id } });
  assert.equal(gone.isError, true, 'the note is in the trash');
  await asker.close();
}

if (external) {
  // oidc-provider issues refresh tokens only for offline_access with prompt=consent, which
  // the SDKs do not ask for: refresh is checked only if one came anyway. Revocation is not
  // checked: Portcullis cannot see a revoked JWT before it expires, nor a revoked opaque
  // token before its cached introspection answer ends (up to 5 minutes).
  let refreshNote = 'no refresh token issued: refresh not checked';
  if (s.tokens.refresh_token) {
    const before = s.tokens.access_token;
    assert.equal(await auth(provider, { serverUrl: new URL(mcpUrl) }), 'AUTHORIZED');
    assert.notEqual(s.tokens.access_token, before, 'refresh: new access token');
    refreshNote = 'refreshed';
  }
  const again = await client.callTool({ name: 'whoami', arguments: {} });
  assert.equal(again.structuredContent.user, process.env.E2E_SUB);
  await client.close();
  console.log(`ok: ts ${sdk} ${registration} ${mcpUrl}, tokens from ${issuer} (${process.env.E2E_TOKEN_FORMAT}); ${refreshNote}; revocation not checked`);
  process.exit(0);
}

// 5. Refresh: a new, rotated pair that works.
const before = { ...s.tokens };
const refreshed = await auth(provider, { serverUrl: new URL(mcpUrl) });
assert.equal(refreshed, 'AUTHORIZED');
assert.notEqual(s.tokens.access_token, before.access_token, 'new access token');
assert.notEqual(s.tokens.refresh_token, before.refresh_token, 'refresh token rotated');
const again = await client.callTool({ name: 'whoami', arguments: {} });
assert.equal(again.structuredContent.grant_id, stepped.structuredContent.grant_id, 'same grant after refresh');

// 6. Revocation (the SDKs have none: RFC 7009 by hand), then the token is refused.
const meta = await (await fetch(`${origin}/.well-known/oauth-authorization-server`)).json();
const rev = await fetch(meta.revocation_endpoint, {
  method: 'POST',
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
  body: new URLSearchParams({ token: s.tokens.refresh_token, token_type_hint: 'refresh_token', client_id: s.client.client_id }),
});
assert.equal(rev.status, 200);
// At once on the instance that revoked; within 5 s on the others of a scaled-out
// deployment (tests/e2e/scale.sh runs this script through a load balancer).
const probe = () => fetch(mcpUrl, {
  method: 'POST',
  headers: {
    'content-type': 'application/json', accept: 'application/json, text/event-stream',
    authorization: `Bearer ${s.tokens.access_token}`, 'mcp-protocol-version': '2026-07-28',
    'mcp-method': 'tools/call', 'mcp-name': 'whoami',
  },
  body: JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'tools/call', params: { name: 'whoami', arguments: {}, _meta: { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientCapabilities': {} } } }),
});
const revokedAt = Date.now();
let after = await probe();
while (after.status !== 401 && Date.now() - revokedAt < 5000) {
  await new Promise((r) => setTimeout(r, 100));
  after = await probe();
}
assert.equal(after.status, 401, 'revoked grant: 401 (within 5 s)');
assert.match(after.headers.get('www-authenticate'), /error="invalid_token"/);
const reuse = await fetch(meta.token_endpoint, {
  method: 'POST',
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
  body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: s.tokens.refresh_token, client_id: s.client.client_id }),
});
assert.equal(reuse.status, 400);
assert.equal((await reuse.json()).error, 'invalid_grant');
await client.close();
console.log(`ok: ts ${sdk} ${registration} ${mcpUrl}`);
// Every check above passed. The transport abandoned at the step-up can still reject a
// pending promise after this point, which Node would turn into exit code 1.
process.exit(0);
