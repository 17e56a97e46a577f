"""FastMCP's WorkOS providers, served for scripts/compare-fastmcp.sh (benchmark only).

    fastmcp_server.py authkit|workos PORT

One process, one uvicorn worker, one `whoami` tool, served twice as our bench servers serve it
(stateless streamable HTTP, JSON responses):

    /mcp        behind the provider (AuthKitProvider: RS256 JWTs from the emulator's JWKS;
                WorkOSProvider: FastMCP's OAuth proxy with its consent page and its default
                encrypted file store under FASTMCP_HOME)
    /open/mcp   the same tool on a FastMCP server without auth: the baseline of the ratio

Configuration (environment, set by the script; every URL points at loopback):
    AUTHKIT_DOMAIN     the AuthKit emulator
    PUBLIC_URL         this server's public base URL (AuthKit mode: the resource URL's base,
                       which the emulator's tokens name as audience)
    WORKOS_CLIENT_ID, WORKOS_CLIENT_SECRET   the emulator's Connect application (workos mode)

Prints READY once listening. Never deploy it: /open/mcp has no authentication.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys

import uvicorn
from fastmcp import FastMCP
from fastmcp.server.auth.providers.workos import AuthKitProvider, WorkOSProvider
from fastmcp.server.dependencies import get_access_token
from starlette.applications import Starlette
from starlette.routing import Mount

MCP_PATH = "/mcp"
UPSTREAM_SCOPE = "openid profile email offline_access"


def provider(mode: str):
    """FastMCP's provider for `mode`, configured as its documentation shows, URLs on loopback."""
    domain = os.environ["AUTHKIT_DOMAIN"]
    public = os.environ["PUBLIC_URL"]
    if mode == "authkit":
        return AuthKitProvider(authkit_domain=domain, base_url=public)
    if mode == "workos":
        return WorkOSProvider(
            client_id=os.environ["WORKOS_CLIENT_ID"],
            client_secret=os.environ["WORKOS_CLIENT_SECRET"],
            authkit_domain=domain,
            base_url=public,
            # The scopes our proxy asks AuthKit for, set FastMCP's documented way (also how it
            # gets WorkOS refresh tokens). The emulator refuses a Connect authorization request
            # without a scope or without an OpenID nonce; FastMCP sends neither by itself (it
            # checks no ID token, so one random nonce per process is enough).
            extra_authorize_params={"scope": UPSTREAM_SCOPE, "nonce": secrets.token_urlsafe(16)},
        )
    raise SystemExit(f"unknown mode {mode!r}: use authkit or workos")


def server(name: str, auth) -> FastMCP:
    """A FastMCP server with the one tool our bench servers have."""
    mcp = FastMCP(name, auth=auth)

    @mcp.tool
    def whoami() -> dict:
        """Return the authenticated caller: sub, client_id, scopes, claims."""
        token = get_access_token()
        if token is None:
            return {"sub": None}
        return {
            "sub": token.claims.get("sub"),
            "client_id": token.client_id,
            "scopes": token.scopes,
            "claims": token.claims,
        }

    return mcp


def app(mode: str) -> Starlette:
    """The protected app at the root and the unprotected twin under /open, one lifespan."""
    options = {"stateless_http": True, "json_response": True}
    protected = server("compare-protected", provider(mode)).http_app(path=MCP_PATH, **options)
    open_app = server("compare-open", None).http_app(path=MCP_PATH, **options)

    @contextlib.asynccontextmanager
    async def lifespan(_):
        async with protected.router.lifespan_context(protected):
            async with open_app.router.lifespan_context(open_app):
                print("READY", flush=True)
                yield

    return Starlette(
        routes=[Mount("/open", app=open_app), Mount("", app=protected)], lifespan=lifespan
    )


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    mode, port = argv[0], int(argv[1])
    uvicorn.run(app(mode), host="127.0.0.1", port=port, log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
