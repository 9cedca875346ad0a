"""When the relay retries a row it could not publish, and when it gives the row up."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cloudcrm_outbox.checks import require_counts, require_seconds


@dataclass(frozen=True)
class RelayPolicy:
    """Batch size, and when a row that could not be published is retried or failed.

    A rejected row (refused, impossible to encode: its own fault) is retried with
    exponential backoff from ``retry_base_seconds`` up to ``retry_max_seconds`` and failed
    at ``max_attempts``. A nacked row (a queue could not take it now) is retried without
    counting an attempt: after ``retry_base_seconds`` the first time, then after as long as
    it has waited since it was written, up to ``retry_max_seconds``: the delay doubles
    while the nacks go on, so a queue that stays full does not have the others that share
    its routing key sent a copy every second. An unroutable row (no queue bound yet: not
    its fault) is retried without counting attempts, and failed only once it has been
    unroutable for ``unroutable_give_up_seconds``: one row per routing key, the probe,
    every ``unroutable_probe_seconds``; the others once a row of that key is routed, or
    after ``retry_max_seconds`` (``relay_probes``).
    """

    batch_size: int = 500
    max_attempts: int = 10
    retry_base_seconds: float = 1.0
    retry_max_seconds: float = 300.0
    unroutable_give_up_seconds: float = 7 * 24 * 3600.0
    # One publish per routing key this often while its queue is missing: an order placed
    # before the queue existed reaches it within this of its appearing.
    unroutable_probe_seconds: float = 0.5

    def __post_init__(self) -> None:
        require_counts("RelayPolicy", batch_size=self.batch_size, max_attempts=self.max_attempts)
        require_seconds(
            "RelayPolicy",
            zero_allowed=True,  # at once: a test's, or an operator's choice
            retry_base_seconds=self.retry_base_seconds,
            retry_max_seconds=self.retry_max_seconds,
            unroutable_give_up_seconds=self.unroutable_give_up_seconds,
            unroutable_probe_seconds=self.unroutable_probe_seconds,
        )

    def retry_delay(self, attempts_so_far: int) -> float:
        """Seconds before a rejected row's next attempt: exponential (base, 2 x base,
        4 x base, …) capped at ``retry_max_seconds``."""
        exponential: float = self.retry_base_seconds * 2.0 ** min(attempts_so_far, 32)
        return min(self.retry_max_seconds, exponential)

    def nacked_delay(
        self, created_at: datetime, next_attempt_at: datetime, nacked_before: bool
    ) -> float:
        """Seconds before a nacked row's next attempt; both times are the database's
        (``next_attempt_at``: when it fell due, just before this attempt). A first nack
        waits the base delay whatever the row's age (a backlog after an outage, a
        republished row: a quorum queue between leaders takes them a second later)."""
        if not nacked_before:
            return self.retry_base_seconds
        return self._as_long_as_waited((next_attempt_at - created_at).total_seconds())

    def unroutable_delay(
        self, unroutable_since: datetime | None, next_attempt_at: datetime, *, probe: bool
    ) -> tuple[float, bool]:
        """(seconds before the next attempt, whether to fail the row now) for a row
        returned unroutable; both times are the database's. The ``probe`` of its routing
        key is tried again after ``unroutable_probe_seconds``; the others wait the cap,
        ``retry_max_seconds``, unless a routed row makes them due sooner (relay_probes):
        their own retries are only the fallback should the probe be lost."""
        since = unroutable_since
        waited = (next_attempt_at - since).total_seconds() if since else 0.0
        give_up = since is not None and waited >= self.unroutable_give_up_seconds
        return (self.unroutable_probe_seconds if probe else self.retry_max_seconds), give_up

    def _as_long_as_waited(self, waited: float) -> float:
        # Waiting as long again as it has waited doubles the delay each time, between the
        # base and the cap: no counter needed.
        return min(self.retry_max_seconds, max(self.retry_base_seconds, waited))
