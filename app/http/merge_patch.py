"""PATCH bodies as JSON merge patches (RFC 7396): the media type a PATCH route takes."""

from __future__ import annotations

from email.message import Message

from fastapi import HTTPException, Request, status

from app.core.schemas import ErrorBody

MERGE_PATCH = "application/merge-patch+json"
_ACCEPTED = (MERGE_PATCH, "application/json")

NOT_A_MERGE_PATCH: dict[int | str, dict[str, object]] = {
    415: {
        "model": ErrorBody,
        "description": f"the body is not {MERGE_PATCH} (RFC 7396) or application/json",
    }
}


def merge_patch_only(request: Request) -> None:
    """A route dependency: 415 in words unless the body is declared a JSON merge patch
    (``application/merge-patch+json``) or plain ``application/json`` (read the same way)."""
    declared = Message()
    declared["content-type"] = request.headers.get("content-type", "")
    if declared.get_content_type() not in _ACCEPTED or "content-type" not in request.headers:
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            f"a PATCH body is a JSON merge patch (RFC 7396): send it as {MERGE_PATCH} or "
            f"application/json, not {request.headers.get('content-type', 'no content type')!r}",
        )
