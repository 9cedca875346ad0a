"""The services' names, importable without the settings machinery (the command line's
parser names them in its choices and help)."""

from __future__ import annotations

ServiceName = str  # "ordering" | "catalog"
SERVICES: tuple[str, ...] = ("ordering", "catalog")
