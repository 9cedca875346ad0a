"""Which way the relay writes its publishes: its batched frames (aiormq's private channel
bookkeeping) only on the aiormq versions that path was tested on, aiormq's public
``basic_publish`` otherwise or when asked for."""

from __future__ import annotations

import logging
from importlib.metadata import version

import pytest

from cloudcrm_outbox.brokers.rabbitmq.publishing.path import FAST_PATH_AIORMQ, chosen_publish_path
from cloudcrm_outbox.brokers.rabbitmq.publishing.publisher import AmqpPublisher


def test_auto_takes_the_fast_path_only_on_a_tested_aiormq() -> None:
    lowest, highest = FAST_PATH_AIORMQ
    assert chosen_publish_path("auto", lowest).path == "fast"
    assert chosen_publish_path("auto", highest).path == "fast"
    for untested in ("6.9.2", "7.2.3", "7.3.0", "8.0.0", "7.3.0rc1"):
        choice = chosen_publish_path("auto", untested)
        assert choice.path == "public", untested
        assert untested in choice.reason and "not among" in choice.reason


def test_public_is_forced_whatever_the_version() -> None:
    assert chosen_publish_path("public", FAST_PATH_AIORMQ[0]).path == "public"


def test_fast_is_forced_on_an_untested_version_with_a_warning() -> None:
    choice = chosen_publish_path("fast", "9.0.0")
    assert choice.path == "fast" and choice.untested


def test_an_unknown_path_is_refused() -> None:
    with pytest.raises(ValueError, match="auto, fast or public"):
        chosen_publish_path("quick", "7.2.4")  # type: ignore[arg-type]


def test_the_installed_aiormq_is_one_the_fast_path_was_tested_on() -> None:
    # pyproject.toml and docker/constraints.txt pin it there; a new aiormq means testing
    # the fast path on it (RELAY_PUBLISH_PATH=fast) and widening FAST_PATH_AIORMQ.
    assert chosen_publish_path("auto", version("aiormq")).path == "fast"


def test_the_publisher_says_once_which_path_it_runs(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(
        logging.INFO, logger="cloudcrm_outbox.brokers.rabbitmq.publishing.publisher"
    ):
        AmqpPublisher("amqp://guest:guest@127.0.0.1:1/", publish_timeout=1, publish_path="public")
    [line] = [r.getMessage() for r in caplog.records if "publish path" in r.getMessage()]
    assert "public" in line and "basic_publish" in line
