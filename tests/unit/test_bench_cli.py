"""The bench's command-line and install-size parts: what they run, measure and report
(no figure is judged here: the machine's speed is the bench's business)."""

from __future__ import annotations

import os
import statistics
import subprocess
from pathlib import Path

import pytest

from bench.cli_start import (
    TARGETS_S,
    cli_times,
    command,
    directory_size_mb,
    median_wall_time,
    sqlite_env,
)
from bench.report import print_summary


def test_the_warm_up_is_run_but_not_measured() -> None:
    calls: list[int] = []
    median, samples = median_wall_time(lambda: calls.append(1), runs=5, warmups=1)
    assert len(calls) == 6
    assert len(samples) == 5
    assert median == statistics.median(samples)
    with pytest.raises(ValueError):
        median_wall_time(lambda: None, runs=0)


def test_a_failing_command_is_no_figure(tmp_path: Path) -> None:
    with pytest.raises(subprocess.CalledProcessError) as failed:
        command(["no-such-command"], env=sqlite_env(tmp_path), cwd=tmp_path)()
    assert failed.value.returncode == 2


def test_cli_times_runs_both_commands_on_fresh_sqlite_databases() -> None:
    figures = cli_times(runs=3, warmups=0)  # an odd count: the median is one of the runs
    assert figures["targets"] == TARGETS_S == {"help_s": 1.0, "outbox_status_s": 1.5}
    samples = figures["samples_s"]
    assert isinstance(samples, dict)
    assert len(samples["help"]) == len(samples["outbox_status"]) == 3
    assert figures["help_s"] == round(statistics.median(samples["help"]), 3)
    assert figures["outbox_status_s"] == round(statistics.median(samples["outbox_status"]), 3)


def test_directory_size_counts_each_file_once(tmp_path: Path) -> None:
    (tmp_path / "inner").mkdir()
    (tmp_path / "a").write_bytes(b"x" * 1_500_000)
    (tmp_path / "inner" / "b").write_bytes(b"y" * 500_000)
    os.link(tmp_path / "a", tmp_path / "inner" / "hard")  # the same bytes again
    (tmp_path / "link").symlink_to(tmp_path / "a")  # a link's own few bytes only
    assert directory_size_mb(tmp_path) == 2.0


def test_the_summary_shows_the_figures_beside_their_targets(
    capsys: pytest.CaptureFixture[str],
) -> None:
    print_summary({
        "cli": {"help_s": 0.4, "outbox_status_s": 1.9, "runs": 5, "targets": TARGETS_S},
        "installsize": {"runtime_venv_mb": 182.3, "development_venv_mb": 640.2},
    })  # fmt: skip
    lines = capsys.readouterr().out.splitlines()
    help_line = next(line for line in lines if "python -m app --help" in line)
    status_line = next(line for line in lines if "outbox status" in line)
    assert "0.40" in help_line and "<= 1.0" in help_line and help_line.endswith("yes")
    assert "1.90" in status_line and "<= 1.5" in status_line and status_line.endswith("NO")
    assert any("runtime only" in line and "182 MB" in line for line in lines)
    assert any("development" in line and "640 MB" in line for line in lines)
