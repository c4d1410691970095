#!/usr/bin/env bash
# End-to-end test: the official MCP TypeScript (v1 and v2) and Python SDK clients against a
# real `portcullis serve`:
# - without auth (--auth none), in both protocol eras (2025-11-25 sessions, 2026-07-28);
# - with the embedded OAuth server, each client going through discovery, registration (DCR
#   and a client metadata document), login and consent in headless Chromium, the token
#   exchange, tools, a refresh, a revocation and the 401 after it; once with the public URL
#   http://127.0.0.1:PORT/mcp and once with http://localhost:PORT/mcp.
#
# Why this exists: it is the one check that Portcullis interoperates with clients we did not
# write. It installs its own pinned clients (npm ci / a venv), starts servers on free ports,
# and prints `N passed, M failed` as its last line.
#
# Env: PORTCULLIS_BIN  path to the binary (default: target/debug/portcullis, built if missing).
#      CHROMIUM        browser binary (default: /usr/bin/chromium).
set -euo pipefail

# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_binary
e2e_clients
e2e_workdir e2e

# --- without auth: both protocol eras ------------------------------------------------------
PORT="$(free_port)"
URL="http://127.0.0.1:$PORT/mcp"
LOG="$WORK/noauth.log"
start_portcullis "$LOG" "$PORT" --auth none
echo "== portcullis (--auth none) listening at $URL"
run_check "typescript sdk, 2025-11-25 (initialize + session)" "$LOG" node "$E2E_DIR/client_ts.mjs" "$URL" 2025
run_check "typescript sdk, 2026-07-28 (discover, stateless)" "$LOG" node "$E2E_DIR/client_ts.mjs" "$URL" 2026
run_check "python sdk, 2025-11-25 (initialize + session)" "$LOG" "$VENV/bin/python" "$E2E_DIR/client_py.py" "$URL" 2025
run_check "python sdk, 2026-07-28 (discover, stateless)" "$LOG" "$VENV/bin/python" "$E2E_DIR/client_py.py" "$URL" 2026

# --- with the embedded authorization server --------------------------------------------------
e2e_need_chromium
# A throwaway CA and a leaf certificate for 127.0.0.1, for the HTTPS server that serves the
# client metadata documents; portcullis trusts the CA through a test-only flag.
e2e_test_ca
node "$E2E_DIR/cimd_server.mjs" "$WORK/leaf.pem" "$WORK/leaf.key" "$WORK/cimd.port" &
PIDS+=("$!")
for _ in $(seq 1 50); do [[ -s "$WORK/cimd.port" ]] && break; sleep 0.1; done
CIMD="https://127.0.0.1:$(cat "$WORK/cimd.port")"

export E2E_USER=admin
E2E_PASSWORD="e2e-$(free_port)-$(free_port)-password"
export E2E_PASSWORD
for host in 127.0.0.1 localhost; do
    PORT="$(free_port)"
    URL="http://$host:$PORT/mcp"
    LOG="$WORK/oauth-$host.log"
    mkdir -p "$WORK/$host"
    PORTCULLIS_ADMIN_PASSWORD="$E2E_PASSWORD" start_portcullis "$LOG" "$PORT" \
        --public-url "$URL" \
        --database-url "sqlite://$WORK/$host/portcullis.db" \
        --master-key-file "$WORK/$host/portcullis.key" \
        --insecure-client-metadata-loopback \
        --client-metadata-extra-ca "$WORK/ca.pem"
    echo "== portcullis (embedded OAuth) listening at $URL"
    for sdk in v1 v2; do
        run_check "oauth: typescript sdk $sdk, DCR, $URL" "$LOG" node "$E2E_DIR/oauth_ts.mjs" "$sdk" "$URL" dcr
        run_check "oauth: typescript sdk $sdk, client metadata document, $URL" "$LOG" node "$E2E_DIR/oauth_ts.mjs" "$sdk" "$URL" cimd "$CIMD/ts-$sdk.json"
    done
    run_check "oauth: python sdk, DCR, $URL" "$LOG" "$VENV/bin/python" "$E2E_DIR/oauth_py.py" "$URL" dcr
    run_check "oauth: python sdk, client metadata document, $URL" "$LOG" "$VENV/bin/python" "$E2E_DIR/oauth_py.py" "$URL" cimd "$CIMD/py.json"
done

# --- account page (account.mjs) -------------------------------------------------------------
# A server of its own: the check changes the account's password. Connects a DCR client, then
# in Chromium lists it on /account, disconnects it (401 within 5 s, refresh refused) and
# changes the password (old one refused, new one works).
PORT="$(free_port)"
URL="http://127.0.0.1:$PORT/mcp"
LOG="$WORK/account.log"
mkdir -p "$WORK/account"
PORTCULLIS_ADMIN_PASSWORD="$E2E_PASSWORD" start_portcullis "$LOG" "$PORT" \
    --public-url "$URL" \
    --database-url "sqlite://$WORK/account/portcullis.db" \
    --master-key-file "$WORK/account/portcullis.key"
run_check "account page: app listed, disconnected, password changed, $URL" "$LOG" node "$E2E_DIR/account.mjs" "$URL"
# --- end of the account page block ------------------------------------------------------------

e2e_summary
