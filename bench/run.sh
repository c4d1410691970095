#!/usr/bin/env bash
# Load benchmark: Portcullis vs a bare rmcp server vs a bare axum handler.
#
# For each era (2026-07-28 stateless, 2025-11-25 with sessions) and each server, wrk drives
# `tools/call whoami` at BENCH_CONNECTIONS connections for BENCH_SECONDS (after a warm-up),
# checking every response. Each (server, era) is measured BENCH_REPS times, interleaved
# (rmcp, axum, portcullis, rmcp, ...), and the median is reported. Servers run one at a
# time. Writes bench/out/latest.md and prints it.
#
# Environment (defaults in brackets):
#   BENCH_SECONDS [10]  BENCH_WARMUP [2]  BENCH_REPS [3]  BENCH_CONNECTIONS [64]
#   BENCH_WRK_THREADS [1]  BENCH_SESSIONS [64]  BENCH_READY_STARTS [5]  BENCH_PORT [18400]
#   BENCH_MAX_OTHER_CPU [15]  BENCH_ATTEMPTS [5]: a measurement during which other processes
#     used more than BENCH_MAX_OTHER_CPU % of a core is repeated, up to BENCH_ATTEMPTS times
#   BENCH_REPORT_ONLY [unset]: only rewrite the report from bench/out/runs.tsv and ready.tsv
#     (pass the BENCH_* values the data was taken with)
#   BENCH_SKIP_BUILD [unset]  PORTCULLIS_LOG (passed through to portcullis; default: its own)

set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

SECONDS_RUN=${BENCH_SECONDS:-10}
WARMUP=${BENCH_WARMUP:-2}
REPS=${BENCH_REPS:-3}
CONNS=${BENCH_CONNECTIONS:-64}
WRK_THREADS=${BENCH_WRK_THREADS:-1}
SESSIONS=${BENCH_SESSIONS:-64}
READY_STARTS=${BENCH_READY_STARTS:-5}
PORT_BASE=${BENCH_PORT:-18400}
MAX_OTHER=${BENCH_MAX_OTHER_CPU:-15}
ATTEMPTS=${BENCH_ATTEMPTS:-5}
ERAS=(2026-07-28 2025-11-25)
SERVERS=(bare-rmcp bare-axum portcullis)
BIN="$ROOT/target/release"
OUT="$ROOT/bench/out"
LUA="$ROOT/bench/mcp.lua"
mkdir -p "$OUT/logs"
RUNS="$OUT/runs.tsv"
READY="$OUT/ready.tsv"
REPORT="$OUT/latest.md"
if [ -z "${BENCH_REPORT_ONLY:-}" ]; then
  : >"$OUT/logs/wrk.log"
  rm -f "$OUT"/logs/*.stderr
fi

say() { printf '%s\n' "$*" >&2; }

# ---------------------------------------------------------------- prerequisites
if ! command -v wrk >/dev/null 2>&1; then
  say "wrk not found: installing it with apt-get"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
  $SUDO apt-get install -y wrk || { $SUDO apt-get update && $SUDO apt-get install -y wrk; }
fi
command -v curl >/dev/null || { say "curl is required"; exit 1; }

REPORT_ONLY=${BENCH_REPORT_ONLY:-}
if [ -z "${BENCH_SKIP_BUILD:-}" ] && [ -z "$REPORT_ONLY" ]; then
  say "building release binaries"
  cargo build --release -p portcullis -p bench-baselines >&2
fi

# ---------------------------------------------------------------- server control
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
}
trap cleanup EXIT

server_cmd() { # name port -> prints the command line
  case $1 in
    portcullis) echo "$BIN/portcullis serve --auth none --bind 127.0.0.1:$2" ;;
    bare-rmcp) echo "$BIN/bare-rmcp --bind 127.0.0.1:$2" ;;
    bare-axum) echo "$BIN/bare-axum --bind 127.0.0.1:$2" ;;
  esac
}

# start_server NAME PORT [STDERR]: spawns it, polls TCP connect every ~1 ms, sets SERVER_PID
# and READY_MS (spawn to first successful connect). Under load, stderr goes to /dev/null:
# Portcullis logs at INFO by default and rmcp emits ~3 INFO lines per stateless request,
# which would write hundreds of MB per run (the formatting cost is still paid).
start_server() {
  local name=$1 port=$2 err=${3:-/dev/null} cmd t0 t1 tries=0
  cmd=$(server_cmd "$name" "$port")
  t0=$EPOCHREALTIME
  # shellcheck disable=SC2086
  $cmd >/dev/null 2>>"$err" &
  SERVER_PID=$!
  until : 2>/dev/null 3<>"/dev/tcp/127.0.0.1/$port"; do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      say "$name exited during start-up (stderr: $err; bench/out/logs/*.stderr has the ready-time starts)"
      exit 1
    fi
    tries=$((tries + 1))
    if [ "$tries" -gt 5000 ]; then say "$name not ready after 5000 polls"; exit 1; fi
    sleep 0.001
  done
  t1=$EPOCHREALTIME
  READY_MS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) * 1000 }')
}

stop_server() {
  kill "$SERVER_PID" 2>/dev/null || true
  local i
  for i in $(seq 1 300); do
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.01
  done
  kill -9 "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}

cpu_ticks() { # pid -> utime + stime of the whole process, in clock ticks
  awk '{ print $14 + $15 }' "/proc/$1/stat"
}
HZ=$(getconf CLK_TCK)
host_ticks() { # user + nice + system + irq + softirq ticks of the whole machine
  awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat
}
# Sets KIDS_CPU to the user + system seconds of this shell's reaped children. `times` must
# run in this shell, not in a $(...) subshell, whose children counters start at zero.
children_cpu() {
  times >"$OUT/logs/times"
  KIDS_CPU=$(awk 'NR == 2 { t = 0; for (i = 1; i <= 2; i++) { split($i, a, "m"); t += a[1] * 60 + a[2] } printf "%.3f", t }' "$OUT/logs/times")
}

proc_kb() { # pid field -> kB
  awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"
}

# ---------------------------------------------------------------- MCP requests (curl)
ACCEPT='Accept: application/json, text/event-stream'
CT='Content-Type: application/json'
CALL_2026='{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","arguments":{},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}'
INIT_2025='{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"portcullis-bench","version":"1"}}}'
INITIALIZED='{"jsonrpc":"2.0","method":"notifications/initialized"}'
CALL_2025='{"jsonrpc":"2.0","id":"check","method":"tools/call","params":{"name":"whoami","arguments":{}}}'

# check_result NAME BODYFILE STATUS: a 200 with a JSON-RPC result and no error.
check_result() {
  if [ "$3" != 200 ] || ! grep -q '"result":' "$2" || grep -q '"error":' "$2"; then
    say "FATAL: $1 did not answer tools/call whoami with a result (HTTP $3):"
    cat "$2" >&2
    exit 1
  fi
}

verify_2026() { # name port
  local status
  status=$(curl -sS -o "$OUT/logs/check.body" -w '%{http_code}' "http://127.0.0.1:$2/mcp" \
    -H "$CT" -H "$ACCEPT" -H 'MCP-Protocol-Version: 2026-07-28' \
    -H 'Mcp-Method: tools/call' -H 'Mcp-Name: whoami' -d "$CALL_2026")
  check_result "$1" "$OUT/logs/check.body" "$status"
  if [ "$1" != bare-axum ] && ! grep -qi '^content-type: application/json' <(curl -sS -D - -o /dev/null \
    "http://127.0.0.1:$2/mcp" -H "$CT" -H "$ACCEPT" -H 'MCP-Protocol-Version: 2026-07-28' \
    -H 'Mcp-Method: tools/call' -H 'Mcp-Name: whoami' -d "$CALL_2026"); then
    say "FATAL: $1 did not answer the 2026-07-28 call as application/json"
    exit 1
  fi
}

# open_sessions NAME PORT: initialize + notifications/initialized BENCH_SESSIONS times;
# sets SIDS (comma-separated) and checks one tools/call on the first session.
open_sessions() {
  local name=$1 port=$2 i sid status ids=()
  for i in $(seq 1 "$SESSIONS"); do
    sid=$(curl -sS -D - -o "$OUT/logs/init.body" "http://127.0.0.1:$port/mcp" \
      -H "$CT" -H "$ACCEPT" -d "$INIT_2025" |
      awk 'tolower($1) == "mcp-session-id:" { gsub("\r", "", $2); print $2 }')
    if [ -z "$sid" ]; then
      if [ "$name" = bare-axum ]; then
        sid="bare-axum-has-no-sessions-$i" # it ignores headers; same requests regardless
      else
        say "FATAL: $name returned no Mcp-Session-Id on initialize:"
        cat "$OUT/logs/init.body" >&2
        exit 1
      fi
    fi
    status=$(curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/mcp" \
      -H "$CT" -H "$ACCEPT" -H "Mcp-Session-Id: $sid" -H 'MCP-Protocol-Version: 2025-11-25' \
      -d "$INITIALIZED")
    case $status in 2??) ;; *) say "FATAL: $name answered notifications/initialized with $status"; exit 1 ;; esac
    ids+=("$sid")
  done
  SIDS=$(IFS=,; echo "${ids[*]}")
  status=$(curl -sS -o "$OUT/logs/check.body" -w '%{http_code}' "http://127.0.0.1:$port/mcp" \
    -H "$CT" -H "$ACCEPT" -H "Mcp-Session-Id: ${ids[0]}" -H 'MCP-Protocol-Version: 2025-11-25' \
    -d "$CALL_2025")
  check_result "$name" "$OUT/logs/check.body" "$status"
}

WRK_CMD_TEMPLATE="wrk -t$WRK_THREADS -c$CONNS -d\${SECONDS}s --latency --timeout 5s -s bench/mcp.lua http://127.0.0.1:PORT/mcp"

run_wrk() { # era port seconds -> prints the BENCH line
  BENCH_ERA=$1 BENCH_HOSTPORT="127.0.0.1:$2" BENCH_SIDS="${SIDS:-}" BENCH_WRK_THREADS=$WRK_THREADS \
    wrk -t"$WRK_THREADS" -c"$CONNS" -d"$3s" --latency --timeout 5s -s "$LUA" \
    "http://127.0.0.1:$2/mcp" >"$OUT/logs/wrk.last" 2>&1 || true
  cat "$OUT/logs/wrk.last" >>"$OUT/logs/wrk.log"
  grep '^BENCH ' "$OUT/logs/wrk.last" || { say "wrk failed:"; cat "$OUT/logs/wrk.last" >&2; exit 1; }
}

field() { # "BENCH k=v ..." key
  tr ' ' '\n' <<<"$1" | awk -F= -v k="$2" '$1 == k { print $2 }'
}

# ---------------------------------------------------------------- time to ready
port=$PORT_BASE
measure_ready() {
  local i s
  printf 'server\tstart\tready_ms\tidle_rss_kb\n' >"$READY"
  say "time to ready: $READY_STARTS starts per server"
  for i in $(seq 1 "$READY_STARTS"); do
    for s in "${SERVERS[@]}"; do
      port=$((port + 1))
      start_server "$s" "$port" "$OUT/logs/$s.stderr"
      sleep 0.2
      printf '%s\t%s\t%s\t%s\n' "$s" "$i" "$READY_MS" "$(proc_kb "$SERVER_PID" VmRSS)" >>"$READY"
      stop_server
    done
  done
}

# ---------------------------------------------------------------- load runs
# measure ERA SERVER: one fresh server, idle RSS, checks, warm-up, measured run. Sets LINE
# (wrk's BENCH line), IDLE, PEAK, CPU_US, OTHER, ERRORS.
measure() {
  local era=$1 s=$2 ticks0 ticks1 host0 host1 kids0 kids1
  port=$((port + 1))
  SIDS=""
  start_server "$s" "$port"
  sleep 0.2
  IDLE=$(proc_kb "$SERVER_PID" VmRSS)
  if [ "$era" = 2026-07-28 ]; then
    verify_2026 "$s" "$port"
  else
    open_sessions "$s" "$port"
  fi
  run_wrk "$era" "$port" "$WARMUP" >/dev/null
  ticks0=$(cpu_ticks "$SERVER_PID")
  host0=$(host_ticks)
  children_cpu
  kids0=$KIDS_CPU
  LINE=$(run_wrk "$era" "$port" "$SECONDS_RUN")
  children_cpu
  kids1=$KIDS_CPU
  host1=$(host_ticks)
  ticks1=$(cpu_ticks "$SERVER_PID")
  PEAK=$(proc_kb "$SERVER_PID" VmHWM)
  stop_server
  # CPU used by everything except the server and wrk, as % of one core: other load on the
  # machine (approximate: the kernel accounts per-process and per-CPU time differently).
  OTHER=$(awk -v h=$((host1 - host0)) -v t=$((ticks1 - ticks0)) -v a="$kids0" -v b="$kids1" \
    -v hz="$HZ" -v d="$SECONDS_RUN" 'BEGIN { o = (h / hz - t / hz - (b - a)) / d * 100; if (o < 0) o = 0; printf "%.0f", o }')
  CPU_US=$(awk -v t=$((ticks1 - ticks0)) -v hz="$HZ" -v n="$(field "$LINE" requests)" \
    'BEGIN { if (n > 0) printf "%.1f", t / hz * 1e6 / n; else print "nan" }')
  ERRORS=$(($(field "$LINE" non2xx) + $(field "$LINE" rpc_errors) + $(field "$LINE" socket_errors)))
}

# run_loads: every (rep, era, server) measurement, interleaved, into runs.tsv.
run_loads() {
  local rep era s attempt
  printf 'era\tserver\trep\trps\tp50_us\tp99_us\tidle_kb\tpeak_kb\terrors\tready_ms\trequests\tcpu_us_per_req\tother_cpu_pct\tattempts\n' >"$RUNS"
  for rep in $(seq 1 "$REPS"); do
    for era in "${ERAS[@]}"; do
      for s in "${SERVERS[@]}"; do
        attempt=1
        while :; do
          measure "$era" "$s"
          say "rep $rep  $era  $(printf '%-10s' "$s")  $(field "$LINE" rps) req/s  p50 $(field "$LINE" p50_us) us  p99 $(field "$LINE" p99_us) us  server CPU $CPU_US us/req  other load $OTHER% of a core  errors $ERRORS"
          if [ "$OTHER" -le "$MAX_OTHER" ] || [ "$attempt" -ge "$ATTEMPTS" ]; then break; fi
          say "  other processes used $OTHER% of a core (limit $MAX_OTHER%): measuring again in 5 s (attempt $((attempt + 1))/$ATTEMPTS)"
          attempt=$((attempt + 1))
          sleep 5
        done
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$era" "$s" "$rep" \
          "$(field "$LINE" rps)" "$(field "$LINE" p50_us)" "$(field "$LINE" p99_us)" \
          "$IDLE" "$PEAK" "$ERRORS" "$READY_MS" "$(field "$LINE" requests)" "$CPU_US" "$OTHER" "$attempt" >>"$RUNS"
      done
    done
  done
}

if [ -z "$REPORT_ONLY" ]; then
  measure_ready
  run_loads
fi

# ---------------------------------------------------------------- report
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
col() { # era server column-name -> values, one a line
  awk -F'\t' -v e="$1" -v s="$2" -v c="$3" 'NR == 1 { for (i = 1; i <= NF; i++) idx[$i] = i; next }
    $1 == e && $2 == s { print $idx[c] }' "$RUNS"
}
med() { col "$1" "$2" "$3" | median; }
sum() { col "$1" "$2" "$3" | awk '{ t += $1 } END { print t + 0 }'; }
fmt() { awk -v v="$1" -v d="$2" 'BEGIN { printf "%.*f", d, v }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "n/a" }'; }
paired() { # era -> median over reps of portcullis req/s ÷ bare-rmcp req/s in the same rep
  awk -F'\t' -v e="$1" 'NR > 1 && $1 == e { r[$2 "," $3] = $4; reps[$3] = 1 }
    END { for (k in reps) if (r["bare-rmcp," k] > 0) print r["portcullis," k] / r["bare-rmcp," k] }' "$RUNS" | median
}
ready_med() { awk -F'\t' -v s="$1" 'NR > 1 && $1 == s { print $3 }' "$READY" | median; }
ready_all() { awk -F'\t' -v s="$1" 'NR > 1 && $1 == s { printf "%s%s", sep, $3; sep = ", " }' "$READY"; }
ready_rss() { awk -F'\t' -v s="$1" 'NR > 1 && $1 == s { print $4 }' "$READY" | median; }
# pass VALUE OP LIMIT (OP: ge, lt, eq)
pass() {
  if awk -v v="$1" -v op="$2" -v l="$3" 'BEGIN {
    v += 0; l += 0
    ok = (op == "ge") ? (v >= l) : (op == "lt") ? (v < l) : (v == l)
    exit !ok }'; then echo PASS; else echo "**FAIL**"; fi
}

cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
mem_total=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)

{
  echo "# Portcullis load benchmark"
  echo
  echo "## Machine"
  echo
  echo "- date: $(date -u -r "$RUNS" '+%Y-%m-%d %H:%M:%S UTC') (data taken)"
  echo "- nproc: $(nproc); CPU: ${cpu_model:-unknown}"
  echo "- memory: $mem_total; kernel: $(uname -sr)"
  echo "- $(rustc -V); $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"
  echo "- git: $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- crates 2>/dev/null || echo ' (crates/ has uncommitted changes)')"
  echo
  echo "## Method"
  echo
  echo "- build: \`cargo build --release -p portcullis -p bench-baselines\` (release profile: thin LTO, 4 codegen units)"
  echo "- servers (one at a time, each started fresh per measurement):"
  for s in "${SERVERS[@]}"; do echo "  - \`$(server_cmd "$s" PORT | sed "s|$ROOT/||")\`"; done
  echo "- load: \`$(sed "s/\${SECONDS}/$SECONDS_RUN/" <<<"$WRK_CMD_TEMPLATE")\` after a ${WARMUP} s warm-up with the same script;"
  echo "  wrk uses $WRK_THREADS thread(s), so on this $(nproc)-core machine the load generator takes up to $WRK_THREADS core(s) from the server."
  echo "  bench/mcp.lua gives every request a unique JSON-RPC id and checks every response (non-2xx, no \`result\`, or an \`error\` = error)."
  echo "- 2026-07-28: stateless POSTs with \`MCP-Protocol-Version\`, \`Mcp-Method\`, \`Mcp-Name\` and per-request \`_meta\`."
  echo "- 2025-11-25: $SESSIONS sessions opened with curl (\`initialize\` + \`notifications/initialized\`), requests spread round-robin over them with \`Mcp-Session-Id\`; bare-axum gets the same requests and ignores the headers."
  echo "- $REPS measurements per (server, era), interleaved (rmcp, axum, portcullis, rmcp, ...); the table shows the median."
  echo "- idle RSS: VmRSS 200 ms after the port accepts, before any request; peak RSS: VmHWM after the run."
  echo "- time to ready: spawn to first successful TCP connect, polled every ~1 ms; median of $READY_STARTS starts."
  echo
  echo "## Results ($CONNS connections, ${SECONDS_RUN} s, median of $REPS)"
  echo
  echo "| era | server | req/s | p50 ms | p99 ms | server CPU µs/req | idle RSS MB | peak RSS MB | errors | req/s runs | other load % (max) |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|"
  for era in "${ERAS[@]}"; do
    for s in "${SERVERS[@]}"; do
      runs=$(col "$era" "$s" rps | awk '{ printf "%s%.0f", sep, $1; sep = " / " }')
      echo "| $era | $s | $(fmt "$(med "$era" "$s" rps)" 0) | $(fmt "$(awk -v v="$(med "$era" "$s" p50_us)" 'BEGIN { print v / 1000 }')" 2) | $(fmt "$(awk -v v="$(med "$era" "$s" p99_us)" 'BEGIN { print v / 1000 }')" 2) | $(fmt "$(med "$era" "$s" cpu_us_per_req)" 1) | $(fmt "$(awk -v v="$(med "$era" "$s" idle_kb)" 'BEGIN { print v / 1024 }')" 1) | $(fmt "$(awk -v v="$(med "$era" "$s" peak_kb)" 'BEGIN { print v / 1024 }')" 1) | $(sum "$era" "$s" errors) | $runs | $(col "$era" "$s" other_cpu_pct | sort -g | tail -1) |"
    done
  done
  echo
  echo "### Portcullis relative to the baselines (same era)"
  echo
  echo "| era | req/s ÷ bare rmcp | same, paired per rep | req/s ÷ bare axum | p50 ÷ bare rmcp | p99 ÷ bare rmcp | p99 ÷ bare axum | CPU/req ÷ bare rmcp | CPU/req ÷ bare axum |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  for era in "${ERAS[@]}"; do
    echo "| $era | $(ratio "$(med "$era" portcullis rps)" "$(med "$era" bare-rmcp rps)") | $(fmt "$(paired "$era")" 3) | $(ratio "$(med "$era" portcullis rps)" "$(med "$era" bare-axum rps)") | $(ratio "$(med "$era" portcullis p50_us)" "$(med "$era" bare-rmcp p50_us)") | $(ratio "$(med "$era" portcullis p99_us)" "$(med "$era" bare-rmcp p99_us)") | $(ratio "$(med "$era" portcullis p99_us)" "$(med "$era" bare-axum p99_us)") | $(ratio "$(med "$era" portcullis cpu_us_per_req)" "$(med "$era" bare-rmcp cpu_us_per_req)") | $(ratio "$(med "$era" portcullis cpu_us_per_req)" "$(med "$era" bare-axum cpu_us_per_req)") |"
  done
  echo
  echo "Ratios divide the medians; \"paired per rep\" is the median of the ratios of runs taken back to back, which cancels"
  echo "slow periods of the host. The targets use the ratio of medians."
  echo "Server CPU µs/req is the server process's user+system CPU time during the measured run divided by the requests completed;"
  echo "it is less sensitive than req/s to other load on the machine, since wrk and the server share the cores."
  echo "Other load is the CPU used by processes other than the server and wrk during a run, in % of one core"
  echo "(approximate); runs above $MAX_OTHER % were repeated up to $ATTEMPTS times. Treat rows with high other load with care."
  echo
  echo "### Time to ready (spawn → TCP connect), $READY_STARTS starts"
  echo
  echo "| server | median ms | all starts ms | idle RSS MB (median) |"
  echo "|---|---:|---|---:|"
  for s in "${SERVERS[@]}"; do
    echo "| $s | $(ready_med "$s") | $(ready_all "$s") | $(fmt "$(awk -v v="$(ready_rss "$s")" 'BEGIN { print v / 1024 }')" 1) |"
  done
  echo
  echo "## Targets (Portcullis)"
  echo
  total_errors=$(awk -F'\t' 'NR > 1 { t += $9 } END { print t + 0 }' "$RUNS")
  r26=$(ratio "$(med 2026-07-28 portcullis rps)" "$(med 2026-07-28 bare-rmcp rps)")
  r25=$(ratio "$(med 2025-11-25 portcullis rps)" "$(med 2025-11-25 bare-rmcp rps)")
  p26=$(awk -v v="$(med 2026-07-28 portcullis p99_us)" 'BEGIN { printf "%.2f", v / 1000 }')
  p25=$(awk -v v="$(med 2025-11-25 portcullis p99_us)" 'BEGIN { printf "%.2f", v / 1000 }')
  idle_mb=$(awk -v v="$(ready_rss portcullis)" 'BEGIN { printf "%.1f", v / 1024 }')
  ready_ms=$(ready_med portcullis)
  echo "| target | measured | result |"
  echo "|---|---:|---|"
  echo "| all runs error-free (else the run is invalid) | $total_errors errors | $(pass "$total_errors" eq 0) |"
  echo "| throughput ≥ 0.95 × bare rmcp, 2026-07-28 | $r26 | $(pass "$r26" ge 0.95) |"
  echo "| throughput ≥ 0.95 × bare rmcp, 2025-11-25 | $r25 | $(pass "$r25" ge 0.95) |"
  echo "| p99 < 10 ms at $CONNS connections, 2026-07-28 | $p26 ms | $(pass "$p26" lt 10) |"
  echo "| p99 < 10 ms at $CONNS connections, 2025-11-25 | $p25 ms | $(pass "$p25" lt 10) |"
  echo "| idle RSS < 15 MB | $idle_mb MB | $(pass "$idle_mb" lt 15) |"
  echo "| ready within 100 ms | $ready_ms ms | $(pass "$ready_ms" lt 100) |"
  echo
  echo "Raw data: bench/out/runs.tsv, bench/out/ready.tsv, wrk output in bench/out/logs/wrk.log."
} >"$REPORT"

cat "$REPORT"
if grep -q 'FAIL' "$REPORT"; then
  say ""
  say "NOTE: at least one target was missed (see **FAIL** above)."
fi
