"""Signing in to the pages with the identity provider: the OAuth 2.0 authorization code
grant with PKCE (RFC 6749 §4.1, RFC 7636), the web pages a public client. oauthlib builds
the requests and reads the answers; httpx carries the one token request."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

import httpx
from oauthlib.oauth2 import OAuth2Error, WebApplicationClient

# What the pages' user asks for: everything the pages can do; the provider may grant less
# (a page the token lacks the scope of then answers 403 and says so).
WEB_SCOPES = ("orders:read", "orders:write", "products:read", "products:write", "admin")
# The state, PKCE verifier and return path, between the redirect and the callback.
FLOW_COOKIE = "cloudcrm_sign_in"
FLOW_SECONDS = 600
# The error codes an authorization endpoint answers with (RFC 6749 §4.1.2.1), the only
# part of its answer the sign-in page repeats: the callback's address is anyone's to write
# (a link can carry "error=account_locked: call …"), and error_description is free text.
AUTHORIZATION_ERRORS = frozenset({
    "invalid_request", "unauthorized_client", "access_denied", "unsupported_response_type",
    "invalid_scope", "server_error", "temporarily_unavailable",
})  # fmt: skip


class SignInFailedError(Exception):
    """The provider's answer cannot be used (wrong state, refused code); the message says
    why, for the sign-in page."""


@dataclass(frozen=True)
class IdentityProvider:
    """The provider's endpoints and this web app's client id there."""

    authorize_url: str
    token_url: str
    client_id: str

    def start(self, redirect_uri: str, next_path: str) -> tuple[str, str]:
        """The URL to send the browser to, and the FLOW_COOKIE value to keep meanwhile.

        Raises SignInFailedError for a provider URL that is not https (oauthlib's rule;
        OAUTHLIB_INSECURE_TRANSPORT=1 lifts it for a local test provider)."""
        client = WebApplicationClient(self.client_id)
        verifier = client.create_code_verifier(64)
        state = secrets.token_urlsafe(24)
        try:
            url = client.prepare_request_uri(
                self.authorize_url,
                redirect_uri=redirect_uri,
                scope=list(WEB_SCOPES),
                state=state,
                code_challenge=client.create_code_challenge(verifier, "S256"),
                code_challenge_method="S256",
            )
        except OAuth2Error as exc:
            raise SignInFailedError(f"cannot sign in at {self.authorize_url}: {exc}") from exc
        return url, f"{state} {verifier} {next_path}"

    async def finish(
        self, flow: str | None, query: dict[str, str], redirect_uri: str
    ) -> tuple[str, float, str]:
        """The access token, when it expires (epoch seconds) and the path to return to.

        Raises SignInFailedError."""
        if "error" in query:
            code = query["error"]
            named = f" ({code})" if code in AUTHORIZATION_ERRORS else ""
            raise SignInFailedError(f"the identity provider did not sign you in{named}; try again")
        parts = (flow or "").split(" ", 2)
        if len(parts) != 3:
            raise SignInFailedError("the sign-in expired or did not start here; try again")
        state, verifier, next_path = parts
        # Bytes: compare_digest refuses non-ASCII str (a crafted link may carry one).
        if not secrets.compare_digest(state.encode(), query.get("state", "").encode()):
            raise SignInFailedError("the sign-in expired or did not start here; try again")
        client = WebApplicationClient(self.client_id)
        body = client.prepare_request_body(
            code=query.get("code", ""),
            redirect_uri=redirect_uri,
            code_verifier=verifier,
            include_client_id=True,
        )
        try:
            async with httpx.AsyncClient(timeout=10) as http:
                answer = await http.post(
                    self.token_url,
                    content=body,
                    headers={"Content-Type": "application/x-www-form-urlencoded",
                             "Accept": "application/json"},
                )  # fmt: skip
            token: dict[str, Any] = client.parse_request_body_response(answer.text)
        except Exception as exc:  # unreachable, refused, not a token answer
            raise SignInFailedError(
                f"the identity provider refused the sign-in: {exc}"[:200]
            ) from exc
        access = str(token.get("access_token", ""))
        if not access or not access.isascii() or len(access) > 8192:
            raise SignInFailedError("the identity provider's token answer is not usable")
        try:
            lifetime = min(max(float(token.get("expires_in", 3600)), 60.0), 86_400.0)
        except (TypeError, ValueError, OverflowError):
            lifetime = 3600.0
        return access, time.time() + lifetime, next_path
