#!/usr/bin/env bash
# End-to-end test: the official MCP TypeScript and Python SDK clients against a real
# `portcullis serve`, in both protocol eras (2025-11-25 sessions, 2026-07-28 stateless).
#
# Why this exists: it is the one check that Portcullis interoperates with clients we did not
# write. It installs its own pinned clients (npm ci / a venv), starts the server on a free
# port, runs four client checks and prints `N passed, M failed` as its last line.
#
# Env: PORTCULLIS_BIN  path to the binary (default: target/debug/portcullis, built if missing).
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

# --- start the server on a free port ------------------------------------------------------
PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
URL="http://127.0.0.1:$PORT/mcp"
LOG="$(mktemp -t portcullis-e2e.XXXXXX.log)"
"$BIN" serve --auth none --bind "127.0.0.1:$PORT" >"$LOG" 2>&1 &
SERVER_PID=$!

cleanup() {
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    rm -f "$LOG"
}
trap cleanup EXIT

server_log() {
    echo "---- server log ($BIN serve --auth none --bind 127.0.0.1:$PORT) ----"
    tail -n 50 "$LOG"
    echo "---- end of server log ----"
}

ready=0
for _ in $(seq 1 150); do  # up to ~15 s
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "portcullis exited before accepting connections" >&2
        server_log >&2
        exit 1
    fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
        ready=1
        break
    fi
    sleep 0.1
done
if (( ! ready )); then
    echo "portcullis did not accept connections on 127.0.0.1:$PORT within 15 s" >&2
    server_log >&2
    exit 1
fi
echo "== portcullis listening at $URL"

# --- the four client checks ---------------------------------------------------------------
passed=0
failed=0
run_check() {
    local name="$1"
    shift
    echo "== $name"
    if timeout 60 "$@"; then
        echo "PASS $name"
        passed=$((passed + 1))
    else
        echo "FAIL $name"
        failed=$((failed + 1))
    fi
}

run_check "typescript sdk, 2025-11-25 (initialize + session)" node "$E2E_DIR/client_ts.mjs" "$URL" 2025
run_check "typescript sdk, 2026-07-28 (discover, stateless)" node "$E2E_DIR/client_ts.mjs" "$URL" 2026
run_check "python sdk, 2025-11-25 (initialize + session)" "$VENV/bin/python" "$E2E_DIR/client_py.py" "$URL" 2025
run_check "python sdk, 2026-07-28 (discover, stateless)" "$VENV/bin/python" "$E2E_DIR/client_py.py" "$URL" 2026

if (( failed > 0 )); then
    server_log
fi
echo "$passed passed, $failed failed"
(( failed == 0 ))
