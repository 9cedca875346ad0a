"""The benchmark's own arithmetic: a wrong percentile or backlog slope is a wrong report."""

from __future__ import annotations

import pytest

from bench.e2e_latency import Run, backlog_growth_per_s, pooled
from bench.stats import latency_summary, percentile


def test_percentile_is_nearest_rank_of_observed_values() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 0.50) == 50
    assert percentile(values, 0.99) == 99
    assert percentile(values, 1.0) == 100
    assert percentile([7.0], 0.99) == 7


def test_latency_summary_reports_milliseconds() -> None:
    summary = latency_summary([0.001, 0.002, 0.003, 0.004, 0.100])
    assert summary == {
        "p50_ms": 3.0,
        "p95_ms": 100.0,
        "p99_ms": 100.0,
        "max_ms": 100.0,
        "samples": 5,
    }
    with pytest.raises(ValueError):
        latency_summary([])


def _steady(rate: float, seconds: float, delay: float) -> tuple[list[float], list[float]]:
    commits = [index / rate for index in range(int(rate * seconds))]
    return commits, [t + delay for t in commits]


def test_backlog_that_keeps_up_does_not_grow() -> None:
    commits, arrivals = _steady(1000, 10, delay=0.005)
    assert abs(backlog_growth_per_s(commits, arrivals)) < 5


def test_backlog_growth_is_the_rate_not_delivered() -> None:
    commits = [index / 1000 for index in range(10_000)]  # 1,000/s offered
    arrivals = [index / 600 for index in range(10_000)]  # 600/s delivered
    assert backlog_growth_per_s(commits, arrivals) == pytest.approx(400, rel=0.05)


def _run(rate: float, achieved: float, growth: float, missing: int = 0) -> Run:
    return Run(rate, 10, achieved, [0.001], missing, growth)


def test_a_rate_is_flat_only_when_offered_delivered_and_complete() -> None:
    assert _run(1000, 995, 3).flat
    assert not _run(1000, 900, 3).flat  # the generator could not offer it
    assert not _run(1000, 995, 80).flat  # the backlog grew
    assert not _run(1000, 995, 3, missing=1).flat  # an order never arrived
    assert _run(10, 10, 0.5).flat  # a tiny rate is judged on whole orders


def test_pooled_runs_are_judged_on_all_their_latencies_and_their_worst_backlog() -> None:
    runs = [
        Run(250, 10, 250, [0.010] * 3, 0, 1.0),
        Run(250, 10, 240, [0.020] * 3, 1, 4.0),
        Run(250, 10, 245, [0.030] * 5, 0, -2.0),
    ]
    one = pooled(runs)
    assert one.seconds == 30 and one.achieved_per_s == pytest.approx(245)
    assert latency_summary(one.latencies_s)["p50_ms"] == 20.0  # 11 samples: the 6th
    assert one.each_p50_ms == [10.0, 20.0, 30.0]
    assert (one.missing, one.backlog_growth_per_s) == (1, 4.0)
    assert not one.flat  # an order of one run never arrived
    assert pooled(runs[:1]) is runs[0]


def test_every_bench_module_imports() -> None:
    # The bench runs only in `make bench`; an API it uses that changed must fail here.
    import importlib
    import pkgutil

    import bench

    for module in pkgutil.iter_modules(bench.__path__):
        importlib.import_module(f"bench.{module.name}")
