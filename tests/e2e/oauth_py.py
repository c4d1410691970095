"""End-to-end OAuth with the official Python MCP SDK client against `portcullis serve`:
401 -> discovery -> registration (DCR or a client metadata document) -> login and consent
in headless Chromium (browser.mjs) -> token exchange -> tools -> refresh -> revocation -> 401.

Usage: python oauth_py.py MCP_URL dcr|cimd [CIMD_URL]

External authorization server mode (tests/e2e/oidc.sh): E2E_ISSUER is the provider's
issuer (tests/oidc), E2E_SUB the sub of the user who logs in there, E2E_TOKEN_FORMAT jwt or
opaque, and E2E_LOGIN_PAGE=oidc-provider for browser.mjs. The SDK must then log in at that
issuer and hold its token; refresh is checked without Portcullis's rotation rules, and
revocation is not (Portcullis cannot see a revoked JWT before it expires).
"""

import asyncio
import base64
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import httpx2
from mcp import Client, types
from mcp.client.auth import OAuthClientProvider, TokenStorage
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientMetadata

REDIRECT = "http://127.0.0.1:53684/callback"
HERE = Path(__file__).parent


class Memory(TokenStorage):
    tokens = None
    client = None

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens):
        self.tokens = tokens

    async def get_client_info(self):
        return self.client

    async def set_client_info(self, client_info):
        self.client = client_info


def post(url, data, headers=None):
    req = urllib.request.Request(url, data=data, headers=headers or {}, method="POST")
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


async def main(mcp_url: str, registration: str, cimd_url: str | None) -> None:
    origin = f"{urllib.parse.urlsplit(mcp_url).scheme}://{urllib.parse.urlsplit(mcp_url).netloc}"
    external = os.environ.get("E2E_ISSUER")
    sub = os.environ.get("E2E_SUB")
    token_format = os.environ.get("E2E_TOKEN_FORMAT")
    if external:
        assert sub and token_format in ("jwt", "opaque"), "E2E_ISSUER needs E2E_SUB and E2E_TOKEN_FORMAT=jwt|opaque"
    # The authorization server: Portcullis's own origin, or the external issuer.
    issuer = external or origin
    seen = {}

    async def redirect_handler(auth_url: str) -> None:
        q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(auth_url).query))
        assert q["resource"] == mcp_url, q
        seen["logins"] = seen.get("logins", 0) + 1
        seen["scope"] = q.get("scope", "")
        assert q["code_challenge_method"] == "S256", q
        parts = urllib.parse.urlsplit(auth_url)
        assert f"{parts.scheme}://{parts.netloc}" == issuer, f"the login is at {auth_url}, not at {issuer}"
        proc = await asyncio.create_subprocess_exec(
            "node", str(HERE / "browser.mjs"), auth_url, REDIRECT, stdout=asyncio.subprocess.PIPE
        )
        out, _ = await proc.communicate()
        assert proc.returncode == 0, "browser step failed"
        seen["callback"] = out.decode().strip()

    async def callback_handler() -> AuthorizationCodeResult:
        q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(seen["callback"]).query))
        assert q["iss"] == issuer, q
        return AuthorizationCodeResult(code=q["code"], state=q.get("state"), iss=q.get("iss"))

    storage = Memory()
    oauth = OAuthClientProvider(
        mcp_url,
        OAuthClientMetadata(client_name="portcullis e2e (python)", redirect_uris=[REDIRECT], token_endpoint_auth_method="none"),
        storage,
        redirect_handler,
        callback_handler,
        client_metadata_url=cimd_url if registration == "cimd" else None,
    )
    async with httpx2.AsyncClient(auth=oauth, timeout=60) as http:
        async with Client(streamable_http_client(mcp_url, http_client=http), mode="legacy") as client:
            names = [t.name for t in (await client.list_tools()).tools]
            assert "whoami" in names, names
            who = (await client.call_tool("whoami", {})).structured_content
            assert who["authenticated"] is True, who
            client_id = storage.client.client_id
            if registration == "cimd":
                assert client_id == cimd_url, client_id
            assert who["client_id"] == client_id, who
            first = storage.tokens
            if external:
                assert who["user"] == sub, f"the user is the provider's sub: {who}"
                # The token the client holds is the provider's: a JWT names its issuer, an
                # opaque one cannot be Portcullis's (which issues only JWTs).
                parts = first.access_token.split(".")
                if token_format == "opaque":
                    assert len(parts) != 3, "the provider issued an opaque access token"
                else:
                    claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
                    assert claims["iss"] == external, f"the access token comes from the external issuer: {claims}"
                    assert claims["aud"] == mcp_url, f"the access token is for this MCP server: {claims}"
                    assert claims["sub"] == sub, claims
            else:
                # Portcullis's own token, also after a federated login (never the provider's).
                part = first.access_token.split(".")[1]
                claims = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
                assert claims["iss"] == origin, f"the access token is Portcullis's own: {claims}"
                upstream_sub = os.environ.get("E2E_UPSTREAM_SUB")
                assert claims["sub"] != upstream_sub, f"the token names the local account: {claims}"

            # Refresh: mark the token expired so the SDK refreshes before the next call. An
            # external provider issues a refresh token only for offline_access (the SDK asks
            # for it when the provider lists it) and rotates by its own rules.
            if not external or first.refresh_token:
                oauth.context.token_expiry_time = time.time() - 1
                again = (await client.call_tool("whoami", {})).structured_content
                assert again["grant_id"] == who["grant_id"], again
                assert again["user"] == who["user"], again
                assert storage.tokens.access_token != first.access_token, "refresh issued a new access token"
                if not external:
                    assert storage.tokens.refresh_token != first.refresh_token, "refresh token rotated"
                seen["refreshed"] = True

            if external:
                # The SDK registered (DCR) with the first challenge's scope, and oidc-provider
                # holds a client to its registered scope (RFC 7591): the step-up authorization
                # would be refused with invalid_scope, and the SDK does not register again.
                # Forget the registration, as a user signing in again from scratch would; the
                # step-up then registers for the wider scope.
                oauth.context.client_info = None
                storage.client = None

            # Step-up: writing needs notes:write, which the first login did not grant. The
            # server answers 403 insufficient_scope; the SDK re-authorizes for the union of
            # scopes (the browser approves the new one) and retries the call.
            logins = seen["logins"]
            created = await client.call_tool("notes_create", {"title": "from python", "body": "step-up"})
            assert not created.is_error, created
            assert created.structured_content["title"] == "from python", created
            assert seen["logins"] == logins + 1, "a second authorization added the scope"
            assert "notes:write" in seen["scope"].split(), seen["scope"]
            if external:
                stepped = (await client.call_tool("whoami", {})).structured_content
                assert stepped["user"] == sub, stepped
                assert "notes:write" in stepped["scopes"], stepped

        # Confirmation on the 2026-07-28 protocol: notes_delete answers input_required with a
        # form elicitation; the SDK asks our callback and retries with the answer.
        questions = []
        answer = {"action": "decline"}

        async def elicit(context, params):
            questions.append(params.message)
            return types.ElicitResult(**answer)

        async with Client(
            streamable_http_client(mcp_url, http_client=http), mode="2026-07-28", elicitation_callback=elicit
        ) as client:
            note_id = created.structured_content["id"]
            declined = await client.call_tool("notes_delete", {"id": note_id})
            assert declined.is_error, declined
            assert "declined" in declined.content[0].text, declined
            assert len(questions) == 1 and "from python" in questions[0], questions
            assert not (await client.call_tool("notes_get", {"id": note_id})).is_error, "declined: kept"
            answer = {"action": "accept", "content": {"confirm": True}}
            deleted = await client.call_tool("notes_delete", {"id": note_id})
            assert not deleted.is_error, deleted
            assert deleted.structured_content["restorable_until"], deleted
            assert (await client.call_tool("notes_get", {"id": note_id})).is_error, "accepted: in the trash"

    if external:
        # Revocation is not checked: Portcullis cannot see a revoked JWT before it expires,
        # nor a revoked opaque token before its cached introspection answer ends (5 minutes).
        refreshed = "refreshed" if seen.get("refreshed") else "no refresh token issued: refresh not checked"
        print(f"ok: python {registration} {mcp_url}, tokens from {issuer} ({token_format}); {refreshed}; revocation not checked")
        return

    # Revocation by hand (the SDK has none), then the access token is refused.
    meta = json.loads(urllib.request.urlopen(f"{origin}/.well-known/oauth-authorization-server").read())
    form = urllib.parse.urlencode({"token": storage.tokens.refresh_token, "client_id": client_id}).encode()
    status, _, _ = post(meta["revocation_endpoint"], form, {"content-type": "application/x-www-form-urlencoded"})
    assert status == 200, status
    body = json.dumps({
        "jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "whoami", "arguments": {}, "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}},
    }).encode()
    probe_headers = {
        "content-type": "application/json", "accept": "application/json, text/event-stream",
        "authorization": f"Bearer {storage.tokens.access_token}", "mcp-protocol-version": "2026-07-28",
        "mcp-method": "tools/call", "mcp-name": "whoami",
    }
    # At once on the instance that revoked; within 5 s on the others of a scaled-out
    # deployment (tests/e2e/scale.sh runs this script through a load balancer).
    revoked_at = time.monotonic()
    status, headers, _ = post(mcp_url, body, probe_headers)
    while status != 401 and time.monotonic() - revoked_at < 5:
        await asyncio.sleep(0.1)
        status, headers, _ = post(mcp_url, body, probe_headers)
    assert status == 401, status
    www = {k.lower(): v for k, v in headers.items()}["www-authenticate"]
    assert 'error="invalid_token"' in www, www
    print(f"ok: python {registration} {mcp_url}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None))
