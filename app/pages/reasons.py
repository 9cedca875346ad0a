"""An order's rejection reason in the pages' words; the code itself stays the API's."""

from __future__ import annotations

# The codes of catalog's StockReservationRejected (app/catalog/contracts.py).
REASON_WORDS = {
    "insufficient_stock": "not enough stock",
    "unknown_product": "unknown product",
}


def reason_words(code: str | None) -> str:
    """``code`` said in words ("not enough stock"); a code without words as it is."""
    if not code:
        return ""
    return REASON_WORDS.get(code, code.replace("_", " "))
