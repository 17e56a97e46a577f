#!/usr/bin/env bash
# Load test: what does AuthKit bearer auth cost an MCP endpoint?
#
# Builds the examples in release mode, starts the `fake_authkit` example (a local AuthKit
# emulator, no WorkOS account needed) and the `bench_server` example (the same MCP service at
# /mcp behind bearer auth and at /open/mcp without auth), then runs wrk with scripts/wrk-mcp.lua
# (stateless JSON-RPC `tools/list` POSTs) against /open/mcp and then /mcp, and prints
# requests/sec, latency p50/p99 and the protected/unprotected throughput ratio.
#
# Fails if any response of either run is not a 200 (or on socket errors), so the protected
# numbers cannot silently be numbers of 401s.
#
# Usage: scripts/wrk-authkit.sh
# Environment (all optional):
#   DURATION=10s     wrk duration of each run
#   THREADS=2        wrk threads
#   CONNECTIONS=32   wrk connections
#   ROUNDS=1         interleaved open/protected pairs of runs; with more than one, each round's
#                    ratio and their median are printed (the summary table is the last round's).
#                    On a shared machine the median of several short rounds is steadier than one
#                    long pair, whose two halves see different load.
#   MCP_PORT         port for bench_server (default: a free port)
#   SKIP_BUILD=1     use the already built release examples
#   RUST_LOG=warn    log filter of the servers (logs go to a temp dir, printed on failure)
#
# Requires: cargo, curl, wrk (Debian/Ubuntu: apt-get install -y wrk).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
LUA="$ROOT/scripts/wrk-mcp.lua"
DURATION="${DURATION:-10s}"
THREADS="${THREADS:-2}"
CONNECTIONS="${CONNECTIONS:-32}"
ROUNDS="${ROUNDS:-1}"
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive number"
MCP_PROTOCOL="${MCP_PROTOCOL:-2025-06-18}"
export MCP_PROTOCOL


command -v wrk >/dev/null || die "wrk not found; install it with: apt-get install -y wrk"
command -v curl >/dev/null || die "curl not found; install it with: apt-get install -y curl"

PROFILE=release build_programs "$ROOT" release fake_authkit bench_server

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

# The servers run in $WORK so that no .env of the checkout (dotenvy) leaks into the benchmark.
echo "==> starting fake_authkit (token audience $BASE$MCP_PATH)"
(cd "$WORK" && exec env MCP_BASE_URL="$BASE" MCP_PATH="$MCP_PATH" RUST_LOG="${RUST_LOG:-warn}" \
  "$BIN/fake_authkit" >"$WORK/fake.out" 2>"$WORK/fake.log") &
PIDS+=($!)

for _ in $(seq 1 100); do
  grep -q '^TOKEN=' "$WORK/fake.out" 2>/dev/null && break
  kill -0 "${PIDS[0]}" 2>/dev/null || die "fake_authkit exited early"
  sleep 0.1
done
DOMAIN="$(sed -n 's/^WORKOS_AUTHKIT_DOMAIN=//p' "$WORK/fake.out" | head -n 1)"
TOKEN="$(sed -n 's/^TOKEN=//p' "$WORK/fake.out" | head -n 1)"
[[ -n "$DOMAIN" && -n "$TOKEN" ]] || die "fake_authkit printed no WORKOS_AUTHKIT_DOMAIN/TOKEN"
echo "    WORKOS_AUTHKIT_DOMAIN=$DOMAIN"

echo "==> starting bench_server on $BASE"
(cd "$WORK" && exec env WORKOS_AUTHKIT_DOMAIN="$DOMAIN" MCP_BASE_URL="$BASE" MCP_PATH="$MCP_PATH" \
  MCP_HOST=127.0.0.1 MCP_PORT="$PORT" RUST_LOG="${RUST_LOG:-warn}" \
  "$BIN/bench_server" >"$WORK/server.log" 2>&1) &
PIDS+=($!)

for _ in $(seq 1 100); do
  curl -fsS -o /dev/null "$BASE/healthz" 2>/dev/null && break
  kill -0 "${PIDS[1]}" 2>/dev/null || die "bench_server exited early"
  sleep 0.1
done
curl -fsS -o /dev/null "$BASE/healthz" || die "bench_server did not answer /healthz"

# Sanity checks, which also warm the JWKS cache before measuring.
BODY='{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}'
status="$(mcp_post "$BASE$MCP_PATH")"
[[ "$status" == 401 ]] || die "POST $MCP_PATH without a token answered $status, expected 401"
status="$(mcp_post "$BASE$MCP_PATH" -H "Authorization: Bearer $TOKEN")"
[[ "$status" == 200 ]] && grep -q '"tools"' "$WORK/body" ||
  die "POST $MCP_PATH with the token answered $status: $(head -c 300 "$WORK/body")"
status="$(mcp_post "$BASE/open$MCP_PATH")"
[[ "$status" == 200 ]] && grep -q '"tools"' "$WORK/body" ||
  die "POST /open$MCP_PATH answered $status: $(head -c 300 "$WORK/body")"
echo "    sanity: 401 without token, 200 tools/list with token and on /open$MCP_PATH"


wrk_rounds "$ROUNDS" "$BASE/open$MCP_PATH" "$BASE$MCP_PATH" "$TOKEN"

echo
echo "==> summary (-t$THREADS -c$CONNECTIONS -d$DURATION, tools/list)"
printf '%-10s %12s %10s %10s %10s %10s\n' endpoint req/s p50_ms p90_ms p99_ms non200
for label in open protected; do
  printf '%-10s %12s %10s %10s %10s %10s\n' "$label" "$(result_field "$label" rps)" \
    "$(result_field "$label" p50_ms)" "$(result_field "$label" p90_ms)" "$(result_field "$label" p99_ms)" \
    "$(result_field "$label" non200)"
done
wrk_ratio_summary

exit "$WRK_FAILED"
