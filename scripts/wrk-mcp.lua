-- wrk script for scripts/wrk-authkit.sh: POSTs one stateless MCP JSON-RPC request
-- (`tools/list`, which rmcp answers with 200 without an `initialize` in stateless mode).
--
-- Environment:
--   MCP_TOKEN      bearer token; sent as `Authorization: Bearer ...` when set and non-empty
--   MCP_PROTOCOL   MCP-Protocol-Version header (default 2025-06-18)
--   WRK_LABEL      label printed on the RESULT line (default "run")
--   MCP_BODY       the JSON-RPC request to send (default the `tools/list` below)
--   MCP_METHOD_HEADER, MCP_NAME_HEADER   SEP-2243 `Mcp-Method` / `Mcp-Name` headers, when set
--
-- Counts every response whose status is not exactly 200 and prints, from `done`, one line
--   RESULT label=... rps=... p50_ms=... p90_ms=... p99_ms=... requests=... non200=... errors=...
-- which the shell script parses.

wrk.method = "POST"
wrk.body = os.getenv("MCP_BODY") or '{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = os.getenv("MCP_PROTOCOL") or "2025-06-18"

if os.getenv("MCP_METHOD_HEADER") then
  wrk.headers["Mcp-Method"] = os.getenv("MCP_METHOD_HEADER")
end
if os.getenv("MCP_NAME_HEADER") then
  wrk.headers["Mcp-Name"] = os.getenv("MCP_NAME_HEADER")
end

local token = os.getenv("MCP_TOKEN")
if token ~= nil and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  non200 = 0
  first_bad_status = 0
end

function response(status, headers, body)
  if status ~= 200 then
    non200 = non200 + 1
    if first_bad_status == 0 then
      first_bad_status = status
    end
  end
end

function done(summary, latency, requests)
  local bad, bad_status = 0, 0
  for _, thread in ipairs(threads) do
    bad = bad + thread:get("non200")
    local s = thread:get("first_bad_status")
    if bad_status == 0 and s ~= 0 then
      bad_status = s
    end
  end
  local e = summary.errors
  local errors = e.connect + e.read + e.write + e.timeout
  local seconds = summary.duration / 1e6
  io.write(string.format(
    "RESULT label=%s rps=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f requests=%d non200=%d first_bad_status=%d errors=%d\n",
    os.getenv("WRK_LABEL") or "run",
    summary.requests / seconds,
    latency:percentile(50) / 1000,
    latency:percentile(90) / 1000,
    latency:percentile(99) / 1000,
    summary.requests, bad, bad_status, errors))
end
