"""Reading the pages' forms: url-encoded UTF-8 from a page of this site, or refused with a
page in words (never a product named "��"); and which page a form belongs to."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from fastapi import Request
from starlette.datastructures import ImmutableMultiDict

# A form's fields: ``form.get(name)`` the last value sent under it, ``form.getlist(name)``
# every one, in order (the Operations page sends one field per dead letter).
Form = ImmutableMultiDict[str, str]

# The pages whose forms post to paths under them (/orders/{id}/cancel → /orders).
PAGES = ("/products", "/orders", "/operations", "/sign-in")
# Every path a page's form posts to.
FORM_PATHS = (*PAGES, "/sign-out")


class FormRefusedError(Exception):
    """A form that cannot be read as sent (``status`` 4xx; ``words`` say why)."""

    def __init__(self, status: int, words: str) -> None:
        super().__init__(words)
        self.status = status
        self.words = words


def check_origin(request: Request) -> None:
    """Refuse a POST that another site's page sent (its Origin is not this host; the
    session cookie is SameSite=Strict as well). Raises FormRefusedError (403)."""
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
        raise FormRefusedError(
            403,
            "This form was sent from another site, so nothing was done. If you meant to do "
            "it, open this site's page and send the form from there.",
        )


def parse_form(body: bytes) -> Form:
    """The fields of an ``application/x-www-form-urlencoded`` body (WHATWG URL §5.1:
    UTF-8, percent-encoded bytes included), repeated names kept. Raises FormRefusedError
    (400) for anything that is not UTF-8, instead of reading it as U+FFFD."""
    try:
        return Form(parse_qsl(body.decode("utf-8"), errors="strict"))
    except UnicodeDecodeError as exc:
        raise FormRefusedError(
            400,
            "The form's text is not UTF-8, so nothing was saved. Send it again from this "
            "site's page (browsers send UTF-8), or have your tool encode it as UTF-8.",
        ) from exc


def is_form_path(path: str) -> bool:
    """Whether a page's form posts to ``path`` (FORM_PATHS, and the paths under them)."""
    return any(path == form or path.startswith(form + "/") for form in FORM_PATHS)


def page_of(path: str) -> str:
    """The page a form posted to ``path`` belongs to (``/products`` when none)."""
    for page in PAGES:
        if path == page or path.startswith(page + "/"):
            return page
    return "/products"
