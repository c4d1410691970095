#!/usr/bin/env bash
# End-to-end tests of both ways Portcullis works with a real OpenID provider (oidc-provider,
# tests/oidc): external authorization server mode, and federated login.
#
# External mode: the official MCP TypeScript (v1 and v2) and Python SDK clients get their
# tokens from the provider and use Portcullis's tools with them.
# - JWT access tokens: `portcullis serve --auth external --issuer ISSUER` checks them by the
#   provider's JWKS. Each client goes 401 -> Portcullis's protected resource metadata -> the
#   provider's metadata -> dynamic registration at the provider -> login and consent on the
#   provider's pages in headless Chromium -> token (with the RFC 8707 resource) -> tools/list,
#   whoami (the provider's user), the notes tools, step-up to notes:write, confirmation, and
#   a refresh at the provider; the token it holds is the provider's (its iss), not Portcullis's.
# - Opaque access tokens: `--token-check introspection`; the TypeScript SDK v2 and Python
#   flows, and the provider's log shows Portcullis asked its introspection endpoint.
# Revocation is not checked: Portcullis sees a revoked JWT only when it expires, and a revoked
# opaque token only when its cached introspection answer ends (up to 5 minutes).
#
# Federated login: Portcullis stays the authorization server, with password sign-in off and
# the provider as its only sign-in method. Each SDK client registers at Portcullis; headless
# Chromium presses "Sign in with …" on Portcullis's page, signs in at the provider (and
# approves there the first time), comes back, and approves Portcullis's own consent page; the
# client holds Portcullis's token, not the provider's, and the tools work with it.
#
# Installs what is missing (npm ci in tests/e2e and tests/oidc, the Python venv), starts
# everything on free 127.0.0.1 ports, prints `N passed, M failed` as its last line.
# Env: PORTCULLIS_BIN (default target/debug/portcullis, built if missing), CHROMIUM.
set -euo pipefail

# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
OIDC_DIR="$ROOT/tests/oidc"
e2e_binary
e2e_need_chromium
e2e_clients
e2e_oidc  # the provider needs Node 22 (tests/oidc/README.md), which npm ci there installs
e2e_workdir external

# start_provider NAME SETUP_JSON: starts tests/oidc/provider.mjs (log: $WORK/NAME.log), waits
# for its ready line and sets ISSUER from it.
start_provider() {
    local name="$1" setup="$2"
    OIDC_SETUP="$setup" "$OIDC_NODE" "$OIDC_DIR/provider.mjs" >"$WORK/$name.ready" 2>"$WORK/$name.log" &
    local pid=$!
    PIDS+=("$pid")
    for _ in $(seq 1 200); do  # up to ~20 s
        if [[ -s "$WORK/$name.ready" ]]; then
            ISSUER="$(python3 -c 'import json, sys; print(json.loads(sys.stdin.readline())["issuer"])' <"$WORK/$name.ready")"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then break; fi
        sleep 0.1
    done
    echo "the OpenID provider ($name) did not start:" >&2
    tail -n 30 "$WORK/$name.log" >&2
    exit 1
}

# start_server NAME PORT ARGS...: portcullis with its own database and key in $WORK/NAME
# (log: $WORK/NAME.log), once it accepts connections.
start_server() {
    local name="$1" port="$2"
    shift 2
    mkdir -p "$WORK/$name"
    start_portcullis "$WORK/$name.log" "$port" --public-url "http://127.0.0.1:$port/mcp" \
        --database-url "sqlite://$WORK/$name/portcullis.db" --master-key-file "$WORK/$name/portcullis.key" "$@"
}

# metadata URL ISSUER: the 401 challenge and the protected resource metadata send clients to
# the external issuer, and Portcullis has no authorization server of its own.
metadata() {
    local url="$1" issuer="$2" origin="${1%/mcp}" head prm status
    head="$(curl -sS -o /dev/null -D - -X POST "$url" -H 'content-type: application/json' \
        -H 'accept: application/json, text/event-stream' \
        --data '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"curl","version":"0"}}}')" || return 1
    [[ "$head" == "HTTP/1.1 401"* ]] || { echo "no 401: $head"; return 1; }
    grep -qiF "www-authenticate: Bearer resource_metadata=\"$origin/.well-known/oauth-protected-resource/mcp\", scope=\"mcp notes:read\"" <<<"$head" \
        || { echo "unexpected challenge: $head"; return 1; }
    prm="$(curl -sS "$origin/.well-known/oauth-protected-resource/mcp")" || return 1
    python3 -c '
import json, sys
prm = json.loads(sys.argv[1])
assert prm["resource"] == sys.argv[2], prm
assert prm["authorization_servers"] == [sys.argv[3]], prm
' "$prm" "$url" "$issuer" || { echo "protected resource metadata: $prm"; return 1; }
    for path in /.well-known/oauth-authorization-server /oauth/register /oauth/authorize; do
        status="$(curl -sS -o /dev/null -w '%{http_code}' "$origin$path")" || return 1
        [[ "$status" == 404 ]] || { echo "$path answered $status: external mode must not serve an authorization server"; return 1; }
    done
}

export E2E_LOGIN_PAGE=oidc-provider E2E_USER=alice E2E_SUB=u-alice
E2E_PASSWORD="ext-$(free_port)-$(free_port)-password"
export E2E_PASSWORD
USERS="[{\"sub\":\"$E2E_SUB\",\"username\":\"$E2E_USER\",\"password\":\"$E2E_PASSWORD\",\"email\":\"alice@example.com\",\"email_verified\":true,\"name\":\"Alice\"}]"

# --- JWT access tokens, checked by signature ------------------------------------------------
PORT="$(free_port)"  # first, so that the provider's resource is Portcullis's URL
URL="http://127.0.0.1:$PORT/mcp"
start_provider oidc-jwt "{\"resource\":\"$URL\",\"dcr\":true,\"users\":$USERS,\"access_token_format\":\"jwt\"}"
start_server jwt "$PORT" --auth external --issuer "$ISSUER" --insecure-issuer-loopback
echo "== portcullis at $URL, tokens from $ISSUER (JWT, checked by signature)"
LOGS="$WORK/jwt.log $WORK/oidc-jwt.log"
run_check "jwt: 401 challenge and metadata name the external issuer" "$LOGS" metadata "$URL" "$ISSUER"
for sdk in v1 v2; do
    run_check "jwt: typescript sdk $sdk, DCR and login at the provider" "$LOGS" \
        env E2E_ISSUER="$ISSUER" E2E_TOKEN_FORMAT=jwt node "$E2E_DIR/oauth_ts.mjs" "$sdk" "$URL" dcr
done
run_check "jwt: python sdk, DCR and login at the provider" "$LOGS" \
    env E2E_ISSUER="$ISSUER" E2E_TOKEN_FORMAT=jwt "$VENV/bin/python" "$E2E_DIR/oauth_py.py" "$URL" dcr

# --- opaque access tokens, checked by introspection --------------------------------------------
PORT="$(free_port)"
URL="http://127.0.0.1:$PORT/mcp"
INTROSPECTION_SECRET="introspect-$(free_port)-$(free_port)"
start_provider oidc-opaque "{\"resource\":\"$URL\",\"dcr\":true,\"users\":$USERS,\"access_token_format\":\"opaque\",\"introspector\":{\"client_id\":\"introspector\",\"client_secret\":\"$INTROSPECTION_SECRET\"}}"
PORTCULLIS_INTROSPECTION_CLIENT_SECRET="$INTROSPECTION_SECRET" start_server opaque "$PORT" \
    --auth external --issuer "$ISSUER" --insecure-issuer-loopback \
    --token-check introspection --introspection-client-id introspector
echo "== portcullis at $URL, tokens from $ISSUER (opaque, checked by introspection)"
LOGS="$WORK/opaque.log $WORK/oidc-opaque.log"
run_check "opaque: 401 challenge and metadata name the external issuer" "$LOGS" metadata "$URL" "$ISSUER"
run_check "opaque: typescript sdk v2, DCR and login at the provider" "$LOGS" \
    env E2E_ISSUER="$ISSUER" E2E_TOKEN_FORMAT=opaque node "$E2E_DIR/oauth_ts.mjs" v2 "$URL" dcr
run_check "opaque: python sdk, DCR and login at the provider" "$LOGS" \
    env E2E_ISSUER="$ISSUER" E2E_TOKEN_FORMAT=opaque "$VENV/bin/python" "$E2E_DIR/oauth_py.py" "$URL" dcr
introspected() {
    grep -q 'POST /token/introspection -> 200' "$WORK/oidc-opaque.log" \
        || { echo "the provider's log shows no introspection request"; return 1; }
}
run_check "opaque: portcullis asked the provider's introspection endpoint" "$LOGS" introspected

# --- federated login: the provider signs people in, Portcullis issues the tokens ------------
PORT="$(free_port)"
URL="http://127.0.0.1:$PORT/mcp"
LOGIN_SECRET="login-$(free_port)-$(free_port)-secret"
start_provider oidc-login "{\"users\":$USERS,\"clients\":[{\"client_id\":\"portcullis\",\"client_secret\":\"$LOGIN_SECRET\",\"redirect_uris\":[\"http://127.0.0.1:$PORT/oauth/upstream/callback\"]}]}"
PORTCULLIS_LOGIN_CLIENT_SECRET="$LOGIN_SECRET" start_server federated "$PORT" \
    --login-provider oidc --login-issuer "$ISSUER" --login-client-id portcullis --login-name "Test ID" \
    --login-allowed-domains example.com --password-login false --insecure-login-loopback
echo "== portcullis at $URL, people sign in at $ISSUER"
LOGS="$WORK/federated.log $WORK/oidc-login.log"
# sign_in_page: Portcullis's own metadata, and its sign-in page offers only the provider.
sign_in_page() {
    local meta page
    meta="$(curl -sS "http://127.0.0.1:$PORT/.well-known/oauth-authorization-server")" || return 1
    python3 -c 'import json, sys; m = json.loads(sys.argv[1]); assert m["issuer"] == sys.argv[2], m' \
        "$meta" "http://127.0.0.1:$PORT" || { echo "metadata: $meta"; return 1; }
    page="$(curl -sS "http://127.0.0.1:$PORT/account")" || return 1
    grep -q 'Sign in with Test ID' <<<"$page" || { echo "no upstream button: $page"; return 1; }
    ! grep -q 'name="password"' <<<"$page" || { echo "password sign-in is off, yet: $page"; return 1; }
}
run_check "federated: the sign-in page offers the provider only" "$LOGS" sign_in_page
for sdk in v1 v2; do
    run_check "federated: typescript sdk $sdk, DCR at portcullis, login at the provider" "$LOGS" \
        env E2E_LOGIN_PAGE=federated E2E_UPSTREAM_SUB="$E2E_SUB" node "$E2E_DIR/oauth_ts.mjs" "$sdk" "$URL" dcr
done
run_check "federated: python sdk, DCR at portcullis, login at the provider" "$LOGS" \
    env E2E_LOGIN_PAGE=federated E2E_UPSTREAM_SUB="$E2E_SUB" "$VENV/bin/python" "$E2E_DIR/oauth_py.py" "$URL" dcr
one_account() {
    local users
    users="$("$BIN" user list --json --database-url "sqlite://$WORK/federated/portcullis.db")" || return 1
    python3 -c '
import json, sys
users = json.loads(sys.argv[1])
assert [u["username"] for u in users] == ["alice@example.com"], users
assert users[0]["signs_in_with"].startswith("http://127.0.0.1:"), users
' "$users" || { echo "accounts: $users"; return 1; }
}
run_check "federated: every login linked the same one account" "$LOGS" one_account

e2e_summary
