"""The operator commands' tables say why a row waits."""

from __future__ import annotations

import pytest

from app.admin.printing import print_events


def test_a_pending_row_shows_why_it_waits(capsys: pytest.CaptureFixture[str]) -> None:
    row = {
        "id": "0b6f3c1e-8a1d-4c55-9d0e-2f7c1a9b4e21",
        "event_type": "OrderPlaced",
        "created_at": "2026-11-30T04:07:05.123",
        "published_at": None,
        "failed_at": None,
        "attempts": 0,
    }
    print_events(
        {
            "events": [
                row | {"last_error": "nacked by the broker (a queue could not take it now)"},
                row | {"last_error": None},
            ]
        }
    )
    waiting, fresh = capsys.readouterr().out.splitlines()[1:]
    assert waiting.endswith(
        "pending (0 attempts): nacked by the broker (a queue could not take it now)"
    )
    assert fresh.endswith("pending (0 attempts)")


def test_a_dead_letter_cannot_drive_the_operators_terminal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A message's id, type and reason come from whoever published it: ``dlq list``
    writes their control characters escaped, as the logs do."""
    from app.admin.printing import print_dead_letters

    hostile = "x\x1b[2J\nforged line\u202e"
    letter = {"message_id": hostile, "event_type": hostile, "deaths": 1,
              "first_death_at": "2026-11-30T04:07:05", "reason": f"invalid: {hostile}"}  # fmt: skip
    print_dead_letters({"dead_letters": [letter], "summary": {letter["reason"]: 1}})
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\u202e" not in out
    assert not any(line.startswith("forged line") for line in out.splitlines())
    assert "invalid: x\\x1b[2J\\nforged line\\u202e" in out
