#!/usr/bin/env python3
"""Sequential MCP client for bench/instr.sh: N `tools/call whoami` on one keep-alive connection.

usage: instr_client.py PORT ERA COUNT FIRST_ID [SESSION_FILE]

ERA is 2026-07-28 (stateless) or 2025-11-25 (a session is opened on first use and its id
kept in SESSION_FILE so later calls reuse it). Ids are FIRST_ID, FIRST_ID+1, ... Exits 1 if
any answer is not a 200 with a JSON-RPC result.
"""

import http.client
import sys

port, era, count, first = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
session_file = sys.argv[5] if len(sys.argv) > 5 else None

conn = http.client.HTTPConnection("127.0.0.1", port)
base = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}

if era == "2026-07-28":
    headers = dict(base, **{"MCP-Protocol-Version": era, "Mcp-Method": "tools/call", "Mcp-Name": "whoami"})
    tail = (',"method":"tools/call","params":{"name":"whoami","arguments":{},"_meta":'
            '{"io.modelcontextprotocol/protocolVersion":"2026-07-28",'
            '"io.modelcontextprotocol/clientCapabilities":{}}}}')
else:
    sid = None
    if session_file:
        try:
            with open(session_file) as f:
                sid = f.read().strip() or None
        except FileNotFoundError:
            pass
    if sid is None:
        conn.request("POST", "/mcp", headers=base, body=(
            '{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25",'
            '"capabilities":{},"clientInfo":{"name":"portcullis-bench","version":"1"}}}'))
        response = conn.getresponse()
        response.read()
        sid = response.getheader("mcp-session-id") or "no-session"  # bare-axum has none
        conn.request("POST", "/mcp", body='{"jsonrpc":"2.0","method":"notifications/initialized"}',
                     headers=dict(base, **{"Mcp-Session-Id": sid, "MCP-Protocol-Version": era}))
        conn.getresponse().read()
        if session_file:
            with open(session_file, "w") as f:
                f.write(sid)
    headers = dict(base, **{"Mcp-Session-Id": sid, "MCP-Protocol-Version": era})
    tail = ',"method":"tools/call","params":{"name":"whoami","arguments":{}}}'

bad = 0
for i in range(first, first + count):
    conn.request("POST", "/mcp", body='{"jsonrpc":"2.0","id":%d%s' % (i, tail), headers=headers)
    response = conn.getresponse()
    body = response.read()
    if response.status != 200 or b'"result":' not in body or b'"error":' in body:
        bad += 1
if bad:
    print(f"{bad} of {count} answers were not results", file=sys.stderr)
    sys.exit(1)
