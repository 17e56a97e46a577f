#!/usr/bin/env python3
"""Serves one Client ID Metadata Document over https on loopback (standard library only).

    cimd_server.py CERT_PEM KEY_PEM PORT REDIRECT_URI

The document is served at https://127.0.0.1:PORT/client.json; its `client_id` is that URL,
its `redirect_uris` is [REDIRECT_URI], and the client is public (`none`). The official SDKs
refuse client-id URLs that are not https, so the interop script makes a throw-away CA and
certificate with openssl and tells the server under test to trust that CA
(`MCP_AUTH_CIMD_EXTRA_CA_FILE`). Prints `READY` once listening; every request is logged to
stderr, so the script can show that the server fetched the document.
"""

from __future__ import annotations

import http.server
import json
import ssl
import sys

PATH = "/client.json"


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    cert, key, port, redirect_uri = argv[0], argv[1], int(argv[2]), argv[3]
    client_id = f"https://127.0.0.1:{port}{PATH}"
    document = json.dumps(
        {
            "client_id": client_id,
            "client_name": "interop: CIMD client",
            "redirect_uris": [redirect_uri],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        }
    ).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            if self.path != PATH:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(document)))
            self.send_header("Cache-Control", "max-age=300")
            self.end_headers()
            self.wfile.write(document)

        def log_message(self, format: str, *args) -> None:  # noqa: A002 - the API's name
            print(f"cimd-server: {format % args}", file=sys.stderr, flush=True)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print(f"CLIENT_ID={client_id}", flush=True)
    print("READY", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
