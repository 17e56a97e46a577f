#!/usr/bin/env bash
# What one unit of proxy-mode work costs our server in CPU (issue 12): a full login
# (register -> authorize -> consent page -> consent POST -> AuthKit -> callback -> token), a
# refresh-token grant, and the first use of an access token (the database lookup and the
# upstream session check behind a bearer check that misses the cache). On SQLite and on
# PostgreSQL, with PostgreSQL's own CPU beside ours.
#
#   scripts/cost-per-login.sh                       # both engines, 3 rounds of 300 logins
#   ENGINES=sqlite ROUNDS=1 COUNT=100 scripts/cost-per-login.sh
#   BASELINE=/path/to/old/bin scripts/cost-per-login.sh
#                                                   # also an older `replica`, interleaved
#
# Processes, all on 127.0.0.1: the AuthKit emulator (`replica fake-authkit`, its own process,
# not counted), one `replica` (ours: `WorkOsProvider`, rate limits off, otherwise its defaults)
# on a fresh database per run, and `flow_driver` (the client side, not counted). PostgreSQL is a
# private cluster this script creates (initdb into a temporary directory, its own port; as user
# postgres when run as root) and stops; the shared server on 5432 is never touched.
#
# Each run: a warm-up (WARMUP logins, their first uses and refreshes: connections opened,
# statements prepared, thread-local clients built), then three measured phases, one after the
# other: COUNT logins (`flow_driver logins`), one MCP tools/list with each new access token
# (`flow_driver touch`: the first use of a token), one refresh of each login
# (`flow_driver refreshes`). Around each phase the script reads the CPU time (user + system,
# clock ticks of /proc/PID/stat) of our server process and of the whole PostgreSQL cluster
# (the postmaster, what it reaped, and every live child: backends, WAL writer, checkpointer...).
# Per unit = delta / units. Runs of the current build and of BASELINE alternate within each
# round; the summary gives the median of the rounds.
#
# Environment (all optional):
#   ENGINES="sqlite postgres"  COUNT=300  WARMUP=30  ROUNDS=3  CONCURRENCY=4
#   PROFILE=release            SKIP_BUILD=1 (use what is built)   KEEP_WORK=1 (keep logs)
#   BASELINE=DIR               a directory with another build's `replica`, measured alike
#   PG_BIN=/usr/lib/postgresql/15/bin   where initdb and pg_ctl are
#
# Fails (exit 1) when a measurement could not be taken (a process did not start, a login, a
# refresh or a first use failed), never on the numbers.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

ENGINES="${ENGINES:-sqlite postgres}"
COUNT="${COUNT:-300}"
WARMUP="${WARMUP:-30}"
ROUNDS="${ROUNDS:-3}"
CONCURRENCY="${CONCURRENCY:-4}"
PG_BIN="${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}"
for n in COUNT WARMUP ROUNDS CONCURRENCY; do
  [[ "${!n}" =~ ^[1-9][0-9]*$ ]] || die "$n must be a positive number"
done
for tool in curl openssl awk; do
  command -v "$tool" >/dev/null || die "$tool is required"
done

WORK="$(mktemp -d)"
PGDIR=""
cleanup() {
  local status=$?
  set +e
  lib_cleanup
  if [[ -n "$PGDIR" && -e "$PGDIR/data/postmaster.pid" ]]; then
    as_pg "$PG_BIN/pg_ctl" -D "$PGDIR/data" -m fast -w stop >/dev/null 2>&1
  fi
  ((status == 0)) || show_logs "$WORK" 20
  if [[ "${KEEP_WORK:-}" == 1 ]]; then
    echo "work directory kept: $WORK" >&2
  else
    rm -rf "$WORK"
    [[ -z "$PGDIR" ]] || rm -rf "$PGDIR"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

build_programs "$ROOT" release replica flow_driver
if [[ -n "${BASELINE:-}" ]]; then
  [[ -x "$BASELINE/replica" ]] || die "BASELINE=$BASELINE has no replica binary"
fi
export RUST_LOG="${RUST_LOG:-warn}" MCP_PROTOCOL=2025-06-18
unset HTTP_PROXY HTTPS_PROXY ALL_PROXY http_proxy https_proxy all_proxy
CLK_TCK="$(getconf CLK_TCK)"
LOAD_AT_START="$(cut -d' ' -f1-3 /proc/loadavg)"

# ---- CPU readings ------------------------------------------------------------------------------

# ticks PID: utime + stime + cutime + cstime of PID (every thread; fields 14-17 counted after
# the command name, which may hold spaces).
ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 + $14 + $15 }'; }

# pg_ticks: the whole cluster: the postmaster (with the children it reaped) plus its live
# children's own time.
pg_ticks() {
  [[ -n "$PGDIR" ]] || { echo 0; return; }
  local master
  master="$(head -n 1 "$PGDIR/data/postmaster.pid")"
  for stat in /proc/[0-9]*/stat; do
    # A process may exit between the glob and the read: not an error (with pipefail it was).
    sed 's/^.*) //' "$stat" 2>/dev/null || true
  done | awk -v m="$master" -v own="$(ticks "$master")" \
    '$2 == m { sum += $12 + $13 } END { print sum + own }'
}

# ---- PostgreSQL: a private cluster -------------------------------------------------------------

as_pg() {
  if [[ "$(id -u)" == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start_postgres() {
  [[ -x "$PG_BIN/initdb" && -x "$PG_BIN/pg_ctl" ]] || die "initdb/pg_ctl not found (set PG_BIN)"
  PGDIR="$(mktemp -d /tmp/cost-pg.XXXXXX)"
  [[ "$(id -u)" != 0 ]] || chown postgres "$PGDIR"
  PG_PORT="$(free_port)" || die "no free port"
  log "PostgreSQL: private cluster in $PGDIR on 127.0.0.1:$PG_PORT"
  as_pg "$PG_BIN/initdb" -D "$PGDIR/data" -U postgres --auth=trust >"$WORK/initdb.log" 2>&1 \
    || die "initdb failed: $(tail -n 3 "$WORK/initdb.log")"
  {
    echo "port = $PG_PORT"
    echo "listen_addresses = '127.0.0.1'"
    echo "unix_socket_directories = '$PGDIR'"
  } | as_pg tee -a "$PGDIR/data/postgresql.conf" >/dev/null
  as_pg "$PG_BIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/server.log" -w start >/dev/null \
    || die "PostgreSQL did not start: $(tail -n 5 "$PGDIR/server.log")"
}

# new_database NAME: a fresh database URL for one run.
new_database() {
  case "$1" in
    sqlite) echo "sqlite://$WORK/$2.db?mode=rwc" ;;
    postgres)
      as_pg "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres "$2" 2>/dev/null \
        || as_pg psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "CREATE DATABASE $2" >/dev/null \
        || die "cannot create database $2"
      echo "postgres://postgres@127.0.0.1:$PG_PORT/$2"
      ;;
    *) die "unknown engine $1 (sqlite or postgres)" ;;
  esac
}

# ---- one run -----------------------------------------------------------------------------------

# The emulator, shared by every run: its Connect app accepts the callback of every port we use.
PORTS=()
for _ in $(seq 1 8); do PORTS+=("$(free_port)"); done
CLIENT_ID="client_cost_$(random_hex 8)"
CLIENT_SECRET="sk_cost_$(random_hex 24)"
REDIRECTS="$(printf 'http://127.0.0.1:%s/auth/callback,' "${PORTS[@]}")"
spawn "$WORK/emulator.log" env -C "$WORK" WORKOS_CLIENT_ID="$CLIENT_ID" \
  WORKOS_CLIENT_SECRET="$CLIENT_SECRET" FAKE_REDIRECT_URIS="${REDIRECTS%,}" \
  "$BIN/replica" fake-authkit
wait_line "$WORK/emulator.log" '^READY$' "$SPAWNED" 30 || die "the AuthKit emulator did not start"
DOMAIN="$(sed -n 's/^WORKOS_AUTHKIT_DOMAIN=//p' "$WORK/emulator.log")"
KEY="$(openssl rand -base64 32)"
RUN=0

# phase LABEL PID COMMAND...: runs COMMAND, writes "server_ticks pg_ticks" to WORK/LABEL.cpu.
phase() {
  local label="$1" pid="$2" server pg
  shift 2
  server="$(ticks "$pid")" pg="$(pg_ticks)"
  "$@" >"$WORK/$label.out" 2>"$WORK/$label.err" \
    || die "$label failed: $(cat "$WORK/$label.out") $(tail -n 3 "$WORK/$label.err")"
  echo "$(($(ticks "$pid") - server)) $(($(pg_ticks) - pg))" >"$WORK/$label.cpu"
}

# run ENGINE BUILD REPLICA: one server, warm-up, the three phases; appends a result line.
run() {
  local engine="$1" build="$2" replica="$3" port url pid base flow
  RUN=$((RUN + 1))
  port="${PORTS[$((RUN % ${#PORTS[@]}))]}"
  base="http://127.0.0.1:$port"
  url="$(new_database "$engine" "cost_$RUN")"
  spawn "$WORK/replica-$RUN.log" env -C "$WORK" WORKOS_CLIENT_ID="$CLIENT_ID" \
    WORKOS_CLIENT_SECRET="$CLIENT_SECRET" WORKOS_AUTHKIT_DOMAIN="$DOMAIN" MCP_BASE_URL="$base" \
    MCP_HOST=127.0.0.1 MCP_PORT="$port" MCP_AUTH_RATE_LIMITS=off MCP_AUTH_ENCRYPTION_KEYS="$KEY" \
    DATABASE_URL="$url" "$replica"
  pid="$SPAWNED"
  wait_line "$WORK/replica-$RUN.log" '^READY$' "$pid" 60 || die "replica ($build) did not start"
  flow=("$BIN/flow_driver")
  local common=(--public "$base" --servers "$base" --concurrency "$CONCURRENCY")

  "${flow[@]}" logins "${common[@]}" --count "$WARMUP" --out "$WORK/warm.logins" >/dev/null \
    2>"$WORK/warm.err" || die "warm-up logins failed: $(tail -n 3 "$WORK/warm.err")"
  cut -d' ' -f2 "$WORK/warm.logins" >"$WORK/warm.tokens"
  "${flow[@]}" touch --servers "$base" --tokens "$WORK/warm.tokens" \
    --concurrency "$CONCURRENCY" >/dev/null 2>&1 || die "warm-up touch failed"
  "${flow[@]}" refreshes "${common[@]}" --logins "$WORK/warm.logins" \
    --out "$WORK/warm.refreshed" >/dev/null 2>&1 || die "warm-up refreshes failed"

  local tag="$engine-$build-$RUN"
  phase "$tag-login" "$pid" "${flow[@]}" logins "${common[@]}" --count "$COUNT" \
    --out "$WORK/$tag.logins"
  cut -d' ' -f2 "$WORK/$tag.logins" >"$WORK/$tag.tokens"
  phase "$tag-use" "$pid" "${flow[@]}" touch --servers "$base" --tokens "$WORK/$tag.tokens" \
    --concurrency "$CONCURRENCY"
  grep -q " ok=$COUNT " "$WORK/$tag-use.out" || die "not every first use answered 200: $(cat "$WORK/$tag-use.out")"
  phase "$tag-refresh" "$pid" "${flow[@]}" refreshes "${common[@]}" \
    --logins "$WORK/$tag.logins" --out "$WORK/$tag.refreshed"

  local rate cost
  rate="$(sed -n 's/.* rate=\([^ ]*\).*/\1/p' "$WORK/$tag-login.out")"
  # per PHASE SCALE: server and PostgreSQL CPU per unit (SCALE 1000 = ms, 1e6 = µs).
  per() {
    awk -v s="$(cut -d' ' -f1 "$WORK/$tag-$1.cpu")" -v p="$(cut -d' ' -f2 "$WORK/$tag-$1.cpu")" \
      -v n="$COUNT" -v hz="$CLK_TCK" -v k="$2" 'BEGIN { printf "%.3f %.3f", s / hz * k / n, p / hz * k / n }'
  }
  cost="$(per login 1000) $(per refresh 1000) $(per use 1000000)"
  echo "$engine $build $rate $cost" >>"$WORK/results"
  log "$engine $build: logins/s $rate; per login, refresh (ms), first use (µs), server and PostgreSQL: $cost"
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

for engine in $ENGINES; do
  [[ "$engine" != postgres || -n "$PGDIR" ]] || start_postgres
done
for round in $(seq 1 "$ROUNDS"); do
  for engine in $ENGINES; do
    log "round $round/$ROUNDS, $engine"
    run "$engine" current "$BIN/replica"
    [[ -z "${BASELINE:-}" ]] || run "$engine" baseline "$BASELINE/replica"
  done
done

# ---- the table ---------------------------------------------------------------------------------

OUR_COMMIT="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
git -C "$ROOT" diff --quiet HEAD 2>/dev/null || OUR_COMMIT="$OUR_COMMIT+changes"
echo
echo "### CPU per unit of work, proxy mode (median of $ROUNDS rounds)"
echo
echo "| engine | build | logins/s | login: server ms | login: PostgreSQL ms | refresh: server ms | refresh: PostgreSQL ms | first use: server µs | first use: PostgreSQL µs |"
echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for engine in $ENGINES; do
  for build in current ${BASELINE:+baseline}; do
    awk -v e="$engine" -v b="$build" '$1 == e && $2 == b' "$WORK/results" | awk '
      { n++; for (i = 3; i <= 9; i++) v[i, n] = $i; e = $1; b = $2 }
      function median(i,   k, j, t, a) {
        for (k = 1; k <= n; k++) a[k] = v[i, k]
        for (k = 1; k <= n; k++) for (j = k + 1; j <= n; j++) if (a[j] < a[k]) { t = a[k]; a[k] = a[j]; a[j] = t }
        return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
      }
      END {
        if (!n) exit
        printf "| %s | %s | %.0f | %.2f | %.2f | %.2f | %.2f | %.0f | %.0f |\n", e, b,
          median(3), median(4), median(5), median(6), median(7), median(8), median(9)
      }'
  done
done
echo
echo "Every round: $(tr '\n' ';' <"$WORK/results")"
echo "$(date -u '+%Y-%m-%d %H:%M UTC'); actix-mcp-auth $OUR_COMMIT ($PROFILE build)${BASELINE:+, baseline $BASELINE};" \
  "$(nproc) cores, load average $LOAD_AT_START at the start; $COUNT logins, $CONCURRENCY at once," \
  "after $WARMUP warm-up logins; CPU = utime + stime at ${CLK_TCK} Hz."
