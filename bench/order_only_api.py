"""``python -m app api ordering`` with the outbox row taken out: the HTTP baseline.

The same process, app, endpoint and transaction, except that ``place_order`` stages no
OrderPlaced row; the difference in requests/s is what the outbox costs a request.
"""

from __future__ import annotations

import sys
from typing import Any

from app.cli import main as cli
from app.ordering import service


def _no_event(*_: Any, **__: Any) -> None:
    return None


if __name__ == "__main__":
    service.add_event = _no_event  # type: ignore[assignment]
    sys.exit(cli.main(["api", "ordering", *sys.argv[1:]]))
