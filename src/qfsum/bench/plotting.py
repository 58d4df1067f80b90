"""Log-log plots of the scaling benchmarks: one panel per measure, one line per model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from ..errors import QfsumError


def loglog_panels(path: Path, panels: Sequence[tuple[str, Mapping[str, tuple[Sequence[float], Sequence[float]]]]],
                  xlabel: str, title: str) -> None:
    """Write a PNG with one log-log panel per `(panel title, {line label: (x, y)})`; empty lines are left out."""
    try:
        import matplotlib
    except ImportError:
        raise QfsumError(f"no plot {path}: matplotlib is missing (pip install 'qfsum[bench]'); "
                         "the table and JSON were written") from None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
    for axis, (panel, lines) in zip(axes[0], panels):
        for name, (x, y) in lines.items():
            if len(x):
                axis.plot(x, y, "o-", label=name)
        axis.set_xscale("log", base=2)
        axis.set_yscale("log")
        axis.set_xlabel(xlabel)
        axis.set_title(panel)
        axis.grid(True, which="both", alpha=0.3)
        if axis.lines:
            axis.legend()
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
