"""The Operations page's data and actions, through each service's admin API."""

from __future__ import annotations

from collections import Counter
from typing import Any

from app.pages.api_client import ApiError, Apis

ACTIONS = frozenset({"dlq-replay", "dlq-purge", "outbox-replay"})
# Dead letters listed (and so acted on) per page; more are said to be there.
SHOWN = 500


def _client(apis: Apis, service: str) -> Any:
    return apis.ordering if service == "ordering" else apis.catalog


async def service_view(apis: Apis, service: str, token: str) -> dict[str, Any]:
    """One service's status, dead letters by reason, failed rows and latest outcomes;
    a part the service cannot give (e.g. no broker reachable) says why instead."""
    client = _client(apis, service)
    base = f"/admin/api/{service}"
    view: dict[str, Any] = {"name": service, "problems": []}
    for key, path in (
        ("status", "/outbox/status"),
        ("dlq", f"/dlq?limit={SHOWN}"),
        ("failed", "/outbox/failed?limit=50"),
        ("inbox", "/inbox?limit=10"),
    ):
        try:
            view[key] = await apis.call(client, "GET", base + path, token)
        except ApiError as exc:
            view[key] = None
            view["problems"].append(f"{key}: {exc.detail}")
    letters = (view["dlq"] or {}).get("deadLetters", [])
    ids: dict[str, list[str]] = {}
    for letter in letters:
        if letter.get("messageId"):
            ids.setdefault(letter["reason"], []).append(letter["messageId"])
    counts = Counter(letter["reason"] for letter in letters).most_common()
    # Each reason's buttons act on exactly the letters counted here, by id (a reason as
    # a filter would match others that contain it, and may be longer than the API takes).
    view["by_reason"] = [(reason, count, " ".join(ids.get(reason, []))) for reason, count in counts]
    view["more"] = (view["status"] or {}).get("deadLetters") or 0
    view["more"] = max(0, view["more"] - len(letters))
    return view


async def operate(apis: Apis, service: str, action: str, form: dict[str, str], token: str) -> str:
    """Run ``action`` (ACTIONS) on ``service``; what was done, in words. The selection is
    one id (``id``), one reason (``reason``) or everything (``all``)."""
    client = _client(apis, service)
    selection: dict[str, Any]
    if form.get("ids"):
        selection = {"ids": form["ids"].split()[:SHOWN]}
    elif form.get("id"):
        selection = {"ids": [form["id"]]}
    else:
        raise ApiError(422, "nothing selected")
    if action == "outbox-replay":
        selection.pop("reason", None)
        done = await apis.call(client, "POST", f"/admin/api/{service}/outbox/replay", token,
                               selection)  # fmt: skip
        return f"{service}: {done['replayed']} failed row(s) back to pending"
    verb = "replay" if action == "dlq-replay" else "purge"
    done_words = {"replay": "replayed", "purge": "purged"}
    done = await apis.call(client, "POST", f"/admin/api/{service}/dlq/{verb}", token, selection)
    count = done.get("replayed", done.get("purged", 0))
    return f"{service}: {done_words[verb]} {count} dead letter(s)"
