// A real OpenID Connect provider (panva's oidc-provider) on 127.0.0.1 for tests.
//
//   OIDC_SETUP='{"resource":"http://127.0.0.1:8080/mcp", ...}' node provider.mjs
//
// Prints ONE JSON line on stdout when ready ({"issuer","port","jwks_uri","pid"}); everything
// else goes to stderr. SIGTERM (or SIGINT) stops it. State (sessions, grants, opaque tokens,
// registered clients) lives in memory only. The OIDC_SETUP fields are described in README.md.
//
// The login and consent pages are ours (not oidc-provider's devInteractions), so their markup
// is stable: login = form with input[name=login], input[name=password], button[type=submit];
// a wrong password renders the login page again with #error; consent = button[value=approve]
// (and button[value=deny]).
import * as crypto from 'node:crypto';
import * as http from 'node:http';

// oidc-provider prints its notices with console.info; stdout carries only the ready line.
console.info = console.error;
console.log = console.error;
const log = (...args) => console.error('[oidc]', ...args);

const { default: Provider, errors } = await import('oidc-provider');

const setup = JSON.parse(process.env.OIDC_SETUP || '{}');
const RESOURCE_SCOPES = ['mcp', 'notes:read', 'notes:write'];
const OIDC_SCOPES = ['openid', 'profile', 'email', 'offline_access'];
const format = setup.access_token_format ?? 'jwt';
const ttl = Number(setup.access_token_ttl ?? 300);
const alg = setup.signing_alg ?? 'RS256';
const users = setup.users ?? [];
const resources = [setup.resource, ...(setup.other_resources ?? [])].filter(Boolean);
if (!['jwt', 'opaque'].includes(format)) throw new Error(`access_token_format must be jwt or opaque, not ${format}`);
if (!['RS256', 'ES256'].includes(alg)) throw new Error(`signing_alg must be RS256 or ES256, not ${alg}`);

// Fresh signing keys for every run: the key of signing_alg first, the other one too so that a
// registered client may still ask for either id_token algorithm.
function signingKey(keyAlg) {
  const { privateKey } = keyAlg === 'RS256'
    ? crypto.generateKeyPairSync('rsa', { modulusLength: 2048 })
    : crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = privateKey.export({ format: 'jwk' });
  return { ...jwk, alg: keyAlg, use: 'sig', kid: `${keyAlg.toLowerCase()}-${crypto.randomUUID().slice(0, 8)}` };
}
const keys = [signingKey(alg), signingKey(alg === 'RS256' ? 'ES256' : 'RS256')];

function staticClient(c) {
  const grantTypes = c.grant_types ?? ['authorization_code'];
  return {
    client_id: c.client_id,
    ...(c.client_secret ? { client_secret: c.client_secret } : {}),
    redirect_uris: c.redirect_uris ?? [],
    token_endpoint_auth_method: c.token_endpoint_auth_method ?? (c.client_secret ? 'client_secret_basic' : 'none'),
    grant_types: grantTypes,
    response_types: grantTypes.includes('authorization_code') ? ['code'] : [],
    ...(c.scope ? { scope: c.scope } : {}),
    ...(c.client_name ? { client_name: c.client_name } : {}),
  };
}
const clients = (setup.clients ?? []).map(staticClient);
if (setup.introspector) {
  clients.push(staticClient({
    client_id: setup.introspector.client_id ?? 'introspector',
    client_secret: setup.introspector.client_secret,
    grant_types: [],
  }));
}

const findUser = (sub) => users.find((u) => u.sub === sub);
function userClaims(u) {
  const claims = { sub: u.sub, email: u.email, email_verified: u.email_verified, name: u.name, hd: u.hd };
  return Object.fromEntries(Object.entries(claims).filter(([, v]) => v !== undefined));
}

const configuration = {
  clients,
  jwks: { keys },
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  scopes: [...OIDC_SCOPES, ...RESOURCE_SCOPES],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified', 'hd'],
    profile: ['name'],
  },
  // Scoped claims go into the ID token even when the access token is for the userinfo endpoint
  // (as Google does); oidc-provider would otherwise keep them for userinfo only.
  conformIdTokenClaims: false,
  responseTypes: ['code'],
  clientDefaults: {
    grant_types: ['authorization_code'],
    response_types: ['code'],
    id_token_signed_response_alg: alg,
    token_endpoint_auth_method: 'client_secret_basic',
  },
  pkce: { required: (ctx, client) => client.clientAuthMethod === 'none' },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: {
      enabled: true,
      allowedPolicy: async (ctx, client) => client.clientAuthMethod !== 'none',
    },
    revocation: { enabled: true, allowedPolicy: async (ctx, client, token) => token.clientId === client.clientId },
    registration: { enabled: Boolean(setup.dcr), initialAccessToken: false },
    resourceIndicators: {
      enabled: true,
      // No resource parameter: the access token is for the userinfo endpoint (opaque).
      defaultResource: async (ctx, client, oneOf) => oneOf,
      // The token request may leave out the resource granted at the authorization request.
      useGrantedResource: async () => true,
      getResourceServerInfo: async (ctx, resourceIndicator) => {
        if (!resources.includes(resourceIndicator)) throw new errors.InvalidTarget();
        return {
          scope: RESOURCE_SCOPES.join(' '),
          audience: resourceIndicator,
          accessTokenTTL: ttl,
          accessTokenFormat: format,
          ...(format === 'jwt' ? { jwt: { sign: { alg } } } : {}),
        };
      },
    },
  },
  // Optional user claims copied into access tokens (JWT payload, introspection response).
  extraTokenClaims: async (ctx, token) => {
    const u = token.accountId && findUser(token.accountId);
    if (!u || !setup.access_token_claims) return undefined;
    const claims = userClaims(u);
    return Object.fromEntries(setup.access_token_claims.filter((k) => k in claims).map((k) => [k, claims[k]]));
  },
  findAccount: async (ctx, sub) => {
    const u = findUser(sub);
    if (!u) return undefined;
    return { accountId: u.sub, claims: async () => userClaims(u) };
  },
  interactions: { url: async (ctx, interaction) => `/interaction/${interaction.uid}` },
  ttl: {
    AccessToken: ttl,
    ClientCredentials: ttl,
    AuthorizationCode: 60,
    IdToken: 3600,
    RefreshToken: 24 * 3600,
    Interaction: 600,
    Session: 3600,
    Grant: 3600,
  },
  renderError: async (ctx, out) => {
    ctx.type = 'html';
    ctx.body = page('Error', `<h1>Error</h1><p id="error">${esc(out.error)}: ${esc(out.error_description ?? '')}</p>`);
  },
};

// Listen first (port 0 = any free port), then build the provider with the issuer that port gives.
const server = http.createServer();
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(Number(setup.port ?? 0), '127.0.0.1', resolve);
});
const { port } = server.address();
const issuer = `http://127.0.0.1:${port}`;
const provider = new Provider(issuer, configuration);

const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
function page(title, body) {
  return `<!DOCTYPE html><html><head><meta charset="utf-8"><title>${esc(title)}</title></head>`
    + `<body><main>${body}</main></body></html>`;
}
function loginPage(uid, clientId, error) {
  return page('Sign in', `<h1>Sign in</h1><p>to continue to <b>${esc(clientId)}</b></p>`
    + (error ? `<p id="error" class="error">${esc(error)}</p>` : '')
    + `<form method="post" action="/interaction/${esc(uid)}/login">`
    + '<label>Username <input id="login" name="login" autocomplete="username" required></label>'
    + '<label>Password <input id="password" name="password" type="password" autocomplete="current-password" required></label>'
    + '<button type="submit">Sign in</button></form>');
}
function consentPage(uid, clientId, details) {
  const scopes = new Set([...(details.missingOIDCScope ?? []),
    ...Object.values(details.missingResourceScopes ?? {}).flat()]);
  const resourcesAsked = Object.keys(details.missingResourceScopes ?? {});
  return page('Authorize', `<h1>Authorize</h1><p><b>${esc(clientId)}</b> asks for:</p>`
    + `<ul class="scopes">${[...scopes].map((s) => `<li>${esc(s)}</li>`).join('')}</ul>`
    + (resourcesAsked.length ? `<p>for <span class="resource">${resourcesAsked.map(esc).join(', ')}</span></p>` : '')
    + `<form method="post" action="/interaction/${esc(uid)}/confirm">`
    + '<button type="submit" name="decision" value="approve">Approve</button>'
    + '<button type="submit" name="decision" value="deny">Deny</button></form>');
}

async function formBody(req) {
  let raw = '';
  for await (const chunk of req) raw += chunk;
  return Object.fromEntries(new URLSearchParams(raw));
}

provider.use(async (ctx, next) => {
  await next();
  log(`${ctx.method} ${ctx.path} -> ${ctx.status}`);
});

// Our interaction pages, mounted in front of oidc-provider's own routes.
provider.use(async (ctx, next) => {
  const m = ctx.path.match(/^\/interaction\/([\w-]+)(?:\/(login|confirm))?$/);
  if (!m) return next();
  const [, uid, action] = m;
  ctx.set('Cache-Control', 'no-store');
  ctx.type = 'html';
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  if (details.uid !== uid) ctx.throw(400, 'interaction mismatch');
  const { prompt, params, session, grantId } = details;

  if (!action && ctx.method === 'GET') {
    ctx.body = prompt.name === 'login'
      ? loginPage(uid, params.client_id)
      : consentPage(uid, params.client_id, prompt.details);
    return;
  }
  if (ctx.method !== 'POST') ctx.throw(405);
  const body = await formBody(ctx.req);

  let result;
  if (action === 'login') {
    if (prompt.name !== 'login') ctx.throw(400, 'not at the login prompt');
    const u = users.find((x) => x.username === body.login);
    if (!u || u.password !== body.password) {
      log(`login refused for ${JSON.stringify(body.login)}`);
      ctx.body = loginPage(uid, params.client_id, 'Invalid username or password.');
      return;
    }
    result = { login: { accountId: u.sub } };
  } else {
    if (prompt.name !== 'consent') ctx.throw(400, 'not at the consent prompt');
    if (body.decision !== 'approve') {
      result = { error: 'access_denied', error_description: 'End-User denied the request' };
    } else {
      const grant = grantId
        ? await provider.Grant.find(grantId)
        : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
      const d = prompt.details;
      if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
      if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
      for (const [indicator, scopes] of Object.entries(d.missingResourceScopes ?? {})) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
      result = { consent: { grantId: await grant.save() } };
    }
  }
  const returnTo = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: !result.login });
  ctx.status = 303;
  ctx.redirect(returnTo);
});

for (const event of ['server_error', 'authorization.error', 'grant.error', 'introspection.error',
  'registration_create.error', 'revocation.error', 'userinfo.error']) {
  provider.on(event, (ctx, err) => log(`${event}: ${err.message}${err.error_description ? ` (${err.error_description})` : ''}`));
}

server.on('request', provider.callback());
function stop() {
  server.close(() => process.exit(0));
  server.closeAllConnections();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

log(`issuer ${issuer}, access tokens ${format} (${ttl} s) for ${resources.join(', ') || 'no resource'}, `
  + `${clients.length} static client(s), dcr ${Boolean(setup.dcr)}, ${users.length} user(s), ${alg}`);
process.stdout.write(`${JSON.stringify({ issuer, port, jwks_uri: provider.urlFor('jwks'), pid: process.pid })}\n`);
