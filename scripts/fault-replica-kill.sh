#!/usr/bin/env bash
# Fault test: a replica killed (SIGKILL) in the middle of a login; the login completes on the
# other replica.
#
# Starts, on a fresh PostgreSQL database:
#   * the shared AuthKit emulator (`loadtest/src/bin/replica.rs fake-authkit`) with a Connect app whose
#     redirect URI is the public URL's callback;
#   * replica B (`loadtest/src/bin/replica.rs`) and, for each kill point, a fresh replica A: both with the
#     same public MCP_BASE_URL (A's address) and encryption key, each on its own port.
# For each kill point, `loadtest/src/bin/flow_driver.rs kill-login` runs the login's first steps on A
# (register, authorize, ...), pauses; the script kills A with `kill -9` and checks its port is
# dead; the driver then runs the remaining steps on B (every URL of the public origin routed to B,
# the browser's cookies kept), exchanges the code, calls MCP `whoami`, refreshes on B and calls
# `whoami` with the refreshed token.
#
# Kill points (KILL_POINTS, default all four):
#   authorize     A answered /authorize (pending request stored, binding cookie set); B shows
#                 the consent page, takes the approval, handles the callback
#   consent-page  A showed the consent page (CSRF token issued by A); B takes the approval
#   consent-post  A recorded the approval and redirected to AuthKit; AuthKit's redirect goes to
#                 B's callback
#   callback      A handled the callback and issued our code; B redeems it at /token
#
# Asserts per kill point: the login completes on B (code, token, MCP 200 with the right subject,
# refresh), A is really gone (connection refused) while B finishes; at the end: exactly one grant
# per login (none lost or duplicated), B never restarted. Exits non-zero on any failure.
#
# Usage: scripts/fault-replica-kill.sh
# Environment (all optional):
#   PG_ADMIN_URL=postgres://postgres@127.0.0.1:5432/postgres   superuser connection (a database
#                                   is created and dropped)
#   KILL_POINTS="authorize consent-page consent-post callback"
#   PROFILE=release                 or debug: which build of the examples to use (debug: quicker to
#                                   build; its numbers are not performance numbers)
#   SKIP_BUILD=1                    use the already built examples
#   KEEP_WORK=1                     keep the work directory (logs)
#
# Requires: cargo, curl, psql.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
PG_ADMIN_URL="${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
KILL_POINTS="${KILL_POINTS:-authorize consent-page consent-post callback}"


for tool in curl psql; do
  command -v "$tool" >/dev/null || die "$tool not found"
done
build_programs "$ROOT" release replica flow_driver

WORK="$(mktemp -d)"
DB="mcp_fault_kill_$$_$RANDOM"
DB_URL="${PG_ADMIN_URL%/*}/$DB"
PIDS=()
cleanup() {
  local status=$?
  set +e
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
  psql "$PG_ADMIN_URL" -XAtqc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1
  if [[ $status -ne 0 ]]; then
    for f in "$WORK"/*.log "$WORK"/driver-*.out; do
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

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }


psql "$PG_ADMIN_URL" -XAtqc "CREATE DATABASE $DB" >/dev/null
PORT_A="$(free_port)" || die "no free port"
PORT_B="$(free_port)" || die "no free port"
[[ "$PORT_A" != "$PORT_B" ]] || die "port clash, run again"
PUBLIC="http://127.0.0.1:$PORT_A"
A="http://127.0.0.1:$PORT_A"
B="http://127.0.0.1:$PORT_B"
WORKOS_CLIENT_ID="client_kill_$(random_hex 8)"
WORKOS_CLIENT_SECRET="sk_kill_$(random_hex 24)"
export WORKOS_CLIENT_ID WORKOS_CLIENT_SECRET

log "starting the shared AuthKit emulator"
(cd "$WORK" && exec env FAKE_REDIRECT_URIS="$PUBLIC/auth/callback" \
  "$BIN/replica" fake-authkit >"$WORK/fake.out" 2>"$WORK/fake.log") &
FAKE_PID=$!
PIDS+=("$FAKE_PID")
wait_line "$WORK/fake.out" '^READY$' "$FAKE_PID" 10 || die "the emulator did not start"
WORKOS_AUTHKIT_DOMAIN="$(sed -n 's/^WORKOS_AUTHKIT_DOMAIN=//p' "$WORK/fake.out")"
[[ -n "$WORKOS_AUTHKIT_DOMAIN" ]] || die "the emulator printed no WORKOS_AUTHKIT_DOMAIN"
export WORKOS_AUTHKIT_DOMAIN

export MCP_BASE_URL="$PUBLIC" DATABASE_URL="$DB_URL" MCP_HOST=127.0.0.1
MCP_AUTH_ENCRYPTION_KEYS="$(head -c 32 /dev/urandom | base64)"
export MCP_AUTH_ENCRYPTION_KEYS
export RUST_LOG="${RUST_LOG:-warn}"
# start_replica NAME PORT -> sets REPLICA_PID
start_replica() {
  local name="$1" port="$2"
  (cd "$WORK" && exec env MCP_PORT="$port" "$BIN/replica" >"$WORK/$name.out" 2>>"$WORK/$name.log") &
  REPLICA_PID=$!
  PIDS+=("$REPLICA_PID")
  wait_line "$WORK/$name.out" '^READY$' "$REPLICA_PID" 30 || die "replica $name did not start"
}
start_replica B "$PORT_B"
PID_B="$REPLICA_PID"
log "public URL $PUBLIC; replica B on $B (pid $PID_B); AuthKit emulator $WORKOS_AUTHKIT_DOMAIN"

grants() { psql "$DB_URL" -XAtqc "SELECT count(*) || '/' || count(*) FILTER (WHERE revoked_at IS NULL) FROM mcp_auth_grants"; }

failures=()
completed=0
for point in $KILL_POINTS; do
  echo
  rm -f "$WORK/resume"
  start_replica "A-$point" "$PORT_A"
  PID_A="$REPLICA_PID"
  log "kill point '$point': replica A on $A (pid $PID_A)"
  started="$(now_ms)"
  "$BIN/flow_driver" kill-login --public "$PUBLIC" --first "$A" --second "$B" \
    --kill-after "$point" --wait-file "$WORK/resume" >"$WORK/driver-$point.out" 2>&1 &
  DRIVER_PID=$!
  PIDS+=("$DRIVER_PID")
  if ! wait_line "$WORK/driver-$point.out" "^PAUSED_AFTER=$point\$" "$DRIVER_PID" 30; then
    failures+=("$point: the login did not reach the kill point: $(tail -n 3 "$WORK/driver-$point.out" | tr '\n' ' ')")
    echo "    FAILED: did not reach the kill point" >&2
    kill "$PID_A" 2>/dev/null || true
    wait "$DRIVER_PID" 2>/dev/null || true
    continue
  fi
  kill -9 "$PID_A"
  wait "$PID_A" 2>/dev/null || true
  if port_open "$PORT_A"; then
    failures+=("$point: replica A still accepts connections after kill -9")
  else
    echo "    replica A killed (kill -9) after '$point'; its port refuses connections"
  fi
  touch "$WORK/resume"
  if wait "$DRIVER_PID" && grep -q '^LOGIN_COMPLETED' "$WORK/driver-$point.out"; then
    completed=$((completed + 1))
    # Which replica served each step: A up to the kill point, B afterwards.
    routing="$(awk -v point="$point" -v a="$A" -v b="$B" -v idp="$WORKOS_AUTHKIT_DOMAIN" '
      /^STEP / { step = $2; server = $5
        want = (step == "authkit-login") ? idp : (after ? b : a)
        name = (server == a) ? "A" : (server == b) ? "B" : (server == idp ? "AuthKit" : server)
        printf "%s%s=%s", sep, step, name; sep = " "
        if (server != want) bad = bad " " step
        if (step == point) after = 1 }
      END { printf "\n"; if (bad != "") { print "misrouted:" bad; exit 1 } }' "$WORK/driver-$point.out")" ||
      failures+=("$point: steps not served where expected: $routing")
    echo "    steps: $(head -n 1 <<<"$routing")"
    echo "    ok: $(grep '^LOGIN_COMPLETED' "$WORK/driver-$point.out") (total $(($(now_ms) - started)) ms)"
  else
    failures+=("$point: the login did not complete on B: $(grep -v '^PAUSED_AFTER\|^RESUMED' "$WORK/driver-$point.out" | tail -n 3 | tr '\n' ' ')")
    echo "    FAILED: $(tail -n 3 "$WORK/driver-$point.out")" >&2
  fi
  if port_open "$PORT_A"; then failures+=("$point: something listens on A's port again"); fi
  echo "    grants (rows/unrevoked): $(grants)"
done

echo
kill -0 "$PID_B" 2>/dev/null || failures+=("replica B is not running any more")
final="$(grants)"
expected="$completed/$completed"
[[ "$final" == "$expected" ]] || failures+=("grants: expected $expected (one per completed login), found $final")
log "$completed of $(wc -w <<<"$KILL_POINTS") logins completed on B; grants $final (rows/unrevoked)"
if ((${#failures[@]})); then
  echo "FAIL: ${#failures[@]} problem(s):" >&2
  printf '  - %s\n' "${failures[@]}" >&2
  exit 1
fi
echo "PASS: a replica killed at each of [$KILL_POINTS] mid-login; every login completed on the other replica, one grant each"
