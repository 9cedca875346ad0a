"""Who is signed in to the pages. The browser holds only a random session id, in an
HttpOnly, SameSite=Strict cookie (sent with this site's own requests only, so a form on
another site cannot act with it); the user's access token stays in this web process.

Browsers send a host's cookies to every port of it (RFC 6265 §8.5): another service on the
same host name receives the cookie. The id it receives is not a bearer token (the APIs
refuse it: 401), and sign-out ends it here. Over https the cookie is ``__Host-`` prefixed
(RFC 6265bis §4.1.3.2: Secure, Path=/, no Domain), so no plain-http service or sibling
domain can set one in its place."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import jwt
from fastapi import Request, Response

from app.auth.config import SigningKeys, developer_token
from app.auth.tokens import principal_of
from app.core.settings import Settings

COOKIE = "cloudcrm_session"
# Browsers refuse a __Host- cookie that is not Secure, and a Secure one over http.
SECURE_COOKIE = "__Host-cloudcrm_session"
SESSION_SECONDS = 8 * 3600
# Sessions held at once, and per signed-in user (the token's subject). A user's sign-in
# beyond their own bound ends their own oldest session, so one who signs in again and again
# (a script, a loop) ends only their own. Beyond the store's bound (many users at once, each
# signing in repeatedly: at least 500 of them) the oldest session of anyone ends.
MAX_SESSIONS = 10_000
MAX_SESSIONS_PER_SUBJECT = 20


class SignInRequiredError(Exception):
    """The page needs a signed-in user (or their token was refused): go to sign-in."""


@dataclass(frozen=True)
class _Session:
    token: str
    subject: str
    ends: float  # on the clock of Sessions


def subject_of(token: str) -> str:
    """Whom ``token`` was issued to: the identity of its whole ``sub`` (a digest, as
    ``app.auth.tokens.identity_of``; two subjects sharing a long prefix are two users),
    read without checking its signature: it came from the identity provider or this
    process, and only bounds sessions. "" when it is no JWT."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return ""
    return principal_of(claims).identity


class Sessions:
    """The pages' sessions: a random id (what the cookie holds) → the signed-in user's
    access token, until ``seconds`` after sign-in or sign-out.

    In this process's memory: sessions end when the web process restarts, and each
    process has its own (one web process per deployment, or a load balancer that keeps a
    browser on one process). ``clock``: seconds, monotonic. At most ``limit`` sessions,
    and ``per_subject`` per user (MAX_SESSIONS, MAX_SESSIONS_PER_SUBJECT)."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        limit: int = MAX_SESSIONS,
        per_subject: int = MAX_SESSIONS_PER_SUBJECT,
    ) -> None:
        self._clock = clock
        self._limit = limit
        self._per_subject = per_subject
        self._sessions: dict[str, _Session] = {}  # in the order they started
        self._of_subject: dict[str, dict[str, None]] = {}  # each's ids, in that order

    def start(self, token: str, seconds: float) -> str:
        """A new session holding ``token`` for ``seconds``; its id (43 URL-safe characters,
        256 random bits). Past a bound, an older session ends (see Sessions)."""
        now = self._clock()
        subject = subject_of(token)
        own = list(self._of_subject.get(subject, {}))
        for session_id in own[: max(0, len(own) - self._per_subject + 1)]:
            self._drop(session_id)  # this user's oldest
        if len(self._sessions) >= self._limit:
            for session_id in [k for k, s in self._sessions.items() if s.ends <= now]:
                self._drop(session_id)
        while len(self._sessions) >= self._limit:  # still full: the oldest ends
            self._drop(next(iter(self._sessions)))
        session_id = secrets.token_urlsafe(32)
        self._sessions[session_id] = _Session(token, subject, now + seconds)
        self._of_subject.setdefault(subject, {})[session_id] = None
        return session_id

    def token(self, session_id: str | None) -> str | None:
        """The token of a live session; None for an unknown, ended or expired one."""
        session = self._sessions.get(session_id) if session_id else None
        if session is None or session_id is None:
            return None
        if session.ends <= self._clock():
            self._drop(session_id)
            return None
        return session.token

    def end(self, session_id: str | None) -> None:
        """Sign-out: the session is gone, whoever holds its id."""
        if session_id in self._sessions:
            self._drop(session_id)

    def _drop(self, session_id: str) -> None:
        session = self._sessions.pop(session_id)
        own = self._of_subject[session.subject]
        del own[session_id]
        if not own:
            del self._of_subject[session.subject]


def cookie_name(request: Request) -> str:
    """The session cookie's name for ``request``'s scheme."""
    return SECURE_COOKIE if request.url.scheme == "https" else COOKIE


def _sessions(request: Request) -> Sessions:
    sessions: Sessions = request.app.state.page_sessions
    return sessions


def token_of(request: Request) -> str:
    """The signed-in user's token. Raises SignInRequiredError."""
    token = _sessions(request).token(request.cookies.get(cookie_name(request)))
    if token is None:
        raise SignInRequiredError
    return token


def signed_in(request: Request) -> bool:
    """Whether ``request`` belongs to a live session."""
    return _sessions(request).token(request.cookies.get(cookie_name(request))) is not None


def has_cookie(request: Request) -> bool:
    """Whether ``request`` carries a session cookie, live or not."""
    return bool(request.cookies.get(cookie_name(request)))


def cookie_value(request: Request) -> str:
    """The session cookie ``request`` carries ("" for none), live or not."""
    return request.cookies.get(cookie_name(request), "")


def development_sign_in(settings: Settings, keys: SigningKeys) -> str | None:
    """A token with every scope signed with ``keys``' secret (``dev``'s, or
    AUTH_JWT_SECRET), when there is one; None with only an identity provider."""
    return developer_token(settings, keys, ttl_seconds=SESSION_SECONDS)


def keep(
    response: Response, request: Request, token: str, *, seconds: float = SESSION_SECONDS
) -> None:
    """Start a session holding ``token`` for ``seconds`` and set its cookie (Secure and
    ``__Host-`` over https)."""
    secure = request.url.scheme == "https"
    session_id = _sessions(request).start(token, seconds)
    response.set_cookie(cookie_name(request), session_id, max_age=int(seconds), path="/",
                        httponly=True, samesite="strict", secure=secure)  # fmt: skip


def forget(response: Response, request: Request) -> None:
    """Sign out: end the request's session here and drop its cookie."""
    _sessions(request).end(request.cookies.get(cookie_name(request)))
    response.delete_cookie(cookie_name(request), path="/", httponly=True, samesite="strict",
                           secure=request.url.scheme == "https")  # fmt: skip
