"""A policy or process config built with a number that cannot work fails at once, naming
its field: not a relay that claims nothing or a consumer that dead-letters everything."""

from __future__ import annotations

import math
from typing import Any

import pytest

from cloudcrm_outbox.inbox.policy import ConsumerPolicy
from cloudcrm_outbox.relay.policy import RelayPolicy
from cloudcrm_outbox.runtime.relay_process import RelayProcessConfig


@pytest.mark.parametrize(
    ("build", "field", "value"),
    [
        (RelayPolicy, "batch_size", 0),
        (RelayPolicy, "max_attempts", -1),
        (RelayPolicy, "batch_size", 2.5),
        (RelayPolicy, "batch_size", True),
        (RelayPolicy, "retry_base_seconds", -1),
        (RelayPolicy, "retry_max_seconds", math.inf),
        (ConsumerPolicy, "delivery_limit", 0),
        (ConsumerPolicy, "batch_size", 0),
        (ConsumerPolicy, "prefetch", 0),
        (ConsumerPolicy, "connect_timeout_seconds", 0),
        (ConsumerPolicy, "batch_window_seconds", math.nan),
        (ConsumerPolicy, "redelivery_max_seconds", "1"),
        (RelayProcessConfig, "concurrency", 0),
        (RelayProcessConfig, "publish_timeout_seconds", -1),
    ],
)
def test_a_number_that_cannot_work_is_refused_by_name(
    build: Any, field: str, value: object
) -> None:
    with pytest.raises(ValueError, match=rf"{build.__name__}\.{field} must be"):
        build(**{field: value})


def test_zero_seconds_stay_allowed_where_they_mean_at_once() -> None:
    RelayPolicy(retry_base_seconds=0, retry_max_seconds=0, unroutable_probe_seconds=0)
    ConsumerPolicy(batch_window_seconds=0, redelivery_max_seconds=0, answer_timeout_seconds=None)
