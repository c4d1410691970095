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

E2E_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$E2E_DIR/../.." && pwd)"
cd "$ROOT"

# --- the server binary -------------------------------------------------------------------
BIN="${PORTCULLIS_BIN:-target/debug/portcullis}"
if [[ ! -x "$BIN" ]]; then
    if [[ -n "${PORTCULLIS_BIN:-}" ]]; then
        echo "PORTCULLIS_BIN=$BIN is not an executable file" >&2
        exit 1
    fi
    echo "== building portcullis (cargo build -p portcullis)"
    cargo build -p portcullis
fi

# --- client installs (idempotent, quick when already present) -----------------------------
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if (( node_major < 20 )); then
    echo "Node >= 20 is required by @modelcontextprotocol/client (found $(node --version))" >&2
    exit 1
fi
# npm writes node_modules/.package-lock.json on install: reinstall when it is missing or older.
if [[ ! -f "$E2E_DIR/node_modules/.package-lock.json" || "$E2E_DIR/package-lock.json" -nt "$E2E_DIR/node_modules/.package-lock.json" ]]; then
    echo "== npm ci (tests/e2e)"
    (cd "$E2E_DIR" && npm ci --no-audit --no-fund --loglevel=error)
fi
# The venv keeps a copy of the requirements it was built from; rebuild when missing or changed.
VENV="$E2E_DIR/.venv"
if ! cmp -s "$E2E_DIR/requirements.txt" "$VENV/requirements.txt" || [[ ! -x "$VENV/bin/python" ]]; then
    echo "== creating tests/e2e/.venv"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$E2E_DIR/requirements.txt"
    cp "$E2E_DIR/requirements.txt" "$VENV/requirements.txt"
fi

WORK="$(mktemp -d -t portcullis-e2e.XXXXXX)"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# start_server LOG PORT ARGS... : starts portcullis, waits until it accepts connections.
start_server() {
    local log="$1" port="$2"
    shift 2
    "$BIN" serve --bind "127.0.0.1:$port" "$@" >"$log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    for _ in $(seq 1 150); do  # up to ~15 s
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "portcullis exited before accepting connections:" >&2
            tail -n 30 "$log" >&2
            exit 1
        fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "portcullis did not accept connections on 127.0.0.1:$port within 15 s" >&2
    tail -n 30 "$log" >&2
    exit 1
}

passed=0
failed=0
FAILED_LOGS=()
run_check() {
    local name="$1" log="$2"
    shift 2
    echo "== $name"
    if timeout 90 "$@"; then
        echo "PASS $name"
        passed=$((passed + 1))
    else
        echo "FAIL $name"
        failed=$((failed + 1))
        FAILED_LOGS+=("$log")
    fi
}

# --- without auth: both protocol eras ------------------------------------------------------
PORT="$(free_port)"
URL="http://127.0.0.1:$PORT/mcp"
LOG="$WORK/noauth.log"
start_server "$LOG" "$PORT" --auth none
echo "== portcullis (--auth none) listening at $URL"
run_check "typescript sdk, 2025-11-25 (initialize + session)" "$LOG" node "$E2E_DIR/client_ts.mjs" "$URL" 2025
run_check "typescript sdk, 2026-07-28 (discover, stateless)" "$LOG" node "$E2E_DIR/client_ts.mjs" "$URL" 2026
run_check "python sdk, 2025-11-25 (initialize + session)" "$LOG" "$VENV/bin/python" "$E2E_DIR/client_py.py" "$URL" 2025
run_check "python sdk, 2026-07-28 (discover, stateless)" "$LOG" "$VENV/bin/python" "$E2E_DIR/client_py.py" "$URL" 2026

# --- with the embedded authorization server --------------------------------------------------
if [[ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]]; then
    echo "Chromium is missing (${CHROMIUM:-/usr/bin/chromium}): install Debian's chromium package (apt-get install -y chromium)" >&2
    exit 1
fi
# A throwaway CA and a leaf certificate for 127.0.0.1, for the HTTPS server that serves the
# client metadata documents; portcullis trusts the CA through a test-only flag.
(
    cd "$WORK"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=portcullis e2e CA" \
        -keyout ca.key -out ca.pem 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" -keyout leaf.key -out leaf.csr 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n' >leaf.ext
    openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile leaf.ext -out leaf.pem 2>/dev/null
)
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
    PORTCULLIS_ADMIN_PASSWORD="$E2E_PASSWORD" start_server "$LOG" "$PORT" \
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
PORTCULLIS_ADMIN_PASSWORD="$E2E_PASSWORD" start_server "$LOG" "$PORT" \
    --public-url "$URL" \
    --database-url "sqlite://$WORK/account/portcullis.db" \
    --master-key-file "$WORK/account/portcullis.key"
run_check "account page: app listed, disconnected, password changed, $URL" "$LOG" node "$E2E_DIR/account.mjs" "$URL"
# --- end of the account page block ------------------------------------------------------------

if (( failed > 0 )); then
    for log in $(printf '%s\n' "${FAILED_LOGS[@]}" | sort -u); do
        echo "---- server log $log ----"
        tail -n 40 "$log"
    done
fi
echo "$passed passed, $failed failed"
(( failed == 0 ))
