#!/usr/bin/env bash
# Instructions per request: a noise-free complement to bench/run.sh.
#
# Wall-clock throughput on a small shared VM varies by ±20 % from run to run, which hides
# differences of a few percent. This script runs each server under valgrind's callgrind,
# sends INSTR_WARMUP requests, zeroes the counters, sends INSTR_REQUESTS sequential
# `tools/call whoami` on one keep-alive connection (bench/instr_client.py), and reports the
# server's instructions per request (all threads), which are nearly deterministic.
# It does not see lock contention, cache misses or syscalls: use it beside run.sh, not
# instead of it.
#
# Environment: INSTR_REQUESTS [1000]  INSTR_WARMUP [300]  BENCH_SKIP_BUILD [unset]
# Writes bench/out/instr.md and prints it; callgrind dumps stay in bench/out/callgrind/
# (annotate one with `callgrind_annotate --inclusive=yes FILE`; build with
# CARGO_PROFILE_RELEASE_STRIP=none CARGO_PROFILE_RELEASE_DEBUG=line-tables-only for names).

set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
N=${INSTR_REQUESTS:-1000}
WARM=${INSTR_WARMUP:-300}
BIN="$ROOT/target/release"
OUT="$ROOT/bench/out"
CG="$OUT/callgrind"
REPORT="$OUT/instr.md"
ERAS=(2026-07-28 2025-11-25)
SERVERS=(bare-rmcp bare-axum portcullis)
mkdir -p "$CG"
rm -f "$CG"/*

say() { printf '%s\n' "$*" >&2; }

if ! command -v valgrind >/dev/null 2>&1; then
  say "valgrind not found: installing it with apt-get"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
  $SUDO apt-get install -y valgrind || { $SUDO apt-get update && $SUDO apt-get install -y valgrind; }
fi
command -v python3 >/dev/null || { say "python3 is required"; exit 1; }
if [ -z "${BENCH_SKIP_BUILD:-}" ]; then
  cargo build --release -p portcullis -p bench-baselines >&2
fi

server_cmd() {
  case $1 in
    portcullis) echo "$BIN/portcullis serve --auth none --bind 127.0.0.1:$2" ;;
    bare-rmcp) echo "$BIN/bare-rmcp --bind 127.0.0.1:$2" ;;
    bare-axum) echo "$BIN/bare-axum --bind 127.0.0.1:$2" ;;
  esac
}

PID=""
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; true' EXIT

declare -A IR
port=$((18600 + RANDOM % 200))
for era in "${ERAS[@]}"; do
  for s in "${SERVERS[@]}"; do
    port=$((port + 1))
    tag="$s.${era:0:4}"
    rm -f "$OUT/instr.session"  # 2025 era: instr_client.py opens one session and keeps its id here
    # shellcheck disable=SC2046
    valgrind --tool=callgrind --callgrind-out-file="$CG/$tag.%p" $(server_cmd "$s" "$port") \
      >/dev/null 2>"$CG/$tag.log" &
    PID=$!
    for _ in $(seq 1 600); do
      if : 2>/dev/null 3<>"/dev/tcp/127.0.0.1/$port"; then break; fi
      sleep 0.05
    done
    python3 bench/instr_client.py "$port" "$era" "$WARM" 1 "$OUT/instr.session"
    callgrind_control -z "$PID" >/dev/null 2>&1
    python3 bench/instr_client.py "$port" "$era" "$N" 100000 "$OUT/instr.session"
    callgrind_control -d "$PID" >/dev/null 2>&1
    kill "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    PID=""
    dump=$(ls "$CG/$tag".*.1 2>/dev/null | head -1)
    total=$(awk '/^summary:/ { print $2 }' "$dump")
    IR[$tag]=$((total / N))
    say "$era  $(printf '%-10s' "$s")  ${IR[$tag]} instructions/request"
  done
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
{
  echo "# Instructions per request (callgrind, $N sequential requests on one connection)"
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); $(valgrind --version); $(rustc -V)"
  echo "- git: $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- crates 2>/dev/null || echo ' (crates/ has uncommitted changes)')"
  echo
  echo "| era | bare-rmcp | bare-axum | portcullis | portcullis ÷ bare rmcp | portcullis ÷ bare axum |"
  echo "|---|---:|---:|---:|---:|---:|"
  for era in "${ERAS[@]}"; do
    e=${era:0:4}
    echo "| $era | ${IR[bare-rmcp.$e]} | ${IR[bare-axum.$e]} | ${IR[portcullis.$e]} | $(ratio "${IR[portcullis.$e]}" "${IR[bare-rmcp.$e]}") | $(ratio "${IR[portcullis.$e]}" "${IR[bare-axum.$e]}") |"
  done
} >"$REPORT"
cat "$REPORT"
