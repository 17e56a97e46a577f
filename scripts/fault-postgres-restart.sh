#!/usr/bin/env bash
# Fault test: PostgreSQL stopped and restarted under a request loop, the application left running.
#
# 1. Creates a fresh PostgreSQL database and starts the `bench_proxy_server` example on it with
#    short caches (MCP_AUTH_TOKEN_CACHE_SECONDS=1, MCP_AUTH_USERINFO_CACHE_SECONDS=1), so nearly
#    every request of the loop goes to the database; the server logs in LOAD_TOKENS times
#    itself (FAKE_TOKENS) and `loadtest/src/bin/flow_driver.rs` logs in once more (that login's refresh
#    token is kept for step 5).
# 2. Runs a request loop (MCP tools/list with three access tokens: two of the server's, the
#    driver's; one loop per token, a request every ~50 ms) that notes every status and
#    Retry-After header, and in the background wrk (scripts/wrk-status.lua) rotating through all
#    LOAD_TOKENS tokens (8 connections, 5 ms pause between requests), which counts statuses.
# 3. Stops PostgreSQL (`pg_ctlcluster ... stop -m fast`) for OUTAGE_SECONDS. Meanwhile: a refresh
#    with the kept refresh token, and a whole new login, must answer 503 `temporarily_unavailable`
#    with Retry-After; the unprotected /open/mcp and /healthz must still answer 200.
# 4. Starts PostgreSQL again; the application is NOT restarted (its pid is checked).
# 5. Asserts:
#    * before the outage every request answered 200;
#    * during the outage every request answered 200 (from the in-process cache) or 503 with a
#      Retry-After header, never 401, 500 or anything else, and cache misses did happen (503s);
#      wrk saw only 200 and 503 (with Retry-After), no socket error or timeout;
#    * after PostgreSQL is back, every answer is 200 from at most RECOVERY_SECONDS on, and no
#      401/500 ever;
#    * the refresh token refused during the outage still works afterwards (not burned), and its
#      new access token works;
#    * the number of grants (mcp_auth_grants) and of live tokens is unchanged by the outage (no
#      grant lost or duplicated), and the three access tokens from before still answer 200;
#    * a login after the outage works.
#
# Exits non-zero on any failed assertion. PostgreSQL is started again by an EXIT trap whatever
# happens (also on Ctrl-C), and the database is dropped.
#
# Usage: scripts/fault-postgres-restart.sh
# Environment (all optional):
#   PG_ADMIN_URL=postgres://postgres@127.0.0.1:5432/postgres   superuser connection
#   PG_VERSION, PG_CLUSTER=main     the cluster pg_ctlcluster stops and starts (default version:
#                                   the newest in /etc/postgresql)
#   PG_DATA_DIR=                    instead: stop and start the cluster in this data directory with
#                                   `pg_ctl` (e.g. a private cluster: PG_DATA_DIR=/tmp/pgperf/data
#                                   PG_ADMIN_URL=postgres://postgres@127.0.0.1:55432/postgres)
#   PG_CTL=/usr/lib/postgresql/<PG_VERSION>/bin/pg_ctl, PG_CTL_USER=postgres, PG_CTL_OPTIONS=
#                                   with PG_DATA_DIR: the pg_ctl binary, the user it runs as, and
#                                   its -o options when starting (e.g. "-p 55432 -k /tmp/pgperf")
#   MCP_AUTH_DB_ACQUIRE_TIMEOUT_SECONDS, MCP_AUTH_DB_MAX_CONNECTIONS   passed to the server
#   OUTAGE_SECONDS=5                how long PostgreSQL stays down
#   LOAD_TOKENS=50                  logins of the server, whose tokens the wrk load rotates through
#   WRK_CONNECTIONS=8, WRK_DELAY_MS=5   the wrk load
#   RECOVERY_SECONDS=10             the longest allowed time from "PostgreSQL accepts
#                                   connections" to "every answer is 200"
#   OBSERVE_SECONDS=                how long the loop keeps running after PostgreSQL is back
#                                   (default RECOVERY_SECONDS + 3)
#   PROFILE=release                 or debug: which build of the examples to use (debug: quicker to
#                                   build; its numbers are not performance numbers)
#   SKIP_BUILD=1                    use the already built examples
#   KEEP_WORK=1                     keep the work directory (logs, request log)
#
# Requires: cargo, curl, wrk, psql, pg_ctlcluster (Debian/Ubuntu postgresql-common), pg_isready, and
# permission to stop and start the cluster (root or the postgres user).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
PG_ADMIN_URL="${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
PG_VERSION="${PG_VERSION:-$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)}"
PG_CLUSTER="${PG_CLUSTER:-main}"
OUTAGE_SECONDS="${OUTAGE_SECONDS:-5}"
RECOVERY_SECONDS="${RECOVERY_SECONDS:-10}"
OBSERVE_SECONDS="${OBSERVE_SECONDS:-$((RECOVERY_SECONDS + 3))}"
LOAD_TOKENS="${LOAD_TOKENS:-50}"
MCP_PROTOCOL="2025-06-18"
export MCP_PROTOCOL


PG_DATA_DIR="${PG_DATA_DIR:-}"
PG_CTL="${PG_CTL:-/usr/lib/postgresql/$PG_VERSION/bin/pg_ctl}"
PG_CTL_USER="${PG_CTL_USER:-postgres}"
PG_CTL_OPTIONS="${PG_CTL_OPTIONS:-}"
for tool in curl psql pg_isready wrk; do
  command -v "$tool" >/dev/null || die "$tool not found"
done
if [[ -n "$PG_DATA_DIR" ]]; then
  [[ -x "$PG_CTL" ]] || die "pg_ctl not found at $PG_CTL; set PG_CTL"
  PG_WHAT="the cluster in $PG_DATA_DIR"
else
  command -v pg_ctlcluster >/dev/null || die "pg_ctlcluster not found"
  [[ -n "$PG_VERSION" ]] || die "no PostgreSQL cluster found in /etc/postgresql; set PG_VERSION"
  PG_WHAT="PostgreSQL $PG_VERSION/$PG_CLUSTER"
fi
# pg_ctl refuses to run as root: run it as PG_CTL_USER then.
pg_ctl_run() {
  if [[ "$(id -u)" == 0 ]]; then
    su "$PG_CTL_USER" -s /bin/sh -c "$(printf '%q ' "$PG_CTL" "$@")"
  else
    "$PG_CTL" "$@"
  fi
}
pg_stop() {
  if [[ -n "$PG_DATA_DIR" ]]; then
    pg_ctl_run -D "$PG_DATA_DIR" -m fast -w stop >/dev/null
  else
    pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" "$PG_CLUSTER" stop -m fast
  fi
}

build_programs "$ROOT" release bench_proxy_server flow_driver

pg_up() { pg_isready -d "$PG_ADMIN_URL" -q 2>/dev/null; }
pg_start() {
  if [[ -n "$PG_DATA_DIR" ]]; then
    pg_ctl_run -D "$PG_DATA_DIR" -o "$PG_CTL_OPTIONS" -l "$PG_DATA_DIR/restart.log" start >/dev/null 2>&1 || true
  else
    pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" "$PG_CLUSTER" start >/dev/null 2>&1 || true
  fi
  for _ in $(seq 1 100); do
    pg_up && return 0
    sleep 0.1
  done
  return 1
}

pg_up || die "PostgreSQL is not running at $PG_ADMIN_URL"

WORK="$(mktemp -d)"
DB="mcp_fault_pg_$$_$RANDOM"
DB_URL="${PG_ADMIN_URL%/*}/$DB"
SERVER_PID=""
LOOP_PID=""
WRK_PID=""
cleanup() {
  local status=$?
  set +e
  for pid in $LOOP_PID $WRK_PID; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
  [[ -n "$SERVER_PID" ]] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  # Whatever happened: PostgreSQL must be running when we leave.
  if ! pg_up; then
    echo "restarting PostgreSQL (cleanup)" >&2
    pg_start || echo "error: $PG_WHAT did not start again; start it by hand" >&2
  fi
  psql "$PG_ADMIN_URL" -XAtqc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1
  if [[ $status -ne 0 && -s "$WORK/server.log" ]]; then
    echo "--- server.log (last 30 lines)" >&2
    tail -n 30 "$WORK/server.log" >&2
  fi
  if [[ "${KEEP_WORK:-}" == 1 ]]; then
    echo "work directory kept: $WORK" >&2
  else
    rm -rf "$WORK"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM


psql "$PG_ADMIN_URL" -XAtqc "CREATE DATABASE $DB" >/dev/null
PORT="$(free_port)" || die "no free port"
BASE="http://127.0.0.1:$PORT"

log "starting bench_proxy_server on $BASE (database $DB, 1 s caches, $LOAD_TOKENS logins)"
(cd "$WORK" && exec env MCP_BASE_URL="$BASE" MCP_HOST=127.0.0.1 MCP_PORT="$PORT" \
  DATABASE_URL="$DB_URL" FAKE_TOKENS="$LOAD_TOKENS" MCP_AUTH_TOKEN_CACHE_SECONDS=1 \
  MCP_AUTH_USERINFO_CACHE_SECONDS=1 MCP_AUTH_RATE_LIMITS=off RUST_LOG="${RUST_LOG:-warn}" \
  MCP_AUTH_DB_ACQUIRE_TIMEOUT_SECONDS="${MCP_AUTH_DB_ACQUIRE_TIMEOUT_SECONDS:-}" \
  MCP_AUTH_DB_MAX_CONNECTIONS="${MCP_AUTH_DB_MAX_CONNECTIONS:-}" \
  "$BIN/bench_proxy_server" >"$WORK/server.out" 2>"$WORK/server.log") &
SERVER_PID=$!
for _ in $(seq 1 300); do
  grep -q '^READY$' "$WORK/server.out" 2>/dev/null && break
  kill -0 "$SERVER_PID" 2>/dev/null || die "bench_proxy_server exited early"
  sleep 0.1
done
grep -q '^READY$' "$WORK/server.out" || die "bench_proxy_server did not log in within 30 s"
sed -n 's/^TOKEN=//p' "$WORK/server.out" >"$WORK/load-tokens"
[[ "$(wc -l <"$WORK/load-tokens")" -eq "$LOAD_TOKENS" ]] || die "expected $LOAD_TOKENS tokens"
head -n 2 "$WORK/load-tokens" >"$WORK/tokens"

"$BIN/flow_driver" login --public "$BASE" >"$WORK/login.out" || die "the third login failed: $(cat "$WORK/login.out")"
sed -n 's/^ACCESS_TOKEN=//p' "$WORK/login.out" >>"$WORK/tokens"
CLIENT_ID="$(sed -n 's/^CLIENT_ID=//p' "$WORK/login.out")"
REFRESH="$(sed -n 's/^REFRESH_TOKEN=//p' "$WORK/login.out")"
[[ "$(wc -l <"$WORK/tokens")" -eq 3 && -n "$REFRESH" && -n "$CLIENT_ID" ]] ||
  die "expected 3 access tokens and a refresh token"
mapfile -t TOKENS <"$WORK/tokens"
log "$((LOAD_TOKENS + 1)) logins done ($LOAD_TOKENS by the server, 1 by flow_driver with its refresh token kept)"

count_sql() { psql "$DB_URL" -XAtqc "$1"; }
GRANTS_SQL="SELECT count(*) || '/' || count(*) FILTER (WHERE revoked_at IS NULL) FROM mcp_auth_grants"
LIVE_TOKENS_SQL="SELECT count(*) FROM mcp_auth_tokens WHERE revoked_at IS NULL AND rotated_at IS NULL"
GRANTS_BEFORE="$(count_sql "$GRANTS_SQL")"
LIVE_BEFORE="$(count_sql "$LIVE_TOKENS_SQL")"
GRANTS_EXPECTED="$((LOAD_TOKENS + 1))/$((LOAD_TOKENS + 1))"
[[ "$GRANTS_BEFORE" == "$GRANTS_EXPECTED" ]] ||
  die "expected $GRANTS_EXPECTED grants before the outage, found $GRANTS_BEFORE (rows/unrevoked)"
log "grants before: $GRANTS_BEFORE (rows/unrevoked), live tokens: $LIVE_BEFORE"

# mcp TOKEN -> "status retry-after" (retry-after '-' when absent; status 000 on no answer)
mcp() {
  local headers status retry
  headers="$(curl -sS -m 10 -o /dev/null -D - -X POST "$BASE/mcp" \
    -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
    -H "MCP-Protocol-Version: $MCP_PROTOCOL" -H "Authorization: Bearer $1" \
    -d '{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}' 2>/dev/null)" || true
  status="$(sed -n '1s/^HTTP\/[0-9.]* \([0-9]*\).*/\1/p' <<<"$headers")"
  retry="$(grep -i '^retry-after:' <<<"$headers" | cut -d: -f2 | tr -d ' \r')"
  echo "${status:-000} ${retry:--}"
}

for i in 0 1 2; do
  read -r status _ <<<"$(mcp "${TOKENS[$i]}")"
  [[ "$status" == 200 ]] || die "token $i answered $status before the outage"
done

# The request loop, one loop per token (a request to the database may wait for the pool's
# acquire timeout): "start_ms token_index status retry_after end_ms" per request.
request_loop() {
  local i="$1" start answer
  while [[ ! -e "$WORK/stop-loop" ]]; do
    start="$(now_ms)"
    answer="$(mcp "${TOKENS[$i]}")"
    echo "$start $i $answer $(now_ms)"
    sleep 0.05
  done >"$WORK/requests.$i.log"
}
LOOP_PIDS=()
for i in 0 1 2; do
  request_loop "$i" &
  LOOP_PIDS+=($!)
done
LOOP_PID="${LOOP_PIDS[*]}"
# Background load over all the server's tokens (each looked up in the database about once a
# second), stopped with SIGINT after the observation period (wrk then prints its summary).
WRK_TOKENS_FILE="$WORK/load-tokens" WRK_DELAY_MS="${WRK_DELAY_MS:-5}" \
  wrk -t1 -c"${WRK_CONNECTIONS:-8}" -d600s --timeout 20s -s "$ROOT/scripts/wrk-status.lua" \
  "$BASE/mcp" >"$WORK/wrk.out" 2>&1 &
WRK_PID=$!

sleep 2
T_STOP="$(now_ms)"
log "stopping $PG_WHAT for ${OUTAGE_SECONDS}s"
pg_stop
T_STOPPED="$(now_ms)"
pg_up && die "PostgreSQL still accepts connections after stop"

failures=()
check() { # check DESCRIPTION COMMAND... : records a failed assertion instead of exiting
  local what="$1"; shift
  if "$@"; then echo "    ok: $what"; else echo "    FAILED: $what" >&2; failures+=("$what"); fi
}

sleep 0.5
# During the outage, at the same time (each may wait for the pool's acquire timeout): a refresh,
# a whole new login, the unprotected MCP route and /healthz.
refresh() {
  curl -sS -m 15 -o "$WORK/refresh.body" -D "$WORK/refresh.headers" -w '%{http_code}' \
    -X POST "$BASE/token" --data-urlencode grant_type=refresh_token \
    --data-urlencode "refresh_token=$REFRESH" --data-urlencode "client_id=$CLIENT_ID" \
    --data-urlencode "resource=$BASE/mcp" 2>/dev/null || echo 000
}
timed() { # timed NAME COMMAND...: COMMAND's stdout in $WORK/NAME.out, its duration (ms) in $WORK/NAME.ms
  local name="$1" start; shift
  start="$(now_ms)"
  "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" || true
  echo $(($(now_ms) - start)) >"$WORK/$name.ms"
}
timed outage-refresh refresh &
timed outage-login "$BIN/flow_driver" login --public "$BASE" &
timed outage-open curl -sS -m 5 -o /dev/null -w '%{http_code}' -X POST "$BASE/open/mcp" \
  -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
  -H "MCP-Protocol-Version: $MCP_PROTOCOL" \
  -d '{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}' &
timed outage-health curl -sS -m 5 -o /dev/null -w '%{http_code}' "$BASE/healthz" &
for job in outage-refresh outage-login outage-open outage-health; do
  for _ in $(seq 1 600); do
    [[ -s "$WORK/$job.ms" ]] && break
    sleep 0.05
  done
  [[ -s "$WORK/$job.ms" ]] || echo "0" >"$WORK/$job.ms"
done
status="$(cat "$WORK/outage-refresh.out")"
check "refresh during the outage: 503 (got $status after $(cat "$WORK/outage-refresh.ms") ms)" test "$status" = 503
check "refresh during the outage: error temporarily_unavailable ($(head -c 200 "$WORK/refresh.body"))" \
  grep -q '"error":"temporarily_unavailable"' "$WORK/refresh.body"
check "refresh during the outage: Retry-After" grep -qi '^retry-after:' "$WORK/refresh.headers"
check "login during the outage fails cleanly after $(cat "$WORK/outage-login.ms") ms: $(grep '^LOGIN_FAILED' "$WORK/outage-login.out" || echo 'no LOGIN_FAILED line')" \
  grep -q '^LOGIN_FAILED .*status=503 error=temporarily_unavailable' "$WORK/outage-login.out"
check "unprotected /open/mcp during the outage: 200 (got $(cat "$WORK/outage-open.out") after $(cat "$WORK/outage-open.ms") ms)" \
  test "$(cat "$WORK/outage-open.out")" = 200
check "/healthz during the outage: 200 (got $(cat "$WORK/outage-health.out"))" \
  test "$(cat "$WORK/outage-health.out")" = 200

remaining_ms=$((OUTAGE_SECONDS * 1000 - ($(now_ms) - T_STOPPED)))
((remaining_ms > 0)) && sleep "$(awk -v ms="$remaining_ms" 'BEGIN { printf "%.3f", ms / 1000 }')"
T_START="$(now_ms)"
log "starting PostgreSQL again (it was down $(((T_START - T_STOPPED) / 1000)) s)"
pg_start || die "PostgreSQL did not start again"
T_UP="$(now_ms)"
log "PostgreSQL accepts connections again after $((T_UP - T_START)) ms; observing ${OBSERVE_SECONDS}s"
sleep "$OBSERVE_SECONDS"
touch "$WORK/stop-loop"
for pid in $LOOP_PID; do wait "$pid" || true; done
LOOP_PID=""
kill -INT "$WRK_PID" 2>/dev/null || true
wait "$WRK_PID" || true
WRK_PID=""
sort -n "$WORK"/requests.?.log >"$WORK/requests.log"

check "the application was not restarted (pid $SERVER_PID alive)" kill -0 "$SERVER_PID"

# ---- the request log -------------------------------------------------------------------------
echo
log "request loop: $(wc -l <"$WORK/requests.log") requests"
awk -v stop="$T_STOP" -v up="$T_UP" '
  { phase = ($1 < stop) ? "before" : ($1 <= up ? "outage" : "after")
    n[phase]++; s[phase " " $3]++
    if ($3 == 503 && $4 == "-") noretry[phase]++ }
  END {
    split("before outage after", order, " ")
    for (k = 1; k <= 3; k++) {
      p = order[k]; line = sprintf("    %-7s %5d requests:", p, n[p])
      for (key in s) { split(key, f, " "); if (f[1] == p) line = line sprintf(" %s x%d", f[2], s[key]) }
      if (noretry[p]) line = line sprintf(" (503 without Retry-After: %d)", noretry[p])
      print line
    }
  }' "$WORK/requests.log"

awk '$3 == 503 { n++; ms = $5 - $1; sum += ms; if (ms > max) max = ms; if (min == "" || ms < min) min = ms }
  END { if (n) printf "    503 answers took %d..%d ms (mean %d ms)\n", min, max, sum / n }' "$WORK/requests.log"
# Latency percentiles (curl's wall time, process start included) of the loop's answers while
# PostgreSQL was down, per status: the fail-fast numbers of the README.
for code in 503 200; do
  awk -v stop="$T_STOP" -v up="$T_UP" -v code="$code" \
    '$1 >= stop && $1 <= up && $3 == code { print $5 - $1 }' "$WORK/requests.log" | sort -n >"$WORK/outage-$code.ms"
  n="$(wc -l <"$WORK/outage-$code.ms")"
  if ((n > 0)); then
    pct() { sed -n "$(( ($1 * n + 99) / 100 ))p" "$WORK/outage-$code.ms"; }
    echo "    LATENCY during the outage: status=$code n=$n p50=$(pct 50)ms p99=$(pct 99)ms max=$(tail -n 1 "$WORK/outage-$code.ms")ms"
  fi
done
bad_before="$(awk -v stop="$T_STOP" '$1 < stop && $3 != 200' "$WORK/requests.log" | wc -l)"
check "before the outage: every answer 200 ($bad_before others)" test "$bad_before" -eq 0
unexpected="$(awk '$3 != 200 && $3 != 503' "$WORK/requests.log" | wc -l)"
check "never anything but 200 or 503 (no 401, no 500, no dropped request): $unexpected others$(
  awk '$3 != 200 && $3 != 503 { printf " [%s]", $3 }' "$WORK/requests.log" | head -c 200)" \
  test "$unexpected" -eq 0
no_retry="$(awk '$3 == 503 && $4 == "-"' "$WORK/requests.log" | wc -l)"
check "every 503 carries Retry-After ($no_retry without)" test "$no_retry" -eq 0
outage_503="$(awk -v stop="$T_STOP" -v up="$T_UP" '$1 >= stop && $1 <= up && $3 == 503' "$WORK/requests.log" | wc -l)"
check "cache misses during the outage answered 503 ($outage_503 of them)" test "$outage_503" -gt 0
for i in 0 1 2; do
  n="$(awk -v stop="$T_STOP" -v up="$T_UP" -v i="$i" '$1 >= stop && $1 <= up && $2 == i && $3 == 503' "$WORK/requests.log" | wc -l)"
  check "token $i saw the outage (503 x$n)" test "$n" -gt 0
done
last_bad="$(awk -v up="$T_UP" '$1 > up && $3 != 200 { last = $1 } END { print last + 0 }' "$WORK/requests.log")"
if [[ "$last_bad" -eq 0 ]]; then
  recovery_ms=0
else
  recovery_ms=$((last_bad - T_UP))
fi
check "full recovery within ${RECOVERY_SECONDS}s of PostgreSQL accepting connections (last non-200 at +${recovery_ms} ms)" \
  test "$recovery_ms" -le $((RECOVERY_SECONDS * 1000))
after_ok="$(awk -v t="$((T_UP + recovery_ms))" '$1 > t && $3 == 200' "$WORK/requests.log" | wc -l)"
check "answers after recovery: 200 ($after_ok of them)" test "$after_ok" -ge 9

STATUSES="$(grep '^STATUSES ' "$WORK/wrk.out" || true)"
echo "    wrk load over $LOAD_TOKENS tokens during the whole test: ${STATUSES#STATUSES }"
wrk_field() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<<"$STATUSES"; }
check "wrk load: a summary was printed" test -n "$STATUSES"
others="$(tr ' ' '\n' <<<"${STATUSES#STATUSES }" | grep -E '^[0-9]{3}=' | grep -vE '^(200|503)=' || true)"
check "wrk load: only 200 and 503 answers (others: ${others:-none})" test -z "$others"
check "wrk load: no socket errors or timeouts ($(wrk_field errors))" test "$(wrk_field errors)" = 0
check "wrk load: every 503 carries Retry-After ($(wrk_field no_retry_after) without)" test "$(wrk_field no_retry_after)" = 0
check "wrk load: the outage was seen (503 x$(wrk_field 503))" test "$(wrk_field 503 || echo 0)" -gt 0

# ---- state after the outage ------------------------------------------------------------------
echo
log "after the outage"
for i in 0 1 2; do
  read -r status _ <<<"$(mcp "${TOKENS[$i]}")"
  check "access token $i from before the outage: 200 (got $status)" test "$status" = 200
done
GRANTS_AFTER="$(count_sql "$GRANTS_SQL")"
LIVE_AFTER="$(count_sql "$LIVE_TOKENS_SQL")"
check "grants unchanged: $GRANTS_BEFORE before, $GRANTS_AFTER after (rows/unrevoked)" \
  test "$GRANTS_AFTER" = "$GRANTS_BEFORE"
check "live tokens unchanged: $LIVE_BEFORE before, $LIVE_AFTER after" test "$LIVE_AFTER" = "$LIVE_BEFORE"
status="$(refresh)"
check "the refresh token refused during the outage still works: 200 (got $status: $(head -c 200 "$WORK/refresh.body"))" \
  test "$status" = 200
NEW_ACCESS="$(sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p' "$WORK/refresh.body")"
if [[ -n "$NEW_ACCESS" ]]; then
  read -r status _ <<<"$(mcp "$NEW_ACCESS")"
  check "the refreshed access token: 200 (got $status)" test "$status" = 200
fi
GRANTS_FINAL="$(count_sql "$GRANTS_SQL")"
check "the refresh kept the grant count: $GRANTS_FINAL" test "$GRANTS_FINAL" = "$GRANTS_BEFORE"
"$BIN/flow_driver" login --public "$BASE" >"$WORK/after-login.out" 2>&1 || true
check "a new login after the outage works" grep -q '^SUBJECT=' "$WORK/after-login.out"
check "the new login added exactly one grant" test "$(count_sql "$GRANTS_SQL")" = "$((LOAD_TOKENS + 2))/$((LOAD_TOKENS + 2))"

echo
if ((${#failures[@]})); then
  echo "FAIL: ${#failures[@]} assertion(s) failed:" >&2
  printf '  - %s\n' "${failures[@]}" >&2
  exit 1
fi
echo "PASS: PostgreSQL down ${OUTAGE_SECONDS}s under load: 503 + Retry-After meanwhile, recovered" \
  "in ${recovery_ms} ms without restarting the application, no grant lost or duplicated"
