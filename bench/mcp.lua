-- wrk script for the Portcullis load benchmarks: `tools/call` over MCP Streamable HTTP
-- (`whoami` unless told otherwise).
--
-- Environment (set by bench/run.sh):
--   BENCH_ERA       2026-07-28 (stateless, per-request _meta) or 2025-11-25 (sessions)
--   BENCH_SIDS      2025 era: comma-separated Mcp-Session-Id values; requests go to them
--                   round-robin (ids are unique per request, so no id is ever reused on a
--                   session while in flight)
--   BENCH_HOSTPORT  value of the Host header, e.g. 127.0.0.1:18080
--   BENCH_TOKEN     when set, sent as `Authorization: Bearer <token>` (bench/auth.sh)
--   BENCH_TOOL      2026-07-28 era: the tool to call (default whoami)
--   BENCH_ARGS      2026-07-28 era: the tool's arguments, JSON objects one per line, used
--                   round-robin (default {})
--
-- Every response is checked: non-2xx, or a body without a JSON-RPC "result" (or with an
-- "error", or a tool result with "isError": true), counts as an error. done() prints one machine-readable BENCH line.

local era = os.getenv("BENCH_ERA") or "2026-07-28"
local hostport = os.getenv("BENCH_HOSTPORT")

local threads = {}
local thread_count = 0

function setup(thread)
  thread:set("tid", thread_count)
  thread_count = thread_count + 1
  table.insert(threads, thread)
end

local header_sets = {}
local nsets = 0
local stride = 1
local body_head, body_mid, body_tail
local arg_list = {}

function init(args)
  counter = 0
  responses = 0
  non2xx = 0
  rpc_errors = 0
  stride = tonumber(os.getenv("BENCH_WRK_THREADS") or "1")

  local base = {
    ["Content-Type"] = "application/json",
    ["Accept"] = "application/json, text/event-stream",
  }
  if hostport then
    base["Host"] = hostport
  end
  local token = os.getenv("BENCH_TOKEN")
  if token and token ~= "" then
    base["Authorization"] = "Bearer " .. token
  end

  if era == "2026-07-28" then
    local h = {}
    for k, v in pairs(base) do h[k] = v end
    h["MCP-Protocol-Version"] = "2026-07-28"
    h["Mcp-Method"] = "tools/call"
    local tool = os.getenv("BENCH_TOOL") or "whoami"
    h["Mcp-Name"] = tool
    header_sets[1] = h
    nsets = 1
    for a in string.gmatch(os.getenv("BENCH_ARGS") or "{}", "[^\n]+") do
      table.insert(arg_list, a)
    end
    body_head = '{"jsonrpc":"2.0","id":'
    body_mid = ',"method":"tools/call","params":{"name":"' .. tool .. '","arguments":'
    body_tail = ',"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28",'
      .. '"io.modelcontextprotocol/clientCapabilities":{}}}}'
  else
    for sid in string.gmatch(os.getenv("BENCH_SIDS") or "", "[^,]+") do
      local h = {}
      for k, v in pairs(base) do h[k] = v end
      h["MCP-Protocol-Version"] = era
      h["Mcp-Session-Id"] = sid
      nsets = nsets + 1
      header_sets[nsets] = h
    end
    if nsets == 0 then
      error("BENCH_SIDS is empty: the 2025 era needs session ids")
    end
    body_head = '{"jsonrpc":"2.0","id":'
    body_mid = ',"method":"tools/call","params":{"name":"whoami","arguments":'
    body_tail = '}}'
    arg_list = { "{}" }
  end
end

function request()
  counter = counter + 1
  -- Unique across threads: thread tid uses ids tid+1, tid+1+stride, ...
  local id = (counter - 1) * stride + tid + 1
  local h = header_sets[(counter - 1) % nsets + 1]
  local args = arg_list[(counter - 1) % #arg_list + 1]
  return wrk.format("POST", "/mcp", h, body_head .. id .. body_mid .. args .. body_tail)
end

function response(status, headers, body)
  responses = responses + 1
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  elseif not string.find(body, '"result":', 1, true) or string.find(body, '"error":', 1, true)
      or string.find(body, '"isError":true', 1, true) then
    rpc_errors = rpc_errors + 1
  end
end

function done(summary, latency, requests)
  local n2, rpc, checked = 0, 0, 0
  for _, t in ipairs(threads) do
    n2 = n2 + (t:get("non2xx") or 0)
    rpc = rpc + (t:get("rpc_errors") or 0)
    checked = checked + (t:get("responses") or 0)
  end
  local e = summary.errors
  local sock = e.connect + e.read + e.write + e.timeout
  io.write(string.format(
    "BENCH requests=%d duration_us=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d "
      .. "non2xx=%d rpc_errors=%d socket_errors=%d checked=%d\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    n2, rpc, sock, checked))
end
