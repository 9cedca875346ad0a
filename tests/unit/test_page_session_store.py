"""The pages' server-side sessions: a session ends at its expiry, at sign-out, and, past
a user's bound, that user's oldest first (past the store's, anyone's oldest); its id is
random and says nothing of the token."""

from __future__ import annotations

from app.auth.tokens import issue_token
from app.pages.session import MAX_SESSIONS_PER_SUBJECT, Sessions
from tests.support.auth import TEST_SECRET


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_session_holds_its_token_until_it_expires() -> None:
    clock = Clock()
    sessions = Sessions(clock=clock)
    session = sessions.start("the-users-token", seconds=60)
    assert "the-users-token" not in session and len(session) >= 43
    assert sessions.token(session) == "the-users-token"
    clock.now += 59.9
    assert sessions.token(session) == "the-users-token"
    clock.now += 0.1
    assert sessions.token(session) is None
    assert sessions.token(None) is None and sessions.token("made-up") is None


def test_sign_out_ends_the_session_for_whoever_holds_its_id() -> None:
    sessions = Sessions()
    first, second = sessions.start("a", 60), sessions.start("b", 60)
    assert first != second
    sessions.end(first)
    assert sessions.token(first) is None and sessions.token(second) == "b"
    sessions.end(first)  # twice, or an unknown id: nothing to do
    sessions.end(None)


def test_the_store_is_bounded_expired_sessions_going_first() -> None:
    clock = Clock()
    sessions = Sessions(clock=clock, limit=3)
    short = sessions.start("short", 10)
    old, middle = sessions.start("old", 100), sessions.start("middle", 100)
    clock.now += 20
    newest = sessions.start("newest", 100)  # the expired one makes room
    assert [sessions.token(s) for s in (old, middle, newest)] == ["old", "middle", "newest"]
    assert sessions.token(short) is None
    latest = sessions.start("latest", 100)  # full of live ones: the oldest ends
    assert sessions.token(old) is None
    assert [sessions.token(s) for s in (middle, newest, latest)] == ["middle", "newest", "latest"]


def _token(subject: str) -> str:
    return issue_token(TEST_SECRET, ["orders:read"], subject=subject, ttl_seconds=3600)


def test_one_user_signing_in_again_and_again_ends_only_their_own_sessions() -> None:
    """Past the store's bound the oldest session ends: anyone able to sign in repeatedly
    once signed everyone else out that way. A user's sign-ins beyond their own bound
    (MAX_SESSIONS_PER_SUBJECT) end their own oldest session instead."""
    sessions = Sessions(limit=100)
    alice, bob = sessions.start(_token("alice"), 3600), sessions.start(_token("bob"), 3600)
    mallory = [sessions.start(_token("mallory"), 3600) for _ in range(500)]
    assert sessions.token(alice) is not None and sessions.token(bob) is not None
    live = [session for session in mallory if sessions.token(session) is not None]
    assert live == mallory[-MAX_SESSIONS_PER_SUBJECT:]
    # A token that is no JWT (whose subject cannot be read) is bounded as one subject.
    opaque = [sessions.start(f"opaque-{n}", 3600) for n in range(500)]
    assert sessions.token(alice) is not None and sessions.token(opaque[-1]) is not None


def test_users_whose_subjects_share_a_long_prefix_are_bounded_apart() -> None:
    # Two subjects alike in their first 200 characters are two users: one signing in
    # again and again must not end the other's session.
    sessions = Sessions(limit=100)
    first = sessions.start(_token("u" * 200 + "-first"), 3600)
    for _ in range(MAX_SESSIONS_PER_SUBJECT + 5):
        sessions.start(_token("u" * 200 + "-second"), 3600)
    assert sessions.token(first) is not None
