#!/usr/bin/env bash
# Load test: what does proxy-mode bearer auth (WorkOsProvider) cost an MCP endpoint, and how many
# database and AuthKit userinfo calls does a request make?
#
# Builds and starts the `bench_proxy_server` example (proxy mode in front of an embedded AuthKit
# emulator; the same MCP service at /mcp behind bearer auth and at /open/mcp without auth; it
# logs in through the real OAuth flow itself and prints the access token), then runs wrk with
# scripts/wrk-mcp.lua (stateless JSON-RPC `tools/list` POSTs) against /open/mcp and then /mcp,
# and prints requests/sec, latency p50/p90/p99, the protected/unprotected throughput ratio, and
# per protected request:
#   * AuthKit userinfo (and token) calls: the delta of the emulator's counters
#     (GET /bench/counters) divided by the number of requests;
#   * database calls: on PostgreSQL, the delta of pg_stat_database.xact_commit + xact_rollback
#     of the database (every statement the store runs outside a transaction is one) divided by
#     the number of requests; on SQLite they cannot be counted from outside, so the design is
#     printed instead.
#
# Fails if any response of either run is not a 200 (or on socket errors), so the protected
# numbers cannot silently be numbers of 401s.
#
# Usage: scripts/wrk-proxy.sh
# Environment (all optional):
#   DURATION=10s     wrk duration of each run
#   THREADS=2        wrk threads
#   CONNECTIONS=32   wrk connections
#   ROUNDS=1         interleaved open/protected pairs of runs; with more than one, each round's
#                    ratio and their median are printed (the summary table is the last round's;
#                    the AuthKit and database counts cover every round)
#   TOKENS=1         distinct access tokens (one grant each) the protected run rotates through
#   DATABASE_URL     postgres://... (database must exist) or sqlite://...; default: a SQLite
#                    file in a temp dir
#   MCP_AUTH_TOKEN_CACHE_SECONDS, MCP_AUTH_USERINFO_CACHE_SECONDS
#                    passed to the server (both default to 30)
#   MCP_PORT         port for bench_proxy_server (default: a free port)
#   PG_STATS_WAIT=11 seconds to wait for PostgreSQL to publish backend statistics (idle backends
#                    flush them within 10 s)
#   SKIP_BUILD=1     use the already built release example
#   RUST_LOG=warn    log filter of the server (logs go to a temp dir, printed on failure)
#
# Requires: cargo, curl, wrk (Debian/Ubuntu: apt-get install -y wrk); psql for the database
# count on PostgreSQL.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
LUA="$ROOT/scripts/wrk-mcp.lua"
DURATION="${DURATION:-10s}"
THREADS="${THREADS:-2}"
CONNECTIONS="${CONNECTIONS:-32}"
TOKENS="${TOKENS:-1}"
ROUNDS="${ROUNDS:-1}"
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive number"
PG_STATS_WAIT="${PG_STATS_WAIT:-11}"
MCP_PROTOCOL="${MCP_PROTOCOL:-2025-06-18}"
export MCP_PROTOCOL


command -v wrk >/dev/null || die "wrk not found; install it with: apt-get install -y wrk"
command -v curl >/dev/null || die "curl not found; install it with: apt-get install -y curl"
[[ "$TOKENS" =~ ^[1-9][0-9]*$ ]] || die "TOKENS must be a positive number"

PROFILE=release build_programs "$ROOT" release bench_proxy_server

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  local status=$?
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if [[ $status -ne 0 ]]; then
    for log in "$WORK"/*.log; do
      [[ -s "$log" ]] || continue
      echo "--- $(basename "$log") (last 20 lines)" >&2
      tail -n 20 "$log" >&2
    done
  fi
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM


PORT="${MCP_PORT:-$(free_port)}" || die "no free port found"
BASE="http://127.0.0.1:$PORT"
MCP_PATH="/mcp"
DB_URL="${DATABASE_URL:-sqlite://$WORK/bench_proxy.db}"
case "$DB_URL" in
  postgres://* | postgresql://*) ENGINE=postgres ;;
  sqlite:*) ENGINE=sqlite ;;
  *) die "DATABASE_URL must start with postgres:// or sqlite:" ;;
esac
if [[ "$ENGINE" == postgres ]] && ! command -v psql >/dev/null; then
  die "psql not found (needed to count database calls); install postgresql-client"
fi
TOKEN_CACHE="${MCP_AUTH_TOKEN_CACHE_SECONDS:-30}"
USERINFO_CACHE="${MCP_AUTH_USERINFO_CACHE_SECONDS:-30}"

# The server runs in $WORK so that no .env of the checkout leaks into the benchmark.
echo "==> starting bench_proxy_server on $BASE ($ENGINE, $TOKENS token(s))"
(cd "$WORK" && exec env MCP_BASE_URL="$BASE" MCP_PATH="$MCP_PATH" MCP_HOST=127.0.0.1 \
  MCP_PORT="$PORT" DATABASE_URL="$DB_URL" FAKE_TOKENS="$TOKENS" \
  MCP_AUTH_TOKEN_CACHE_SECONDS="$TOKEN_CACHE" MCP_AUTH_USERINFO_CACHE_SECONDS="$USERINFO_CACHE" \
  RUST_LOG="${RUST_LOG:-warn}" "$BIN/bench_proxy_server" >"$WORK/server.out" 2>"$WORK/server.log") &
PIDS+=($!)

for _ in $(seq 1 300); do
  grep -q '^READY$' "$WORK/server.out" 2>/dev/null && break
  kill -0 "${PIDS[0]}" 2>/dev/null || die "bench_proxy_server exited early"
  sleep 0.1
done
grep -q '^READY$' "$WORK/server.out" || die "bench_proxy_server did not log in within 30 s"
sed -n 's/^TOKEN=//p' "$WORK/server.out" >"$WORK/tokens"
TOKEN="$(head -n 1 "$WORK/tokens")"
[[ -n "$TOKEN" && "$(wc -l <"$WORK/tokens")" -eq "$TOKENS" ]] ||
  die "bench_proxy_server printed $(wc -l <"$WORK/tokens") tokens, expected $TOKENS"
echo "    logged in through the OAuth flow: $TOKENS access token(s)"

# Sanity checks, which also warm the server's caches before measuring.
BODY='{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}'
status="$(mcp_post "$BASE$MCP_PATH")"
[[ "$status" == 401 ]] || die "POST $MCP_PATH without a token answered $status, expected 401"
while read -r token; do
  status="$(mcp_post "$BASE$MCP_PATH" -H "Authorization: Bearer $token")"
  [[ "$status" == 200 ]] && grep -q '"tools"' "$WORK/body" ||
    die "POST $MCP_PATH with a token answered $status: $(head -c 300 "$WORK/body")"
done <"$WORK/tokens"
status="$(mcp_post "$BASE/open$MCP_PATH")"
[[ "$status" == 200 ]] && grep -q '"tools"' "$WORK/body" ||
  die "POST /open$MCP_PATH answered $status: $(head -c 300 "$WORK/body")"
echo "    sanity: 401 without token, 200 tools/list with each token and on /open$MCP_PATH"

counter() { # counter NAME -> the emulator's counter from /bench/counters
  curl -fsS "$BASE/bench/counters" | sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"
}
pg_xacts() { # committed + rolled back transactions of the database so far
  psql "$DB_URL" -XAtqc \
    "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"
}

# With several tokens, wrk-mcp.lua is loaded as is and a request() hook rotates the
# Authorization header through them.
SCRIPT="$LUA"
if [[ "$TOKENS" -gt 1 ]]; then
  SCRIPT="$WORK/wrk-tokens.lua"
  cat >"$SCRIPT" <<EOF
dofile("$LUA")
local tokens = {}
for line in io.lines("$WORK/tokens") do
  if line ~= "" then table.insert(tokens, line) end
end
local next_token = 0
function request()
  next_token = next_token % #tokens + 1
  wrk.headers["Authorization"] = "Bearer " .. tokens[next_token]
  return wrk.format()
end
EOF
fi


if [[ "$ENGINE" == postgres ]]; then
  echo "    waiting ${PG_STATS_WAIT}s for PostgreSQL to publish the statistics of the warm-up"
  sleep "$PG_STATS_WAIT"
  # Two readings in a row measure what one reading itself adds (psql's own transactions).
  XACT_FIRST="$(pg_xacts)"
  XACT_BEFORE="$(pg_xacts)"
  XACT_READING=$((XACT_BEFORE - XACT_FIRST))
fi
# The open runs call neither AuthKit nor the database, so counting around all rounds counts
# the protected runs.
USERINFO_BEFORE="$(counter userinfo)"
TOKEN_CALLS_BEFORE="$(counter token)"
wrk_rounds "$ROUNDS" "$BASE/open$MCP_PATH" "$BASE$MCP_PATH" "$TOKEN" "$LUA" "$SCRIPT"
USERINFO_AFTER="$(counter userinfo)"
TOKEN_CALLS_AFTER="$(counter token)"
if [[ "$ENGINE" == postgres ]]; then
  echo
  echo "    waiting ${PG_STATS_WAIT}s for PostgreSQL to publish the statistics of the run"
  sleep "$PG_STATS_WAIT"
  XACT_DELTA=$(($(pg_xacts) - XACT_BEFORE - XACT_READING))
fi

REQUESTS="$WRK_PROTECTED_REQUESTS"
echo
echo "==> summary (-t$THREADS -c$CONNECTIONS -d$DURATION, tools/list, $ENGINE, $TOKENS token(s)," \
  "token cache ${TOKEN_CACHE}s, userinfo cache ${USERINFO_CACHE}s)"
printf '%-10s %12s %10s %10s %10s %10s %10s\n' endpoint req/s p50_ms p90_ms p99_ms requests non200
for label in open protected; do
  printf '%-10s %12s %10s %10s %10s %10s %10s\n' "$label" "$(result_field "$label" rps)" \
    "$(result_field "$label" p50_ms)" "$(result_field "$label" p90_ms)" "$(result_field "$label" p99_ms)" \
    "$(result_field "$label" requests)" "$(result_field "$label" non200)"
done
wrk_ratio_summary
per_request() { # per_request COUNT -> COUNT / REQUESTS
  awk -v n="$1" -v r="$REQUESTS" 'BEGIN { if (r > 0) printf "%.6f", n / r; else printf "n/a" }'
}
echo "AuthKit userinfo calls: $((USERINFO_AFTER - USERINFO_BEFORE)) in $REQUESTS protected requests" \
  "= $(per_request $((USERINFO_AFTER - USERINFO_BEFORE))) per request"
echo "AuthKit token calls (upstream refresh): $((TOKEN_CALLS_AFTER - TOKEN_CALLS_BEFORE))" \
  "= $(per_request $((TOKEN_CALLS_AFTER - TOKEN_CALLS_BEFORE))) per request"
if [[ "$ENGINE" == postgres ]]; then
  echo "database transactions (pg_stat_database delta over every run, minus the $XACT_READING of" \
    "a psql reading; /open/mcp makes none): $XACT_DELTA in $REQUESTS protected requests" \
    "= $(per_request "$XACT_DELTA") per request"
else
  cache=$((TOKEN_CACHE < USERINFO_CACHE ? TOKEN_CACHE : USERINFO_CACHE))
  echo "database calls (SQLite: not observable from outside; by design): one SELECT" \
    "(lookup_access_token, token JOIN grant) per verified-token cache miss. A verified token is" \
    "cached for min(token cache, userinfo cache) = ${cache}s, so a run makes at most" \
    "$TOKENS token(s) x ceil(duration / ${cache}s) lookups, whatever the request count; a miss" \
    "whose AuthKit session check is also stale adds one userinfo call (counted above), and an" \
    "expired AuthKit token adds a grant reload and a compare-and-swap UPDATE."
fi

exit "$WRK_FAILED"
