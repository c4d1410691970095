"""End-to-end check: the official Python MCP SDK (`mcp`) client against a running `portcullis serve`.

Why this exists: unit tests only prove Portcullis agrees with itself; this proves a real,
independently written client can connect, list tools and call `whoami` in each protocol era.

Usage: client_py.py URL ERA   (ERA is 2025 or 2026)
  2025 -> mode="legacy": initialize handshake + Mcp-Session-Id session (2025-11-25).
  2026 -> mode="auto": the SDK probes `server/discover` at 2026-07-28 and, if the server offers
          it, adopts that version; every later request carries the per-request `_meta` envelope
          and MCP-Protocol-Version / Mcp-Method headers. We assert it really chose 2026-07-28.
Prints one line per check; exits non-zero with the reason on the first failure.
"""

import asyncio
import sys

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

EXPECTED = {"authenticated": False, "user": None, "client_id": None, "scopes": [], "grant_id": None}


def check(cond: bool, what: str) -> None:
    if not cond:
        raise AssertionError(what)
    print(f"  ok  {what}")


async def main(url: str, era: str) -> None:
    # Record every HTTP response so we can see whether the server handed out a session id.
    responses: list[httpx2.Response] = []

    async def record(response: httpx2.Response) -> None:
        responses.append(response)

    http = httpx2.AsyncClient(timeout=httpx2.Timeout(30.0), event_hooks={"response": [record]})
    mode = "legacy" if era == "2025" else "auto"
    async with http, Client(streamable_http_client(url, http_client=http), mode=mode) as client:
        version = client.protocol_version
        if era == "2025":
            check(version.startswith("2025-"), f"negotiated a 2025 protocol version via initialize ({version})")
        else:
            check(version == "2026-07-28", f"negotiated 2026-07-28 via server/discover ({version})")

        tools = await client.list_tools()
        names = [t.name for t in tools.tools]
        check("whoami" in names, f"tools/list includes whoami ({names})")

        result = await client.call_tool("whoami", {})
        check(not result.is_error, "tools/call whoami did not return isError")
        sc = result.structured_content
        check(isinstance(sc, dict) and sc.get("authenticated") is False, f"whoami says authenticated=false ({sc})")
        check(sc == EXPECTED, "whoami structuredContent is the anonymous identity")

        posts = [r for r in responses if r.request.method == "POST"]
        session_ids = {r.headers.get("mcp-session-id") for r in posts} - {None}
        if era == "2025":
            check(len(session_ids) == 1, f"server issued one Mcp-Session-Id ({session_ids})")
        else:
            sent = {r.request.headers.get("mcp-protocol-version") for r in posts}
            check(sent == {"2026-07-28"}, f"every POST was sent with MCP-Protocol-Version: 2026-07-28 ({sent})")
            check(len(posts) >= 3, f"discover + tools/list + tools/call were {len(posts)} POSTs")
            check(not session_ids, f"no response carried Mcp-Session-Id (stateless) over {len(posts)} POSTs")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[2] not in ("2025", "2026"):
        sys.exit("usage: client_py.py URL 2025|2026")
    try:
        asyncio.run(main(sys.argv[1], sys.argv[2]))
    except BaseException as e:  # noqa: BLE001 - report any failure (incl. ExceptionGroup) as one line
        print(f"  FAIL {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
