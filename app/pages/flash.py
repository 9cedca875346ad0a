"""The pages' one-time banners: what an action did (or why it was refused), said on the
page it redirects to. Carried in a short-lived cookie signed with this web process's
own random key (HMAC-SHA256, RFC 2104), read once and then cleared; never taken from the
address, where any link could put "Your account is locked, call …" in the site's mouth.

A flash shows only in the browser it was made for. Browsers send a host's cookies to
every port of it, and take cookies for it from every port (RFC 6265 §8.5): a service on
another port could plant a flash its owner obtained by their own action into another
user's browser. So the signature covers the browser's session id (none before sign-in)
and a random per-browser nonce kept in a cookie of its own (``__Host-`` over https, which
no plain-http service of the host can overwrite)."""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import re
import secrets
import time
from dataclasses import dataclass
from typing import Literal

from fastapi import Request, Response

# The same name over http and https: a banner grants nothing, and a forged one does not
# verify, so it needs no __Host- prefix (which would tie it to the request's scheme).
COOKIE = "cloudcrm_flash"
# The browser's nonce: a browser-session cookie, set with its first flash.
BROWSER_COOKIE = "cloudcrm_browser"
SECURE_BROWSER_COOKIE = "__Host-cloudcrm_browser"
_NONCE = re.compile(r"[A-Za-z0-9_-]{22}")
# Between the action's redirect and the page it goes to: seconds, not minutes.
FLASH_SECONDS = 60
# Browsers keep cookies of up to 4,096 bytes (RFC 6265 §6.1); the text is cut so that
# the signed payload stays well under (an API's 422 may list many fields).
MAX_PAYLOAD_BYTES = 2_400

Kind = Literal["message", "error"]


@dataclass(frozen=True)
class Flash:
    """One banner: a success ``message`` or an ``error``, and its text."""

    kind: Kind
    text: str


@functools.cache
def _process_key() -> bytes:
    # Made on first use (not at import), once per process: a flash signed by another
    # process, or before a restart, does not verify (a banner lost, nothing else).
    return secrets.token_bytes(32)


def _sign(payload: bytes, browser: str, session: str) -> bytes:
    # The nonce and the session id are URL-safe base64 (no NUL): NUL separates them.
    signed = f"{browser}\0{session}\0".encode("ascii") + payload
    return _b64(hmac.new(_process_key(), signed, hashlib.sha256).digest()).encode("ascii")


def _browser_cookie(request: Request) -> str:
    return SECURE_BROWSER_COOKIE if request.url.scheme == "https" else BROWSER_COOKIE


def _nonce(request: Request) -> str | None:
    nonce = request.cookies.get(_browser_cookie(request), "")
    return nonce if _NONCE.fullmatch(nonce) else None


def _session(session: str) -> str:
    # A session cookie's value as the browser sent it: only its characters count (another
    # value matches no live session anyway).
    return session if session.isascii() and "\0" not in session else ""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def say(response: Response, request: Request, flash: Flash, *, session: str) -> None:
    """Have the next page ``response`` leads to show ``flash``, in ``request``'s browser,
    while its session cookie holds ``session`` ("" for none: before sign-in, or after
    sign-out)."""
    browser = _nonce(request)
    if browser is None:
        browser = secrets.token_urlsafe(16)
        https = request.url.scheme == "https"
        response.set_cookie(_browser_cookie(request), browser, path="/", httponly=True,
                            samesite="lax", secure=https)  # fmt: skip
    text = flash.text
    while True:
        body = {"kind": flash.kind, "text": text, "at": int(time.time())}
        payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        if len(payload) <= MAX_PAYLOAD_BYTES:
            break
        text = text[: len(text) // 2] + "…"
    signature = _sign(payload, browser, _session(session)).decode("ascii")
    # Lax, not Strict (the nonce too): an error at the identity provider's callback
    # redirects to the sign-in page, in a redirect chain that began on the provider's site.
    response.set_cookie(COOKIE, f"{_b64(payload)}.{signature}",
                        max_age=FLASH_SECONDS, path="/", httponly=True,
                        samesite="lax")  # fmt: skip


def read(request: Request, *, session: str) -> Flash | None:
    """The banner the request's flash cookie carries, when this process signed it less
    than FLASH_SECONDS ago for this browser and ``session`` (its session cookie's value,
    "" for none); None otherwise (no cookie, altered, expired, made for another)."""
    value = request.cookies.get(COOKIE)
    browser = _nonce(request)
    if not value or "." not in value or browser is None:
        return None
    encoded, signature = value.rsplit(".", 1)
    try:
        payload = _unb64(encoded)
    except (binascii.Error, ValueError):
        return None
    # Bytes: compare_digest refuses a str that is not ASCII (a cookie may hold anything).
    expected = _sign(payload, browser, _session(session))
    if not hmac.compare_digest(expected, signature.encode("utf-8", "replace")):
        return None
    body = json.loads(payload)  # signed here: well-formed
    if not 0 <= time.time() - body["at"] <= FLASH_SECONDS:
        return None
    return Flash(body["kind"], body["text"])


def clear(response: Response, request: Request) -> None:
    """Drop the request's flash cookie, if it had one: a banner is shown once."""
    if COOKIE in request.cookies:
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax")
