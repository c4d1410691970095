// The browser half of an OAuth login: headless Chromium (Debian's package, driven by
// playwright-core) opens the authorization URL, types the password on Portcullis's login
// page, presses Approve on its consent page, and returns the URL the server redirected
// to (the client's loopback redirect URI with code, state and iss). Nothing has to listen
// on the redirect port: the redirected request is observed, not loaded.
//
// E2E_LOGIN_PAGE=oidc-provider: the pages are tests/oidc's provider's instead (external
// authorization server mode, tests/e2e/oidc.sh): other field names, no framing header.
// E2E_LOGIN_PAGE=federated: Portcullis's sign-in page, where the browser presses "Sign in
// with …" (federated login, tests/e2e/oidc.sh), signs in at tests/oidc's provider (and
// approves there when it asks), comes back, and approves on Portcullis's consent page.
//
// As a module: authorizeInBrowser(authUrl, redirectUri). As a CLI (for the Python client):
//   node browser.mjs AUTH_URL REDIRECT_URI   -> prints the callback URL
import { chromium } from 'playwright-core';

// How to fill each kind of login page and what its consent page must show.
const PAGES = {
  portcullis: { user: '#username', password: '#password', frameOptions: 'DENY', consentText: /Allow/ },
  'oidc-provider': { user: 'input[name=login]', password: 'input[name=password]', frameOptions: undefined, consentText: /asks for/ },
  federated: { frameOptions: 'DENY', consentText: /Allow/ },
};

// Federated login: the upstream button on Portcullis's page, then the provider's login page
// and, the first time, its consent page, until the browser is back on Portcullis's origin.
async function signInUpstream(page, portcullisOrigin, user, password) {
  const button = page.locator('#upstream');
  if ((await button.count()) === 0) throw new Error(`no "Sign in with" button on ${page.url()}: ${await page.textContent('main')}`);
  await button.click();
  await page.waitForSelector('input[name=login]', { timeout: 10000 }).catch(async () => {
    throw new Error(`no provider login page after the upstream button (${page.url()}): ${await page.textContent('body').catch(() => '?')}`);
  });
  if (new URL(page.url()).origin === portcullisOrigin) throw new Error('the login form is Portcullis\'s, not the provider\'s');
  await page.fill('input[name=login]', user);
  await page.fill('input[name=password]', password);
  await page.click('button[type=submit]');
  // The provider's consent (first time only), then Portcullis's consent page.
  for (let i = 0; i < 2; i++) {
    await page.waitForSelector('button[value=approve]', { timeout: 10000 }).catch(async () => {
      throw new Error(`no consent page after the provider's login (${page.url()}): ${await page.textContent('body').catch(() => '?')}`);
    });
    if (new URL(page.url()).origin === portcullisOrigin) return;
    await page.click('button[value=approve]');
    await page.waitForURL((u) => u.origin === portcullisOrigin || !u.pathname.includes('/interaction/'), { timeout: 10000 }).catch(() => {});
  }
  throw new Error(`the provider did not send the browser back to Portcullis (${page.url()})`);
}

export async function authorizeInBrowser(authUrl, redirectUri, opts = {}) {
  const kind = opts.loginPage ?? process.env.E2E_LOGIN_PAGE ?? 'portcullis';
  const sel = PAGES[kind];
  if (!sel) throw new Error(`E2E_LOGIN_PAGE=${kind}: not one of ${Object.keys(PAGES).join(', ')}`);
  const user = opts.user ?? process.env.E2E_USER ?? 'admin';
  const password = opts.password ?? process.env.E2E_PASSWORD;
  if (!password) throw new Error('E2E_PASSWORD is not set');
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--no-first-run'],
  });
  try {
    // E2E_IGNORE_HTTPS_ERRORS=1: the server's certificate comes from a throwaway test CA
    // (tests/e2e/tls.sh) that Chromium has no way to be told about.
    const page = await browser.newPage({ ignoreHTTPSErrors: process.env.E2E_IGNORE_HTTPS_ERRORS === '1' });
    const callback = page.waitForRequest((r) => r.url().startsWith(redirectUri), { timeout: 20000 });
    const resp = await page.goto(String(authUrl)).catch(async (e) => {
      // Redirected straight back to the client (nothing listens there): say why.
      const back = await Promise.race([callback, new Promise((r) => setTimeout(r, 500))]).catch(() => undefined);
      if (!back) throw e;
      const q = new URL(back.url()).searchParams;
      throw new Error(`the authorization server sent the browser back without a login: error=${q.get('error')} ${q.get('error_description') ?? ''}`);
    });
    if (resp.status() !== 200) throw new Error(`authorization page answered ${resp.status()}: ${await page.textContent('main')}`);
    if (sel.frameOptions) {
      const frame = resp.headers()['x-frame-options'];
      if (frame !== sel.frameOptions) throw new Error(`login page must refuse framing, got X-Frame-Options ${frame}`);
    }
    if (kind === 'federated') {
      await signInUpstream(page, new URL(String(authUrl)).origin, user, password);
    } else {
      await page.fill(sel.user, user);
      await page.fill(sel.password, password);
      await page.click('button[type=submit]');
    }
    try {
      await page.waitForSelector('button[value=approve]', { timeout: 10000 });
    } catch (e) {
      throw new Error(`no consent page after login (${page.url()}): ${await page.textContent('body').catch(() => '?')}`);
    }
    const consentText = await page.textContent('main');
    if (!sel.consentText.test(consentText)) throw new Error(`consent page did not ask: ${consentText}`);
    if ((await page.locator('.scopes li').count()) === 0) throw new Error(`consent page lists no scopes: ${consentText}`);
    await page.click('button[value=approve]');
    return new URL((await callback).url());
  } finally {
    await browser.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const url = await authorizeInBrowser(process.argv[2], process.argv[3]);
  console.log(url.href);
}
