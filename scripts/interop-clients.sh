#!/usr/bin/env bash
# Proof by clients nobody here wrote: the official MCP SDKs log in to our proxy mode and call
# the `whoami` tool.
#
#   scripts/interop-clients.sh
#
# Starts the AuthKit emulator and the `workos_proxy` example on loopback, then runs four legs,
# each a complete login (discovery, registration or a Client ID Metadata Document, PKCE, our
# consent page, the emulator's AuthKit login, the token exchange) and an MCP `tools/call whoami`
# made by the SDK's own OAuth client:
#
#   python-dcr       MCP Python SDK (`mcp` on PyPI, OAuthClientProvider), dynamic registration
#   typescript-dcr   MCP TypeScript SDK (`@modelcontextprotocol/sdk`), dynamic registration
#   python-cimd      the Python SDK with a client id URL: a metadata document served over https
#                    on loopback (throw-away CA made with openssl, trusted by the server through
#                    MCP_AUTH_CIMD_EXTRA_CA_FILE; MCP_AUTH_CIMD_ALLOW_LOOPBACK=1)
#   typescript-cimd  the same with the TypeScript SDK
#   python-step-up   the Python SDK logs in for the scope every request needs (`mcp`, named in
#                    the 401 challenge), then calls `admin_echo`, which the server guards with the
#                    extra scope `mcp:admin` (MCP_AUTH_TOOL_SCOPES): the 403
#                    `insufficient_scope` makes the SDK log in again for the challenged scopes
#                    (re-consent on our page), and the retried call succeeds with a token that
#                    holds the union of the old and the new scopes
#
# The person at the browser is scripts/interop/browser.py: it follows redirects, keeps cookies
# and submits the forms it is shown (consent, login). Each leg asserts that `whoami` answers the
# emulator's user as `sub`, and the client id the leg used (a registered id, or the document's
# URL). When the server does not advertise `client_id_metadata_document_supported`, the CIMD
# legs are reported SKIPPED (never passed); INTEROP_REQUIRE_CIMD=1 makes that a failure.
#
# Versions are pinned in scripts/interop/ (requirements.txt, package.json, package-lock.json)
# and installed once under ~/.cache/actix-mcp-auth/interop (INTEROP_CACHE overrides).
# PROFILE=debug|release picks the build (default debug), SKIP_BUILD=1 skips it, KEEP_WORK=1
# keeps the logs. Bounded in time, loopback only, leaves nothing running; prints one summary
# line on stdout.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
LEG_SECONDS="${LEG_SECONDS:-180}"

for tool in curl jq openssl python3 npm sha256sum; do
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

build_examples "$ROOT"
interop_tools
PY_SDK="$("$INTEROP_PYTHON" -c 'import importlib.metadata as m; print(m.version("mcp"))')"
TS_SDK="$("$INTEROP_NODE" -p "require('$INTEROP_NODE_MODULES/@modelcontextprotocol/sdk/package.json').version")"
cp "$ROOT/scripts/interop/ts_client.mjs" "$INTEROP_NODE_MODULES/../ts_client.mjs"
export INTEROP_PYTHON INTEROP_BROWSER="$ROOT/scripts/interop/browser.py"

# The client id metadata document, over https on loopback. Its redirect URI is where the
# SDKs send the browser back (nobody needs to listen there: the browser stops at it).
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=interop test CA" \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign \
  -keyout "$WORK/ca.key" -out "$WORK/ca.pem" 2>/dev/null || die "openssl: CA"
openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
  -keyout "$WORK/leaf.key" -out "$WORK/leaf.csr" 2>/dev/null || die "openssl: key"
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$WORK/leaf.ext"
openssl x509 -req -in "$WORK/leaf.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" \
  -CAcreateserial -days 1 -extfile "$WORK/leaf.ext" -out "$WORK/leaf.pem" 2>/dev/null \
  || die "openssl: certificate"
CIMD_PORT="$(free_port)" || die "no free port"
CIMD_REDIRECT="http://127.0.0.1:$(free_port)/callback"
spawn "$WORK/cimd.log" python3 -u "$ROOT/scripts/interop/cimd_server.py" \
  "$WORK/leaf.pem" "$WORK/leaf.key" "$CIMD_PORT" "$CIMD_REDIRECT"
wait_line "$WORK/cimd.log" '^READY$' "$SPAWNED" 20 || die "the metadata document server did not start"
CIMD_URL="$(sed -n 's/^CLIENT_ID=//p' "$WORK/cimd.log")"

start_proxy "$BIN" "$WORK" MCP_AUTH_CIMD_ALLOW_LOOPBACK=1 MCP_AUTH_CIMD_EXTRA_CA_FILE="$WORK/ca.pem" \
  MCP_AUTH_TOOL_SCOPES="tools/call:admin_echo=mcp:admin; *=mcp"
log "workos_proxy at $BASE_URL (emulated AuthKit at $AUTHKIT_URL, user $EMULATOR_USER)"
CIMD_ADVERTISED="$(curl -fsS "$BASE_URL/.well-known/oauth-authorization-server" \
  | jq -r '.client_id_metadata_document_supported == true')"

RESULTS=()
FAILED=0
# leg NAME EXPECTED_CLIENT_ID COMMAND...: runs one client; checks the `WHOAMI` line it prints.
# EXPECTED_CLIENT_ID "dcr" means: a client id we registered (not a URL).
leg() {
  local name="$1" expected_client="$2"
  shift 2
  log "$name"
  local out="$WORK/$name.out" caller sub client
  local status=0
  timeout "$LEG_SECONDS" "$@" >"$out" 2>"$WORK/$name.log" || status=$?
  if ((status != 0)); then
    echo "$name: the client failed (exit $status$( ((status == 124)) && echo ", timed out after ${LEG_SECONDS}s")):" >&2
    tail -n 25 "$WORK/$name.log" >&2
    RESULTS+=("$name FAILED")
    FAILED=1
    return 0
  fi
  caller="$(sed -n 's/^WHOAMI //p' "$out")"
  sub="$(jq -r '.sub // empty' <<<"$caller" 2>/dev/null || true)"
  client="$(jq -r '.client_id // empty' <<<"$caller" 2>/dev/null || true)"
  local problem=""
  if [[ "$sub" != "$EMULATOR_USER" ]]; then
    problem="whoami says sub '${sub}', the emulator's user is '$EMULATOR_USER'"
  elif [[ "$expected_client" == dcr && ( -z "$client" || "$client" == https://* ) ]]; then
    problem="expected a registered client id, whoami says '$client'"
  elif [[ "$expected_client" != dcr && "$client" != "$expected_client" ]]; then
    problem="expected client id $expected_client, whoami says '$client'"
  fi
  if [[ -n "$problem" ]]; then
    echo "$name: $problem; answer: $caller" >&2
    RESULTS+=("$name FAILED")
    FAILED=1
  else
    log "$name: sub $sub, client $client"
    RESULTS+=("$name ok")
  fi
}

# step_up_leg: the Python SDK's answer to a 403 `insufficient_scope` (see the header).
step_up_leg() {
  local name=python-step-up
  log "$name"
  local out="$WORK/$name.out" status=0 first stepped problem=""
  timeout "$LEG_SECONDS" "${PY_CLIENT[@]}" "$MCP_URL" "http://127.0.0.1:$(free_port)/callback" \
    --step-up >"$out" 2>"$WORK/$name.log" || status=$?
  if ((status != 0)); then
    echo "$name: the client failed (exit $status):" >&2
    tail -n 25 "$WORK/$name.log" >&2
    RESULTS+=("$name FAILED")
    FAILED=1
    return 0
  fi
  first="$(sed -n 's/^WHOAMI //p' "$out")"
  stepped="$(sed -n 's/^STEPUP //p' "$out")"
  if jq -e '.scopes | index("mcp:admin")' <<<"$first" >/dev/null 2>&1; then
    problem="the first token already held mcp:admin, so nothing was stepped up"
  elif [[ "$(jq -r '.echo // empty' <<<"$stepped")" != "stepped up" ]]; then
    problem="admin_echo did not answer its text"
  elif [[ "$(jq -r '.logins // 0' <<<"$stepped")" != 1 ]]; then
    problem="expected exactly one more login for the step-up"
  elif [[ "$(grep -c '/consent -> 200' "$WORK/$name.log")" != 2 ]]; then
    problem="expected our consent page twice (the first login and the step-up's re-consent)"
  elif ! jq -e --argjson before "$(jq '.scopes' <<<"$first")" \
    '(.whoami.scopes | index("mcp:admin")) and ($before - .whoami.scopes == [])' \
    <<<"$stepped" >/dev/null; then
    problem="the stepped-up token does not hold mcp:admin and every earlier scope"
  fi
  if [[ -n "$problem" ]]; then
    echo "$name: $problem; first: $first; after: $stepped" >&2
    RESULTS+=("$name FAILED")
    FAILED=1
  else
    log "$name: scopes $(jq -c '.scopes' <<<"$first") -> $(jq -c '.whoami.scopes' <<<"$stepped")"
    RESULTS+=("$name ok")
  fi
}

PY_CLIENT=("$INTEROP_PYTHON" -u "$ROOT/scripts/interop/py_client.py")
TS_CLIENT=("$INTEROP_NODE" "$INTEROP_NODE_MODULES/../ts_client.mjs")
leg python-dcr dcr "${PY_CLIENT[@]}" "$MCP_URL" "http://127.0.0.1:$(free_port)/callback"
leg typescript-dcr dcr "${TS_CLIENT[@]}" "$MCP_URL" "http://127.0.0.1:$(free_port)/callback"
step_up_leg
if [[ "$CIMD_ADVERTISED" == true ]]; then
  leg python-cimd "$CIMD_URL" "${PY_CLIENT[@]}" "$MCP_URL" "$CIMD_REDIRECT" "$CIMD_URL"
  leg typescript-cimd "$CIMD_URL" "${TS_CLIENT[@]}" "$MCP_URL" "$CIMD_REDIRECT" "$CIMD_URL"
  grep -q 'GET /client.json' "$WORK/cimd.log" \
    || { echo "the server never fetched the metadata document" >&2; FAILED=1; }
else
  echo "CIMD legs SKIPPED: the authorization server metadata does not advertise client_id_metadata_document_supported" >&2
  RESULTS+=("python-cimd SKIPPED" "typescript-cimd SKIPPED")
  [[ "${INTEROP_REQUIRE_CIMD:-}" == 1 ]] && FAILED=1
fi

summary="$(IFS=,; echo "${RESULTS[*]}" | sed 's/,/, /g')"
if ((FAILED)); then
  show_logs "$WORK" 20
  echo "interop-clients: FAIL ($summary; mcp $PY_SDK, @modelcontextprotocol/sdk $TS_SDK)"
  exit 1
fi
skipped=0
for result in "${RESULTS[@]}"; do [[ "$result" != *SKIPPED ]] || skipped=$((skipped + 1)); done
verdict=PASS
((skipped == 0)) || verdict="PASS with $skipped legs SKIPPED"
echo "interop-clients: $verdict ($summary; sub $EMULATOR_USER; mcp $PY_SDK, @modelcontextprotocol/sdk $TS_SDK)"
