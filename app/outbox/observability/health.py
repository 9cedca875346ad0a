"""A relay's or consumer's health: what its parts report, read by its readiness probe."""

from __future__ import annotations

from collections.abc import Callable


class ProcessHealth:
    """Problems the parts of a process report, by part, and checks asked at each probe
    (each returns a problem or None); none at all means ready."""

    def __init__(self) -> None:
        self._reported: dict[str, str] = {}
        self._checks: list[Callable[[], str | None]] = []

    def failing(self, part: str, reason: str) -> None:
        self._reported[part] = reason[:300]

    def recovered(self, part: str) -> None:
        self._reported.pop(part, None)

    def add_check(self, check: Callable[[], str | None]) -> None:
        self._checks.append(check)

    @property
    def problems(self) -> list[str]:
        found = [check() for check in self._checks]
        return [*self._reported.values(), *(problem for problem in found if problem)]
