// The browser half of an OAuth login: headless Chromium (Debian's package, driven by
// playwright-core) opens the authorization URL, types the password on Portcullis's login
// page, presses Approve on its consent page, and returns the URL the server redirected
// to (the client's loopback redirect URI with code, state and iss). Nothing has to listen
// on the redirect port: the redirected request is observed, not loaded.
//
// As a module: authorizeInBrowser(authUrl, redirectUri). As a CLI (for the Python client):
//   node browser.mjs AUTH_URL REDIRECT_URI   -> prints the callback URL
import { chromium } from 'playwright-core';

export async function authorizeInBrowser(authUrl, redirectUri, opts = {}) {
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
    const resp = await page.goto(String(authUrl));
    if (resp.status() !== 200) throw new Error(`authorization page answered ${resp.status()}: ${await page.textContent('main')}`);
    const frame = resp.headers()['x-frame-options'];
    if (frame !== 'DENY') throw new Error(`login page must refuse framing, got X-Frame-Options ${frame}`);
    await page.fill('#username', user);
    await page.fill('#password', password);
    await page.click('button[type=submit]');
    try {
      await page.waitForSelector('button[value=approve]', { timeout: 10000 });
    } catch (e) {
      throw new Error(`no consent page after login (${page.url()}): ${await page.textContent('body').catch(() => '?')}`);
    }
    const consentText = await page.textContent('main');
    if (!/Allow/.test(consentText)) throw new Error(`consent page did not ask: ${consentText}`);
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
