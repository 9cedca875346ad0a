"""Which installed release of a library code reaching into its internals was tested on.

The relay's fast publish path writes into aiormq's channel bookkeeping and the consumers'
tolerant reading replaces pamqp's decoders: both run only on the releases their tests
passed on, and fall back to the library's own behaviour on any other."""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version


def installed(distribution: str) -> str:
    """The installed version of ``distribution`` ("unknown" when its metadata is missing)."""
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "unknown"


def release(text: str) -> tuple[int, ...]:
    """``"7.2.4"`` → ``(7, 2, 4)``; a pre-release or local build (``7.3.0rc1``,
    ``7.2.4+x``) compares as its release."""
    return tuple(int(part) for part in re.findall(r"\d+", text.split("+")[0])[:3])


def within(installed_version: str, tested: tuple[str, str]) -> bool:
    """True when ``installed_version`` lies in ``tested`` (lowest, highest; inclusive)."""
    lowest, highest = tested
    if installed_version == "unknown":
        return False
    return release(lowest) <= release(installed_version) <= release(highest)


def described(tested: tuple[str, str]) -> str:
    """``tested`` in words: ``"4.0.1"`` or ``"4.0.1 to 4.1.0"``."""
    lowest, highest = tested
    return lowest if lowest == highest else f"{lowest} to {highest}"
