"""The Operations page's data and actions, through each service's admin API."""

from __future__ import annotations

import base64
import binascii
import functools
import shlex
from collections import Counter
from dataclasses import dataclass
from typing import Any

from app.core.logs import escape_controls
from app.core.settings import SERVICES
from app.pages.api_client import ApiError, Apis
from app.pages.forms import Form

ACTIONS = frozenset({"dlq-replay", "dlq-purge", "outbox-replay", "key-replay", "key-purge"})
# Dead letters listed (and so acted on) per page; more are said to be there.
SHOWN = 500
# The form field carrying one dead letter's message id (letter_field), one per letter.
LETTER = "letter"
# What one reason's form may carry, in bytes of its body: under the web app's 64 KiB
# request limit, whatever the ids (AMQP allows 255 bytes each: 500 of them would not fit).
FORM_BYTES = 48 * 1024
# Keys waiting listed per service, longest waiting first; more are said to be there.
KEYS_SHOWN = 100
# The form field carrying a waiting key (key_field), and the one a key's purge needs ticked.
KEY = "key"
CONFIRM = "confirm"


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


def key_field(key: str) -> str:
    """``key`` as a form field's value, exact whatever it holds (as letter_field)."""
    return letter_field(key)


def key_of(field: str) -> str:
    """The message key a key_field value carries. Raises ApiError (422) for a value this
    page did not write."""
    return message_id_of(field)


@dataclass(frozen=True)
class WaitingKey:
    """One key of a service's inbox with messages parked: ``key`` exact (in ``field``, a
    key_field value, for its buttons), and ``shown``: written with its control and
    invisible characters escaped (app.core.logs.escape_controls), so what the page shows
    cannot be reordered nor hidden. ``dead_letter_id``: the dead letter it stops at (its
    buttons replay or purge it), None for a gap (``republish``: the producer's commands
    that send the key's messages again)."""

    key: str
    field: str
    shown: str
    next_sequence: int
    parked: int
    waiting_seconds: float
    waited: str
    dead_letter_id: str | None
    dead_lettered_at: str | None
    republish: list[str]


def waited(seconds: float) -> str:
    """A wait in words a person reads at a glance: "4.2 s", "5 min 3 s", "2 h 10 min",
    "3 d 4 h"."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, second = divmod(int(seconds), 60)
    hours, minute = divmod(minutes, 60)
    days, hour = divmod(hours, 24)
    if not hours:
        return f"{minute} min {second} s"
    return f"{hours} h {minute} min" if not days else f"{days} d {hour} h"


def shell_word(text: str) -> str:
    """``text`` as one word of a POSIX shell command line; one holding a control or an
    invisible character as bash's ``$'…'``, those written as escapes (``\\u202e``), so
    the command shown is the one that runs."""
    if escape_controls(text) == text:
        return shlex.quote(text)
    return "$'" + escape_controls(text.replace("\\", "\\\\").replace("'", "\\'")) + "'"


@functools.cache
def producers_of(service: str) -> tuple[str, ...]:
    """The services whose events ``service`` may consume (where a gap's messages come
    from): every other service (in the demo each consumes the other's events; the pages
    sit below the registry of subscriptions, so they do not ask it)."""
    return tuple(other for other in SERVICES if other != service)


def _waiting(service: str, keys: list[dict[str, Any]]) -> list[WaitingKey]:
    waiting = []
    for found in keys:
        key = found["key"]
        option = f"--key={shell_word(key)}" if key.startswith("-") else f"--key {shell_word(key)}"
        waiting.append(
            WaitingKey(
                key=key,
                field=key_field(key),
                shown=escape_controls(key),
                next_sequence=found["nextSequence"],
                parked=found["parked"],
                waiting_seconds=found["waitingSeconds"],
                waited=waited(found["waitingSeconds"]),
                dead_letter_id=found.get("deadLetterId"),
                dead_lettered_at=found.get("deadLetteredAt"),
                republish=[
                    f"python -m app outbox republish {producer} {option}"
                    for producer in producers_of(service)
                ],
            )
        )
    return waiting


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
    """One service's status, dead letters by reason, keys waiting, failed rows and latest
    outcomes; a part the service cannot give (e.g. no broker reachable) says why instead."""
    client = _client(apis, service)
    base = f"/admin/api/{service}"
    view: dict[str, Any] = {"name": service, "problems": []}
    for key, path in (
        ("status", "/outbox/status"),
        ("dlq", f"/dlq?limit={SHOWN}"),
        ("keys", f"/inbox/keys?limit={KEYS_SHOWN}"),
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
    view["waiting"] = _waiting(service, (view["keys"] or {}).get("keys", []))
    waiting_keys = (view["status"] or {}).get("waitingKeys") or 0
    view["more_keys"] = max(0, waiting_keys - len(view["waiting"]))
    return view


async def operate(apis: Apis, service: str, action: str, form: Form, token: str) -> str:
    """Run ``action`` (ACTIONS) on ``service``; what was done, in words. The selection is
    the dead letters of the LETTER fields (letter_field values), or one outbox row
    (``id``), or a waiting key's dead letters (the KEY field, a key_field value: a
    ``key-purge`` only with CONFIRM ticked). Raises ApiError (422 when nothing, or nothing
    readable, is selected, or a key's purge is not confirmed)."""
    client = _client(apis, service)
    if action in {"key-replay", "key-purge"}:
        return await _operate_key(apis, client, service, action, form, token)
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


async def _operate_key(
    apis: Apis, client: Any, service: str, action: str, form: Form, token: str
) -> str:
    # The banner names no key: its words are the API's or fixed, never a form's.
    if not form.get(KEY):
        raise ApiError(422, "nothing selected")
    selection = {"key": key_of(form[KEY])}
    if action == "key-replay":
        done = await apis.call(client, "POST", f"/admin/api/{service}/dlq/replay", token,
                               selection)  # fmt: skip
        if not done["replayed"] and not done.get("left"):
            return f"{service}: no dead letter of the key to replay (reload the page)"
        words = (f"{service}: replayed {done['replayed']} dead letter(s) of the key: its "
                 "parked messages are applied after them, in order")  # fmt: skip
        left = done.get("left") or []
        if left:
            why = ", ".join(sorted({str(item.get("why")) for item in left}))
            words += f"; {len(left)} left in the dead-letter queue ({why})"
        return words
    if form.get(CONFIRM) != "yes":
        raise ApiError(422, "nothing purged: a key's purge must be confirmed (tick its box)")
    done = await apis.call(client, "POST", f"/admin/api/{service}/dlq/purge", token, selection)
    released = done.get("releasedPlaces", 0)
    if not done["purged"] and not released:
        return f"{service}: no dead letter of the key to purge (reload the page)"
    return (f"{service}: purged {done['purged']} dead letter(s) of the key and gave up "
            f"{released} place(s): its parked messages after them are applied, in "
            "order")  # fmt: skip
