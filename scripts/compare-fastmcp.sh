#!/usr/bin/env bash
# Side by side with FastMCP (issue 12 §5): our two modes and FastMCP's two WorkOS providers,
# against the same AuthKit emulator, under the same load and the same login driver, in one run.
#
#   scripts/compare-fastmcp.sh            # full: release build, 10 s wrk runs, 10 s of logins,
#                                         # 10,000 tokens (about 20 minutes, most of it FastMCP's
#                                         # proxy minting and using its 10,000 tokens)
#   SHORT=1 scripts/compare-fastmcp.sh    # CI: debug build, 3 s runs, 2 s of logins, 1,000 tokens
#                                         # (50 in proxy mode)
#
# AuthKit mode (resource server): the `fake_authkit` example (the emulator: JWKS, RS256 tokens
# it mints) with `bench_server` (ours) and FastMCP's `AuthKitProvider`. Both servers are
# configured with one public resource URL (as two replicas behind one load balancer), so the
# emulator's tokens, whose audience is that URL, are valid for both.
# Proxy mode: `replica fake-authkit` (the emulator with a Connect application whose redirect
# URIs are both servers' callbacks) with `replica` (ours; SQLite, its defaults, rate limits off
# since every request comes from one address) and FastMCP's `WorkOSProvider` (its defaults:
# consent page, encrypted file store under FASTMCP_HOME).
# FastMCP's servers are scripts/compare/fastmcp_server.py: one uvicorn worker, the `whoami`
# tool at /mcp behind the provider and at /open/mcp without auth, stateless JSON like ours.
#
# Measured for each server, one server at a time:
#   * wrk with scripts/wrk-mcp.lua (MCP `tools/list`) on /open/mcp, then on /mcp with a bearer
#     token: req/s of each, their ratio, and the server's CPU per protected request
#     (utime+stime of /proc/PID/stat, children included, over the run / requests);
#   * proxy mode: full logins by scripts/compare/login_driver.py (register -> authorize ->
#     consent page -> emulator -> callback -> token) for LOGIN_SECONDS: logins/s and the
#     server's CPU per login (AuthKit mode has no server-side login);
#   * memory: VmRSS after TOKENS distinct tokens were used once each (`flow_driver touch`: one
#     tools/list per token). AuthKit mode: tokens the emulator minted. Proxy mode: tokens each
#     server issued itself, minted by the same driver for both (`login_driver.py tokens`:
#     LOGIN_CONCURRENCY logins, then refresh-token chains, each refresh a new access token;
#     FastMCP logs in at ~9/s but refreshes much faster); VmRSS is read before minting, after
#     minting (what the server holds for its issued tokens) and after the touch (what it keeps
#     for tokens in use). PROXY_TOKENS sets the proxy-mode count (default TOKENS).
# Prints one markdown table plus versions and date. Fails (exit 1) when a measurement could not
# be taken: a server did not start or answered a sanity check wrongly, a login failed, wrk saw
# a non-200 answer or a socket error, a token was refused. Never on the numbers themselves.
#
# FastMCP 4.2.3 and its dependencies (scripts/compare/requirements.txt, pinned) are installed
# once into a virtualenv under ~/.cache/actix-mcp-auth/fastmcp (COMPARE_CACHE overrides).
# Nothing of FastMCP is vendored. Everything listens on and connects to 127.0.0.1; FastMCP's
# update check is off and every URL it knows is the emulator's.
#
# Environment (all optional; defaults short / full):
#   PROFILE=debug/release  build of our servers (debug numbers are not performance numbers)
#   DURATION=3s/10s        each wrk run          THREADS=2 CONNECTIONS=32   wrk
#   LOGIN_SECONDS=2/10     the login driver      LOGIN_CONCURRENCY=8        its logins at once
#   TOKENS=1000/10000      distinct tokens of the memory measurement
#   PROXY_TOKENS=50/TOKENS the same in proxy mode. FastMCP's proxy refreshes ~15 tokens/s and
#                          answers ~30 requests/s here (a userinfo call per request): 10,000
#                          take about 17 minutes of the full run
#   SKIP_BUILD=1           use what is built     KEEP_WORK=1                keep logs
#
# Requires: cargo, curl, jq, openssl, python3 (with venv), wrk.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
LUA="$ROOT/scripts/wrk-mcp.lua"
if [[ "${SHORT:-}" == 1 ]]; then
  MODE=short DEFAULT_PROFILE=debug
  DURATION="${DURATION:-3s}" LOGIN_SECONDS="${LOGIN_SECONDS:-2}" TOKENS="${TOKENS:-1000}"
  PROXY_TOKENS="${PROXY_TOKENS:-50}"
else
  MODE=full DEFAULT_PROFILE=release
  DURATION="${DURATION:-10s}" LOGIN_SECONDS="${LOGIN_SECONDS:-10}" TOKENS="${TOKENS:-10000}"
  PROXY_TOKENS="${PROXY_TOKENS:-$TOKENS}"
fi
THREADS="${THREADS:-2}"
CONNECTIONS="${CONNECTIONS:-32}"
LOGIN_CONCURRENCY="${LOGIN_CONCURRENCY:-8}"
MCP_PROTOCOL="${MCP_PROTOCOL:-2025-06-18}"
export MCP_PROTOCOL
[[ "$TOKENS" =~ ^[1-9][0-9]*$ && "$PROXY_TOKENS" =~ ^[1-9][0-9]*$ ]] \
  || die "TOKENS and PROXY_TOKENS must be positive numbers"

for tool in curl jq openssl python3 sha256sum wrk; do
  command -v "$tool" >/dev/null || die "$tool is required"
done

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

# fastmcp_venv: FastMCP (pinned) in a virtualenv keyed by the requirements file; sets FASTMCP_PY.
fastmcp_venv() {
  local dir stamp venv
  dir="${COMPARE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/actix-mcp-auth/fastmcp}"
  stamp="$(sha256sum "$ROOT/scripts/compare/requirements.txt" | cut -c1-16)"
  venv="$dir/venv-$stamp"
  FASTMCP_PY="$venv/bin/python"
  if [[ -x "$FASTMCP_PY" && -e "$venv/.complete" ]]; then return 0; fi
  log "installing FastMCP (pinned, scripts/compare/requirements.txt) into $venv"
  mkdir -p "$dir"
  rm -rf "$venv"
  python3 -m venv "$venv" \
    || { apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null && python3 -m venv "$venv"; } \
    || die "cannot create a Python venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$ROOT/scripts/compare/requirements.txt" \
    || die "pip install of FastMCP failed"
  touch "$venv/.complete"
}

build_programs "$ROOT" "$DEFAULT_PROFILE" fake_authkit bench_server replica flow_driver
fastmcp_venv
# FastMCP stays on loopback and quiet: no update check, no banner, its files in WORK, and
# no proxy between it and the emulator.
export FASTMCP_CHECK_FOR_UPDATES=off FASTMCP_SHOW_SERVER_BANNER=false FASTMCP_LOG_LEVEL=WARNING
export FASTMCP_HOME="$WORK/fastmcp-home" NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost
# No __pycache__ in the checkout.
export PYTHONDONTWRITEBYTECODE=1
unset HTTP_PROXY HTTPS_PROXY ALL_PROXY http_proxy https_proxy all_proxy
export RUST_LOG="${RUST_LOG:-warn}"
CLK_TCK="$(getconf CLK_TCK)"
# The machine may be shared: its load when the measurements start goes into the report.
LOAD_AT_START="$(cut -d' ' -f1-3 /proc/loadavg)"

# ---- measurements ------------------------------------------------------------------------------

# cpu_ticks PID: utime + stime + cutime + cstime of PID, in clock ticks (fields 14-17 of
# /proc/PID/stat, counted after the command name, which may hold spaces).
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 + $14 + $15 }'; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

BODY_LIST='{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}'
BODY_WHOAMI='{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"whoami","arguments":{}}}'
# mcp_post URL BODY [TOKEN]: prints the HTTP status; the answer is in WORK/body.
mcp_post() {
  curl -sS -o "$WORK/body" -w '%{http_code}' --max-time 30 -X POST "$1" \
    -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
    -H "MCP-Protocol-Version: $MCP_PROTOCOL" ${3:+-H "Authorization: Bearer $3"} -d "$2"
}

# sanity NAME BASE TOKEN SUBJECT: 401 without a token, tools/list 200 on both endpoints, and
# whoami answers SUBJECT with the token.
sanity() {
  local name="$1" base="$2" token="$3" subject="$4" status
  status="$(mcp_post "$base/mcp" "$BODY_LIST")"
  [[ "$status" == 401 ]] || die "$name: /mcp without a token answered $status, expected 401"
  status="$(mcp_post "$base/mcp" "$BODY_LIST" "$token")"
  [[ "$status" == 200 ]] && grep -q '"tools"' "$WORK/body" \
    || die "$name: tools/list with the token answered $status: $(head -c 300 "$WORK/body")"
  status="$(mcp_post "$base/open/mcp" "$BODY_LIST")"
  [[ "$status" == 200 ]] && grep -q '"tools"' "$WORK/body" \
    || die "$name: /open/mcp answered $status: $(head -c 300 "$WORK/body")"
  status="$(mcp_post "$base/mcp" "$BODY_WHOAMI" "$token")"
  [[ "$status" == 200 ]] && grep -q "$subject" "$WORK/body" \
    || die "$name: whoami answered $status without $subject: $(head -c 300 "$WORK/body")"
}

# run_wrk KEY URL TOKEN PID: one wrk run; leaves WORK/KEY.result (wrk-mcp.lua's RESULT line)
# and WORK/KEY.cpu (the server's CPU ticks over the run).
run_wrk() {
  local key="$1" url="$2" token="$3" pid="$4" before
  log "$key: wrk -t$THREADS -c$CONNECTIONS -d$DURATION $url"
  before="$(cpu_ticks "$pid")"
  # A 10 s timeout (wrk's default is 2 s): FastMCP's proxy answers in about a second under
  # this load, and a slow answer is a number to report, not a failed run.
  WRK_LABEL="$key" MCP_TOKEN="$token" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" \
    --timeout 10s --latency -s "$LUA" "$url" >"$WORK/$key.wrk" 2>&1 || die "wrk failed: $(tail -n 3 "$WORK/$key.wrk")"
  echo $(($(cpu_ticks "$pid") - before)) >"$WORK/$key.cpu"
  grep '^RESULT ' "$WORK/$key.wrk" >"$WORK/$key.result" || die "wrk printed no RESULT line"
  echo "    $(cut -d' ' -f3- "$WORK/$key.result")" >&2
  [[ "$(field "$key" non200)" == 0 && "$(field "$key" errors)" == 0 ]] \
    || die "$key: $(field "$key" non200) non-200 answers (first $(field "$key" first_bad_status)) and $(field "$key" errors) socket errors"
  (($(field "$key" requests) > 0)) || die "$key: no request completed in $DURATION"
}
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" "$WORK/$1.result"; }
# cpu_us KEY: the server's CPU per request of a wrk run, in µs.
cpu_us() {
  awk -v t="$(cat "$WORK/$1.cpu")" -v n="$(field "$1" requests)" -v hz="$CLK_TCK" \
    'BEGIN { printf "%.0f", t / hz * 1e6 / n }'
}

# load KEY BASE TOKEN PID: the open run, then the protected one.
load() {
  run_wrk "$1-open" "$2/open/mcp" "" "$4"
  run_wrk "$1-protected" "$2/mcp" "$3" "$4"
}

# logins KEY BASE PID: the login driver for LOGIN_SECONDS; WORK/KEY.logins holds its LOGINS
# line plus cpu_ticks=N, WORK/KEY.token the access token of one login.
logins() {
  local key="$1" base="$2" pid="$3" before
  log "$key: login driver, ${LOGIN_SECONDS}s, $LOGIN_CONCURRENCY at once, $base"
  before="$(cpu_ticks "$pid")"
  "$FASTMCP_PY" "$ROOT/scripts/compare/login_driver.py" "$base" "$base/mcp" "$LOGIN_SECONDS" \
    "$LOGIN_CONCURRENCY" "$WORK/$key.token" >"$WORK/$key.logins" 2>"$WORK/$key-driver.log" \
    || die "$key: logins failed: $(cat "$WORK/$key.logins") $(tail -n 3 "$WORK/$key-driver.log")"
  echo "cpu_ticks=$(($(cpu_ticks "$pid") - before))" >>"$WORK/$key.logins"
  echo "    $(head -n 1 "$WORK/$key.logins")" >&2
}
login_field() { tr ' ' '\n' <"$WORK/$1.logins" | sed -n "s/^$2=//p"; }

# mint KEY BASE PID: PROXY_TOKENS access tokens issued by the server at BASE (logins, then
# refresh chains) into WORK/KEY.tokens; VmRSS before minting in WORK/KEY.rss-start.
mint() {
  local key="$1" base="$2" pid="$3"
  log "$key: minting $PROXY_TOKENS access tokens ($LOGIN_CONCURRENCY logins, then refresh chains)"
  rss_kib "$pid" >"$WORK/$key.rss-start"
  "$FASTMCP_PY" "$ROOT/scripts/compare/login_driver.py" tokens "$base" "$base/mcp" "$PROXY_TOKENS" \
    "$LOGIN_CONCURRENCY" "$WORK/$key.tokens" >"$WORK/$key.mint" 2>"$WORK/$key-mint.log" \
    || die "$key: minting tokens failed: $(tail -n 3 "$WORK/$key-mint.log")"
  echo "    $(cat "$WORK/$key.mint")" >&2
  [[ "$(sort -u "$WORK/$key.tokens" | wc -l)" -eq "$PROXY_TOKENS" ]] \
    || die "$key: expected $PROXY_TOKENS distinct tokens in $WORK/$key.tokens"
}

# memory KEY BASE PID TOKEN_FILE: VmRSS before and after one tools/list with each token.
memory() {
  local key="$1" base="$2" pid="$3" tokens="$4" count
  count="$(wc -l <"$tokens")"
  log "$key: memory, $count distinct tokens once each (flow_driver touch)"
  rss_kib "$pid" >"$WORK/$key.rss-before"
  "$BIN/flow_driver" touch --servers "$base" --tokens "$tokens" --concurrency 16 \
    >"$WORK/$key.touch" 2>"$WORK/$key-touch.log" || die "$key: flow_driver touch failed"
  grep -q " ok=$count " "$WORK/$key.touch" \
    || die "$key: not every token answered 200: $(cat "$WORK/$key.touch")"
  rss_kib "$pid" >"$WORK/$key.rss-after"
  echo "    VmRSS $(cat "$WORK/$key.rss-before") KiB -> $(cat "$WORK/$key.rss-after") KiB" >&2
}

# ---- AuthKit mode ------------------------------------------------------------------------------

PORT_OURS="$(free_port)" && PORT_FAST="$(free_port)" || die "no free port"
[[ "$PORT_OURS" != "$PORT_FAST" ]] || die "port clash, run again"
PUBLIC="http://127.0.0.1:$PORT_OURS"
FAST="http://127.0.0.1:$PORT_FAST"
log "$MODE mode ($PROFILE build); AuthKit mode: emulator minting $((TOKENS + 1)) tokens for $PUBLIC/mcp"
spawn "$WORK/authkit-emulator.log" env -C "$WORK" MCP_BASE_URL="$PUBLIC" MCP_PATH=/mcp \
  FAKE_TOKENS="$((TOKENS + 1))" "$BIN/fake_authkit"
wait_line "$WORK/authkit-emulator.log" 'FakeAuthKit is running' "$SPAWNED" 300 \
  || die "the AuthKit emulator did not start"
DOMAIN="$(sed -n 's/^WORKOS_AUTHKIT_DOMAIN=//p' "$WORK/authkit-emulator.log")"
sed -n 's/^TOKEN=//p' "$WORK/authkit-emulator.log" >"$WORK/authkit-all-tokens"
[[ "$(sort -u "$WORK/authkit-all-tokens" | wc -l)" -eq $((TOKENS + 1)) ]] \
  || die "the emulator printed $(wc -l <"$WORK/authkit-all-tokens") distinct tokens, expected $((TOKENS + 1))"
TOKEN="$(head -n 1 "$WORK/authkit-all-tokens")"
tail -n +2 "$WORK/authkit-all-tokens" >"$WORK/authkit-tokens"

spawn "$WORK/ours-authkit.log" env -C "$WORK" WORKOS_AUTHKIT_DOMAIN="$DOMAIN" MCP_BASE_URL="$PUBLIC" \
  MCP_PATH=/mcp MCP_HOST=127.0.0.1 MCP_PORT="$PORT_OURS" "$BIN/bench_server"
PID_OURS="$SPAWNED"
wait_http "$PUBLIC/healthz" "$PID_OURS" 60 || die "bench_server did not start"
spawn "$WORK/fastmcp-authkit.log" env -C "$WORK" AUTHKIT_DOMAIN="$DOMAIN" PUBLIC_URL="$PUBLIC" \
  "$FASTMCP_PY" -u "$ROOT/scripts/compare/fastmcp_server.py" authkit "$PORT_FAST"
PID_FAST="$SPAWNED"
wait_line "$WORK/fastmcp-authkit.log" '^READY$' "$PID_FAST" 60 || die "FastMCP (AuthKitProvider) did not start"

sanity "bench_server" "$PUBLIC" "$TOKEN" user_123
load ours-authkit "$PUBLIC" "$TOKEN" "$PID_OURS"
memory ours-authkit "$PUBLIC" "$PID_OURS" "$WORK/authkit-tokens"
sanity "FastMCP AuthKitProvider" "$FAST" "$TOKEN" user_123
load fastmcp-authkit "$FAST" "$TOKEN" "$PID_FAST"
memory fastmcp-authkit "$FAST" "$PID_FAST" "$WORK/authkit-tokens"
lib_cleanup

# ---- proxy mode --------------------------------------------------------------------------------

PORT_OURS="$(free_port)" && PORT_FAST="$(free_port)" || die "no free port"
[[ "$PORT_OURS" != "$PORT_FAST" ]] || die "port clash, run again"
OURS="http://127.0.0.1:$PORT_OURS"
FAST="http://127.0.0.1:$PORT_FAST"
CLIENT_ID="client_compare_$(random_hex 8)"
CLIENT_SECRET="sk_compare_$(random_hex 24)"
log "proxy mode: emulator with one Connect application for $OURS and $FAST"
# AuthKit access tokens live an hour here (AuthKit's are 5 minutes): FastMCP's tokens expire
# with the upstream one, and minting 10,000 of them takes FastMCP longer than 5 minutes.
spawn "$WORK/proxy-emulator.log" env -C "$WORK" WORKOS_CLIENT_ID="$CLIENT_ID" \
  WORKOS_CLIENT_SECRET="$CLIENT_SECRET" FAKE_REDIRECT_URIS="$OURS/auth/callback,$FAST/auth/callback" \
  FAKE_ACCESS_TOKEN_TTL_SECONDS=3600 "$BIN/replica" fake-authkit
wait_line "$WORK/proxy-emulator.log" '^READY$' "$SPAWNED" 30 || die "the AuthKit emulator did not start"
DOMAIN="$(sed -n 's/^WORKOS_AUTHKIT_DOMAIN=//p' "$WORK/proxy-emulator.log")"

spawn "$WORK/ours-proxy.log" env -C "$WORK" WORKOS_CLIENT_ID="$CLIENT_ID" \
  WORKOS_CLIENT_SECRET="$CLIENT_SECRET" WORKOS_AUTHKIT_DOMAIN="$DOMAIN" MCP_BASE_URL="$OURS" \
  MCP_HOST=127.0.0.1 MCP_PORT="$PORT_OURS" MCP_AUTH_RATE_LIMITS=off \
  MCP_AUTH_ENCRYPTION_KEYS="$(openssl rand -base64 32)" \
  DATABASE_URL="sqlite://$WORK/proxy.db?mode=rwc" "$BIN/replica"
PID_OURS="$SPAWNED"
wait_line "$WORK/ours-proxy.log" '^READY$' "$PID_OURS" 60 || die "replica did not start"
spawn "$WORK/fastmcp-workos.log" env -C "$WORK" AUTHKIT_DOMAIN="$DOMAIN" PUBLIC_URL="$FAST" \
  WORKOS_CLIENT_ID="$CLIENT_ID" WORKOS_CLIENT_SECRET="$CLIENT_SECRET" \
  "$FASTMCP_PY" -u "$ROOT/scripts/compare/fastmcp_server.py" workos "$PORT_FAST"
PID_FAST="$SPAWNED"
wait_line "$WORK/fastmcp-workos.log" '^READY$' "$PID_FAST" 60 || die "FastMCP (WorkOSProvider) did not start"

logins ours-proxy "$OURS" "$PID_OURS"
sanity "replica" "$OURS" "$(cat "$WORK/ours-proxy.token")" "$EMULATOR_USER"
load ours-proxy "$OURS" "$(cat "$WORK/ours-proxy.token")" "$PID_OURS"
mint ours-proxy "$OURS" "$PID_OURS"
memory ours-proxy "$OURS" "$PID_OURS" "$WORK/ours-proxy.tokens"
logins fastmcp-workos "$FAST" "$PID_FAST"
sanity "FastMCP WorkOSProvider" "$FAST" "$(cat "$WORK/fastmcp-workos.token")" "$EMULATOR_USER"
load fastmcp-workos "$FAST" "$(cat "$WORK/fastmcp-workos.token")" "$PID_FAST"
mint fastmcp-workos "$FAST" "$PID_FAST"
memory fastmcp-workos "$FAST" "$PID_FAST" "$WORK/fastmcp-workos.tokens"
lib_cleanup

# ---- the table ---------------------------------------------------------------------------------

# row KEY SERVER MODE: one line of the table.
row() {
  local key="$1" ratio logins="—" login_cpu="—" rss="—"
  ratio="$(awk -v p="$(field "$key-protected" rps)" -v o="$(field "$key-open" rps)" \
    'BEGIN { printf "%.2f", p / o }')"
  if [[ -e "$WORK/$key.logins" ]]; then
    logins="$(login_field "$key" rate)"
    login_cpu="$(awk -v t="$(login_field "$key" cpu_ticks)" -v n="$(login_field "$key" ok)" \
      -v hz="$CLK_TCK" 'BEGIN { printf "%.1f", t / hz * 1000 / n }')"
  fi
  if [[ -e "$WORK/$key.rss-start" ]]; then
    # Proxy mode: growth by minting (what is kept for issued tokens), then by using them.
    rss="$(awk -v a="$(cat "$WORK/$key.rss-after")" -v m="$(cat "$WORK/$key.rss-before")" \
      -v s="$(cat "$WORK/$key.rss-start")" \
      'BEGIN { printf "%.1f (%+.1f, %+.1f)", a / 1024, (m - s) / 1024, (a - m) / 1024 }')"
  elif [[ -e "$WORK/$key.rss-after" ]]; then
    rss="$(awk -v a="$(cat "$WORK/$key.rss-after")" -v b="$(cat "$WORK/$key.rss-before")" \
      'BEGIN { printf "%.1f (%+.1f)", a / 1024, (a - b) / 1024 }')"
  fi
  printf '| %s | %s | %.0f | %.0f | %s | %s (%s) | %s | %s | %s |\n' "$2" "$3" \
    "$(field "$key-protected" rps)" "$(field "$key-open" rps)" "$ratio" \
    "$(cpu_us "$key-protected")" "$(cpu_us "$key-open")" "$logins" "$login_cpu" "$rss"
}

OUR_COMMIT="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
git -C "$ROOT" diff --quiet HEAD 2>/dev/null || OUR_COMMIT="$OUR_COMMIT+changes"
FASTMCP_VERSION="$("$FASTMCP_PY" -c 'import importlib.metadata as m; print(m.version("fastmcp"))')"
PYTHON_VERSION="$("$FASTMCP_PY" -c 'import platform; print(platform.python_version())')"
UVICORN_VERSION="$("$FASTMCP_PY" -c 'import importlib.metadata as m; print(m.version("uvicorn"))')"

echo
echo "### actix-mcp-auth and FastMCP side by side ($MODE mode)"
echo
echo "| server | mode | req/s protected | req/s open | ratio | CPU µs/request (open) | logins/s | CPU ms/login | RSS MB at $TOKENS / $PROXY_TOKENS tokens (+ growth) |"
echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
row ours-authkit "actix-mcp-auth \`bench_server\`" "AuthKit (JWT)"
row fastmcp-authkit "FastMCP \`AuthKitProvider\`" "AuthKit (JWT)"
row ours-proxy "actix-mcp-auth \`replica\` (SQLite)" "proxy"
row fastmcp-workos "FastMCP \`WorkOSProvider\`" "proxy"
echo
echo "$(date -u '+%Y-%m-%d %H:%M UTC'); actix-mcp-auth $OUR_COMMIT ($PROFILE build); fastmcp $FASTMCP_VERSION," \
  "Python $PYTHON_VERSION, uvicorn $UVICORN_VERSION (one worker); $(nproc) cores, load average $LOAD_AT_START at the start;" \
  "wrk -t$THREADS -c$CONNECTIONS -d$DURATION tools/list; logins: ${LOGIN_SECONDS}s," \
  "$LOGIN_CONCURRENCY at once (Python driver, register -> token); RSS: VmRSS after $TOKENS (AuthKit mode)" \
  "and $PROXY_TOKENS (proxy mode) distinct tokens were used once each, growth by using them; proxy mode:" \
  "(+ growth by minting them through the server, + growth by using them)."
