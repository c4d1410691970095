#!/usr/bin/env bash
# HTTPS end to end, with a throwaway CA and a certificate for 127.0.0.1:
# - the shipped deploy/nginx.conf (only ports, certificate paths and the upstream replaced)
#   passes `nginx -t` and terminates TLS in front of `portcullis serve --public-url
#   https://127.0.0.1:PORT/mcp --trusted-proxies 127.0.0.1`: health, metadata and the 401
#   challenge say https, plain HTTP is redirected, the client address in Portcullis's log is
#   the one nginx saw (not one the client made up), and the official TypeScript SDK clients
#   (v1 and v2) run their whole OAuth flow through it, login in headless Chromium included;
# - Portcullis serving TLS itself (--tls-cert/--tls-key): the TypeScript SDK v2 OAuth flow;
# - the shipped deploy/Caddyfile, when the caddy command is installed: health, metadata and
#   the 401 challenge through it (skipped with a note otherwise).
#
# Needs: openssl, nginx (Debian's nginx-light), Chromium, Node >= 20 (npm ci is run here when
# tests/e2e/node_modules is missing). Env: PORTCULLIS_BIN (default target/debug/portcullis,
# built if missing), NGINX (default nginx), CADDY (default caddy), CHROMIUM.
set -euo pipefail

# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_binary
e2e_need_nginx
e2e_need_chromium
e2e_clients
e2e_workdir tls
e2e_cleanup_hook() {
    [[ -f "$WORK/nginx.pid" ]] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null
}

# --- a throwaway CA and a certificate for 127.0.0.1 -----------------------------------------
e2e_test_ca
CA="$WORK/ca.pem"
# Node (the SDK clients) trusts the test CA; Chromium (the login page) is told to accept it.
export NODE_EXTRA_CA_CERTS="$CA"
export E2E_IGNORE_HTTPS_ERRORS=1
export E2E_USER=admin
E2E_PASSWORD="tls-$(free_port)-$(free_port)-password"
export E2E_PASSWORD

# start_server NAME PORT ARGS...: logs JSON to $WORK/NAME.log, once it accepts connections.
start_server() {
    local name="$1" port="$2"
    shift 2
    PORTCULLIS_ADMIN_PASSWORD="$E2E_PASSWORD" PORTCULLIS_LOG_FORMAT=json start_portcullis "$WORK/$name.log" "$port" \
        --database-url "sqlite://$WORK/$name.db" --master-key-file "$WORK/$name.key" "$@"
}

# Checks on an https MCP URL: health, the 401 challenge and the metadata it points to.
https_basics() {
    local url="$1" origin="${1%/mcp}"
    local health challenge prm
    health="$(curl -sS --cacert "$CA" "$origin/healthz")" || return 1
    [[ "$health" == *'"ok"'* ]] || { echo "healthz: $health"; return 1; }
    challenge="$(curl -sS --cacert "$CA" -o /dev/null -D - -X POST "$url" \
        -H 'content-type: application/json' -H 'accept: application/json, text/event-stream' \
        --data '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"curl","version":"0"}}}')" || return 1
    [[ "$challenge" == "HTTP/1.1 401"* || "$challenge" == "HTTP/2 401"* ]] || { echo "no 401: $challenge"; return 1; }
    prm="$(grep -i '^www-authenticate:' <<<"$challenge" | sed -n 's/.*resource_metadata="\([^"]*\)".*/\1/p')"
    [[ "$prm" == "$origin/.well-known/oauth-protected-resource"* ]] || { echo "resource_metadata not on $origin: $challenge"; return 1; }
    curl -sS --cacert "$CA" "$prm" | python3 -c '
import json, sys
prm = json.load(sys.stdin)
url, origin = sys.argv[1], sys.argv[2]
assert prm["resource"] == url, prm
assert prm["authorization_servers"] == [origin], prm
' "$url" "$origin"
}

# --- nginx in front, with the shipped configuration -----------------------------------------
NGINX_PORT="$(free_port)"
NGINX_HTTP_PORT="$(free_port)"
UPSTREAM_PORT="$(free_port)"
URL="https://127.0.0.1:$NGINX_PORT/mcp"
mkdir -p "$WORK/nginx"
sed -e "s|listen 443 ssl;|listen 127.0.0.1:$NGINX_PORT ssl;|" \
    -e "s|listen 80;|listen 127.0.0.1:$NGINX_HTTP_PORT;|" \
    -e '/listen \[::\]/d' \
    -e "s|server 127.0.0.1:8080;|server 127.0.0.1:$UPSTREAM_PORT;|" \
    -e "s|/etc/letsencrypt/live/mcp.example.com/fullchain.pem|$WORK/leaf.pem|" \
    -e "s|/etc/letsencrypt/live/mcp.example.com/privkey.pem|$WORK/leaf.key|" \
    deploy/nginx.conf >"$WORK/portcullis.conf"
# The substitutions must all have applied, or the test would not be testing the shipped file.
for expected in "listen 127.0.0.1:$NGINX_PORT ssl;" "listen 127.0.0.1:$NGINX_HTTP_PORT;" \
    "server 127.0.0.1:$UPSTREAM_PORT;" "ssl_certificate $WORK/leaf.pem;" "ssl_certificate_key $WORK/leaf.key;"; do
    grep -qF "$expected" "$WORK/portcullis.conf" || { echo "deploy/nginx.conf changed shape: no '$expected' after templating" >&2; exit 1; }
done
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
    include $WORK/portcullis.conf;
}
EOF
LOGS="$WORK/behind-nginx.log $WORK/nginx.err"
run_check "nginx -t accepts deploy/nginx.conf" "$LOGS" "$NGINX" -t -q -c "$WORK/nginx.conf" -p "$WORK/nginx"
"$NGINX" -c "$WORK/nginx.conf" -p "$WORK/nginx" 2>"$WORK/nginx.start" || { cat "$WORK/nginx.start" >&2; exit 1; }
wait_port "$NGINX_PORT" || { echo "nginx did not start" >&2; cat "$WORK/nginx.err" >&2; exit 1; }

start_server behind-nginx "$UPSTREAM_PORT" --public-url "$URL" --trusted-proxies 127.0.0.1
echo "== portcullis on 127.0.0.1:$UPSTREAM_PORT behind nginx at $URL"

run_check "through nginx: health, 401 challenge and metadata over https" "$LOGS" https_basics "$URL"

redirect() {
    local head
    head="$(curl -sS -o /dev/null -D - "http://127.0.0.1:$NGINX_HTTP_PORT/mcp")" || return 1
    [[ "$head" == "HTTP/1.1 308"* ]] && grep -qi '^location: https://127.0.0.1/mcp' <<<"$head" || { echo "$head"; return 1; }
}
run_check "nginx redirects plain HTTP to https" "$LOGS" redirect

# forwarded URL LOG: a client on 127.0.0.2 (the proxy and Portcullis talk over 127.0.0.1, the
# trusted proxy) that claims to be 203.0.113.66. Portcullis logs the address the proxy saw,
# and the request id the proxy made is the one in Portcullis's log and in the response.
forwarded() {
    local url="$1" log="$2" head id line
    head="$(curl -sS --cacert "$CA" --interface 127.0.0.2 -o /dev/null -D - -X POST "$url" \
        -H 'origin: https://evil.example' -H 'x-forwarded-for: 203.0.113.66' -H 'content-length: 0')" || return 1
    [[ "$head" == "HTTP/1.1 403"* || "$head" == "HTTP/2 403"* ]] || { echo "expected 403 from the origin check: $head"; return 1; }
    id="$(grep -i '^x-request-id:' <<<"$head" | tr -d '\r' | awk '{print $2}')"
    [[ -n "$id" ]] || { echo "no x-request-id: $head"; return 1; }
    sleep 0.2
    line="$(grep -F "\"id\":\"$id\"" "$log" | grep -F 'refused by origin policy' | head -n 1)"
    [[ -n "$line" ]] || { echo "no log line for request $id"; tail -n 5 "$log"; return 1; }
    python3 -c '
import json, sys
span = json.loads(sys.argv[1])["span"]
assert span["client_ip"] == "127.0.0.2", span
' "$line"
}
run_check "through nginx: client address from X-Forwarded-For, the client's own claim ignored" "$LOGS" \
    forwarded "$URL" "$WORK/behind-nginx.log"

for sdk in v1 v2; do
    run_check "oauth: typescript sdk $sdk through nginx (TLS terminated there)" "$LOGS" \
        timeout 120 node "$E2E_DIR/oauth_ts.mjs" "$sdk" "$URL" dcr
done

# --- Portcullis serving TLS itself --------------------------------------------------------------
DIRECT_PORT="$(free_port)"
DIRECT_URL="https://127.0.0.1:$DIRECT_PORT/mcp"
LOGS="$WORK/direct.log"
start_server direct "$DIRECT_PORT" --tls-cert "$WORK/leaf.pem" --tls-key "$WORK/leaf.key"
echo "== portcullis serving TLS itself at $DIRECT_URL"
run_check "direct TLS: health, 401 challenge and metadata over https" "$LOGS" https_basics "$DIRECT_URL"
run_check "oauth: typescript sdk v2 against direct TLS" "$LOGS" timeout 120 node "$E2E_DIR/oauth_ts.mjs" v2 "$DIRECT_URL" dcr

# --- Caddy in front, with the shipped Caddyfile (when caddy is installed) ------------------------
CADDY="${CADDY:-$(command -v caddy || true)}"
if [[ -n "$CADDY" && -x "$CADDY" ]]; then
    CADDY_PORT="$(free_port)"
    CADDY_UPSTREAM="$(free_port)"
    CADDY_URL="https://127.0.0.1:$CADDY_PORT/mcp"
    {
        # Test-only global options: loopback only, no admin endpoint, no port 80 redirect
        # listener, state in the scratch directory.
        printf '{\n\tadmin off\n\tdefault_bind 127.0.0.1\n\tauto_https disable_redirects\n\tstorage file_system %s\n}\n\n' "$WORK/caddy-data"
        sed -e "s|^mcp.example.com {|https://127.0.0.1:$CADDY_PORT {|" \
            -e "s|reverse_proxy 127.0.0.1:8080|reverse_proxy 127.0.0.1:$CADDY_UPSTREAM|" \
            -e "s|^\(\s*\)# tls /path/to/fullchain.pem /path/to/privkey.pem|\1tls $WORK/leaf.pem $WORK/leaf.key|" \
            deploy/Caddyfile
    } >"$WORK/Caddyfile"
    for expected in "https://127.0.0.1:$CADDY_PORT {" "reverse_proxy 127.0.0.1:$CADDY_UPSTREAM" "tls $WORK/leaf.pem $WORK/leaf.key"; do
        grep -qF "$expected" "$WORK/Caddyfile" || { echo "deploy/Caddyfile changed shape: no '$expected' after templating" >&2; exit 1; }
    done
    LOGS="$WORK/behind-caddy.log $WORK/caddy.log"
    run_check "caddy validate accepts deploy/Caddyfile" "$LOGS" env HOME="$WORK" XDG_DATA_HOME="$WORK/caddy-data" XDG_CONFIG_HOME="$WORK/caddy-config" \
        "$CADDY" validate --config "$WORK/Caddyfile" --adapter caddyfile
    HOME="$WORK" XDG_DATA_HOME="$WORK/caddy-data" XDG_CONFIG_HOME="$WORK/caddy-config" \
        "$CADDY" run --config "$WORK/Caddyfile" --adapter caddyfile >"$WORK/caddy.log" 2>&1 &
    PIDS+=("$!")
    wait_port "$CADDY_PORT" || { echo "caddy did not start" >&2; cat "$WORK/caddy.log" >&2; exit 1; }
    start_server behind-caddy "$CADDY_UPSTREAM" --public-url "$CADDY_URL" --trusted-proxies 127.0.0.1
    run_check "through caddy: health, 401 challenge and metadata over https" "$LOGS" https_basics "$CADDY_URL"
    run_check "through caddy: client address from X-Forwarded-For, the client's own claim ignored" "$LOGS" \
        forwarded "$CADDY_URL" "$WORK/behind-caddy.log"
    run_check "oauth: typescript sdk v2 through caddy" "$LOGS" timeout 120 node "$E2E_DIR/oauth_ts.mjs" v2 "$CADDY_URL" dcr
else
    echo "== caddy is not installed: deploy/Caddyfile not tested (apt-get install -y caddy)"
fi

e2e_summary
