#!/usr/bin/env bash
# Walks the whole OAuth 2.1 flow of a proxy-mode server with curl, the way an MCP client and a
# browser would, and checks every answer:
#
#   discovery (401 challenge -> protected-resource metadata -> authorization-server metadata)
#   -> POST /register (public client) -> GET /authorize (PKCE S256) -> our consent page
#   -> approve -> the identity provider's /oauth2/authorize -> our callback
#   -> the client's redirect URI with code, state and iss -> POST /token
#   -> MCP tools/call whoami with the access token -> refresh (rotation)
#   -> POST /revoke -> the revoked tokens get 401 / invalid_grant.
#
# It needs an identity provider that signs the user in without a browser, such as the
# FakeAuthKit of the quickstart example:
#
#   cargo run --example quickstart            # terminal 1
#   scripts/quickstart-flow.sh                # terminal 2 (base URL default http://127.0.0.1:8000)
#
# Usage: scripts/quickstart-flow.sh [BASE_URL]
#   MCP_URL=...                 the MCP endpoint, default BASE_URL/mcp (everything else is
#                               discovered from its 401 challenge, RFC 9728 / RFC 8414)
#   EXPECT_SUBJECT=user_01TEST  also check the subject `whoami` reports
#   VERBOSE=1                   print every response body
#
# Needs curl, jq and openssl. Exits non-zero at the first unexpected answer, printing the
# request and the response.
set -euo pipefail

BASE="${1:-http://127.0.0.1:8000}"
BASE="${BASE%/}"
MCP_URL="${MCP_URL:-$BASE/mcp}"
CLIENT_REDIRECT="http://127.0.0.1:9999/cb"
MCP_PROTOCOL_VERSION="2025-06-18"

for tool in curl jq openssl; do
    command -v "$tool" >/dev/null || { echo "error: $tool is required" >&2; exit 2; }
done

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
JAR="$WORK/cookies"
: >"$JAR"

step() { printf '\n== %s\n' "$*" >&2; }
ok() { printf '   ok: %s\n' "$*" >&2; }

# The last request, for error reports.
LAST_REQUEST=""
LAST_URL=""
STATUS=""

fail() {
    {
        printf '\nFAILED: %s\n' "$*"
        printf 'request: %s\n' "$LAST_REQUEST"
        printf 'status: %s\nheaders:\n' "$STATUS"
        sed 's/^/    /' "$WORK/headers" 2>/dev/null || true
        printf 'body:\n'
        head -c 4000 "$WORK/body" 2>/dev/null | sed 's/^/    /' || true
        printf '\n'
    } >&2
    exit 1
}

# http METHOD URL [curl args...]: sends the request (cookie jar on), keeps headers and body in
# $WORK/headers and $WORK/body, sets STATUS. Never follows redirects.
http() {
    local method="$1" url="$2"
    shift 2
    LAST_REQUEST="$method $url"
    LAST_URL="$url"
    : >"$WORK/headers"
    : >"$WORK/body"
    STATUS="$(curl -sS -X "$method" "$url" -b "$JAR" -c "$JAR" \
        -D "$WORK/headers" -o "$WORK/body" -w '%{http_code}' "$@")" \
        || fail "curl could not reach $url"
    if [[ "${VERBOSE:-}" == 1 ]]; then
        printf '   %s -> %s\n' "$LAST_REQUEST" "$STATUS" >&2
        head -c 2000 "$WORK/body" | sed 's/^/      /' >&2
        printf '\n' >&2
    fi
}

expect_status() {
    [[ "$STATUS" == "$1" ]] || fail "expected HTTP $1, got $STATUS"
}

# header NAME: the value of the last response's header NAME (empty if absent).
header() {
    grep -i "^$1:" "$WORK/headers" | tail -n 1 | cut -d: -f2- | sed 's/^ *//' | tr -d '\r' || true
}

# body_json FILTER: jq FILTER on the last body; fails unless the body is JSON.
body_json() {
    jq -er "$1" "$WORK/body" 2>/dev/null || fail "the body has no value for $1"
}

urldecode() {
    local s="${1//+/ }"
    printf '%b' "${s//%/\\x}"
}

# query_param URL NAME: the decoded value of NAME in URL's query (empty if absent).
query_param() {
    local query="${1#*\?}" pair
    query="${query%%#*}"
    local IFS='&'
    for pair in $query; do
        if [[ "${pair%%=*}" == "$2" ]]; then
            urldecode "${pair#*=}"
            return 0
        fi
    done
    return 0
}

# absolute LOCATION: a Location header made absolute against the origin of the last request.
absolute() {
    case "$1" in
        http://* | https://*) printf '%s' "$1" ;;
        /*)
            [[ "$LAST_URL" =~ ^(https?://[^/?#]+) ]] || fail "cannot resolve Location $1"
            printf '%s%s' "${BASH_REMATCH[1]}" "$1"
            ;;
        *) fail "unexpected relative Location: $1" ;;
    esac
}

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }

mcp_whoami() {
    http POST "$MCP_URL" \
        -H "Authorization: Bearer $1" \
        -H 'Content-Type: application/json' \
        -H 'Accept: application/json, text/event-stream' \
        -H "MCP-Protocol-Version: $MCP_PROTOCOL_VERSION" \
        --data '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","arguments":{}}}'
}

# login: a whole browser login, from /authorize to the token exchange. Sets CODE, VERIFIER,
# ACCESS and REFRESH.
login() {
    step "authorization request (PKCE S256)"
    VERIFIER="$(openssl rand 48 | b64url)"
    CHALLENGE_S256="$(printf '%s' "$VERIFIER" | openssl dgst -sha256 -binary | b64url)"
    STATE="st-$(openssl rand -hex 8)"
    http GET "$AUTHORIZE_URL" -G \
        --data-urlencode response_type=code \
        --data-urlencode "client_id=$CLIENT_ID" \
        --data-urlencode "redirect_uri=$CLIENT_REDIRECT" \
        --data-urlencode "code_challenge=$CHALLENGE_S256" \
        --data-urlencode code_challenge_method=S256 \
        --data-urlencode "state=$STATE" \
        --data-urlencode "resource=$MCP_URL"
    expect_status 302
    [[ -n "$(header Set-Cookie)" ]] || fail "/authorize set no browser-binding cookie"
    CONSENT_URL="$(absolute "$(header Location)")"
    [[ "$CONSENT_URL" == "$ISSUER/consent?"* ]] || fail "/authorize did not redirect to our consent page: $CONSENT_URL"
    ok "302 to $CONSENT_URL, cookie $(header Set-Cookie | cut -d';' -f1 | cut -d= -f1)"

    step "consent page"
    http GET "$CONSENT_URL"
    expect_status 200
    [[ "$(header Content-Type)" == text/html* ]] || fail "the consent page is not HTML"
    grep -q 'quickstart-flow.sh' "$WORK/body" || fail "the consent page does not name the client"
    grep -qF "$CLIENT_REDIRECT" "$WORK/body" || fail "the consent page does not show the redirect URI"
    CSRF="$(sed -n 's/.*name="csrf_token" value="\([^"]*\)".*/\1/p' "$WORK/body")"
    TXN="$(sed -n 's/.*name="txn_id" value="\([^"]*\)".*/\1/p' "$WORK/body")"
    ACTION="$(sed -n 's/.*<form method="post" action="\([^"]*\)".*/\1/p' "$WORK/body")"
    [[ -n "$CSRF" && -n "$TXN" && -n "$ACTION" ]] || fail "no csrf_token / txn_id / action in the consent form"
    ACTION="$(absolute "$ACTION")"
    [[ "$ACTION" == "$ISSUER/consent" ]] || fail "the consent form posts to $ACTION, not $ISSUER/consent"
    ok "form posting to $ACTION with txn_id and csrf_token"

    http POST "$ACTION" --data-urlencode "txn_id=$TXN" --data-urlencode "csrf_token=$CSRF" \
        --data-urlencode action=approve
    expect_status 302
    UPSTREAM_URL="$(absolute "$(header Location)")"
    [[ "$UPSTREAM_URL" == *"/oauth2/authorize?"* && "$UPSTREAM_URL" != "$ISSUER/"* ]] \
        || fail "approving did not redirect to the identity provider: $UPSTREAM_URL"
    ok "approved: 302 to ${UPSTREAM_URL%%\?*}"

    step "identity provider login (automatic) and our callback"
    http GET "$UPSTREAM_URL"
    expect_status 302
    CALLBACK_URL="$(absolute "$(header Location)")"
    [[ "$CALLBACK_URL" == "$ISSUER/"* ]] || fail "the identity provider did not redirect back to us: $CALLBACK_URL"
    [[ -n "$(query_param "$CALLBACK_URL" code)" ]] || fail "the identity provider sent no code: $CALLBACK_URL"
    ok "302 to ${CALLBACK_URL%%\?*}"

    http GET "$CALLBACK_URL"
    expect_status 302
    CLIENT_URL="$(header Location)"
    [[ "$CLIENT_URL" == "$CLIENT_REDIRECT?"* ]] || fail "the callback did not redirect to the client: $CLIENT_URL"
    CODE="$(query_param "$CLIENT_URL" code)"
    [[ -n "$CODE" ]] || fail "no code for the client: $CLIENT_URL"
    [[ "$(query_param "$CLIENT_URL" state)" == "$STATE" ]] || fail "state not returned unchanged: $CLIENT_URL"
    [[ "$(query_param "$CLIENT_URL" iss)" == "$ISSUER" ]] || fail "iss is not $ISSUER: $CLIENT_URL"
    ok "302 to $CLIENT_REDIRECT with code, state and iss"

    step "token exchange"
    http POST "$TOKEN_URL" --data-urlencode grant_type=authorization_code \
        --data-urlencode "code=$CODE" --data-urlencode "code_verifier=$VERIFIER" \
        --data-urlencode "client_id=$CLIENT_ID" --data-urlencode "redirect_uri=$CLIENT_REDIRECT"
    expect_status 200
    ACCESS="$(body_json '.access_token')"
    REFRESH="$(body_json '.refresh_token')"
    [[ "$(body_json '.token_type')" =~ ^[Bb]earer$ ]] || fail "token_type is not Bearer"
    body_json '.expires_in' >/dev/null
    [[ "$(header Cache-Control)" == *no-store* ]] || fail "token response without Cache-Control: no-store"
    ok "access token ${ACCESS:0:10}..., refresh token ${REFRESH:0:10}..., scope '$(jq -r '.scope // ""' "$WORK/body")'"
}

# ---------------------------------------------------------------------------------------------
step "discovery"
http POST "$MCP_URL" -H 'Content-Type: application/json' \
    -H 'Accept: application/json, text/event-stream' \
    --data '{"jsonrpc":"2.0","id":1,"method":"tools/list"}'
expect_status 401
CHALLENGE="$(header WWW-Authenticate)"
[[ "$CHALLENGE" == Bearer* && "$CHALLENGE" == *resource_metadata=* ]] \
    || fail "401 without a Bearer challenge naming resource_metadata: $CHALLENGE"
PRM_URL="$(sed -n 's/.*resource_metadata="\([^"]*\)".*/\1/p' <<<"$CHALLENGE")"
ok "MCP endpoint without token: 401, $CHALLENGE"

http GET "$PRM_URL"
expect_status 200
[[ "$(body_json '.resource')" == "$MCP_URL" ]] || fail "the resource metadata names another resource than $MCP_URL"
ISSUER="$(body_json '.authorization_servers[0]')"
ok "authorization server $ISSUER"

# RFC 8414 §3.1: the well-known segment goes between the issuer's origin and its path.
[[ "$ISSUER" =~ ^(https?://[^/]+)(.*)$ ]] || fail "the authorization server is not an http(s) URL: $ISSUER"
http GET "${BASH_REMATCH[1]}/.well-known/oauth-authorization-server${BASH_REMATCH[2]}"
expect_status 200
[[ "$(body_json '.issuer')" == "$ISSUER" ]] || fail "metadata issuer differs from $ISSUER"
REGISTER_URL="$(body_json '.registration_endpoint')"
AUTHORIZE_URL="$(body_json '.authorization_endpoint')"
TOKEN_URL="$(body_json '.token_endpoint')"
REVOKE_URL="$(body_json '.revocation_endpoint')"
body_json '.code_challenge_methods_supported | index("S256")' >/dev/null
ok "register $REGISTER_URL, authorize $AUTHORIZE_URL, token $TOKEN_URL, revoke $REVOKE_URL"

# ---------------------------------------------------------------------------------------------
step "dynamic client registration"
http POST "$REGISTER_URL" -H 'Content-Type: application/json' --data @- <<EOF
{"redirect_uris":["$CLIENT_REDIRECT"],"token_endpoint_auth_method":"none",
 "grant_types":["authorization_code","refresh_token"],"response_types":["code"],
 "client_name":"quickstart-flow.sh"}
EOF
expect_status 201
CLIENT_ID="$(body_json '.client_id')"
if jq -e 'has("client_secret")' "$WORK/body" >/dev/null; then
    fail "a public client (token_endpoint_auth_method none) got a client_secret"
fi
ok "client_id $CLIENT_ID"

# ---------------------------------------------------------------------------------------------
login
ACCESS_1="$ACCESS"
REFRESH_1="$REFRESH"

# ---------------------------------------------------------------------------------------------
step "MCP tools/call whoami"
mcp_whoami "$ACCESS_1"
expect_status 200
CALLER="$(body_json '.result.content[0].text')"
SUBJECT="$(jq -er '.subject' <<<"$CALLER" 2>/dev/null)" || fail "whoami answered without a subject"
[[ -n "$SUBJECT" ]] || fail "whoami answered with an empty subject"
if [[ -n "${EXPECT_SUBJECT:-}" && "$SUBJECT" != "$EXPECT_SUBJECT" ]]; then
    fail "whoami says subject $SUBJECT, expected $EXPECT_SUBJECT"
fi
ok "subject $SUBJECT, client $(jq -r '.client_id // "?"' <<<"$CALLER")"

# ---------------------------------------------------------------------------------------------
step "refresh (rotation)"
http POST "$TOKEN_URL" --data-urlencode grant_type=refresh_token \
    --data-urlencode "refresh_token=$REFRESH_1" --data-urlencode "client_id=$CLIENT_ID"
expect_status 200
ACCESS_2="$(body_json '.access_token')"
REFRESH_2="$(body_json '.refresh_token')"
[[ "$ACCESS_2" != "$ACCESS_1" ]] || fail "refresh returned the same access token"
[[ "$REFRESH_2" != "$REFRESH_1" ]] || fail "refresh did not rotate the refresh token"
ok "new access and refresh tokens"

mcp_whoami "$ACCESS_2"
expect_status 200
[[ "$(jq -er '.subject' <<<"$(body_json '.result.content[0].text')")" == "$SUBJECT" ]] \
    || fail "the refreshed token belongs to another subject"
ok "whoami with the refreshed token: $SUBJECT"

# ---------------------------------------------------------------------------------------------
step "revocation"
http POST "$REVOKE_URL" --data-urlencode "token=$ACCESS_2" --data-urlencode "client_id=$CLIENT_ID" \
    --data-urlencode token_type_hint=access_token
expect_status 200
mcp_whoami "$ACCESS_2"
expect_status 401
ok "revoked access token: 401 ($(header WWW-Authenticate))"

http POST "$REVOKE_URL" --data-urlencode "token=$REFRESH_2" --data-urlencode "client_id=$CLIENT_ID" \
    --data-urlencode token_type_hint=refresh_token
expect_status 200
http POST "$TOKEN_URL" --data-urlencode grant_type=refresh_token \
    --data-urlencode "refresh_token=$REFRESH_2" --data-urlencode "client_id=$CLIENT_ID"
expect_status 400
[[ "$(body_json '.error')" == invalid_grant ]] || fail "a revoked refresh token is not invalid_grant"
ok "revoked refresh token: 400 invalid_grant"

# ---------------------------------------------------------------------------------------------
step "a replayed code is refused and revokes what it issued (second login)"
login
mcp_whoami "$ACCESS"
expect_status 200
http POST "$TOKEN_URL" --data-urlencode grant_type=authorization_code \
    --data-urlencode "code=$CODE" --data-urlencode "code_verifier=$VERIFIER" \
    --data-urlencode "client_id=$CLIENT_ID" --data-urlencode "redirect_uri=$CLIENT_REDIRECT"
expect_status 400
[[ "$(body_json '.error')" == invalid_grant ]] || fail "a replayed code is not invalid_grant"
ok "replay: 400 invalid_grant"
mcp_whoami "$ACCESS"
expect_status 401
ok "the access token issued for the replayed code: 401"
http POST "$TOKEN_URL" --data-urlencode grant_type=refresh_token \
    --data-urlencode "refresh_token=$REFRESH" --data-urlencode "client_id=$CLIENT_ID"
expect_status 400
[[ "$(body_json '.error')" == invalid_grant ]] || fail "the refresh token of a replayed code still works"
ok "the refresh token issued for the replayed code: 400 invalid_grant"

printf '\nPASS: the full OAuth flow against %s works (subject %s)\n' "$BASE" "$SUBJECT" >&2
