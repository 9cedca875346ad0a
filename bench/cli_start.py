"""How fast the everyday commands answer, and how much disk an install takes.

``cli``: wall seconds of ``python -m app --help`` and of ``python -m app outbox status``
(on fresh, migrated SQLite databases and the embedded broker: no server in the figure),
each the median of several runs after a warm-up that fills the OS's file cache.

``installsize``: megabytes (10^6 bytes) of a virtualenv holding the runtime distributions
alone (``pip install . ./demo`` into a fresh one) beside the development one this bench
runs in (the runtime plus tests, linters, the browser driver and the chart).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGETS_S = {"help_s": 1.0, "outbox_status_s": 1.5}


def median_wall_time(
    run: Callable[[], object], *, runs: int = 5, warmups: int = 1
) -> tuple[float, list[float]]:
    """``run`` called ``warmups`` times unmeasured, then ``runs`` times timed: the median
    and every sample, in seconds."""
    if runs < 1:
        raise ValueError("runs must be at least 1")
    for _ in range(warmups):
        run()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        run()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples), samples


def command(argv: Sequence[str], *, env: dict[str, str], cwd: Path) -> Callable[[], None]:
    """A callable running ``python -m app *argv`` to its end; it raises
    ``subprocess.CalledProcessError`` when the command fails (a figure of a failing
    command would be no figure)."""

    def run() -> None:
        subprocess.run(
            [sys.executable, "-m", "app", *argv],
            env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip

    return run


def sqlite_env(directory: Path) -> dict[str, str]:
    """The environment of commands on SQLite files in ``directory`` and the embedded
    broker, whatever the caller's environment names."""
    return dict(
        os.environ,
        ORDERING_DATABASE_URL=f"sqlite+aiosqlite:///{directory / 'ordering.db'}",
        CATALOG_DATABASE_URL=f"sqlite+aiosqlite:///{directory / 'catalog.db'}",
        BROKER_URL="memory://",
        EMBEDDED_BROKER_PATH=str(directory / "broker.db"),
    )


def cli_times(*, runs: int = 5, warmups: int = 1) -> dict[str, object]:
    """The ``cli`` figures: medians in seconds, the samples, and the targets."""
    with tempfile.TemporaryDirectory(prefix="cc-bench-cli-") as scratch:
        directory = Path(scratch)
        env = sqlite_env(directory)
        command(["migrate"], env=env, cwd=directory)()
        help_s, help_samples = median_wall_time(
            command(["--help"], env=env, cwd=directory), runs=runs, warmups=warmups
        )
        status_s, status_samples = median_wall_time(
            command(["outbox", "status"], env=env, cwd=directory), runs=runs, warmups=warmups
        )
    return {
        "help_s": round(help_s, 3),
        "outbox_status_s": round(status_s, 3),
        "runs": runs,
        "warmups": warmups,
        "samples_s": {
            "help": [round(s, 3) for s in help_samples],
            "outbox_status": [round(s, 3) for s in status_samples],
        },
        "targets": TARGETS_S,
    }


def directory_size_mb(path: Path) -> float:
    """The bytes of every file under ``path`` (symbolic links not followed, each hard
    link once), in megabytes of 10^6 bytes."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            stat = os.lstat(os.path.join(folder, name))
            if (stat.st_dev, stat.st_ino) not in seen:
                seen.add((stat.st_dev, stat.st_ino))
                total += stat.st_size
    return round(total / 1e6, 1)


def runtime_install_mb() -> float:
    """A fresh virtualenv with ``pip install . ./demo`` (no development tools): its size."""
    with tempfile.TemporaryDirectory(prefix="cc-bench-venv-") as scratch:
        target = Path(scratch) / "venv"
        venv.create(target, with_pip=True)
        subprocess.run(
            [str(target / "bin" / "python"), "-m", "pip", "install", "--quiet", ".", "./demo"],
            cwd=ROOT, check=True,
        )  # fmt: skip
        return directory_size_mb(target)


def install_sizes() -> dict[str, object]:
    """The ``installsize`` figures: the runtime-only and the development virtualenv, MB."""
    runtime = runtime_install_mb()
    development = directory_size_mb(Path(sys.prefix))
    return {
        "runtime_venv_mb": runtime,
        "development_venv_mb": development,
        "runtime_vs_development": round(runtime / development, 2),
    }
