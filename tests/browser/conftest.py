"""A real browser: Playwright driving Debian's Chromium (`apt-get install chromium`; .ci/run
installs it). Missing, the tests fail saying so — never skip."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

# The documentation's pictures are rewritten only when asked (UPDATE_SCREENSHOTS=1): a test
# run leaves the working tree as it found it.
SCREENSHOTS = (
    Path(__file__).resolve().parents[2] / "docs" / "screenshots"
    if os.environ.get("UPDATE_SCREENSHOTS") == "1"
    else Path(tempfile.gettempdir()) / "cloudcrm-screenshots"
)


def chromium_path() -> str:
    found = os.environ.get("TEST_CHROMIUM") or shutil.which("chromium")
    if not found:
        pytest.fail("no chromium: `apt-get install chromium` (or set TEST_CHROMIUM)", pytrace=False)
    return found


# Module-scoped, not session: while Playwright's synchronous API lives it keeps an event
# loop running in this thread, and the asyncio tests after these could not run theirs.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium_path(), args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(15_000)
    yield opened
    context.close()


def screenshot(page: Page, name: str) -> None:
    """Save the page as NAME.png in SCREENSHOTS (docs/screenshots with UPDATE_SCREENSHOTS=1:
    the documentation shows them)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


@pytest.fixture
def rabbit_vhost() -> Iterator[str]:
    """A fresh RabbitMQ vhost's AMQP URL, deleted afterwards (sync: Playwright's sync API
    and an asyncio fixture cannot share the thread)."""
    import uuid
    from urllib.parse import urlsplit

    from tests.support.config import SERVERS
    from tests.support.rabbit import _ctl, vhost_url

    vhost = f"cc_web_{uuid.uuid4().hex[:12]}"
    user = urlsplit(SERVERS.rabbitmq_url).username or "guest"
    _ctl("add_vhost", vhost)
    try:
        _ctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
        yield vhost_url(vhost)
    finally:
        _ctl("delete_vhost", vhost)
