#!/usr/bin/env bash
# The official conformance suite's authorization-server scenarios (0.2 alpha,
# `conformance authorization`) against `portcullis serve` with the embedded authorization
# server. The suite prints an authorization URL and waits on its own loopback callback; this
# script registers the suite's client first (DCR, with the suite's redirect URI), then opens
# the URL in headless Chromium (tests/e2e/browser.mjs: types the password, presses approve)
# and delivers the resulting redirect to the suite's callback.
#
# The `authorization` command has no --expected-failures option, so the ratchet is here:
# every check in the suite's checks.json must be SUCCESS (a WARNING or SKIPPED fails too).
# Runs twice: with --resource (RFC 8707) and without it.
#
# Env: PORTCULLIS_BIN (default target/debug/portcullis). Expects Node 22 on PATH (run.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
e2e="$root/tests/e2e"

bin=${PORTCULLIS_BIN:-$root/target/debug/portcullis}
[ -x "$bin" ] || (cd "$root" && cargo build -q -p portcullis)
if [ ! -d "$e2e/node_modules/playwright-core" ]; then
  (cd "$e2e" && npm ci --no-audit --no-fund --loglevel=error)
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
work=$(mktemp -d)
port=$(free_port)
issuer="http://127.0.0.1:$port"
export E2E_USER=admin E2E_PASSWORD="conformance-$(free_port)-password"
PORTCULLIS_ADMIN_PASSWORD="$E2E_PASSWORD" "$bin" serve --bind "127.0.0.1:$port" \
  --database-url "sqlite://$work/portcullis.db" --master-key-file "$work/portcullis.key" >"$work/server.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 150); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
  if ! kill -0 $pid 2>/dev/null; then echo "authorization: portcullis exited" >&2; cat "$work/server.log" >&2; exit 1; fi
  sleep 0.1
done

failed=0
scenario_run() {
  local name=$1
  shift
  local cb_port
  cb_port=$(free_port)
  local callback="http://127.0.0.1:$cb_port/callback"
  local client
  client=$(curl -sf -X POST "$issuer/oauth/register" -H 'content-type: application/json' \
    -d "{\"client_name\":\"MCP conformance suite\",\"redirect_uris\":[\"$callback\"],\"token_endpoint_auth_method\":\"none\"}" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["client_id"])')
  echo "=== conformance authorization $name ==="
  set +e
  node "$here/node_modules/conformance-0.2/dist/index.js" authorization --url "$issuer" --client-id "$client" \
      -p "$cb_port" -o "$work/$name" "$@" 2>&1 |
    while IFS= read -r line; do
      echo "  $line"
      case "$line" in
        "$issuer/oauth/authorize?"*)
          # Log in and approve in the browser, then hand the redirect to the suite's listener.
          ( back=$(node "$e2e/browser.mjs" "$line" "$callback") &&
            for _ in 1 2 3 4 5 6 7 8 9 10; do curl -sf -o /dev/null "$back" && break; sleep 0.3; done ) &
          ;;
      esac
    done
  local code=${PIPESTATUS[0]}
  set -e
  local verdict
  verdict=$(python3 - "$work/$name" <<'PY'
import json, pathlib, sys
checks = [c for f in pathlib.Path(sys.argv[1]).rglob("checks.json") for c in json.loads(f.read_text())]
bad = [f'{c["id"]}: {c["status"]} {c.get("errorMessage", "")}' for c in checks if c["status"] != "SUCCESS"]
print(f"{len(checks)} checks, {len(checks) - len(bad)} SUCCESS")
for b in bad:
    print("  not SUCCESS: " + b)
sys.exit(1 if bad or len(checks) < 3 else 0)
PY
  ) && ok=1 || ok=0
  echo "  $verdict"
  if [ "$code" -ne 0 ] || [ "$ok" -ne 1 ]; then
    echo "conformance authorization $name FAILED (exit $code)"
    tail -n 20 "$work/server.log"
    failed=$((failed + 1))
  fi
}
scenario_run with-resource --resource "$issuer/mcp"
scenario_run without-resource
[ "$failed" -eq 0 ]
