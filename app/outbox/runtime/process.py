"""What every long-running messaging process shares: a stop signal and a retention job."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from apscheduler.executors.asyncio import AsyncIOExecutor
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from cloudcrm_outbox.logs import library_logger
from cloudcrm_outbox.names import DEFAULT_NAMES, MessagingNames

logger = library_logger(__name__)

# APScheduler 3 logs each run ("Running job …", "Job … executed successfully") at INFO on
# ``apscheduler.executors.<alias>`` and each job added at INFO on ``apscheduler.scheduler``.
# The library's schedulers log under its own name instead, those routine lines at DEBUG,
# so that a service's INFO log is not a line per poll; warnings and errors stay as they are.
SCHEDULER_LOGGER = f"{__name__}.scheduler"


class _InfoAsDebug(logging.Filter):
    """Lowers INFO records of the logger it filters to DEBUG, dropping them unless that
    logger is enabled for DEBUG (the INFO check has already been passed by then)."""

    def __init__(self, owner: logging.Logger) -> None:
        super().__init__()
        self._owner = owner

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO:
            return True
        if not self._owner.isEnabledFor(logging.DEBUG):
            return False
        record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
        return True


_scheduler_logger = logging.getLogger(SCHEDULER_LOGGER)
_scheduler_logger.addFilter(_InfoAsDebug(_scheduler_logger))


class _QuietExecutor(AsyncIOExecutor):  # type: ignore[misc]  # APScheduler is untyped
    """APScheduler's asyncio executor, its run lines on ``SCHEDULER_LOGGER``: the executor
    hands its logger's name to every run (``run_coroutine_job(…, logger_name)``)."""

    def start(self, scheduler: AsyncIOScheduler, alias: str) -> None:
        super().start(scheduler, alias)
        self._logger = _scheduler_logger


def library_scheduler() -> AsyncIOScheduler:
    """An APScheduler for the library's periodic jobs (UTC), whose routine lines (jobs
    added, each run) are DEBUG records of ``SCHEDULER_LOGGER``; the application's own
    logging configuration is left alone."""
    return AsyncIOScheduler(
        timezone=UTC, logger=_scheduler_logger, executors={"default": _QuietExecutor()}
    )


# Periodic jobs (retention, the reply-timeout sweep) first run this long after the start.
FIRST_RUN_AFTER_SECONDS = 3.0

RetentionJob = Callable[..., Awaitable[int]]


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT (a clean shutdown, exit code 0)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    return stop


@dataclass(frozen=True)
class RetentionPolicy:
    """How old a kept row may get (seconds), how often retention runs (seconds), how
    many rows each of its transactions deletes, the pause between those transactions
    (seconds), and whether this process cleans at all (``enabled``; another process
    sharing the database may be the one that does)."""

    older_than_seconds: float = 7 * 24 * 3600.0
    interval_seconds: float = 60.0
    batch_size: int = 1_000
    pause_seconds: float = 0.1
    enabled: bool = True


def scheduler_with_retention(
    policy: RetentionPolicy,
    engine: AsyncEngine,
    job: RetentionJob,
    *,
    names: MessagingNames = DEFAULT_NAMES,
) -> AsyncIOScheduler:
    """An APScheduler running ``job`` (on the tables ``names`` names) now and every
    ``policy.interval_seconds``; with no job when ``policy.enabled`` is false (the
    scheduler is still returned: callers add their own jobs to it)."""
    scheduler = library_scheduler()
    if not policy.enabled:
        logger.info("retention disabled in this process", extra={"job": job.__name__})
        return scheduler

    async def retention() -> None:
        deleted = await job(
            engine,
            older_than_seconds=policy.older_than_seconds,
            batch_size=policy.batch_size,
            pause_seconds=policy.pause_seconds,
            names=names,
        )
        if deleted:
            logger.info("retention", extra={"job": job.__name__, "deleted": deleted})

    add_periodic(scheduler, policy.interval_seconds, retention, what="retention")
    return scheduler


def add_periodic(
    scheduler: AsyncIOScheduler,
    seconds: float,
    job: Callable[[], Awaitable[object]],
    *,
    what: str,
) -> None:
    """Run ``job`` on ``scheduler`` soon and every ``seconds``, one run at a time (a run
    still going when the next is due makes APScheduler skip that one). A database failure
    is one WARNING naming ``what``, and the next run retries. The first run comes
    ``min(seconds, FIRST_RUN_AFTER_SECONDS)`` after the start: a process that cannot start
    (its database not migrated) has said so in its one line and exited before."""

    async def run() -> None:
        try:
            await job()
        except DBAPIError as exc:
            logger.warning(f"{what} failed; next run retries", extra={"error": repr(exc)})
        except asyncio.CancelledError:
            # The process is exiting (perhaps on a fatal error, already said in one
            # line): APScheduler would log the cancellation as a job failure with a
            # traceback. The next start runs the job again.
            return

    scheduler.add_job(
        run,
        "interval",
        seconds=seconds,
        next_run_time=datetime.now(UTC) + timedelta(seconds=min(seconds, FIRST_RUN_AFTER_SECONDS)),
        max_instances=1,
        coalesce=True,
    )
