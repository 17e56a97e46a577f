#!/usr/bin/env bash
# Instructions per request of the bearer check, counted (not timed): the protected MCP
# `tools/list` against the same request on the open route of the same process, run under
# valgrind's callgrind. AuthKit mode (default): `bench_server` with the `fake_authkit` emulator;
# MODE=proxy: `bench_proxy_server` (proxy mode, SQLite, its embedded emulator and login).
#
# Instruction counts do not depend on what else the machine does, so this compares the per-request
# cost of the two routes (and of two builds) exactly where wrk ratios on a shared machine wander.
# The bearer check's cost is `protected - open`; the report also gives the ratio
# open/protected, the best throughput ratio that cost allows when the server is CPU-bound. A
# third batch sends the same `Authorization` header to the open route, which ignores it: the
# share of that cost that is only carrying the header (parsing, buffers, the MCP transport
# copying it) rather than checking it (`check` = protected - open with the header).
#
# Starts the server under callgrind (AuthKit mode: the `fake_authkit` emulator natively beside
# it), warms both routes up (the token is verified once, then served from the verified-token
# cache), then for
# ROUNDS rounds: zero the counters, REQUESTS open requests on one keep-alive connection, dump;
# zero, REQUESTS open requests carrying the token, dump; zero, REQUESTS protected requests,
# dump. Prints Ir per request of each dump, and keeps the dumps (callgrind_annotate them) when
# KEEP_WORK=1.
#
# Usage: scripts/callgrind-bearer.sh
# Environment (all optional):
#   MODE=authkit    or proxy
#   REQUESTS=2000   requests per measured batch      ROUNDS=2   open+protected batches
#   SKIP_BUILD=1    use the built release programs   KEEP_WORK=1   keep the dumps and logs
#   PROFILE=release (debug works, but counts debug code)
#
# Note: valgrind reports a CPU without SHA extensions, so SHA-256 runs its portable code here;
# on hardware with SHA-NI the digest of the token is cheaper than counted.
#
# Requires: valgrind (callgrind_control), python3, curl. Loopback only.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
MODE="${MODE:-authkit}"
REQUESTS="${REQUESTS:-2000}"
ROUNDS="${ROUNDS:-2}"
MCP_PROTOCOL="${MCP_PROTOCOL:-2025-06-18}"
export MCP_PROTOCOL
[[ "$REQUESTS" =~ ^[1-9][0-9]*$ && "$ROUNDS" =~ ^[1-9][0-9]*$ ]] \
  || die "REQUESTS and ROUNDS must be positive numbers"
for tool in valgrind callgrind_control python3 curl; do
  command -v "$tool" >/dev/null || die "$tool is required (apt-get install -y valgrind)"
done

case "$MODE" in
  authkit) build_programs "$ROOT" release fake_authkit bench_server ;;
  proxy) build_programs "$ROOT" release bench_proxy_server ;;
  *) die "MODE must be authkit or proxy" ;;
esac

WORK="$(mktemp -d)"
cleanup() {
  local status=$?
  set +e
  lib_cleanup
  ((status == 0)) || show_logs "$WORK" 20
  if [[ "${KEEP_WORK:-}" == 1 ]]; then echo "work directory kept: $WORK" >&2; else rm -rf "$WORK"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PORT="$(free_port)" || die "no free port"
BASE="http://127.0.0.1:$PORT"
CALLGRIND=(valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind.out")
if [[ "$MODE" == authkit ]]; then
  spawn "$WORK/fake.log" env -C "$WORK" MCP_BASE_URL="$BASE" MCP_PATH=/mcp RUST_LOG=warn \
    "$BIN/fake_authkit"
  wait_line "$WORK/fake.log" '^TOKEN=' "$SPAWNED" 30 || die "fake_authkit did not start"
  DOMAIN="$(sed -n 's/^WORKOS_AUTHKIT_DOMAIN=//p' "$WORK/fake.log" | head -n 1)"
  TOKEN="$(sed -n 's/^TOKEN=//p' "$WORK/fake.log" | head -n 1)"
  spawn "$WORK/server.log" env -C "$WORK" WORKOS_AUTHKIT_DOMAIN="$DOMAIN" MCP_BASE_URL="$BASE" \
    MCP_PATH=/mcp MCP_HOST=127.0.0.1 MCP_PORT="$PORT" RUST_LOG=warn \
    "${CALLGRIND[@]}" "$BIN/bench_server"
  SERVER="$SPAWNED"
  wait_http "$BASE/healthz" "$SERVER" 120 || die "bench_server did not start under valgrind"
else
  # Token cache windows longer than the run: every measured request is a cache hit.
  spawn "$WORK/server.log" env -C "$WORK" MCP_BASE_URL="$BASE" MCP_PATH=/mcp MCP_HOST=127.0.0.1 \
    MCP_PORT="$PORT" DATABASE_URL="sqlite://$WORK/proxy.db" FAKE_TOKENS=1 RUST_LOG=warn \
    MCP_AUTH_TOKEN_CACHE_SECONDS=3600 MCP_AUTH_USERINFO_CACHE_SECONDS=3600 \
    "${CALLGRIND[@]}" "$BIN/bench_proxy_server"
  SERVER="$SPAWNED"
  wait_line "$WORK/server.log" '^READY$' "$SERVER" 300 \
    || die "bench_proxy_server did not start under valgrind"
  TOKEN="$(sed -n 's/^TOKEN=//p' "$WORK/server.log" | head -n 1)"
fi
[[ -n "$TOKEN" ]] || die "no token"

# batch PATH TOKEN N: N POSTs of tools/list on one keep-alive connection; fails on any non-200.
batch() {
  python3 - "$PORT" "$1" "$2" "$3" "$MCP_PROTOCOL" <<'EOF'
import http.client, sys
port, path, token, count, protocol = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
body = b'{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}'
headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
           "MCP-Protocol-Version": protocol}
if token:
    headers["Authorization"] = "Bearer " + token
conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=120)
for _ in range(count):
    conn.request("POST", path, body=body, headers=headers)
    response = conn.getresponse()
    data = response.read()
    if response.status != 200 or b'"tools"' not in data:
        sys.exit(f"{path}: {response.status} {data[:200]!r}")
EOF
}

# The first protected request verifies the token (JWKS fetch, RS256); later ones hit the cache.
batch /open/mcp "" 50 || die "open warm-up failed"
batch /mcp "$TOKEN" 50 || die "protected warm-up failed"

# measure LABEL PATH TOKEN: zero, one batch, dump; prints Ir per request.
measure() {
  local label="$1" dump total
  callgrind_control -z "$SERVER" >/dev/null 2>&1 || die "callgrind_control -z failed"
  batch "$2" "$3" "$REQUESTS" || die "$label batch failed"
  callgrind_control -d "$label" "$SERVER" >/dev/null 2>&1 || die "callgrind_control -d failed"
  dump="$(ls -t "$WORK"/callgrind.out.* | head -n 1)"
  total="$(sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$dump")"
  [[ -n "$total" ]] || total="$(sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$dump")"
  echo $((total / REQUESTS))
}

printf '%-6s %12s %14s %12s %10s %10s %10s\n' round open_Ir/req open+hdr_Ir/req prot_Ir/req \
  extra check open/prot
for round in $(seq 1 "$ROUNDS"); do
  open="$(measure "open-$round" /open/mcp "")"
  carried="$(measure "open-header-$round" /open/mcp "$TOKEN")"
  protected="$(measure "protected-$round" /mcp "$TOKEN")"
  printf '%-6s %12s %14s %12s %10s %10s %10s\n' "$round" "$open" "$carried" "$protected" \
    $((protected - open)) $((protected - carried)) \
    "$(awk -v o="$open" -v p="$protected" 'BEGIN { printf "%.4f", o / p }')"
done
