#!/usr/bin/env bash
# Load test of two proxy-mode replicas on one PostgreSQL database and one AuthKit emulator.
#
# Starts, on a fresh PostgreSQL database:
#   * the shared AuthKit emulator (`loadtest/src/bin/replica.rs fake-authkit`);
#   * replicas A and B (`loadtest/src/bin/replica.rs`): same public MCP_BASE_URL (A's address), same
#     encryption key, rate limits off (all load comes from one address), each on its own port,
#     each serving the MCP service twice: behind bearer auth at /mcp, unprotected at /open/mcp.
# Mints TOKENS distinct access tokens through the real flow (`loadtest/src/bin/flow_driver.rs tokens`:
# a few logins, then refresh-token rotations, each issuing a new access token), then measures,
# each time with two wrk processes running at once, one per replica (-t$THREADS -c$CONNECTIONS
# each), MCP `tools/list`:
#   open       /open/mcp, no token: the baseline of this run
#   one-token  /mcp, one access token (the verified-token cache answers)
#   N-cold     the first use of each of TOKENS distinct tokens on each replica: a database
#              lookup each (driven by `flow_driver touch`, CONNECTIONS concurrent per replica)
#   N-tokens   /mcp, rotating through the same TOKENS tokens, now cached
#   open-rotating  /open/mcp with the same token-rotating wrk script (its baseline: building each
#              request in Lua costs wrk CPU on the same two cores)
# and the full OAuth flow (`flow_driver flows`: register, authorize, consent page, approval,
# AuthKit login, callback, code exchange, MCP whoami) alternating between the replicas.
#
# Memory: VmRSS of replica A (/proc/<pid>/status) and its verified-token cache size before and
# after the first use of the TOKENS tokens; in full mode also after touching MEM_TOKENS distinct tokens and then
# EXTRA_TOKENS more (past the cache capacity of 100,000 entries): the cache must stay bounded.
#
# Prints req/s (sum of both replicas), p50/p99 per replica, the ratio to the unprotected route,
# logins/s, AuthKit calls, RSS and RSS per cached token. Fails on any non-200 answer, socket
# error, failed flow, or a cache above its capacity.
#
# Usage:
#   SHORT=1 scripts/load-replicas.sh    # CI: 3 s runs, 10,000 tokens (~30 s plus the build)
#   scripts/load-replicas.sh            # full: 10 s runs, 10,000 tokens for wrk, 100,000 + 20,000
#                                       # for the memory check (several minutes: the tokens are
#                                       # minted through the real /token endpoint)
# Environment (all optional; defaults short / full):
#   DURATION=3s/10s      each wrk run
#   FLOW_SECONDS=3/10    the full-flow driver
#   FLOW_CONCURRENCY=8   concurrent logins of the driver
#   TOKENS=10000         distinct tokens of the N-tokens run
#   MEM_TOKENS=0/100000  distinct tokens touched on replica A for the memory check (0: skip;
#                        the N-tokens run already measures TOKENS)
#   EXTRA_TOKENS=0/20000 further distinct tokens touched after MEM_TOKENS (past the capacity)
#   THREADS=1 CONNECTIONS=16   per wrk process
#   CACHE_SECONDS=300    MCP_AUTH_TOKEN_CACHE_SECONDS and MCP_AUTH_USERINFO_CACHE_SECONDS of the
#                        replicas (the verified-token cache keeps an entry at most 5 minutes;
#                        long enough that a pass over all tokens stays cached)
#   PG_ADMIN_URL=postgres://postgres@127.0.0.1:5432/postgres   (a database is created, dropped)
#   PROFILE=release      or debug: which build of the examples to use (debug: quicker to
#                        build; its numbers are not performance numbers)
#   SKIP_BUILD=1         use the already built examples
#   KEEP_WORK=1          keep the work directory (logs, wrk output, tokens)
#
# Requires: cargo, curl, psql, wrk.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
LUA="$ROOT/scripts/wrk-mcp.lua"
if [[ "${SHORT:-}" == 1 ]]; then
  DURATION="${DURATION:-3s}" FLOW_SECONDS="${FLOW_SECONDS:-3}"
  MEM_TOKENS="${MEM_TOKENS:-0}" EXTRA_TOKENS="${EXTRA_TOKENS:-0}"
  MODE=short
else
  DURATION="${DURATION:-10s}" FLOW_SECONDS="${FLOW_SECONDS:-10}"
  MEM_TOKENS="${MEM_TOKENS:-100000}" EXTRA_TOKENS="${EXTRA_TOKENS:-20000}"
  MODE=full
fi
TOKENS="${TOKENS:-10000}"
FLOW_CONCURRENCY="${FLOW_CONCURRENCY:-8}"
THREADS="${THREADS:-1}"
CONNECTIONS="${CONNECTIONS:-16}"
CACHE_SECONDS="${CACHE_SECONDS:-300}"
PG_ADMIN_URL="${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
CACHE_CAPACITY=100000
MCP_PROTOCOL="${MCP_PROTOCOL:-2025-06-18}"
export MCP_PROTOCOL

SCRIPT_START="$(now_ms)"

for tool in curl psql wrk; do
  command -v "$tool" >/dev/null || die "$tool not found"
done
for n in TOKENS MEM_TOKENS EXTRA_TOKENS; do
  [[ "${!n}" =~ ^[0-9]+$ ]] || die "$n must be a number"
done
((TOKENS >= 1)) || die "TOKENS must be at least 1"
build_programs "$ROOT" release replica flow_driver

WORK="$(mktemp -d)"
DB="mcp_load_$$_$RANDOM"
DB_URL="${PG_ADMIN_URL%/*}/$DB"
PIDS=()
cleanup() {
  local status=$?
  set +e
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
  psql "$PG_ADMIN_URL" -XAtqc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1
  if [[ $status -ne 0 ]]; then
    for f in "$WORK"/*.log; do
      [[ -s "$f" ]] || continue
      echo "--- $(basename "$f") (last 15 lines)" >&2
      tail -n 15 "$f" >&2
    done
  fi
  if [[ "${KEEP_WORK:-}" == 1 ]]; then echo "work directory kept: $WORK" >&2; else rm -rf "$WORK"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

seconds_since() { awk -v a="$1" -v b="$(now_ms)" 'BEGIN { printf "%.1f", (b - a) / 1000 }'; }

psql "$PG_ADMIN_URL" -XAtqc "CREATE DATABASE $DB" >/dev/null
PORT_A="$(free_port)" || die "no free port"
PORT_B="$(free_port)" || die "no free port"
[[ "$PORT_A" != "$PORT_B" ]] || die "port clash, run again"
PUBLIC="http://127.0.0.1:$PORT_A"
A="http://127.0.0.1:$PORT_A"
B="http://127.0.0.1:$PORT_B"
WORKOS_CLIENT_ID="client_load_$(random_hex 8)"
WORKOS_CLIENT_SECRET="sk_load_$(random_hex 24)"
export WORKOS_CLIENT_ID WORKOS_CLIENT_SECRET

(cd "$WORK" && exec env FAKE_REDIRECT_URIS="$PUBLIC/auth/callback" \
  "$BIN/replica" fake-authkit >"$WORK/fake.out" 2>"$WORK/fake.log") &
PIDS+=($!)
wait_line "$WORK/fake.out" '^READY$' "${PIDS[-1]}" 10 || die "the emulator did not start"
WORKOS_AUTHKIT_DOMAIN="$(sed -n 's/^WORKOS_AUTHKIT_DOMAIN=//p' "$WORK/fake.out")"
[[ -n "$WORKOS_AUTHKIT_DOMAIN" ]] || die "the emulator printed no WORKOS_AUTHKIT_DOMAIN"
export WORKOS_AUTHKIT_DOMAIN
FAKE_CONTROL="$(sed -n 's/^FAKE_CONTROL_URL=//p' "$WORK/fake.out")"

export MCP_BASE_URL="$PUBLIC" DATABASE_URL="$DB_URL" MCP_HOST=127.0.0.1 MCP_AUTH_RATE_LIMITS=off
export MCP_AUTH_TOKEN_CACHE_SECONDS="$CACHE_SECONDS" MCP_AUTH_USERINFO_CACHE_SECONDS="$CACHE_SECONDS"
MCP_AUTH_ENCRYPTION_KEYS="$(head -c 32 /dev/urandom | base64)"
export MCP_AUTH_ENCRYPTION_KEYS
export RUST_LOG="${RUST_LOG:-warn}"
for name in A B; do
  port_var="PORT_$name"
  (cd "$WORK" && exec env MCP_PORT="${!port_var}" "$BIN/replica" >"$WORK/$name.out" 2>"$WORK/$name.log") &
  PIDS+=($!)
  declare "PID_$name=$!"
  wait_line "$WORK/$name.out" '^READY$' "$!" 30 || die "replica $name did not start"
done
log "$MODE mode: replicas A $A (pid $PID_A) and B $B (pid $PID_B), public URL $PUBLIC," \
  "PostgreSQL database $DB, AuthKit emulator $WORKOS_AUTHKIT_DOMAIN, caches ${CACHE_SECONDS}s"

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
cached() { curl -fsS "$1/bench/stats" | sed -n 's/.*"cached_tokens":\([0-9]*\).*/\1/p'; }
counter() { curl -fsS "$FAKE_CONTROL/counters" | sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"; }

# ---- tokens ----------------------------------------------------------------------------------
MINT=$((TOKENS > MEM_TOKENS + EXTRA_TOKENS ? TOKENS : MEM_TOKENS + EXTRA_TOKENS))
log "minting $MINT distinct access tokens through both replicas (logins, then refresh rotations)"
t0="$(now_ms)"
"$BIN/flow_driver" tokens --public "$PUBLIC" --servers "$A,$B" --count "$MINT" \
  --concurrency 32 --out "$WORK/all-tokens" >"$WORK/mint.out" 2>"$WORK/mint.log" ||
  die "minting tokens failed: $(tail -n 3 "$WORK/mint.log")"
echo "    $(cat "$WORK/mint.out") ($(seconds_since "$t0") s)"
[[ "$(wc -l <"$WORK/all-tokens")" -eq "$MINT" ]] || die "expected $MINT tokens"
[[ "$(sort -u "$WORK/all-tokens" | wc -l)" -eq "$MINT" ]] || die "the minted tokens are not distinct"
head -n "$TOKENS" "$WORK/all-tokens" >"$WORK/tokens"
TOKEN="$(head -n 1 "$WORK/tokens")"

# Sanity, and warm-up of the one-token path on both replicas.
BODY='{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}'
mcp_status() { # URL [TOKEN]
  curl -sS -o /dev/null -w '%{http_code}' -X POST "$1" -H 'Content-Type: application/json' \
    -H 'Accept: application/json, text/event-stream' -H "MCP-Protocol-Version: $MCP_PROTOCOL" \
    ${2:+-H "Authorization: Bearer $2"} -d "$BODY"
}
for server in "$A" "$B"; do
  [[ "$(mcp_status "$server/mcp")" == 401 ]] || die "$server/mcp without a token is not 401"
  [[ "$(mcp_status "$server/mcp" "$TOKEN")" == 200 ]] || die "$server/mcp with a token is not 200"
  [[ "$(mcp_status "$server/open/mcp")" == 200 ]] || die "$server/open/mcp is not 200"
done

cat >"$WORK/wrk-tokens.lua" <<EOF
dofile("$LUA")
local tokens = {}
for line in io.lines("$WORK/tokens") do
  if line ~= "" then table.insert(tokens, line) end
end
local next_token = math.random(#tokens) - 1
function request()
  next_token = next_token % #tokens + 1
  wrk.headers["Authorization"] = "Bearer " .. tokens[next_token]
  return wrk.format()
end
EOF

# run_pair LABEL PATH TOKEN SCRIPT: one wrk per replica, at the same time.
run_pair() {
  local label="$1" path="$2" token="$3" script="$4" name
  echo
  log "$label: wrk -t$THREADS -c$CONNECTIONS -d$DURATION on $A$path and $B$path at once"
  for name in A B; do
    local base_var="$name"
    WRK_LABEL="$label-$name" MCP_TOKEN="$token" wrk -t"$THREADS" -c"$CONNECTIONS" \
      -d"$DURATION" --latency -s "$script" "${!base_var}$path" >"$WORK/$label-$name.wrk" 2>&1 &
    WRK_PIDS+=($!)
  done
  for pid in "${WRK_PIDS[@]}"; do wait "$pid" || die "wrk failed"; done
  WRK_PIDS=()
  for name in A B; do
    grep '^RESULT ' "$WORK/$label-$name.wrk" >"$WORK/$label-$name.result" ||
      die "wrk printed no RESULT line: $(tail -n 5 "$WORK/$label-$name.wrk")"
    echo "    $name: $(cut -d' ' -f2- "$WORK/$label-$name.result")"
  done
}
WRK_PIDS=()

USERINFO_0="$(counter userinfo)"
run_pair open /open/mcp "" "$LUA"
run_pair one-token /mcp "$TOKEN" "$LUA"
RSS_BEFORE="$(rss_kib "$PID_A")"
CACHED_BEFORE="$(cached "$A")"
USERINFO_1="$(counter userinfo)"
# First use of each token (cold): one database lookup each. Every token once on each replica,
# both replicas at once, $CONNECTIONS concurrent requests per replica.
echo
log "$TOKENS tokens, first use (database lookup each): flow_driver touch on A and B at once, $CONNECTIONS concurrent each"
for name in A B; do
  "$BIN/flow_driver" touch --servers "${!name}" --tokens "$WORK/tokens" --concurrency "$CONNECTIONS" \
    >"$WORK/cold-$name.out" 2>"$WORK/cold-$name.log" &
  WRK_PIDS+=($!)
done
for pid in "${WRK_PIDS[@]}"; do wait "$pid" || die "flow_driver touch failed"; done
WRK_PIDS=()
for name in A B; do
  echo "    $name: $(cat "$WORK/cold-$name.out")"
done
USERINFO_2="$(counter userinfo)"
RSS_AFTER="$(rss_kib "$PID_A")"
CACHED_AFTER="$(cached "$A")"
run_pair "$TOKENS-tokens" /mcp "" "$WORK/wrk-tokens.lua"
USERINFO_3="$(counter userinfo)"
# The same token-rotating wrk script against the unprotected route: the baseline of the row
# above (building each request in Lua costs wrk CPU, on the same cores as the servers).
run_pair open-rotating /open/mcp "" "$WORK/wrk-tokens.lua"

echo
log "full OAuth flow: flow_driver flows, ${FLOW_SECONDS}s, $FLOW_CONCURRENCY concurrent, alternating A and B"
"$BIN/flow_driver" flows --public "$PUBLIC" --servers "$A,$B" --duration "$FLOW_SECONDS" \
  --concurrency "$FLOW_CONCURRENCY" >"$WORK/flows.out" 2>"$WORK/flows.log" ||
  die "the flow driver failed: $(tail -n 3 "$WORK/flows.log")"
echo "    $(cat "$WORK/flows.out")"
flow_field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" "$WORK/flows.out"; }

# ---- memory beyond the wrk run (full mode) ---------------------------------------------------
MEM_LINES=()
if ((MEM_TOKENS > 0)); then
  echo
  log "memory: touching $MEM_TOKENS distinct tokens on replica A (one tools/list each)"
  head -n "$MEM_TOKENS" "$WORK/all-tokens" >"$WORK/mem-tokens"
  "$BIN/flow_driver" touch --servers "$A" --tokens "$WORK/mem-tokens" --concurrency 32 \
    >"$WORK/touch-mem.out" 2>"$WORK/touch-mem.log" || die "touch failed"
  echo "    $(cat "$WORK/touch-mem.out")"
  grep -q " ok=$MEM_TOKENS " "$WORK/touch-mem.out" || die "not every token answered 200"
  RSS_MEM="$(rss_kib "$PID_A")"
  CACHED_MEM="$(cached "$A")"
  MEM_LINES+=("after $MEM_TOKENS distinct tokens: RSS $RSS_MEM KiB, cached tokens $CACHED_MEM")
  if ((EXTRA_TOKENS > 0)); then
    log "memory: $EXTRA_TOKENS further distinct tokens on replica A (past the $CACHE_CAPACITY-entry capacity)"
    tail -n "$EXTRA_TOKENS" "$WORK/all-tokens" >"$WORK/extra-tokens"
    "$BIN/flow_driver" touch --servers "$A" --tokens "$WORK/extra-tokens" --concurrency 32 \
      >"$WORK/touch-extra.out" 2>"$WORK/touch-extra.log" || die "touch failed"
    echo "    $(cat "$WORK/touch-extra.out")"
    grep -q " ok=$EXTRA_TOKENS " "$WORK/touch-extra.out" || die "not every token answered 200"
    RSS_EXTRA="$(rss_kib "$PID_A")"
    CACHED_EXTRA="$(cached "$A")"
    MEM_LINES+=("after $EXTRA_TOKENS more: RSS $RSS_EXTRA KiB, cached tokens $CACHED_EXTRA")
  fi
fi

# ---- summary ---------------------------------------------------------------------------------
failed=0
for f in "$WORK"/*.result; do
  label="$(basename "$f" .result)"
  if [[ "$(result_field "$label" non200)" != 0 || "$(result_field "$label" errors)" != 0 ]]; then
    echo "error: $label had $(result_field "$label" non200) non-200 answers (first $(result_field "$label" first_bad_status))" \
      "and $(result_field "$label" errors) socket errors" >&2
    failed=1
  fi
done
for name in A B; do
  grep -q " ok=$TOKENS " "$WORK/cold-$name.out" ||
    { echo "error: first use of the tokens on $name: not every answer 200 ($(cat "$WORK/cold-$name.out"))" >&2; failed=1; }
done
[[ "$(flow_field errors)" == 0 ]] || { echo "error: $(flow_field errors) flows failed ($(flow_field error_kinds))" >&2; failed=1; }
((CACHED_AFTER <= CACHE_CAPACITY)) || { echo "error: $CACHED_AFTER cached tokens > capacity" >&2; failed=1; }
if [[ -n "${CACHED_MEM:-}" ]] && ((CACHED_MEM > CACHE_CAPACITY)); then
  echo "error: $CACHED_MEM cached tokens > capacity" >&2; failed=1
fi
if [[ -n "${CACHED_EXTRA:-}" ]] && ((CACHED_EXTRA > CACHE_CAPACITY)); then
  echo "error: $CACHED_EXTRA cached tokens > capacity after $((MEM_TOKENS + EXTRA_TOKENS)) distinct tokens" >&2; failed=1
fi

sum_rps() { awk -v a="$(result_field "$1-A" rps)" -v b="$(result_field "$1-B" rps)" 'BEGIN { printf "%.0f", a + b }'; }
OPEN_RPS="$(sum_rps open)"
echo
log "summary ($MODE mode; 2 replicas, PostgreSQL; per replica wrk -t$THREADS -c$CONNECTIONS -d$DURATION; tools/list)"
printf '%-14s %10s %8s %16s %16s %10s\n' run 'req/s' ratio 'p50 ms A/B' 'p99 ms A/B' requests
for label in open one-token open-rotating "$TOKENS-tokens"; do
  rps="$(sum_rps "$label")"
  printf '%-14s %10s %8s %16s %16s %10s\n' "$label" "$rps" \
    "$(awk -v r="$rps" -v o="$OPEN_RPS" 'BEGIN { printf "%.3f", r / o }')" \
    "$(result_field "$label-A" p50_ms)/$(result_field "$label-B" p50_ms)" \
    "$(result_field "$label-A" p99_ms)/$(result_field "$label-B" p99_ms)" \
    "$(($(result_field "$label-A" requests) + $(result_field "$label-B" requests)))"
done
cold_field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" "$WORK/cold-$1.out"; }
printf '%-14s %10s %8s %16s %16s %10s\n' "$TOKENS-cold" \
  "$(awk -v a="$(cold_field A rate)" -v b="$(cold_field B rate)" 'BEGIN { printf "%.0f", a + b }')" \
  "$(awk -v a="$(cold_field A rate)" -v b="$(cold_field B rate)" -v o="$OPEN_RPS" 'BEGIN { printf "%.3f", (a + b) / o }')" \
  "$(cold_field A p50_ms)/$(cold_field B p50_ms)" "$(cold_field A p99_ms)/$(cold_field B p99_ms)" \
  "$(($(cold_field A requests) + $(cold_field B requests)))"
echo "$TOKENS-tokens vs open-rotating (the same token-rotating wrk script on the unprotected route):" \
  "$(awk -v r="$(sum_rps "$TOKENS-tokens")" -v o="$(sum_rps open-rotating)" 'BEGIN { printf "%.3f", r / o }')"
echo "($TOKENS-cold: the first use of each token on each replica, a database lookup each, driven by"
echo " flow_driver touch with $CONNECTIONS concurrent requests per replica, not wrk; $TOKENS-tokens: wrk"
echo " rotating through the same tokens afterwards, answered from the cache)"
echo "full OAuth flow (register → whoami), both replicas: $(flow_field rate) logins/s," \
  "p50 $(flow_field p50_ms) ms, p99 $(flow_field p99_ms) ms ($(flow_field ok) logins, $(flow_field errors) failed)"
echo "AuthKit userinfo calls: $((USERINFO_1 - USERINFO_0)) in the open + one-token runs," \
  "$((USERINFO_2 - USERINFO_1)) for the first use of $TOKENS tokens (32 grants, 2 replicas)," \
  "$((USERINFO_3 - USERINFO_2)) in the warm $TOKENS-tokens run"
echo "replica A memory: VmRSS $RSS_BEFORE KiB with $CACHED_BEFORE cached token(s);" \
  "$RSS_AFTER KiB with $CACHED_AFTER after the first use of $TOKENS tokens:" \
  "$(awk -v a="$RSS_AFTER" -v b="$RSS_BEFORE" -v n="$((CACHED_AFTER - CACHED_BEFORE))" \
    'BEGIN { if (n > 0) printf "%+d KiB, %.0f bytes per cached token", a - b, (a - b) * 1024 / n; else printf "%+d KiB", a - b }')"
for line in "${MEM_LINES[@]}"; do echo "replica A memory: $line"; done
if [[ -n "${RSS_MEM:-}" ]]; then
  echo "replica A memory: $(awk -v a="$RSS_MEM" -v b="$RSS_BEFORE" -v n="$((CACHED_MEM - CACHED_BEFORE))" \
    'BEGIN { printf "%+d KiB over the one-token state = %.0f bytes per cached token", a - b, (a - b) * 1024 / n }')"
fi
if [[ -n "${RSS_EXTRA:-}" ]]; then
  echo "replica A memory: $(awk -v a="$RSS_EXTRA" -v b="$RSS_MEM" \
    'BEGIN { printf "%+d KiB (%+.1f%%)", a - b, 100 * (a - b) / b }') past the capacity;" \
    "cache size $CACHED_EXTRA <= $CACHE_CAPACITY: bounded"
fi
echo "total time: $(seconds_since "$SCRIPT_START") s"
exit "$failed"
