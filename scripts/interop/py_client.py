#!/usr/bin/env python3
"""Logs in to an MCP server with the official MCP Python SDK's OAuth client
(`mcp.client.auth.OAuthClientProvider`) and calls the `whoami` tool.

    py_client.py MCP_URL REDIRECT_URI [CLIENT_METADATA_URL] [--step-up]

Without CLIENT_METADATA_URL the SDK registers dynamically (DCR); with it, the SDK uses that
URL as its client id (a Client ID Metadata Document) when the server advertises support.
The SDK drives discovery, registration, PKCE, the token exchange and the MCP session; only
the person at the browser is played by `browser.py` (the SDK's redirect handler), and the
callback handler hands the SDK the code from the redirect URI the browser ended on.

Prints one line `WHOAMI <json>` with the tool's answer.

With `--step-up` it then calls `admin_echo`, a tool the server is configured to guard with an
extra scope (`MCP_AUTH_TOOL_SCOPES=tools/call:admin_echo=mcp:admin`): the server answers 403
`insufficient_scope`, the SDK asks for the challenged scopes (with those it already had) in a
second login, retries, and gets the echo. It then calls `whoami` once more and prints
`STEPUP <json>`: the echo, the number of logins the SDK started, and the second caller.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx2
from mcp import Client
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

sys.path.insert(0, str(Path(__file__).resolve().parent))
import browser  # noqa: E402


class MemoryStorage:
    """Token storage of one run (the SDK's TokenStorage protocol)."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


async def run(mcp_url: str, redirect_uri: str, metadata_url: str | None, step_up: bool) -> dict:
    landed: dict[str, str] = {}
    logins = 0

    def log(message: str) -> None:
        print(f"  browser: {message}", file=sys.stderr)

    async def open_browser(authorization_url: str) -> None:
        nonlocal logins
        logins += 1
        print(f"  SDK opens the browser at {authorization_url.split('?')[0]}", file=sys.stderr)
        landed["url"] = await anyio.to_thread.run_sync(
            lambda: browser.complete_login(authorization_url, redirect_uri, log=log)
        )

    async def callback() -> AuthorizationCodeResult:
        query = parse_qs(urlsplit(landed.pop("url")).query)
        if "error" in query:
            raise RuntimeError(f"authorization failed: {query}")
        return AuthorizationCodeResult(
            code=query["code"][0],
            state=query.get("state", [None])[0],
            iss=query.get("iss", [None])[0],
        )

    provider = OAuthClientProvider(
        server_url=mcp_url,
        client_metadata=OAuthClientMetadata(
            client_name="interop: MCP Python SDK",
            redirect_uris=[redirect_uri],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=MemoryStorage(),
        redirect_handler=open_browser,
        callback_handler=callback,
        client_metadata_url=metadata_url,
    )
    async with httpx2.AsyncClient(auth=provider, timeout=30, trust_env=False) as http:
        async with Client(streamable_http_client(mcp_url, http_client=http)) as client:
            caller = await whoami(client)
            if not step_up:
                return {"whoami": caller}
            logins_before = logins
            echoed = text_of(await client.call_tool("admin_echo", {"text": "stepped up"}), "admin_echo")
            after = await whoami(client)
    return {
        "whoami": caller,
        "step_up": {"echo": echoed, "logins": logins - logins_before, "whoami": after},
    }


def text_of(result, tool: str) -> str:
    if result.is_error:
        raise RuntimeError(f"{tool} failed: {result}")
    return next(block.text for block in result.content if getattr(block, "type", "") == "text")


async def whoami(client: Client) -> dict:
    return json.loads(text_of(await client.call_tool("whoami", {}), "whoami"))


def main(argv: list[str]) -> int:
    step_up = "--step-up" in argv
    argv = [arg for arg in argv if arg != "--step-up"]
    if len(argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    answers = anyio.run(run, argv[0], argv[1], argv[2] if len(argv) == 3 else None, step_up)
    print("WHOAMI " + json.dumps(answers["whoami"], separators=(",", ":")))
    if step_up:
        print("STEPUP " + json.dumps(answers["step_up"], separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
