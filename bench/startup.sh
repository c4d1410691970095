#!/usr/bin/env bash
# Binary size and start-up time of the release build: the time from starting
# `portcullis serve` to its first `200` from `/readyz`, BENCH_REPS times each (median,
# min, max), in three cases:
#   first start  a new SQLite database: migrations, a signing key, the admin account
#                (argon2 hashing of PORTCULLIS_ADMIN_PASSWORD) and the master key file;
#   restart      the same database again: nothing to create;
#   auth none    no database at all.
# Baseline in the same run: the same measurement of `true` spawned the same way, so the
# shell's own spawn-and-poll cost can be subtracted by eye.
# Writes bench/out/startup.md and prints it.
# Environment: BENCH_REPS [10] BENCH_PORT [18900] BENCH_SKIP_BUILD [unset]
set -euo pipefail
export LC_ALL=C
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PORT=${BENCH_PORT:-18900}
export BENCH_REPS=${BENCH_REPS:-10}
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
prepare

now_us() { echo $(( $(date +%s%N) / 1000 )); }
# ready: one GET /readyz on 127.0.0.1:$PORT; true on a 200. The port is bound before the
# database is opened, so a bare connect would succeed too early; the answer comes only once
# the server serves.
ready() {
  local line
  exec 3<>"/dev/tcp/127.0.0.1/$PORT" || return 1
  printf 'GET /readyz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
  IFS= read -r line <&3 || true
  exec 3<&-
  [[ "$line" == *" 200"* ]]
}
# up_us CMD...: starts CMD, returns microseconds until it answers /readyz with 200; stops it.
up_us() {
  local t0 t1
  t0=$(now_us)
  PORTCULLIS_LOG=warn "$@" >/dev/null 2>>"$WORK/server.log" &
  PID=$!
  until ready 2>/dev/null; do
    kill -0 "$PID" 2>/dev/null || { say "$1 exited:"; cat "$WORK/server.log" >&2; exit 1; }
  done
  t1=$(now_us)
  stop
  echo $((t1 - t0))
}
# spawn_us: the same spawn and one failed poll, of a command that exits at once.
spawn_us() {
  local t0 t1
  t0=$(now_us); true & wait $!; (exec 3<>"/dev/tcp/127.0.0.1/9") 2>/dev/null || true; t1=$(now_us)
  echo $((t1 - t0))
}

: >"$WORK/startup.tsv"
SERVE=("$BIN/portcullis" serve --bind "127.0.0.1:$PORT")
for rep in $(seq 1 "$REPS"); do
  rm -rf "$WORK/db" && mkdir -p "$WORK/db"
  DBARGS=(--database-url "sqlite://$WORK/db/p.db" --master-key-file "$WORK/db/p.key")
  printf 'first\t%s\n' "$(up_us "${SERVE[@]}" "${DBARGS[@]}")" >>"$WORK/startup.tsv"
  printf 'restart\t%s\n' "$(up_us "${SERVE[@]}" "${DBARGS[@]}")" >>"$WORK/startup.tsv"
  printf 'none\t%s\n' "$(up_us "${SERVE[@]}" --auth none)" >>"$WORK/startup.tsv"
  printf 'spawn\t%s\n' "$(spawn_us)" >>"$WORK/startup.tsv"
done

stat_of() { awk -F'\t' -v m="$1" '$1 == m { print $2 }' "$WORK/startup.tsv" | sort -n | awk '{ a[NR] = $1 } END { printf "%.1f | %.1f | %.1f", (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) / 1000, a[1] / 1000, a[NR] / 1000 }'; }
size=$(stat -c %s "$BIN/portcullis")
{
  echo "# Release binary and start-up ($(date -u +%F), code $(git rev-parse --short HEAD))"
  echo
  echo "$(nproc) cores; $(rustc -V); profile.release: lto = \"thin\", codegen-units = 4, strip = true; BENCH_REPS=$REPS."
  echo
  echo "Binary: \`target/release/portcullis\`, $size bytes ($(awk -v s="$size" 'BEGIN { printf "%.1f", s / 1048576 }') MiB), Rust, SQLite and ring linked in; dynamic libraries: $(ldd "$BIN/portcullis" 2>/dev/null | awk '{ print $1 }' | grep -v '^/' | tr '\n' ' ')"
  echo
  echo "| start | median ms | min ms | max ms |"
  echo "|---|---:|---:|---:|"
  echo "| first start (new database: migrations, key, admin account) | $(stat_of first) |"
  echo "| restart (existing database) | $(stat_of restart) |"
  echo "| \`--auth none\` (no database) | $(stat_of none) |"
  echo "| baseline: spawning \`true\` and one poll | $(stat_of spawn) |"
} >"$OUT/startup.md"
cat "$OUT/startup.md"
