// End-to-end: the account page in headless Chromium against `portcullis serve`.
// A client registers (DCR), the browser logs in and approves (authorization code + PKCE),
// the client gets tokens and calls the MCP endpoint; then, on /account, the browser signs
// in, finds the application (name, host, scopes), disconnects it, and we check that its
// access token is refused (401) within 5 seconds and its refresh token no longer works;
// finally the password is changed there, and the old password fails while the new one works.
//
// Usage: node account.mjs MCP_URL   (E2E_USER / E2E_PASSWORD: the account; it ends with a
// new password, so give this script a server of its own)
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { chromium } from 'playwright-core';
import { authorizeInBrowser } from './browser.mjs';

const [mcpUrl] = process.argv.slice(2);
const user = process.env.E2E_USER ?? 'admin';
const password = process.env.E2E_PASSWORD;
assert.ok(password, 'E2E_PASSWORD is not set');
const origin = new URL(mcpUrl).origin;
const REDIRECT = 'http://127.0.0.1:53683/callback';
const appName = `Account e2e app ${randomBytes(3).toString('hex')}`;
const b64url = (buf) => buf.toString('base64url');

// 1. A client registers and is connected through the real login and consent pages.
const meta = await (await fetch(`${origin}/.well-known/oauth-authorization-server`)).json();
const reg = await fetch(meta.registration_endpoint, {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({
    client_name: appName, redirect_uris: [REDIRECT], token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'],
  }),
});
assert.equal(reg.status, 201, await reg.clone().text());
const clientId = (await reg.json()).client_id;

async function connect(pw) {
  const verifier = b64url(randomBytes(32));
  const auth = new URL(meta.authorization_endpoint);
  for (const [k, v] of Object.entries({
    response_type: 'code', client_id: clientId, redirect_uri: REDIRECT, state: 'st',
    code_challenge: b64url(createHash('sha256').update(verifier).digest()), code_challenge_method: 'S256',
    scope: 'mcp notes:read', resource: mcpUrl,
  })) auth.searchParams.set(k, v);
  const cb = await authorizeInBrowser(auth, REDIRECT, { user, password: pw });
  const code = cb.searchParams.get('code');
  assert.ok(code, `no code in ${cb}`);
  const r = await fetch(meta.token_endpoint, {
    method: 'POST',
    body: new URLSearchParams({
      grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier,
      client_id: clientId, resource: mcpUrl,
    }),
  });
  assert.equal(r.status, 200, await r.clone().text());
  return r.json();
}

const mcpStatus = async (token) => (await fetch(mcpUrl, {
  method: 'POST',
  headers: {
    'content-type': 'application/json', accept: 'application/json, text/event-stream',
    authorization: `Bearer ${token}`,
  },
  body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'account-e2e', version: '0' } } }),
})).status;

const tokens = await connect(password);
assert.ok(tokens.access_token && tokens.refresh_token, 'access and refresh tokens');
assert.equal(await mcpStatus(tokens.access_token), 200, 'the token works before the disconnect');

// 2. The account page in Chromium.
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--no-first-run'],
});
try {
  const page = await browser.newPage();
  const resp = await page.goto(`${origin}/account`);
  assert.equal(resp.status(), 200);
  assert.equal(resp.headers()['x-frame-options'], 'DENY');
  assert.equal(resp.headers()['cache-control'], 'no-store');
  assert.match(resp.headers()['content-security-policy'], /frame-ancestors 'none'/);
  await page.fill('#username', user);
  await page.fill('#password', password);
  await Promise.all([page.waitForURL(`${origin}/account`), page.click('button[type=submit]')]);
  assert.match(await page.textContent('main'), new RegExp(`Signed in as ${user}`));

  const app = page.locator('li.app', { has: page.locator('h3', { hasText: appName }) });
  assert.equal(await app.count(), 1, `the app is listed once: ${await page.textContent('main')}`);
  assert.equal((await app.locator('.host').textContent()).trim(), '127.0.0.1', 'the redirect host');
  const scopes = await app.locator('.scopes code').allTextContents();
  assert.deepEqual(scopes.sort(), ['mcp', 'notes:read'], 'the scopes granted');
  assert.doesNotMatch(await app.textContent(), /Last used\s*not yet/, 'tokens were issued');

  // 3. Disconnect: the access token is refused within 5 s, the refresh token at once.
  const started = Date.now();
  await Promise.all([page.waitForURL(/done=disconnected/), app.locator('button', { hasText: 'Disconnect' }).click()]);
  assert.match(await page.textContent('.notice'), /disconnected/);
  assert.equal(await page.locator('li.app', { has: page.locator('h3', { hasText: appName }) }).count(), 0);
  let status;
  while ((status = await mcpStatus(tokens.access_token)) !== 401) {
    assert.ok(Date.now() - started < 5000, `access token still answered ${status} after 5 s`);
    await new Promise((r) => setTimeout(r, 100));
  }
  console.log(`access token refused ${Date.now() - started} ms after the click`);
  const refreshed = await fetch(meta.token_endpoint, {
    method: 'POST',
    body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token, client_id: clientId }),
  });
  assert.equal(refreshed.status, 400);
  assert.equal((await refreshed.json()).error, 'invalid_grant');

  // 4. Change the password: a wrong current one changes nothing; then the real change.
  const newPassword = `${password}-changed`;
  await page.fill('#current_password', 'not the current password');
  await page.fill('#new_password', newPassword);
  await page.fill('#new_password_again', newPassword);
  await page.click('form[action="/account/password"] button[type=submit]');
  await page.waitForSelector('.error');
  assert.match(await page.textContent('.error'), /current password is not right\. Nothing was changed/);
  await page.fill('#current_password', password);
  await page.fill('#new_password', newPassword);
  await page.fill('#new_password_again', newPassword);
  await Promise.all([page.waitForURL(/done=password/), page.click('form[action="/account/password"] button[type=submit]')]);
  assert.match(await page.textContent('.notice'), /Your password was changed/);

  // The old password fails at sign-in (a fresh browser context: no session) ...
  const fresh = await browser.newContext();
  const p2 = await fresh.newPage();
  await p2.goto(`${origin}/account`);
  await p2.fill('#username', user);
  await p2.fill('#password', password);
  await p2.click('button[type=submit]');
  await p2.waitForSelector('.error');
  assert.match(await p2.textContent('.error'), /Wrong username or password/);
  await fresh.close();
} finally {
  await browser.close();
}

// ... and the new one works at the OAuth login; the consent page asks again (it was forgotten).
const again = await connect(`${password}-changed`);
assert.equal(await mcpStatus(again.access_token), 200, 'reconnected with the new password');
console.log('account page: listed, disconnected, password changed');
