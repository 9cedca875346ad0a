"""The latency distribution as a PNG: one percentile curve per offered rate."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: write the file only
import matplotlib.pyplot as plt
from matplotlib.ticker import FixedLocator, FuncFormatter

PERCENTILES = [0.0, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999]


def _tail_position(fraction: float) -> float:
    """x = log10(1 / (1 - p)): p50 at 0.3, p90 at 1, p99 at 2, p99.9 at 3."""
    import math

    return math.log10(1 / (1 - min(fraction, 0.9999)))


def latency_chart(
    series: Mapping[str, Sequence[float]], path: Path, *, title: str, targets_ms: Sequence[float]
) -> None:
    """``series``: label -> latencies in seconds."""
    figure, axes = plt.subplots(figsize=(9, 5.5))
    for label, seconds in series.items():
        ordered = sorted(seconds)
        count = len(ordered)
        xs = [_tail_position(index / count) for index in range(count)]
        axes.plot(xs, [value * 1000 for value in ordered], label=f"{label} (n={count:,})")
    for target in targets_ms:
        axes.axhline(target, color="grey", linestyle=":", linewidth=1)
        axes.annotate(f"{target:g} ms", (0.02, target), color="grey", fontsize=8, va="bottom")
    axes.set_yscale("log")
    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axes.xaxis.set_major_locator(FixedLocator([_tail_position(p) for p in PERCENTILES]))
    axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"p{100 * (1 - 10**-value):g}"))
    axes.set_xlabel("percentile")
    axes.set_ylabel("order commit -> catalog inbox commit (ms, log scale)")
    axes.set_title(title, fontsize=10)
    axes.grid(True, which="major", alpha=0.3)
    axes.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
