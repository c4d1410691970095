# Helpers shared by bench/auth.sh and bench/tools.sh (sourced; not run on its own).
# Expects ROOT and PORT; sets the common settings below. Call `prepare` first.

SECS=${BENCH_SECONDS:-10}
WARMUP=${BENCH_WARMUP:-2}
REPS=${BENCH_REPS:-3}
CONNS=${BENCH_CONNECTIONS:-64}
BIN="$ROOT/target/release"
OUT="$ROOT/bench/out"

say() { printf '%s\n' "$*" >&2; }

# prepare: checks for wrk, builds the release binaries (unless BENCH_SKIP_BUILD is set),
# makes the scratch directory WORK (removed on exit, with any server still running) and the
# admin password the servers start with.
prepare() {
  mkdir -p "$OUT"
  command -v wrk >/dev/null || { say "wrk is required (apt-get install -y wrk)"; exit 1; }
  if [ -z "${BENCH_SKIP_BUILD:-}" ]; then
    say "building release binaries"
    cargo build --release -p portcullis -p bench-baselines >&2
  fi
  WORK=$(mktemp -d)
  trap 'stop; rm -rf "$WORK"' EXIT
  export PORTCULLIS_ADMIN_PASSWORD="bench-$RANDOM-$RANDOM-password"
}

PID=""
stop() {
  if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; PID=""; fi
}

# launch CMD ARGS...: starts a server in the background (stderr to $WORK/server.log), sets PID
# and waits until it accepts connections on $PORT.
launch() {
  PORTCULLIS_LOG=warn "$@" >/dev/null 2>>"$WORK/server.log" &
  PID=$!
  for _ in $(seq 1 500); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return 0
    kill -0 "$PID" 2>/dev/null || { say "$1 exited:"; cat "$WORK/server.log" >&2; exit 1; }
    sleep 0.01
  done
  say "$1 did not start"; exit 1
}

# wrk_mcp SECONDS TOKEN [CONNECTIONS] -> the BENCH line of bench/mcp.lua (2026-07-28 era;
# BENCH_TOOL and BENCH_ARGS pass through to it).
wrk_mcp() {
  BENCH_ERA=2026-07-28 BENCH_HOSTPORT="127.0.0.1:$PORT" BENCH_TOKEN="$2" BENCH_WRK_THREADS=1 \
    wrk -t1 -c"${3:-$CONNS}" -d"$1s" --latency --timeout 5s -s "$ROOT/bench/mcp.lua" "http://127.0.0.1:$PORT/mcp" >"$WORK/wrk.out" 2>&1
  grep '^BENCH ' "$WORK/wrk.out" || { say "wrk failed:"; cat "$WORK/wrk.out" >&2; exit 1; }
}

# measure TSV REP WHAT TOKEN [CONNECTIONS]: a warm-up, then a measured wrk_mcp run against
# the running server; fails on any error, appends "rep what req/s p50_us p99_us" to
# $WORK/TSV.tsv and echoes the BENCH line to stderr.
measure() {
  local line
  wrk_mcp "$WARMUP" "$4" "${5:-$CONNS}" >/dev/null
  line=$(wrk_mcp "$SECS" "$4" "${5:-$CONNS}")
  [ "$(errors_of "$line")" -eq 0 ] || { say "errors in $1 $3 run: $line"; exit 1; }
  printf '%s\t%s\t%s\t%s\t%s\n' "$2" "$3" "$(echo "$line" | field rps)" "$(echo "$line" | field p50_us)" "$(echo "$line" | field p99_us)" >>"$WORK/$1.tsv"
  say "$1 rep $2 $3: $line"
}

# A BENCH line's errors: non-2xx, JSON-RPC or tool errors, and socket errors.
errors_of() { echo $(( $(echo "$1" | field non2xx) + $(echo "$1" | field rpc_errors) + $(echo "$1" | field socket_errors) )); }
field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p"; }
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
ms() { awk -v us="$1" 'BEGIN { printf "%.2f", us / 1000 }'; }
