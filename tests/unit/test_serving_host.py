"""A host the API cannot listen on is named as the host, not blamed on the port."""

from __future__ import annotations

import logging

import pytest
from fastapi import FastAPI

from app.core.settings import Settings
from app.http.serving import serve


@pytest.mark.parametrize(
    "host", ["999.1.1.1", "192.0.2.1"], ids=["no such address", "not this machine's"]
)
def test_a_host_it_cannot_listen_on_is_one_line_about_the_host(
    host: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    assert serve(FastAPI(), host, 8999, Settings()) == 1
    [record] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    message = record.getMessage()
    assert f"cannot listen on {host}:8999" in message and "--host must name" in message, message
    assert "another process holds it" not in message
