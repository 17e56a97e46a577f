#!/usr/bin/env bash
# What the per-tool scope check costs on the bearer path (issue 13): the same `tools/call`
# (about 330 bytes, like the bench's) against `bench_server` (AuthKit mode, release build),
# once behind the bearer check with MCP_AUTH_TOOL_SCOPES (`/mcp`) and once behind the same check
# without the policy (`/plain/mcp`), in ROUNDS interleaved wrk runs; prints each round's ratio
# and the median.
#
#   scripts/wrk-tool-scopes.sh          # ROUNDS=5 DURATION=5s THREADS=2 CONNECTIONS=32
#
# HEADERS=1 adds the SEP-2243 `Mcp-Method`/`Mcp-Name` headers (then checked against the body).
# SKIP_BUILD=1 reuses the release build. Loopback only; leaves nothing running.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
LUA="$ROOT/scripts/wrk-mcp.lua"
DURATION="${DURATION:-5s}"
THREADS="${THREADS:-2}"
CONNECTIONS="${CONNECTIONS:-32}"
ROUNDS="${ROUNDS:-5}"
MCP_PROTOCOL="${MCP_PROTOCOL:-2025-06-18}"
export MCP_PROTOCOL

command -v wrk >/dev/null || die "wrk not found; install it with: apt-get install -y wrk"
PROFILE=release build_programs "$ROOT" release fake_authkit bench_server

WORK="$(mktemp -d)"
cleanup() {
  local status=$?
  lib_cleanup
  ((status == 0)) || show_logs "$WORK" 20
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PORT="$(free_port)" || die "no free port"
BASE="http://127.0.0.1:$PORT"
POLICY="tools/call:delete_repo=repo:admin; tools/call:admin_echo=mcp:admin; \
resources/read=files:read; *=mcp; repo:admin>repo:read"
# The token carries what the guarded call needs; the plain path checks no scope at all.
spawn "$WORK/fake.log" env -C "$WORK" MCP_BASE_URL="$BASE" MCP_PATH=/mcp \
  WORKOS_REQUIRED_SCOPES="mcp mcp:admin" RUST_LOG=warn "$BIN/fake_authkit"
wait_line "$WORK/fake.log" '^TOKEN=' "$SPAWNED" 30 || die "fake_authkit did not start"
DOMAIN="$(sed -n 's/^WORKOS_AUTHKIT_DOMAIN=//p' "$WORK/fake.log" | head -n 1)"
TOKEN="$(sed -n 's/^TOKEN=//p' "$WORK/fake.log" | head -n 1)"
spawn "$WORK/server.log" env -C "$WORK" WORKOS_AUTHKIT_DOMAIN="$DOMAIN" MCP_BASE_URL="$BASE" \
  MCP_PATH=/mcp MCP_HOST=127.0.0.1 MCP_PORT="$PORT" MCP_AUTH_TOOL_SCOPES="$POLICY" RUST_LOG=warn \
  "$BIN/bench_server"
wait_http "$BASE/healthz" "$SPAWNED" 30 || die "bench_server did not start"

TEXT="label:bug is:open sort:updated in acme/widgets, twenty results, no comments, newest first"
MCP_BODY="$(jq -cn --arg text "$TEXT" --arg protocol "$MCP_PROTOCOL" '{jsonrpc: "2.0", id: 42, method: "tools/call",
  params: {name: "admin_echo", arguments: {text: $text},
  _meta: {progressToken: "c0ffee", "io.modelcontextprotocol/protocolVersion": $protocol}}}')"
export MCP_BODY
if [[ "${HEADERS:-}" == 1 ]]; then
  export MCP_METHOD_HEADER=tools/call MCP_NAME_HEADER=admin_echo
fi

# Sanity: both paths let our token through to the tool, which echoes the text.
BODY="$MCP_BODY"
for path in /mcp /plain/mcp; do
  status="$(mcp_post "$BASE$path" -H "Authorization: Bearer $TOKEN")"
  [[ "$status" == 200 ]] && grep -q 'twenty results' "$WORK/body" ||
    die "POST $path answered $status: $(head -c 300 "$WORK/body")"
done
log "sanity: both paths answer the guarded tools/call ($(printf %s "$MCP_BODY" | wc -c) bytes)"

ratios=()
for round in $(seq 1 "$ROUNDS"); do
  run_wrk "plain$round" "$BASE/plain/mcp" "$TOKEN" >/dev/null
  run_wrk "policy$round" "$BASE/mcp" "$TOKEN" >/dev/null
  for label in "plain$round" "policy$round"; do
    [[ "$(result_field "$label" non200)" == 0 && "$(result_field "$label" errors)" == 0 ]] ||
      die "$label: $(result_field "$label" non200) non-200 answers, $(result_field "$label" errors) errors"
  done
  plain="$(result_field "plain$round" rps)"
  policy="$(result_field "policy$round" rps)"
  ratio="$(awk -v a="$policy" -v b="$plain" 'BEGIN { printf "%.3f", a / b }')"
  ratios+=("$ratio")
  printf 'round %d: plain %s req/s, tool_scopes %s req/s, ratio %s\n' "$round" "$plain" "$policy" "$ratio"
done
median="$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{ v[NR] = $1 } END {
  if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }')"
echo "wrk-tool-scopes: median ratio tool_scopes/plain $median over $ROUNDS rounds" \
  "(-t$THREADS -c$CONNECTIONS -d$DURATION, tools/call, headers ${HEADERS:-0})"
