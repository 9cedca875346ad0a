"""The Operations page's data and actions, through each service's admin API."""

from __future__ import annotations

import base64
import binascii
from collections import Counter
from dataclasses import dataclass
from typing import Any

from app.pages.api_client import ApiError, Apis
from app.pages.forms import Form

ACTIONS = frozenset({"dlq-replay", "dlq-purge", "outbox-replay"})
# Dead letters listed (and so acted on) per page; more are said to be there.
SHOWN = 500
# The form field carrying one dead letter's message id (letter_field), one per letter.
LETTER = "letter"
# What one reason's form may carry, in bytes of its body: under the web app's 64 KiB
# request limit, whatever the ids (AMQP allows 255 bytes each: 500 of them would not fit).
FORM_BYTES = 48 * 1024


@dataclass(frozen=True)
class ReasonGroup:
    """The dead letters shown with one reason: how many, and the ``letters`` its buttons
    act on (letter_field values: those with a message id, as many as fit in a form)."""

    reason: str
    count: int
    letters: list[str]


def letter_field(message_id: str) -> str:
    """``message_id`` as a form field's value: base64url of its UTF-8 (RFC 4648 §5, no
    padding). A message id may hold any character, a space or a line break included; in
    a field as it is, HTML would turn a CR or LF into CRLF on the way back (and a list
    joined with spaces cannot tell "junk V" from two ids). Encoded, it comes back exact."""
    data = message_id.encode("utf-8", "surrogatepass")
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def message_id_of(field: str) -> str:
    """The message id a letter_field value carries. Raises ApiError (422) for a value
    this page did not write."""
    try:
        data = base64.b64decode(field + "=" * (-len(field) % 4), altchars=b"-_", validate=True)
        return data.decode("utf-8", "surrogatepass")
    except (binascii.Error, ValueError) as exc:
        raise ApiError(422, "this form is from an older page: reload it and try again") from exc


def _groups(letters: list[dict[str, Any]]) -> list[ReasonGroup]:
    ids: dict[str, list[str]] = {}
    for letter in letters:
        if letter.get("messageId"):
            ids.setdefault(letter["reason"], []).append(letter["messageId"])
    groups = []
    for reason, count in Counter(letter["reason"] for letter in letters).most_common():
        fields, size = [], 0
        for message_id in ids.get(reason, []):
            field = letter_field(message_id)
            size += len(LETTER) + len(field) + 2  # "letter=…&"
            if size > FORM_BYTES:
                break
            fields.append(field)
        groups.append(ReasonGroup(reason, count, fields))
    return groups


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
    # Each reason's buttons act on exactly the letters counted here, by their exact ids (a
    # reason as a filter would match others that contain it, and may be longer than the
    # API takes).
    view["by_reason"] = _groups(letters)
    view["more"] = (view["status"] or {}).get("deadLetters") or 0
    view["more"] = max(0, view["more"] - len(letters))
    return view


async def operate(apis: Apis, service: str, action: str, form: Form, token: str) -> str:
    """Run ``action`` (ACTIONS) on ``service``; what was done, in words. The selection is
    the dead letters of the LETTER fields (letter_field values), or one outbox row
    (``id``). Raises ApiError (422 when nothing, or nothing readable, is selected)."""
    client = _client(apis, service)
    selection: dict[str, Any]
    if form.getlist(LETTER):
        selection = {"ids": [message_id_of(field) for field in form.getlist(LETTER)[:SHOWN]]}
    elif form.get("id"):
        selection = {"ids": [form["id"]]}
    else:
        raise ApiError(422, "nothing selected")
    if action == "outbox-replay":
        done = await apis.call(client, "POST", f"/admin/api/{service}/outbox/replay", token,
                               selection)  # fmt: skip
        return f"{service}: {done['replayed']} failed row(s) back to pending"
    verb = "replay" if action == "dlq-replay" else "purge"
    done_words = {"replay": "replayed", "purge": "purged"}
    done = await apis.call(client, "POST", f"/admin/api/{service}/dlq/{verb}", token, selection)
    count = done.get("replayed", done.get("purged", 0))
    return f"{service}: {done_words[verb]} {count} dead letter(s)"
