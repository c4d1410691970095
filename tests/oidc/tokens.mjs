// Gets real tokens from provider.mjs without an MCP client: the authorization-code flow with
// PKCE S256, a headless Chromium typing the user's password and pressing Approve; or the
// client_credentials grant. Prints the token endpoint's JSON answer on stdout.
//
//   node tokens.mjs --issuer URL --client-id ID [--client-secret S] [--auth-method M]
//                   [--grant authorization_code|client_credentials] [--scope "openid mcp"]
//                   [--resource URL] [--user NAME --password PW] [--redirect-uri URL]
//
// --auth-method: client_secret_basic (default with a secret), client_secret_post, or none
// (default without). --redirect-uri defaults to http://127.0.0.1:9/callback: nothing has to
// listen there, the browser's request to it is answered by Playwright. offline_access in
// --scope adds prompt=consent, which OpenID Connect requires for a refresh token.
//
// Exit codes: 0 tokens printed; 3 the login page refused the user/password (its message on
// stderr); 4 the authorization or token endpoint answered an error; 1 anything else.
//
// As a module: getTokens({ issuer, clientId, clientSecret, authMethod, grant, scope, resource,
// user, password, redirectUri }) resolves to the token response; it throws an Error whose
// `exit` is 3 or 4 in those cases.
import * as crypto from 'node:crypto';

function fail(exit, message) {
  return Object.assign(new Error(message), { exit });
}

async function discover(issuer) {
  const r = await fetch(new URL('/.well-known/openid-configuration', issuer));
  if (!r.ok) throw new Error(`discovery at ${issuer} answered ${r.status}`);
  return r.json();
}

async function tokenRequest(meta, o, params) {
  const body = new URLSearchParams(params);
  const headers = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
  const method = o.authMethod ?? (o.clientSecret ? 'client_secret_basic' : 'none');
  if (method === 'client_secret_basic') {
    const enc = encodeURIComponent;
    headers.authorization = `Basic ${Buffer.from(`${enc(o.clientId)}:${enc(o.clientSecret)}`).toString('base64')}`;
  } else {
    body.set('client_id', o.clientId);
    if (method === 'client_secret_post') body.set('client_secret', o.clientSecret);
  }
  if (o.resource) body.set('resource', o.resource);
  const r = await fetch(meta.token_endpoint, { method: 'POST', headers, body });
  const json = await r.json();
  if (!r.ok) throw fail(4, `token endpoint answered ${r.status}: ${JSON.stringify(json)}`);
  return json;
}

// Drives the browser through login and consent; resolves to the callback URL.
async function authorizeInBrowser(authUrl, redirectUri, user, password) {
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--no-first-run'],
  });
  try {
    const page = await browser.newPage();
    const isCallback = (u) => String(u).startsWith(redirectUri);
    await page.route(isCallback, (route) => route.fulfill({ status: 200, contentType: 'text/plain', body: 'done' }));
    let callbackUrl;
    const callback = page.waitForRequest((r) => isCallback(r.url()), { timeout: 20000 })
      .then((r) => { callbackUrl = new URL(r.url()); });
    callback.catch(() => {});
    // Wait for `selector` on the page, or for the redirect back to the client (errors go there).
    const step = async (selector, what) => {
      await Promise.race([callback, page.locator(selector).first().waitFor({ timeout: 10000 })]).catch((e) => {
        if (!callbackUrl) throw new Error(`no ${what} (${page.url()}): ${e.message}`);
      });
      return !callbackUrl;
    };

    const resp = await page.goto(String(authUrl));
    if (!callbackUrl && resp && resp.status() >= 400) {
      throw fail(4, `authorization endpoint answered ${resp.status()}: ${(await page.textContent('body')).trim()}`);
    }
    if (await step('input[name=login]', 'login page')) {
      await page.fill('input[name=login]', user);
      await page.fill('input[name=password]', password);
      await page.click('button[type=submit]');
      if (await step('button[value=approve], #error', 'consent page')) {
        if (await page.locator('#error').count()) {
          throw fail(3, `login refused: ${(await page.textContent('#error')).trim()}`);
        }
        await page.click('button[value=approve]');
      }
    }
    await callback;
    return callbackUrl;
  } finally {
    await browser.close();
  }
}

export async function getTokens(o) {
  const meta = await discover(o.issuer);
  const grant = o.grant ?? 'authorization_code';
  if (grant === 'client_credentials') {
    return tokenRequest(meta, o, { grant_type: 'client_credentials', ...(o.scope ? { scope: o.scope } : {}) });
  }
  if (grant !== 'authorization_code') throw new Error(`unknown grant ${grant}`);
  if (o.user === undefined || o.password === undefined) throw new Error('--user and --password are required');

  const redirectUri = o.redirectUri ?? 'http://127.0.0.1:9/callback';
  const scope = o.scope ?? 'openid mcp';
  const verifier = crypto.randomBytes(32).toString('base64url');
  const state = crypto.randomBytes(16).toString('base64url');
  const auth = new URL(meta.authorization_endpoint);
  const q = {
    response_type: 'code',
    client_id: o.clientId,
    redirect_uri: redirectUri,
    scope,
    state,
    code_challenge: crypto.createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
  };
  if (scope.split(' ').includes('openid')) q.nonce = crypto.randomBytes(16).toString('base64url');
  if (scope.split(' ').includes('offline_access')) q.prompt = 'consent';
  if (o.resource) q.resource = o.resource;
  for (const [k, v] of Object.entries(q)) auth.searchParams.set(k, v);

  const cb = await authorizeInBrowser(auth, redirectUri, o.user, o.password);
  const p = cb.searchParams;
  if (p.get('error')) throw fail(4, `authorization failed: ${p.get('error')}: ${p.get('error_description') ?? ''}`);
  if (p.get('state') !== state) throw new Error(`state mismatch in ${cb}`);
  if (p.get('iss') !== meta.issuer) throw new Error(`iss ${p.get('iss')} in the callback is not the issuer ${meta.issuer}`);
  return tokenRequest(meta, o, {
    grant_type: 'authorization_code', code: p.get('code'), redirect_uri: redirectUri, code_verifier: verifier,
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { parseArgs } = await import('node:util');
  const { values: v } = parseArgs({
    options: Object.fromEntries(['issuer', 'client-id', 'client-secret', 'auth-method', 'grant', 'scope',
      'resource', 'user', 'password', 'redirect-uri'].map((k) => [k, { type: 'string' }])),
  });
  try {
    if (!v.issuer || !v['client-id']) throw new Error('--issuer and --client-id are required');
    const tokens = await getTokens({
      issuer: v.issuer,
      clientId: v['client-id'],
      clientSecret: v['client-secret'],
      authMethod: v['auth-method'],
      grant: v.grant,
      scope: v.scope,
      resource: v.resource,
      user: v.user,
      password: v.password,
      redirectUri: v['redirect-uri'],
    });
    process.stdout.write(`${JSON.stringify(tokens)}\n`);
  } catch (e) {
    console.error(`tokens.mjs: ${e.message}`);
    process.exit(e.exit ?? 1);
  }
}
