// End-to-end check: the official MCP TypeScript SDK client (@modelcontextprotocol/client)
// against a running `portcullis serve`.
//
// Why this exists: unit tests only prove Portcullis agrees with itself; this proves a real,
// independently written client can connect, list tools and call `whoami` in each protocol era.
//
// Usage: node client_ts.mjs URL ERA   (ERA is 2025 or 2026)
//   2025 -> default versionNegotiation ('legacy'): initialize handshake + Mcp-Session-Id session.
//   2026 -> versionNegotiation { mode: { pin: '2026-07-28' } }: connect() sends server/discover and
//           requires the server to offer 2026-07-28 (no fallback); every later request carries the
//           per-request _meta envelope and MCP-Protocol-Version / Mcp-Method / Mcp-Name headers.
// Prints one line per check; exits non-zero with the reason on the first failure.
import assert from 'node:assert/strict';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';

const EXPECTED = { authenticated: false, user: null, client_id: null, scopes: [], grant_id: null };

function check(what, fn) {
    fn();
    console.log(`  ok  ${what}`);
}

async function main(url, era) {
    // Record every HTTP exchange so we can see whether the server handed out a session id.
    const exchanges = [];
    const recordingFetch = async (input, init) => {
        const res = await fetch(input, init);
        exchanges.push({
            method: init?.method ?? 'GET',
            sentVersion: new Headers(init?.headers).get('mcp-protocol-version'),
            sessionId: res.headers.get('mcp-session-id'),
        });
        return res;
    };

    const options = era === '2026' ? { versionNegotiation: { mode: { pin: '2026-07-28' } } } : {};
    const client = new Client({ name: 'portcullis-e2e-ts', version: '0.0.0' }, options);
    const transport = new StreamableHTTPClientTransport(new URL(url), { fetch: recordingFetch });
    await client.connect(transport);
    try {
        const version = client.getNegotiatedProtocolVersion();
        if (era === '2025') {
            check(`negotiated a 2025 protocol version via initialize (${version})`, () => assert.match(version, /^2025-/));
        } else {
            check(`negotiated 2026-07-28 via server/discover (${version})`, () => assert.equal(version, '2026-07-28'));
        }

        const { tools } = await client.listTools();
        const names = tools.map(t => t.name);
        check(`tools/list includes whoami (${JSON.stringify(names)})`, () => assert.ok(names.includes('whoami')));

        const result = await client.callTool({ name: 'whoami', arguments: {} });
        check('tools/call whoami did not return isError', () => assert.notEqual(result.isError, true));
        const sc = result.structuredContent;
        check(`whoami says authenticated=false (${JSON.stringify(sc)})`, () => assert.equal(sc?.authenticated, false));
        check('whoami structuredContent is the anonymous identity', () => assert.deepEqual(sc, EXPECTED));

        const posts = exchanges.filter(e => e.method === 'POST');
        if (era === '2025') {
            check(`server issued an Mcp-Session-Id (${transport.sessionId})`, () => assert.ok(transport.sessionId));
        } else {
            check('every POST was sent with MCP-Protocol-Version: 2026-07-28', () =>
                assert.deepEqual([...new Set(posts.map(e => e.sentVersion))], ['2026-07-28']));
            check(`no response carried Mcp-Session-Id (stateless) over ${posts.length} POSTs`, () => {
                assert.ok(posts.length >= 3, 'expected discover + tools/list + tools/call POSTs');
                assert.deepEqual(posts.filter(e => e.sessionId !== null), []);
                assert.equal(transport.sessionId, undefined);
            });
        }
    } finally {
        await client.close();
    }
}

const [url, era] = process.argv.slice(2);
if (!url || !['2025', '2026'].includes(era)) {
    console.error('usage: node client_ts.mjs URL 2025|2026');
    process.exit(2);
}
try {
    await main(url, era);
} catch (e) {
    console.error(`  FAIL ${e?.stack ?? e}`);
    process.exit(1);
}
