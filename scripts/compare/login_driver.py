"""Full OAuth logins against a proxy-mode server, ours or FastMCP's (scripts/compare-fastmcp.sh).

    login_driver.py BASE_URL MCP_URL SECONDS CONCURRENCY TOKEN_FILE
    login_driver.py tokens BASE_URL MCP_URL COUNT CONCURRENCY TOKEN_FILE

For SECONDS, CONCURRENCY logins at a time, each one what a new MCP client and its user do:
register (RFC 7591, public client, no scope) -> authorize (PKCE S256, state, resource) -> the
server's consent page, approved -> the identity provider (the AuthKit emulator answers at once)
-> the server's callback -> the client's redirect URI with a code -> token. Each login has its
own cookie jar, as a fresh browser would. The consent form is read by its structure (the
form, its hidden fields, the approving button; scripts/interop/browser.py), never by its
wording, so the same driver follows both servers' pages.

Prints one line:
    LOGINS ok=N errors=N seconds=S rate=R p50_ms=X p99_ms=Y errors_seen=<first error>
and writes the access token of the first successful login to TOKEN_FILE.

`tokens` mints COUNT distinct access tokens the way clients come to hold them: CONCURRENCY
logins as above (one grant each), then refresh-token chains, one per grant, each refresh
(refresh_token grant, rotated refresh token) issuing a new access token while earlier ones stay
valid until they expire. Writes every access token, one per line, to TOKEN_FILE and prints
    TOKENS count=N logins=N login_seconds=S seconds=S refresh_rate=R
Fails on the first refused login or refresh. Only loopback URLs are ever requested.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import ipaddress
import os
import secrets
import ssl
import sys
import time
import urllib.parse

import httpx2

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "interop"))
from browser import _Forms, _pick_button  # noqa: E402  (the interop scripts' form reader)

# Where the client's browser is sent back to; nobody listens there, the driver reads the URL.
REDIRECT_URI = "http://127.0.0.1:9/callback"
# A login is a handful of hops: authorize, consent page, consent POST, emulator, callback.
MAX_HOPS = 12
TIMEOUT = httpx2.Timeout(30.0)
# One TLS context for every login's client (never used: every URL is plain http on loopback).
# httpx builds a new one, loading the CA bundle, for each client otherwise: tens of ms of the
# driver's CPU per login, which would make the driver, not the server, the bottleneck.
TLS = ssl.create_default_context()


class LoginError(Exception):
    """A login did not end with an access token; the message names the step."""


def _loopback(url: str) -> str:
    host = urllib.parse.urlsplit(url).hostname or ""
    if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
        raise LoginError(f"refusing to leave loopback: {url}")
    return url


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def _register(http: httpx2.AsyncClient, base: str) -> str:
    response = await http.post(
        _loopback(f"{base}/register"),
        json={
            "client_name": "compare-fastmcp login driver",
            "redirect_uris": [REDIRECT_URI],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        },
    )
    if response.status_code != 201:
        raise LoginError(f"register: {response.status_code} {response.text[:200]}")
    return response.json()["client_id"]


def _consent_submission(url: str, page: str) -> tuple[str, dict[str, str]]:
    """The approving submission of the page's first form: target URL and fields."""
    parser = _Forms()
    parser.feed(page)
    forms = [form for form in parser.forms if form["buttons"] or form["fields"]]
    if not forms or forms[0]["method"] != "post":
        raise LoginError(f"consent: no POST form at {url.split('?')[0]}")
    form = forms[0]
    fields = list(form["fields"])
    button = _pick_button(form["buttons"])
    if button and button[0]:
        fields.append(button)
    return urllib.parse.urljoin(url, form["action"] or url), dict(fields)


async def _authorize(http: httpx2.AsyncClient, base: str, query: dict[str, str]) -> str:
    """Follows the browser's way from the authorization request to the redirect URI; the code."""
    url = f"{base}/authorize?{urllib.parse.urlencode(query)}"
    method, form = "GET", None
    for _ in range(MAX_HOPS):
        if url.startswith(REDIRECT_URI):
            answer = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
            if answer.get("state") != query["state"] or "code" not in answer:
                raise LoginError(f"callback: {answer.get('error', 'no code or wrong state')}")
            return answer["code"]
        response = await http.request(method, _loopback(url), data=form)
        if response.status_code in (301, 302, 303, 307, 308):
            url, method, form = urllib.parse.urljoin(url, response.headers["location"]), "GET", None
        elif response.status_code == 200 and method == "GET":
            url, form = _consent_submission(url, response.text)
            method = "POST"
        else:
            raise LoginError(f"{method} {url.split('?')[0]}: {response.status_code}")
    raise LoginError("authorize: too many redirects")


async def login(base: str, mcp_url: str) -> str:
    """One full login; returns the access token."""
    return (await login_grant(base, mcp_url))[1]["access_token"]


async def login_grant(base: str, mcp_url: str) -> tuple[str, dict]:
    """One full login; returns the client id and the token response."""
    async with httpx2.AsyncClient(timeout=TIMEOUT, verify=TLS, trust_env=False) as http:
        client_id = await _register(http, base)
        verifier, challenge = _pkce()
        query = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT_URI,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "state": secrets.token_urlsafe(16),
            "resource": mcp_url,
        }
        code = await _authorize(http, base, query)
        response = await http.post(
            _loopback(f"{base}/token"),
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT_URI,
                "client_id": client_id,
                "code_verifier": verifier,
                "resource": mcp_url,
            },
        )
        if response.status_code != 200 or "access_token" not in response.json():
            raise LoginError(f"token: {response.status_code} {response.text[:200]}")
        return client_id, response.json()


async def _refresh(http: httpx2.AsyncClient, base: str, mcp_url: str, client_id: str, refresh: str) -> dict:
    """One refresh-token grant of a public client; the token response."""
    response = await http.post(
        _loopback(f"{base}/token"),
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh,
            "client_id": client_id,
            "resource": mcp_url,
        },
    )
    answer = response.json() if response.status_code == 200 else {}
    if "access_token" not in answer or "refresh_token" not in answer:
        raise LoginError(f"refresh: {response.status_code} {response.text[:200]}")
    return answer


async def mint(base: str, mcp_url: str, count: int, concurrency: int) -> dict:
    """COUNT distinct access tokens: CONCURRENCY logins, then one refresh chain per grant."""
    started = time.monotonic()
    concurrency = max(1, min(concurrency, count))
    grants = await asyncio.gather(*(login_grant(base, mcp_url) for _ in range(concurrency)))
    logged_in = time.monotonic()
    tokens = [answer["access_token"] for _, answer in grants]
    remaining = count - len(grants)

    async def chain(index: int, client_id: str, answer: dict) -> None:
        share = remaining // len(grants) + (1 if index < remaining % len(grants) else 0)
        refresh = answer.get("refresh_token")
        if share and not refresh:
            raise LoginError("token: no refresh token")
        async with httpx2.AsyncClient(timeout=TIMEOUT, verify=TLS, trust_env=False) as http:
            for _ in range(share):
                answer = await _refresh(http, base, mcp_url, client_id, refresh)
                refresh = answer["refresh_token"]
                tokens.append(answer["access_token"])

    await asyncio.gather(*(chain(i, cid, answer) for i, (cid, answer) in enumerate(grants)))
    done = time.monotonic()
    if len(set(tokens)) != count:
        raise LoginError(f"minted {len(set(tokens))} distinct tokens, expected {count}")
    return {
        "tokens": tokens,
        "logins": len(grants),
        "login_seconds": logged_in - started,
        "seconds": done - started,
        "refresh_rate": remaining / max(done - logged_in, 1e-9),
    }


async def run(base: str, mcp_url: str, seconds: float, concurrency: int) -> dict:
    deadline = time.monotonic() + seconds
    latencies: list[float] = []
    errors: list[str] = []
    tokens: list[str] = []

    async def worker() -> None:
        while time.monotonic() < deadline:
            started = time.monotonic()
            try:
                tokens.append(await login(base, mcp_url))
                latencies.append(time.monotonic() - started)
            except (LoginError, httpx2.HTTPError, ValueError, KeyError) as error:
                errors.append(f"{type(error).__name__}: {error}")

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.monotonic() - started
    latencies.sort()

    def percentile(p: float) -> float:
        return 1000 * latencies[min(len(latencies) - 1, int(p * len(latencies)))] if latencies else 0

    return {
        "ok": len(latencies),
        "errors": len(errors),
        "seconds": elapsed,
        "rate": len(latencies) / elapsed,
        "p50_ms": percentile(0.5),
        "p99_ms": percentile(0.99),
        "first_error": errors[0] if errors else "none",
        "token": tokens[0] if tokens else "",
    }


def main_tokens(argv: list[str]) -> int:
    if len(argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    base, mcp_url, count, concurrency, token_file = argv
    try:
        result = asyncio.run(mint(base.rstrip("/"), mcp_url, int(count), int(concurrency)))
    except (LoginError, httpx2.HTTPError, ValueError, KeyError) as error:
        print(f"TOKENS_FAILED {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    with open(token_file, "w", encoding="utf-8") as out:
        out.writelines(token + "\n" for token in result["tokens"])
    print(
        "TOKENS count={count} logins={logins} login_seconds={login_seconds:.2f} "
        "seconds={seconds:.2f} refresh_rate={refresh_rate:.1f}".format(
            count=len(result["tokens"]), **result
        )
    )
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["tokens"]:
        return main_tokens(argv[1:])
    if len(argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    base, mcp_url, seconds, concurrency, token_file = argv
    result = asyncio.run(run(base.rstrip("/"), mcp_url, float(seconds), int(concurrency)))
    with open(token_file, "w", encoding="utf-8") as out:
        out.write(result["token"] + "\n")
    print(
        "LOGINS ok={ok} errors={errors} seconds={seconds:.2f} rate={rate:.2f} "
        "p50_ms={p50_ms:.1f} p99_ms={p99_ms:.1f} errors_seen={first}".format(
            first=result["first_error"].replace(" ", "_")[:200], **result
        )
    )
    return 0 if result["ok"] > 0 and result["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
