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
PORT=${BENCH_PORT:-18600}
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
prepare

start() { # start MODE: none | embedded | audited (fresh database each time)
  rm -f "$WORK"/portcullis.*
  local args=(serve --bind "127.0.0.1:$PORT")
  # One token drives all 64 connections: lift the per-user tool-call limit for the load.
  if [ "$1" = none ]; then args+=(--auth none); else args+=(--database-url "sqlite://$WORK/portcullis.db" --master-key-file "$WORK/portcullis.key" --tool-calls-per-minute 0); fi
  if [ "$1" = embedded ]; then args+=(--audit false); fi
  launch "$BIN/portcullis" "${args[@]}"
}


for rep in $(seq 1 "$REPS"); do
  for mode in none embedded audited; do
    start "$mode"
    token=""
    if [ "$mode" != none ]; then token=$("$BIN/auth-load" token "http://127.0.0.1:$PORT/mcp"); fi
    measure bearer "$rep" "$mode" "$token"
    stop
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
