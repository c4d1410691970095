#!/usr/bin/env bash
# Tool benchmarks, each with a baseline measured in the same command:
#
# 1. notes_search at scale: BENCH_USERS users with BENCH_PER_USER notes each (default 10 x
#    10,000 = 100,000 notes; one user's token drives the load, so it searches its 10,000
#    among all 100,000), at BENCH_SEARCH_CONNECTIONS (16) connections, 60 queries from common
#    to rare round-robin: 40 single words and 20 pairs whose second word is a prefix
#    (`kalo mire*`); bench/baselines notes-seed prints how many of the user's notes each
#    matches. On `portcullis serve` (SQLite, audit on).
#    Target: p99 under 20 ms. Baseline, same server and connections: tools/call whoami.
# 2. What the scope check and the audit write cost: tools/call notes_get (a scoped tool that
#    reads one note) at BENCH_CONNECTIONS (64) connections on `portcullis serve` and on
#    bench/baselines `unguarded` (the same server without per-tool scope checks and without
#    the audit log), same database and token, interleaved BENCH_REPS times, medians.
#    Target: guarded >= 0.85 x unguarded.
#
# Writes bench/out/tools.md and prints it.
# Environment: BENCH_SECONDS [10] BENCH_WARMUP [2] BENCH_REPS [3] BENCH_CONNECTIONS [64]
#              BENCH_SEARCH_CONNECTIONS [16] BENCH_USERS [10] BENCH_PER_USER [10000]
#              BENCH_PORT [18700] BENCH_SKIP_BUILD [unset]
set -euo pipefail
export LC_ALL=C
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
SEARCH_CONNS=${BENCH_SEARCH_CONNECTIONS:-16}
USERS=${BENCH_USERS:-10}
PER_USER=${BENCH_PER_USER:-10000}
PORT=${BENCH_PORT:-18700}
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
prepare
DB="sqlite://$WORK/portcullis.db"
URL="http://127.0.0.1:$PORT/mcp"
# One token drives every connection: lift the per-user tool-call limit for the load.
COMMON=(--bind "127.0.0.1:$PORT" --database-url "$DB" --master-key-file "$WORK/portcullis.key" --tool-calls-per-minute 0)

launch "$BIN/portcullis" serve "${COMMON[@]}"
TOKEN=$("$BIN/auth-load" token "$URL") # the admin account, scopes mcp notes:read
say "seeding $USERS x $PER_USER notes"
"$BIN/notes-seed" "$DB" admin "$USERS" "$PER_USER" >"$WORK/seed.out" 2>"$WORK/seed.err"
cat "$WORK/seed.err" >&2
NOTE=$(sed -n 's/^note=//p' "$WORK/seed.out")
QUERIES=$(sed -n 's/^queries=//p' "$WORK/seed.out")
SEARCH_ARGS=$(echo "$QUERIES" | tr ',' '\n' | sed 's/.*/{"query":"&","limit":10}/')
MATCHES=$(sed -n 's/^matches=//p' "$WORK/seed.out")
GET_ARGS="{\"id\":\"$NOTE\"}"

# Each query must find something, or the benchmark would measure empty searches.
first_query=$(echo "$QUERIES" | cut -d, -f1)
hits=$(curl -sS "$URL" -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
    -H "Authorization: Bearer $TOKEN" -H 'MCP-Protocol-Version: 2026-07-28' -H 'Mcp-Method: tools/call' -H 'Mcp-Name: notes_search' \
    -d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"notes_search\",\"arguments\":{\"query\":\"$first_query\",\"limit\":50},\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\",\"io.modelcontextprotocol/clientCapabilities\":{}}}}" |
  grep -o '"n_0_[0-9]*"' | sort -u | wc -l)
[ "$hits" -gt 0 ] || { say "the search for '$first_query' found none of the owner's notes"; exit 1; }
say "'$first_query' finds $hits of the owner's notes on the first page (limit 50)"

# 1. Search (and its whoami baseline), on one running server.
for rep in $(seq 1 "$REPS"); do
  for what in whoami search; do
    if [ "$what" = search ]; then export BENCH_TOOL=notes_search BENCH_ARGS="$SEARCH_ARGS"; else export BENCH_TOOL=whoami BENCH_ARGS='{}'; fi
    measure search "$rep" "$what" "$TOKEN" "$SEARCH_CONNS"
  done
done
stop

# 2. Guarded vs unguarded notes_get, interleaved, same database and token.
export BENCH_TOOL=notes_get BENCH_ARGS="$GET_ARGS"
for rep in $(seq 1 "$REPS"); do
  for mode in unguarded guarded; do
    if [ "$mode" = guarded ]; then launch "$BIN/portcullis" serve "${COMMON[@]}"; else launch "$BIN/unguarded" "${COMMON[@]}"; fi
    measure guard "$rep" "$mode" "$TOKEN"
    stop
  done
done

col() { awk -F'\t' -v m="$2" -v c="$3" '$2 == m { print $c }' "$WORK/$1.tsv" | median; }
search_p99=$(col search search 5)
guarded=$(col guard guarded 3); unguarded=$(col guard unguarded 3)
ratio=$(awk -v a="$guarded" -v b="$unguarded" 'BEGIN { printf "%.3f", a / b }')
audited_rows=$(sqlite3 "$WORK/portcullis.db" 'SELECT count(*) FROM audit' 2>/dev/null || echo "?")
{
  echo "# Tool benchmarks ($(date -u +%F), code $(git rev-parse --short HEAD))"
  echo
  echo "$(nproc) cores; $(rustc -V); release build; SQLite; $USERS users x $PER_USER notes; BENCH_SECONDS=$SECS BENCH_REPS=$REPS; medians."
  echo
  echo "| measurement | connections | req/s | p50 ms | p99 ms |"
  echo "|---|---:|---:|---:|---:|"
  echo "| tools/call whoami (baseline for search) | $SEARCH_CONNS | $(col search whoami 3) | $(ms "$(col search whoami 4)") | $(ms "$(col search whoami 5)") |"
  echo "| tools/call notes_search, 10 results | $SEARCH_CONNS | $(col search search 3) | $(ms "$(col search search 4)") | $(ms "$search_p99") |"
  echo "| tools/call notes_get, unguarded (no scope check, no audit) | $CONNS | $unguarded | $(ms "$(col guard unguarded 4)") | $(ms "$(col guard unguarded 5)") |"
  echo "| tools/call notes_get, portcullis serve (scope check + audit) | $CONNS | $guarded | $(ms "$(col guard guarded 4)") | $(ms "$(col guard guarded 5)") |"
  echo
  echo "| target | result |"
  echo "|---|---|"
  echo "| notes_search p99 < 20 ms at $SEARCH_CONNS connections | $(awk -v p="$search_p99" 'BEGIN { print (p < 20000 ? "**PASS**" : "**MISS**") }'): $(ms "$search_p99") ms ($(awk -v a="$(col search search 3)" -v b="$(col search whoami 3)" 'BEGIN { printf "%.3f", a / b }') x whoami throughput) |"
  echo "| scope check + audit cost <= 15% (guarded >= 0.85 x unguarded) | $(awk -v r="$ratio" 'BEGIN { print (r >= 0.85 ? "**PASS**" : "**MISS**") }'): $ratio |"
  echo
  echo "Search queries match $MATCHES. Audit rows written during the run: $audited_rows."
  echo
  echo "Raw runs (rep, what, req/s, p50 us, p99 us):"
  echo
  sed 's/^/    /' "$WORK/search.tsv" "$WORK/guard.tsv"
} >"$OUT/tools.md"
cat "$OUT/tools.md"
