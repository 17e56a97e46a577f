// Logs in to an MCP server with the official MCP TypeScript SDK (`@modelcontextprotocol/sdk`:
// `Client`, `StreamableHTTPClientTransport` with an `authProvider`) and calls `whoami`.
//
//   node ts_client.mjs MCP_URL REDIRECT_URI [CLIENT_METADATA_URL]
//
// Without CLIENT_METADATA_URL the SDK registers dynamically (DCR); with it, the SDK offers that
// URL as its client id (Client ID Metadata Document) when the server advertises support. The
// SDK does discovery, registration, PKCE, the token exchange and the MCP session; the person at
// the browser is played by browser.py (the provider's `redirectToAuthorization`), and the code
// it brings back from the redirect URI goes to `transport.finishAuth`, as an app's callback
// handler would do.
//
// Prints one line `WHOAMI <json>` with the tool's answer.
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';

const [mcpUrl, redirectUri, metadataUrl] = process.argv.slice(2);
if (!mcpUrl || !redirectUri) {
  console.error('usage: node ts_client.mjs MCP_URL REDIRECT_URI [CLIENT_METADATA_URL]');
  process.exit(2);
}
// The scripts run a copy of this file next to their node_modules, so they name browser.py.
const browserScript =
  process.env.INTEROP_BROWSER || join(dirname(fileURLToPath(import.meta.url)), 'browser.py');
const python = process.env.INTEROP_PYTHON || 'python3';

/** The SDK's OAuthClientProvider for one run: everything in memory. */
class MemoryProvider {
  constructor() {
    this.saved = {};
    this.landedUrl = undefined;
    if (metadataUrl) this.clientMetadataUrl = metadataUrl;
  }
  get redirectUrl() {
    return redirectUri;
  }
  get clientMetadata() {
    return {
      client_name: 'interop: MCP TypeScript SDK',
      redirect_uris: [redirectUri],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }
  clientInformation() {
    return this.saved.client;
  }
  saveClientInformation(info) {
    this.saved.client = info;
  }
  tokens() {
    return this.saved.tokens;
  }
  saveTokens(tokens) {
    this.saved.tokens = tokens;
  }
  saveCodeVerifier(verifier) {
    this.saved.verifier = verifier;
  }
  codeVerifier() {
    return this.saved.verifier;
  }
  redirectToAuthorization(url) {
    console.error(`  SDK opens the browser at ${url.origin}${url.pathname}`);
    this.landedUrl = execFileSync(python, [browserScript, url.toString(), redirectUri, '--verbose'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
      timeout: 60_000,
    }).trim();
  }
}

const provider = new MemoryProvider();
const connect = async () => {
  const client = new Client({ name: 'interop-ts', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider });
  await client.connect(transport);
  return { client, transport };
};

let session;
try {
  session = await connect();
} catch (error) {
  if (!(error instanceof UnauthorizedError) || !provider.landedUrl) throw error;
  // The browser came back to our redirect URI: hand the code to the SDK, then reconnect.
  const landed = new URL(provider.landedUrl);
  if (landed.searchParams.get('error')) {
    throw new Error(`authorization failed: ${landed.search}`);
  }
  const code = landed.searchParams.get('code');
  const transport = new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider });
  await transport.finishAuth(code);
  session = await connect();
}
const result = await session.client.callTool({ name: 'whoami', arguments: {} });
await session.client.close();
if (result.isError) throw new Error(`whoami failed: ${JSON.stringify(result)}`);
const text = result.content.find((block) => block.type === 'text').text;
console.log('WHOAMI ' + JSON.stringify(JSON.parse(text)));
