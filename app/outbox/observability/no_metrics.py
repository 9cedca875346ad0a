"""Instruments that record nothing, with prometheus-client's calls: the library's metrics
when the ``prometheus`` extra is not installed."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class _Instrument:
    """``labels(...)`` and every recording call of a Counter, Gauge or Histogram."""

    def __init__(
        self, name: str, documentation: str, labelnames: Iterable[str] = (), **_: Any
    ) -> None:
        self.name = name

    def labels(self, *_values: object, **_named: object) -> _Instrument:
        return self

    def inc(self, amount: float = 1) -> None:
        """Nothing: no registry to count in."""

    def dec(self, amount: float = 1) -> None:
        """Nothing: no registry to count in."""

    def set(self, value: float) -> None:
        """Nothing: no registry to hold it."""

    def observe(self, amount: float) -> None:
        """Nothing: no registry to hold it."""


Counter = Gauge = Histogram = _Instrument
