#!/usr/bin/env bash
# Authorization benchmarks, each against a baseline measured in the same command:
#
# 1. Bearer overhead: `tools/call whoami` (2026-07-28, bench/mcp.lua) at BENCH_CONNECTIONS
#    connections on `portcullis serve --auth none` and on `portcullis serve` (embedded OAuth)
#    with `Authorization: Bearer <token>`; interleaved (none, bearer, audited, none, ...),
#    BENCH_REPS times, medians. "bearer" runs with `--audit false`, so the ratio bearer / none
#    is the cost of token verification alone (target: >= 0.9); "audited" is the product
#    default (audit log on), reported beside it.
# 2. Refresh grant on SQLite: bench/baselines `auth-load refresh` makes one grant per
#    connection and rotates each grant's refresh token in a loop (every request a real
#    rotation: one conditional UPDATE and one INSERT, and a signed access token). Baseline:
#    `GET /oauth/jwks` on the same server with wrk. Target: >= 1000 refreshes/s.
#
# Writes bench/out/auth.md and prints it.
# Environment: BENCH_SECONDS [10] BENCH_WARMUP [2] BENCH_REPS [3] BENCH_CONNECTIONS [64]
#              BENCH_PORT [18600] BENCH_SKIP_BUILD [unset]
set -euo pipefail
export LC_ALL=C
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
SECS=${BENCH_SECONDS:-10}
WARMUP=${BENCH_WARMUP:-2}
REPS=${BENCH_REPS:-3}
CONNS=${BENCH_CONNECTIONS:-64}
PORT=${BENCH_PORT:-18600}
BIN="$ROOT/target/release"
OUT="$ROOT/bench/out"
mkdir -p "$OUT"
say() { printf '%s\n' "$*" >&2; }

command -v wrk >/dev/null || { say "wrk is required (apt-get install -y wrk)"; exit 1; }
if [ -z "${BENCH_SKIP_BUILD:-}" ]; then
  say "building release binaries"
  cargo build --release -p portcullis -p bench-baselines >&2
fi

WORK=$(mktemp -d)
PID=""
stop() {
  if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; PID=""; fi
}
trap 'stop; rm -rf "$WORK"' EXIT
export PORTCULLIS_ADMIN_PASSWORD="bench-$RANDOM-$RANDOM-password"

start() { # start MODE: none | embedded | audited (fresh database each time)
  rm -f "$WORK"/portcullis.*
  local args=(serve --bind "127.0.0.1:$PORT")
  # One token drives all 64 connections: lift the per-user tool-call limit for the load.
  if [ "$1" = none ]; then args+=(--auth none); else args+=(--database-url "sqlite://$WORK/portcullis.db" --master-key-file "$WORK/portcullis.key" --tool-calls-per-minute 0); fi
  if [ "$1" = embedded ]; then args+=(--audit false); fi
  PORTCULLIS_LOG=warn "$BIN/portcullis" "${args[@]}" >/dev/null 2>>"$WORK/server.log" &
  PID=$!
  for _ in $(seq 1 500); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return 0
    kill -0 "$PID" 2>/dev/null || { say "portcullis exited:"; cat "$WORK/server.log" >&2; exit 1; }
    sleep 0.01
  done
  say "portcullis did not start"; exit 1
}

wrk_mcp() { # wrk_mcp SECONDS TOKEN -> BENCH line
  BENCH_ERA=2026-07-28 BENCH_HOSTPORT="127.0.0.1:$PORT" BENCH_TOKEN="$2" BENCH_WRK_THREADS=1 \
    wrk -t1 -c"$CONNS" -d"$1s" --latency --timeout 5s -s bench/mcp.lua "http://127.0.0.1:$PORT/mcp" >"$WORK/wrk.out" 2>&1
  grep '^BENCH ' "$WORK/wrk.out" || { say "wrk failed:"; cat "$WORK/wrk.out" >&2; exit 1; }
}
field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p"; }
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

: >"$WORK/bearer.tsv"
for rep in $(seq 1 "$REPS"); do
  for mode in none embedded audited; do
    start "$mode"
    token=""
    if [ "$mode" != none ]; then token=$("$BIN/auth-load" token "http://127.0.0.1:$PORT/mcp"); fi
    wrk_mcp "$WARMUP" "$token" >/dev/null
    line=$(wrk_mcp "$SECS" "$token")
    stop
    errs=$(( $(echo "$line" | field non2xx) + $(echo "$line" | field rpc_errors) + $(echo "$line" | field socket_errors) ))
    [ "$errs" -eq 0 ] || { say "errors in $mode run: $line"; exit 1; }
    printf '%s\t%s\t%s\t%s\t%s\n' "$rep" "$mode" "$(echo "$line" | field rps)" "$(echo "$line" | field p50_us)" "$(echo "$line" | field p99_us)" >>"$WORK/bearer.tsv"
    say "bearer rep $rep $mode: $line"
  done
done

: >"$WORK/refresh.tsv"
for rep in $(seq 1 "$REPS"); do
  start embedded
  wrk -t1 -c"$CONNS" -d"$SECS"s --latency "http://127.0.0.1:$PORT/oauth/jwks" >"$WORK/jwks.out" 2>&1
  jwks=$(awk '/^Requests\/sec/ { print $2 }' "$WORK/jwks.out")
  line=$("$BIN/auth-load" refresh "http://127.0.0.1:$PORT/mcp" "$CONNS" "$SECS")
  stop
  [ "$(echo "$line" | field errors)" -eq 0 ] || { say "refresh errors: $line"; exit 1; }
  printf '%s\t%s\t%s\t%s\t%s\n' "$rep" "$jwks" "$(echo "$line" | field rps)" "$(echo "$line" | field p50_us)" "$(echo "$line" | field p99_us)" >>"$WORK/refresh.tsv"
  say "refresh rep $rep: jwks $jwks req/s; $line"
done

col() { awk -F'\t' -v m="$1" -v c="$2" '$2 == m { print $c }' "$WORK/bearer.tsv" | median; }
none_rps=$(col none 3); bearer_rps=$(col embedded 3); audited_rps=$(col audited 3)
ratio=$(awk -v a="$bearer_rps" -v b="$none_rps" 'BEGIN { printf "%.3f", a / b }')
rcol() { cut -f"$1" "$WORK/refresh.tsv" | median; }
jwks_rps=$(rcol 2); refresh_rps=$(rcol 3)
{
  echo "# Authorization benchmarks ($(date -u +%F), code $(git rev-parse --short HEAD))"
  echo
  echo "$(nproc) cores; $(rustc -V); release build; BENCH_SECONDS=$SECS BENCH_REPS=$REPS BENCH_CONNECTIONS=$CONNS; medians."
  echo
  echo "| measurement | req/s | p50 ms | p99 ms |"
  echo "|---|---:|---:|---:|"
  echo "| tools/call, --auth none | $none_rps | $(awk "BEGIN { printf \"%.2f\", $(col none 4) / 1000 }") | $(awk "BEGIN { printf \"%.2f\", $(col none 5) / 1000 }") |"
  echo "| tools/call, Bearer token, audit log on (the default) | $audited_rps | $(awk "BEGIN { printf \"%.2f\", $(col audited 4) / 1000 }") | $(awk "BEGIN { printf \"%.2f\", $(col audited 5) / 1000 }") |"
  echo "| tools/call, Bearer token, --audit false (embedded OAuth) | $bearer_rps | $(awk "BEGIN { printf \"%.2f\", $(col embedded 4) / 1000 }") | $(awk "BEGIN { printf \"%.2f\", $(col embedded 5) / 1000 }") |"
  echo "| GET /oauth/jwks (baseline for the AS) | $jwks_rps | | |"
  echo "| refresh_token grant, SQLite, one grant per connection | $refresh_rps | $(awk "BEGIN { printf \"%.2f\", $(rcol 4) / 1000 }") | $(awk "BEGIN { printf \"%.2f\", $(rcol 5) / 1000 }") |"
  echo
  echo "| target | result |"
  echo "|---|---|"
  echo "| (information) audited ÷ --audit false | $(awk -v a="$audited_rps" -v b="$bearer_rps" 'BEGIN { printf "%.3f", a / b }') |"
  echo "| Bearer tools/call >= 0.9 x auth off | $(awk -v r="$ratio" 'BEGIN { print (r >= 0.9 ? "**PASS**" : "**MISS**") }'): $ratio |"
  echo "| refresh grant >= 1000/s on SQLite | $(awk -v r="$refresh_rps" 'BEGIN { print (r >= 1000 ? "**PASS**" : "**MISS**") }'): $refresh_rps/s ($(awk -v a="$refresh_rps" -v b="$jwks_rps" 'BEGIN { printf "%.3f", a / b }') x GET /oauth/jwks) |"
  echo
  echo "Raw runs (rep, mode, req/s, p50 us, p99 us):"
  echo
  sed 's/^/    /' "$WORK/bearer.tsv"
  echo
  echo "Refresh runs (rep, jwks req/s, refresh req/s, p50 us, p99 us):"
  echo
  sed 's/^/    /' "$WORK/refresh.tsv"
} >"$OUT/auth.md"
cat "$OUT/auth.md"
