#!/usr/bin/env bash
# Scale-out test: three `portcullis serve` instances on one PostgreSQL database behind nginx
# (round-robin, no stickiness), started at the same moment on an empty database. Then
# tests/e2e/scale.mjs, through nginx and against each instance directly:
# - the OAuth flow in headless Chromium (registration, login, consent and token exchange
#   each landing on whichever instance nginx picks) and the tools with the token;
# - a revocation on one instance answered with 401 by every instance within 5 s;
# - two concurrent refreshes of one token on two instances: one rotation, the same pair for
#   both, and the grant still valid;
# - a refresh replayed after the grace window: the grant is revoked on every instance;
# - an instance killed with SIGKILL under write load: every write it acknowledged is in
#   the database, and the other instances keep serving;
# - PostgreSQL restarted under write load (where this script may: root, pg_ctlcluster):
#   503s and retry messages during the gap, service back without restarting Portcullis,
#   tokens and acknowledged writes intact.
#
# Before those, the official TypeScript (v1: 2025 sessions; v2: 2026-07-28) and Python SDK
# clients run their whole OAuth flow (tests/e2e/oauth_*.{mjs,py}) through nginx.
#
# Needs: nginx (Debian's nginx-light), PostgreSQL on 127.0.0.1:5432 (PORTCULLIS_TEST_POSTGRES),
# Chromium; npm ci and the venv are made here when missing (tests/e2e/lib.sh).
# Env: PORTCULLIS_BIN (default target/debug/portcullis, built if missing), NGINX (default nginx).
set -euo pipefail

# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_binary
e2e_need_nginx
e2e_clients

ADMIN_URL="${PORTCULLIS_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/test}"
[[ "$ADMIN_URL" != off ]] || { echo "scale-out test skipped: PORTCULLIS_TEST_POSTGRES=off"; exit 0; }
DB_NAME="portcullis_scale_$$_$(date +%s)"
DB_URL="${ADMIN_URL%/*}/$DB_NAME"

e2e_workdir scale
e2e_cleanup_hook() {
    [[ -f "$WORK/nginx.pid" ]] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null
    psql "$ADMIN_URL" -q -c "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)" >/dev/null 2>&1
}

psql "$ADMIN_URL" -q -c "CREATE DATABASE $DB_NAME" >/dev/null
LB_PORT="$(free_port)"
URL="http://127.0.0.1:$LB_PORT/mcp"
export E2E_USER=admin
E2E_PASSWORD="scale-$(free_port)-$(free_port)-password"
export E2E_PASSWORD
# Every instance must hold the same master key (it seals the signing keys in the database).
MASTER_KEY="$(openssl rand -base64 32)"

PORTS=()
for i in 1 2 3; do
    port="$(free_port)"
    PORTS+=("$port")
    PORTCULLIS_MASTER_KEY="$MASTER_KEY" PORTCULLIS_ADMIN_PASSWORD="$E2E_PASSWORD" PORTCULLIS_LOG=warn \
        "$BIN" serve --bind "127.0.0.1:$port" --public-url "$URL" --database-url "$DB_URL" \
        --instance-url "http://127.0.0.1:$port" \
        --trusted-proxies 127.0.0.1 --refresh-grace 3 --tool-calls-per-minute 0 \
        >"$WORK/instance$i.log" 2>&1 &
    PIDS+=("$!")
done
for i in 0 1 2; do
    wait_port "${PORTS[$i]}" || { echo "instance $((i + 1)) did not start:" >&2; cat "$WORK/instance$((i + 1)).log" >&2; exit 1; }
done

mkdir -p "$WORK/nginx"
cat >"$WORK/nginx.conf" <<EOF
worker_processes 1;
daemon on;
pid $WORK/nginx.pid;
error_log $WORK/nginx.err warn;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    upstream portcullis {
        server 127.0.0.1:${PORTS[0]} max_fails=1 fail_timeout=30s;
        server 127.0.0.1:${PORTS[1]} max_fails=1 fail_timeout=30s;
        server 127.0.0.1:${PORTS[2]} max_fails=1 fail_timeout=30s;
    }
    server {
        listen 127.0.0.1:$LB_PORT;
        location / {
            proxy_pass http://portcullis;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$http_host;
            proxy_set_header X-Forwarded-For \$remote_addr;
            proxy_buffering off;
            proxy_read_timeout 60s;
        }
    }
}
EOF
"$NGINX" -c "$WORK/nginx.conf" -p "$WORK/nginx" 2>"$WORK/nginx.start" || { cat "$WORK/nginx.start" >&2; exit 1; }
wait_port "$LB_PORT" || { echo "nginx did not start" >&2; cat "$WORK/nginx.err" >&2; exit 1; }
echo "== three instances (ports ${PORTS[*]}) on one PostgreSQL database behind nginx at $URL"

# Step 6 of scale.mjs restarts PostgreSQL itself: only where that is ours to do (root,
# pg_ctlcluster, the default local server), unless SCALE_RESTART_POSTGRES says otherwise.
if [[ -z "${SCALE_RESTART_POSTGRES:-}" ]]; then
    SCALE_RESTART_POSTGRES=0
    if [[ "$(id -u)" -eq 0 ]] && command -v pg_ctlcluster >/dev/null && [[ "$ADMIN_URL" == *@127.0.0.1:5432/* ]]; then
        SCALE_RESTART_POSTGRES=1
    fi
fi
export SCALE_RESTART_POSTGRES

status=0
# The official SDK clients' whole OAuth flow through nginx, in both eras: v1 speaks 2025
# (a session held by one instance, its requests relayed there from the others, and the
# confirmation's elicitation/create answered across instances), v2 2026-07-28.
for sdk in v1 v2; do
    echo "== oauth: typescript sdk $sdk through nginx"
    timeout 120 node "$E2E_DIR/oauth_ts.mjs" "$sdk" "$URL" dcr || { echo "FAIL oauth: typescript sdk $sdk through nginx"; status=1; }
done
echo "== oauth: python sdk through nginx"
timeout 120 "$VENV/bin/python" "$E2E_DIR/oauth_py.py" "$URL" dcr || { echo "FAIL oauth: python sdk through nginx"; status=1; }
SCALE_DB_URL="$DB_URL" SCALE_PIDS="${PIDS[*]}" SCALE_PORTS="${PORTS[*]}" timeout 300 node "$E2E_DIR/scale.mjs" "$URL" || status=1
if [[ $status -ne 0 ]]; then
    for i in 1 2 3; do echo "---- instance $i log ----"; tail -n 30 "$WORK/instance$i.log"; done
    echo "---- nginx errors ----"; tail -n 20 "$WORK/nginx.err" || true
fi
exit $status
