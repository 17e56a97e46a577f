-- wrk script for scripts/fault-postgres-restart.sh: stateless MCP `tools/list` POSTs, rotating
-- the bearer token through a file of tokens, and a histogram of the answers' statuses.
--
-- Environment:
--   WRK_TOKENS_FILE  file with one access token per line (required)
--   WRK_DELAY_MS     pause of each connection between two requests, default 0 (wrk's delay())
--   MCP_PROTOCOL     MCP-Protocol-Version header (default 2025-06-18)
--
-- Prints from `done` one line
--   STATUSES requests=... errors=... timeouts=... no_retry_after=... 200=... 503=... ...
-- where errors counts socket errors (connect, read, write, timeout), and no_retry_after counts
-- the 503 answers without a Retry-After header.

wrk.method = "POST"
wrk.body = '{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = os.getenv("MCP_PROTOCOL") or "2025-06-18"

local tokens = {}
for line in io.lines(os.getenv("WRK_TOKENS_FILE")) do
  if line ~= "" then table.insert(tokens, line) end
end
local pause = tonumber(os.getenv("WRK_DELAY_MS") or "0")
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
  no_retry_after = 0
  next_token = math.random(#tokens) - 1
end

function delay()
  return pause
end

function request()
  next_token = next_token % #tokens + 1
  wrk.headers["Authorization"] = "Bearer " .. tokens[next_token]
  return wrk.format()
end

function response(status, headers, body)
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
  if status == 503 and headers["Retry-After"] == nil and headers["retry-after"] == nil then
    no_retry_after = no_retry_after + 1
  end
end

function done(summary, latency, requests)
  local total, missing = {}, 0
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do
      total[status] = (total[status] or 0) + n
    end
    missing = missing + thread:get("no_retry_after")
  end
  local e = summary.errors
  local line = string.format("STATUSES requests=%d errors=%d timeouts=%d no_retry_after=%d",
    summary.requests, e.connect + e.read + e.write + e.timeout, e.timeout, missing)
  local keys = {}
  for status in pairs(total) do table.insert(keys, status) end
  table.sort(keys)
  for _, status in ipairs(keys) do
    line = line .. string.format(" %s=%d", status, total[status])
  end
  io.write(line .. "\n")
end
