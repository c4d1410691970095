// Checks for tests/e2e/scale.sh: three instances on one PostgreSQL database behind nginx.
// Usage: SCALE_PORTS="p1 p2 p3" SCALE_PIDS="pid1 pid2 pid3" node scale.mjs LB_MCP_URL
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import { authorizeInBrowser } from './browser.mjs';

const mcpUrl = process.argv[2];
const origin = new URL(mcpUrl).origin;
const host = new URL(mcpUrl).host;
const ports = process.env.SCALE_PORTS.split(' ').map(Number);
const pids = process.env.SCALE_PIDS.split(' ').map(Number);
const REDIRECT = 'http://127.0.0.1:53683/callback';
const MODERN = '2026-07-28';
const b64url = (buf) => Buffer.from(buf).toString('base64url');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let passed = 0;
const ok = (what) => { passed += 1; console.log(`PASS ${what}`); };

// One request to one instance, bypassing nginx, with the public Host.
function direct(port, method, path, headers = {}, body = undefined) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, headers: { host, ...headers } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { text += c; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text }));
    });
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

const form = (o) => new URLSearchParams(o).toString();
const formHeaders = { 'content-type': 'application/x-www-form-urlencoded' };

function toolCall(name, args, id = 1) {
  return JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args, _meta: { 'io.modelcontextprotocol/protocolVersion': MODERN, 'io.modelcontextprotocol/clientCapabilities': {} } } });
}
function mcpHeaders(token, name) {
  return { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${token}`, 'mcp-protocol-version': MODERN, 'mcp-method': 'tools/call', 'mcp-name': name };
}
// tools/call on one instance directly: { status, result }.
async function callOn(port, token, name, args) {
  const r = await direct(port, 'POST', '/mcp', mcpHeaders(token, name), toolCall(name, args));
  let result;
  try { result = JSON.parse(r.text).result; } catch { result = undefined; }
  return { status: r.status, result };
}
// tools/call through nginx.
async function callLb(token, name, args) {
  const r = await fetch(mcpUrl, { method: 'POST', headers: mcpHeaders(token, name), body: toolCall(name, args) });
  const text = await r.text();
  let result;
  try { result = JSON.parse(text).result; } catch { result = undefined; }
  return { status: r.status, result };
}

const meta = await (await fetch(`${origin}/.well-known/oauth-authorization-server`)).json();

// Registration, login and consent in Chromium, and the token exchange, all through nginx:
// each request may land on a different instance.
// Each login registers its own client (identical metadata would get the same client back,
// and the consent given to it would skip the consent page).
let logins = 0;
async function login(scope = 'mcp notes:read notes:write') {
  logins += 1;
  const reg = await fetch(meta.registration_endpoint, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ client_name: `portcullis scale test ${logins}`, redirect_uris: [REDIRECT], grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], token_endpoint_auth_method: 'none' }),
  });
  assert.equal(reg.status, 201, await reg.clone().text());
  const client = (await reg.json()).client_id;
  const verifier = b64url(randomBytes(32));
  const state = b64url(randomBytes(16));
  const auth = new URL(meta.authorization_endpoint);
  auth.search = new URLSearchParams({
    response_type: 'code', client_id: client, redirect_uri: REDIRECT, scope, state, resource: mcpUrl,
    code_challenge: b64url(createHash('sha256').update(verifier).digest()), code_challenge_method: 'S256',
  }).toString();
  const cb = await authorizeInBrowser(auth, REDIRECT);
  assert.equal(cb.searchParams.get('state'), state);
  const tok = await fetch(meta.token_endpoint, {
    method: 'POST', headers: formHeaders,
    body: form({ grant_type: 'authorization_code', code: cb.searchParams.get('code'), redirect_uri: REDIRECT, code_verifier: verifier, client_id: client, resource: mcpUrl }),
  });
  assert.equal(tok.status, 200, await tok.clone().text());
  return { client, ...(await tok.json()) };
}

function refreshOn(port, client, refreshToken) {
  return direct(port, 'POST', '/oauth/token', formHeaders, form({ grant_type: 'refresh_token', refresh_token: refreshToken, client_id: client }));
}

// Polls every instance until each answers `status` to a whoami with `token`; returns the
// milliseconds that took (fails after `limitMs`).
async function untilAll(token, status, limitMs) {
  const started = Date.now();
  const pending = new Set(ports);
  while (pending.size > 0) {
    for (const port of [...pending]) {
      if ((await callOn(port, token, 'whoami', {})).status === status) pending.delete(port);
    }
    if (pending.size === 0) break;
    assert.ok(Date.now() - started < limitMs, `instances ${[...pending]} still did not answer ${status} after ${limitMs} ms`);
    await sleep(100);
  }
  return Date.now() - started;
}

// 1. A real client through nginx: the SDK (2026-07-28, stateless) with a token from the
// browser flow, its calls spread over the three instances.
const first = await login();
{
  const { Client, StreamableHTTPClientTransport } = await import('@modelcontextprotocol/client');
  const provider = {
    get redirectUrl() { return REDIRECT; },
    get clientMetadata() { return { redirect_uris: [REDIRECT] }; },
    clientInformation() { return { client_id: first.client }; },
    tokens() { return { access_token: first.access_token, token_type: 'Bearer', refresh_token: first.refresh_token }; },
    saveTokens() {}, redirectToAuthorization() { throw new Error('unexpected re-authorization'); },
    saveCodeVerifier() {}, codeVerifier() { return ''; },
  };
  const client = new Client({ name: 'portcullis-scale', version: '0.0.0' }, { versionNegotiation: { mode: { pin: MODERN } } });
  await client.connect(new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider }));
  const ids = [];
  for (let i = 0; i < 6; i += 1) {
    const created = await client.callTool({ name: 'notes_create', arguments: { title: `spread ${i}`, body: `note number ${i} through nginx` } });
    assert.notEqual(created.isError, true, JSON.stringify(created));
    ids.push(created.structuredContent.id);
  }
  const found = await client.callTool({ name: 'notes_search', arguments: { query: 'nginx', limit: 50 } });
  assert.deepEqual(found.structuredContent.results.map((h) => h.id).sort(), [...ids].sort(), 'every note written on any instance is found on any other');
  await client.close();
}
ok('browser login, registration and tokens through round-robin nginx; the SDK client writes and searches across instances');

for (const port of ports) {
  const r = await callOn(port, first.access_token, 'whoami', {});
  assert.equal(r.status, 200, `instance ${port}`);
  assert.equal(r.result.structuredContent.client_id, first.client);
}
ok('the token is accepted by every instance, directly');

// The instances started together on an empty database, each possibly making a signing key:
// within a sync (2 s) they publish the same JWKS.
{
  let sets;
  const started = Date.now();
  for (;;) {
    sets = await Promise.all(ports.map(async (port) => {
      const r = await direct(port, 'GET', '/oauth/jwks');
      return JSON.parse(r.text).keys.map((k) => k.kid).sort().join(',');
    }));
    if (new Set(sets).size === 1 || Date.now() - started > 5000) break;
    await sleep(200);
  }
  assert.equal(new Set(sets).size, 1, `every instance publishes the same keys: ${sets.join(' | ')}`);
  ok(`every instance publishes the same JWKS (${sets[0].split(',').length} key(s))`);
}

// 2. Revocation on one instance: 401 everywhere within 5 s.
{
  const rev = await direct(ports[0], 'POST', '/oauth/revoke', formHeaders, form({ token: first.refresh_token, token_type_hint: 'refresh_token', client_id: first.client }));
  assert.equal(rev.status, 200);
  const ms = await untilAll(first.access_token, 401, 5000);
  ok(`revoked on one instance, refused by all three after ${ms} ms (limit 5000)`);
}

// 3. Two concurrent refreshes of one token on two instances: one rotation, both get the
// same new refresh token, and the grant stays valid.
const second = await login();
let rotated;
{
  const [a, b] = await Promise.all([refreshOn(ports[0], second.client, second.refresh_token), refreshOn(ports[1], second.client, second.refresh_token)]);
  assert.equal(a.status, 200, a.text);
  assert.equal(b.status, 200, b.text);
  const [ta, tb] = [JSON.parse(a.text), JSON.parse(b.text)];
  assert.equal(ta.refresh_token, tb.refresh_token, 'one rotation: the same successor for both');
  assert.notEqual(ta.refresh_token, second.refresh_token);
  for (const t of [ta, tb]) assert.equal((await callOn(ports[2], t.access_token, 'whoami', {})).status, 200, 'the grant is not revoked');
  rotated = ta;
  ok('two concurrent refreshes on two instances: one rotation, no grant revocation');
}

// 4. The old refresh token replayed after the grace window (3 s here): a replay, so the
// grant is revoked, and every instance refuses its access tokens within 5 s.
{
  await sleep(4500); // grace 3 s, counted in whole seconds
  const replay = await refreshOn(ports[2], second.client, second.refresh_token);
  assert.equal(replay.status, 400, replay.text);
  assert.equal(JSON.parse(replay.text).error, 'invalid_grant');
  const ms = await untilAll(rotated.access_token, 401, 5000);
  const successor = await refreshOn(ports[0], second.client, rotated.refresh_token);
  assert.equal(successor.status, 400, 'the successor refresh token died with the grant');
  ok(`a refresh replayed after the grace window revoked the grant on all instances (${ms} ms)`);
}

// 5. One instance killed with SIGKILL under write load through nginx: every acknowledged
// write is stored, and the others keep serving.
{
  const third = await login();
  const acked = [];
  let failures = 0;
  let killed = false;
  const worker = async (w) => {
    for (let i = 0; i < 25; i += 1) {
      const word = `k${w}x${i}z`;
      try {
        const r = await callLb(third.access_token, 'notes_create', { title: `load ${word}`, body: 'written under load' });
        if (r.status === 200 && r.result && r.result.isError !== true) acked.push(word);
        else failures += 1;
      } catch {
        failures += 1;
      }
      if (!killed && acked.length >= 40) {
        killed = true;
        process.kill(pids[1], 'SIGKILL');
      }
    }
  };
  await Promise.all([0, 1, 2, 3, 4, 5, 6, 7].map(worker));
  assert.ok(killed, 'the instance was killed mid-load');
  assert.ok(acked.length >= 150, `the other instances kept serving: ${acked.length} of 200 writes acknowledged, ${failures} failed`);
  const survivors = [ports[0], ports[2]];
  for (const [n, word] of acked.entries()) {
    const r = await callOn(survivors[n % 2], third.access_token, 'notes_search', { query: word });
    assert.equal(r.status, 200);
    assert.equal(r.result.structuredContent.results.length, 1, `acknowledged write ${word} is stored`);
  }
  ok(`instance killed with SIGKILL mid-load: ${acked.length} acknowledged writes all stored, ${failures} in-flight requests failed`);
}

// 6. PostgreSQL itself restarted under load (SCALE_RESTART_POSTGRES=1; needs pg_ctlcluster
// and root): during the gap, calls that need the database get 503 or a tool error saying to
// retry, nothing else; afterwards the instances serve again without a restart, and the
// tokens, the registration behind them and every acknowledged note are intact.
if (process.env.SCALE_RESTART_POSTGRES === '1') {
  const { execFileSync } = await import('node:child_process');
  const { readdirSync } = await import('node:fs');
  const cluster = readdirSync('/etc/postgresql')[0];
  const pg = (action) => execFileSync('pg_ctlcluster', ['--skip-systemctl-redirect', cluster, 'main', action], { stdio: 'inherit' });
  const fourth = await login();
  // What the database holds for the logins so far, to compare after the restart.
  const counts = () => execFileSync('psql', [process.env.SCALE_DB_URL, '-tAc',
    'SELECT (SELECT count(*) FROM consents), (SELECT count(*) FROM clients), (SELECT count(*) FROM grants)'], { encoding: 'utf8' }).trim();
  const before = counts();
  const acked = [];
  const seen = { ok: 0, unavailable: 0, other: [] };
  let stop = false;
  const worker = async (w) => {
    for (let i = 0; !stop; i += 1) {
      const word = `r${w}x${i}z`;
      try {
        const r = await callLb(fourth.access_token, 'notes_create', { title: `restart ${word}`, body: 'written while PostgreSQL restarts' });
        if (r.status === 200 && r.result && r.result.isError !== true) { acked.push(word); seen.ok += 1; }
        else if (r.status === 200 && /try again in a few seconds/.test(r.result?.content?.[0]?.text ?? '')) seen.unavailable += 1;
        else seen.other.push(`${r.status} ${JSON.stringify(r.result)}`);
      } catch (e) {
        seen.other.push(String(e));
      }
      await sleep(20);
    }
  };
  const load = Promise.all([0, 1, 2, 3].map(worker));
  await sleep(1000);
  pg('stop');
  const gapStarted = Date.now();
  const refreshDuring = await refreshOn(ports[0], fourth.client, fourth.refresh_token);
  await sleep(1500);
  pg('start');
  const gapMs = Date.now() - gapStarted;
  // Service resumes by itself: wait for a write to succeed again, then stop the load.
  const resumedFrom = acked.length;
  const deadline = Date.now() + 20000;
  while (acked.length === resumedFrom && Date.now() < deadline) await sleep(100);
  const resumedMs = Date.now() - gapStarted;
  stop = true;
  await load;
  assert.equal(refreshDuring.status, 503, `a refresh during the gap: ${refreshDuring.text}`);
  assert.equal(JSON.parse(refreshDuring.text).error, 'temporarily_unavailable');
  assert.equal(refreshDuring.headers['retry-after'], '5');
  assert.ok(acked.length > resumedFrom, 'writes succeed again after the restart, without restarting Portcullis');
  assert.ok(seen.unavailable > 0, 'calls during the gap were told to retry');
  assert.deepEqual(seen.other, [], 'nothing but success or a retryable refusal');
  assert.equal(counts(), before, 'consents, registrations and grants are all still there');
  const renewed = await refreshOn(ports[2], fourth.client, fourth.refresh_token);
  assert.equal(renewed.status, 200, `the refresh token issued before the restart still works: ${renewed.text}`);
  const access = JSON.parse(renewed.text).access_token;
  for (const [n, word] of acked.entries()) {
    const r = await callOn([ports[0], ports[2]][n % 2], access, 'notes_search', { query: word });
    assert.equal(r.result.structuredContent.results.length, 1, `acknowledged write ${word} is stored`);
  }
  ok(`PostgreSQL restarted under load: ${seen.unavailable} calls told to retry during the ${gapMs} ms gap, writes resumed ${resumedMs} ms after it began; ${acked.length} acknowledged writes, the tokens, and the consents, clients and grants (${before.replaceAll('|', '/')}) intact`);
} else {
  console.log('SKIP PostgreSQL restart under load (set SCALE_RESTART_POSTGRES=1 where the test may restart the server)');
}

console.log(`${passed} passed, 0 failed`);
