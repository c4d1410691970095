#!/usr/bin/env bash
# PostgreSQL beside SQLite, in one run: the same server, flags and load on each backend,
# interleaved (sqlite, postgres, sqlite, ...) BENCH_REPS times, each on a fresh database;
# medians, and PostgreSQL / SQLite ratios.
#
# 1. Refresh grant: bench/baselines `auth-load refresh` (BENCH_CONNECTIONS grants, each
#    rotated in a loop: a conditional UPDATE, an INSERT and a signed access token per request).
# 2. tools/call notes_get (reads one note; every call also writes an audit event) and
#    tools/call whoami (no database on the request path; the audit event only) at
#    BENCH_CONNECTIONS connections (bench/mcp.lua, 2026-07-28).
#
# PostgreSQL is the machine's (BENCH_POSTGRES, default postgres://postgres@127.0.0.1:5432/test,
# the same server the tests use): one throwaway database per run, made and dropped with psql.
# Writes bench/out/backends.md and prints it.
# Environment: BENCH_SECONDS [10] BENCH_WARMUP [2] BENCH_REPS [3] BENCH_CONNECTIONS [64]
#              BENCH_PORT [18800] BENCH_POSTGRES BENCH_SKIP_BUILD [unset]
set -euo pipefail
export LC_ALL=C
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PORT=${BENCH_PORT:-18800}
PG_ADMIN=${BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432/test}
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
command -v psql >/dev/null || { say "psql is required (apt-get install -y postgresql-client)"; exit 1; }
prepare
URL="http://127.0.0.1:$PORT/mcp"
PG_DB=""
drop_pg() { if [ -n "$PG_DB" ]; then psql "$PG_ADMIN" -q -c "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null; PG_DB=""; fi; }
trap 'stop; drop_pg; rm -rf "$WORK"' EXIT

: >"$WORK/refresh.tsv"
for rep in $(seq 1 "$REPS"); do
  for backend in sqlite postgres; do
    rm -f "$WORK"/portcullis.*
    if [ "$backend" = sqlite ]; then
      DB="sqlite://$WORK/portcullis.db"
    else
      PG_DB="portcullis_bench_$$_$rep"
      psql "$PG_ADMIN" -q -c "CREATE DATABASE $PG_DB" >/dev/null
      DB="${PG_ADMIN%/*}/$PG_DB"
    fi
    launch "$BIN/portcullis" serve --bind "127.0.0.1:$PORT" --database-url "$DB" \
      --master-key-file "$WORK/portcullis.key" --tool-calls-per-minute 0
    TOKEN=$("$BIN/auth-load" token "$URL")
    "$BIN/notes-seed" "$DB" admin 1 200 >"$WORK/seed.out" 2>/dev/null
    NOTE=$(sed -n 's/^note=//p' "$WORK/seed.out")
    BENCH_TOOL=notes_get BENCH_ARGS="{\"id\":\"$NOTE\"}" measure tools "$rep" "$backend-get" "$TOKEN"
    BENCH_TOOL=whoami BENCH_ARGS='{}' measure tools "$rep" "$backend-whoami" "$TOKEN"
    line=$("$BIN/auth-load" refresh "$URL" "$CONNS" "$SECS")
    [ "$(echo "$line" | field errors)" -eq 0 ] || { say "refresh errors on $backend: $line"; exit 1; }
    printf '%s\t%s\t%s\t%s\t%s\n' "$rep" "$backend" "$(echo "$line" | field rps)" "$(echo "$line" | field p50_us)" "$(echo "$line" | field p99_us)" >>"$WORK/refresh.tsv"
    say "refresh rep $rep $backend: $line"
    stop
    drop_pg
  done
done

col() { awk -F'\t' -v m="$2" -v c="$3" '$2 == m { print $c }' "$WORK/$1.tsv" | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
row() { # row LABEL TSV MODE_SQLITE MODE_PG
  local s p
  s=$(col "$2" "$3" 3); p=$(col "$2" "$4" 3)
  echo "| $1 | $s | $(ms "$(col "$2" "$3" 4)") / $(ms "$(col "$2" "$3" 5)") | $p | $(ms "$(col "$2" "$4" 4)") / $(ms "$(col "$2" "$4" 5)") | $(ratio "$p" "$s") |"
}
{
  echo "# SQLite and PostgreSQL ($(date -u +%F), code $(git rev-parse --short HEAD))"
  echo
  echo "$(nproc) cores; $(rustc -V); release build; $(psql "$PG_ADMIN" -tAc 'SHOW server_version' | cut -d' ' -f1) on the same machine; $CONNS connections; BENCH_SECONDS=$SECS BENCH_REPS=$REPS; medians."
  echo
  echo "| load | SQLite req/s | SQLite p50 / p99 ms | PostgreSQL req/s | PostgreSQL p50 / p99 ms | PostgreSQL / SQLite |"
  echo "|---|---:|---:|---:|---:|---:|"
  row "refresh grant (rotation + signed token)" refresh sqlite postgres
  row "tools/call notes_get (+ audit write)" tools sqlite-get postgres-get
  row "tools/call whoami (+ audit write)" tools sqlite-whoami postgres-whoami
  echo
  echo "Raw runs (rep, backend/load, req/s, p50 us, p99 us):"
  echo
  sed 's/^/    /' "$WORK/refresh.tsv" "$WORK/tools.tsv"
} >"$OUT/backends.md"
cat "$OUT/backends.md"
