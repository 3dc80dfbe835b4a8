"""The plot of ``--plot FILE.png``: every method's throughput against the size, per op and dtype.

matplotlib is imported only here, and only when a plot is checked or drawn (``pip install
matplotlib``, or ``pip install '.[plot]'`` in fastl2's checkout); the measured read bandwidth is
drawn as a reference line.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .cases import DEFAULT_DTYPES, OPS
from .machine import ReadBandwidth
from .peers import Unavailable
from .results import Result

PLOT_EXTRA_HINT = "pip install matplotlib (from fastl2's checkout: pip install '.[plot]')"
PLOT_TITLES = {
    "mse": "mse (loss)",
    "wmse": "weighted mse (loss)",
    "grad": "mse_and_grad (loss and gradient)",
}
_MARKERS = "osD^vP<>Xh*p"


def require_matplotlib() -> Any:
    """matplotlib's ``Figure`` class, or :class:`Unavailable` saying how to install it."""
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise Unavailable(
            f"--plot needs matplotlib, which is not installed ({exc}): {PLOT_EXTRA_HINT}"
        ) from None
    return Figure


def check_plot_target(path: str) -> None:
    """Fail before the benchmark runs, not after it: matplotlib, the folder and the file format."""
    require_matplotlib()
    from matplotlib.backend_bases import FigureCanvasBase

    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise Unavailable(f"--plot {path}: the folder {folder} does not exist")
    suffix = os.path.splitext(path)[1].lstrip(".").lower()
    formats = FigureCanvasBase.get_supported_filetypes()
    if suffix not in formats:
        raise Unavailable(f"--plot {path}: use one of the extensions {', '.join(formats)}")


@dataclass(frozen=True)
class Line:
    """How one method is drawn, the same in every subplot."""

    label: str
    color: str
    marker: str
    width: float

    @classmethod
    def for_methods(cls, results: Sequence[Result]) -> dict[str, Line]:
        """A line per method key: fastl2's first and thick, then the peers, thin, in run order."""
        names = {r.key: r.method for r in results}
        keys = sorted(names, key=lambda key: not key.startswith("fastl2"))  # a stable sort
        return {key: cls(names[key], f"C{i % 10}", _MARKERS[i % len(_MARKERS)],
                         2.2 if key.startswith("fastl2") else 1.2)
                for i, key in enumerate(keys)}


def plot_title(info: dict[str, Any]) -> str:
    """What, when and with which fastl2; the machine and the thread settings; what GB/s counts."""
    env = " ".join(f"{k}={v}" for k, v in info["environment"].items() if k.startswith("OMP_"))
    return (f"fastl2 {info['fastl2']}: throughput against size, {info['date']}\n"
            f"{info['cpu']}, {info['cores']} cores; fastl2 backend {info['backend']}, "
            f"{info['threads']} threads; numpy {info['numpy']}" + (f"; {env}" if env else "")
            + "\nGB/s = bytes moved / median time: each input read once (and, for mse_and_grad, "
            "the gradient written once)")


def plot_throughput(results: Sequence[Result], info: dict[str, Any],
                    bandwidth: ReadBandwidth | None, path: str) -> None:
    """Save GB/s against n, log-log, one subplot per (op, dtype) and one line per method."""
    Figure = require_matplotlib()
    ops = [op for op in OPS if any(r.op == op for r in results)]
    dtypes = [d for d in DEFAULT_DTYPES if any(r.dtype == d for r in results)]
    lines = Line.for_methods(results)
    figure = Figure(figsize=(1.5 + 5.5 * len(dtypes), 2.2 + 3.6 * len(ops)), layout="constrained")
    axes = figure.subplots(len(ops), len(dtypes), sharex=True, sharey=True, squeeze=False)
    for row, op in enumerate(ops):
        for column, dtype in enumerate(dtypes):
            cell = [r for r in results if r.op == op and r.dtype == dtype and r.error is None]
            _plot_cell(axes[row][column], cell, lines, bandwidth)
            axes[row][column].set_title(f"{PLOT_TITLES[op]}, {dtype}")
        axes[row][0].set_ylabel("GB/s (bytes moved / median time)")
    for axis in axes[-1]:
        axis.set_xlabel("n (elements per array)")
    handles: dict[str, Any] = {}
    for axis in axes.flat:
        for handle, label in zip(*axis.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    order = [line.label for line in lines.values()]  # the run's order, fastl2 first
    labels = sorted(handles, key=lambda label: order.index(label) if label in order else len(order))
    figure.legend([handles[label] for label in labels], labels, loc="outside lower center",
                  ncol=3, fontsize="small", frameon=False)
    figure.suptitle(plot_title(info), fontsize="medium")
    figure.savefig(path, dpi=110, bbox_inches="tight")


def _plot_cell(axis: Any, cell: Sequence[Result], lines: dict[str, Line],
               bandwidth: ReadBandwidth | None) -> None:
    for key, line in lines.items():
        points = sorted((r.n, r.gbytes_per_s) for r in cell if r.key == key)
        if points:
            sizes, rates = zip(*points)
            axis.plot(sizes, rates, label=line.label, color=line.color, marker=line.marker,
                      linewidth=line.width, markersize=3 + line.width)
    if bandwidth is not None:
        axis.axhline(bandwidth.gbytes_per_s, color="0.25", linestyle="--", linewidth=1.2,
                     label=bandwidth.short_label)
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.grid(True, which="major", alpha=0.35)
    axis.grid(True, which="minor", alpha=0.1)
