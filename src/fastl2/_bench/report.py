"""The report: the header, a line per result as it is measured, one aligned text table per op with
the stalled rows marked and explained, and the JSON file of ``--json``."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from .cases import OP_TITLES
from .machine import PEER_LIBRARIES, ReadBandwidth, slow_blas_warning
from .peers import BASELINE, Method
from .results import Result
from .timing import format_time


def format_header(info: dict[str, Any], skipped: dict[str, str],
                  bandwidth: ReadBandwidth | None = None, busy: int | None = None,
                  left_out: Sequence[str] = ()) -> str:
    """The lines printed above the results. ``busy``: the number of background processes of
    ``--busy``; ``left_out``: the method keys not in the default set, when it is used."""
    versions = ", ".join(f"{name} {info[name]}" for name in PEER_LIBRARIES if info.get(name))
    lines = [
        f"fastl2 {info['fastl2']} benchmark, {info['date']}",
        f"  machine : {info['cpu']}, {info['cores']} cores, {info['platform']}",
        f"  fastl2  : backend {info['backend']} (available: {', '.join(info['backends'])}),"
        f" threads {info['threads']}",
        f"  python  : {info['python']}; {versions}",
    ]
    if bandwidth is not None:
        lines.append(f"  memory  : {bandwidth.label}")
    if len(info["main_thread_cpus"]) < (info["cores"] or 0):
        lines.append(f"  affinity: main thread on CPUs {info['main_thread_cpus']}")
    if info["environment"]:
        lines.append("  env     : " + " ".join(f"{k}={v}" for k, v in info["environment"].items()))
    lines += [f"  skipped : {key}: {reason}" for key, reason in skipped.items()]
    if left_out:
        lines.append(f"  not run : {', '.join(left_out)} (not in the default set; "
                     "add with --methods all or --methods fastl2,fastl2-numba,...)")
    if busy:
        lines.append(f"  busy    : {busy} CPU-bound background process{'es' if busy > 1 else ''} "
                     f"spinning throughout the timings (--busy {busy}), on {info['cores']} cores")
    warning = slow_blas_warning(info["environment"])
    if warning:
        lines.append(f"  warning : {warning}")
    return "\n".join(lines)


def _format_error(error: float | None) -> str:
    if error is None or math.isnan(error):
        return "-"
    return "0" if error == 0 else f"{error:.1e}"


STALL_MARK = "!"


def format_result_line(r: Result) -> str:
    """One result as a line, printed as soon as it is measured (``!`` and why, when stalled)."""
    cell = f"{r.op:<4} {r.dtype:<7} {r.n:>11,}  {r.method:<26}"
    if r.error is not None:
        return f"{cell}  failed: {r.error}"
    mark = STALL_MARK if r.stalled else " "
    line = (f"{cell} {format_time(r.seconds):>9}{mark} p99 {format_time(r.p99):>9}"
            f" {r.gbytes_per_s:8.2f} GB/s  rel. error {_format_error(r.rel_error)}")
    if r.grad_error is not None:
        line += f"  grad error {_format_error(r.grad_error)}"
    if r.stalled:
        line += f"  {STALL_MARK} " + "; ".join(r.stalled)
    return line


def format_table(op: str, results: Sequence[Result], methods: Sequence[Method],
                 busy: bool = False) -> str:
    """One op's results as an aligned text table, a blank line between cells, then a legend.

    A stalled row's time carries ``!``; a numbered footnote under the table says why. ``busy``:
    the run kept the machine busy on purpose (``--busy``), so a stall is the finding, not noise.
    """
    headers = ["size", "dtype", "method", "median", "p99", f"vs {BASELINE}", "GB/s",
               "rel. error"]
    if op == "grad":
        headers.append("grad error")
    rows: list[list[str] | None] = []
    notes: list[str] = []
    previous_cell = None
    for r in results:
        cell = (r.n, r.dtype)
        if previous_cell is not None and cell != previous_cell:
            rows.append(None)
        size, dtype = (f"{r.n:,}", r.dtype) if cell != previous_cell else ("", "")
        previous_cell = cell
        if r.error is not None:
            rows.append([size, dtype, r.method, f"failed: {r.error}"])
            continue
        median = format_time(r.seconds)
        if r.stalled:
            notes.append(f"  {STALL_MARK}{len(notes) + 1} {r.method}, {r.dtype}, n={r.n:,}: "
                         + "; ".join(r.stalled))
            median = f"{STALL_MARK}{len(notes)} {median}"
        row = [size, dtype, r.method, median, format_time(r.p99),
               "-" if r.speedup is None else f"{r.speedup:.2f}x",
               f"{r.gbytes_per_s:.2f}", _format_error(r.rel_error)]
        if op == "grad":
            row.append(_format_error(r.grad_error))
        rows.append(row)
    widths = [len(h) for h in headers]
    for row in rows:
        if row is not None and not row[3].startswith("failed"):
            widths = [max(w, len(c)) for w, c in zip(widths, row)]
    right = {0, 3, 4, 5, 6, 7, 8}

    def line(cells: Sequence[str]) -> str:
        if len(cells) < len(headers):  # a failed method: the message runs on
            return "  ".join(c.ljust(w) for c, w in zip(cells[:3], widths)) + "  " + cells[3]
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    out = [OP_TITLES[op], line(headers), "  ".join("-" * w for w in widths)]
    out += ["" if row is None else line(row) for row in rows]
    out.append("")
    out += [f"  {m.name:<{widths[2]}}  {m.describe[op]}" for m in methods if op in m.ops]
    out.append("  (a = y_true, b = y_pred, w = weights, n = size; GB/s counts inputs read once"
               + (" and the gradient written once;" if op == "grad" else ";")
               + " median and p99 per call)")
    if notes:
        advice = ("on this busy machine, that is how the method behaved" if busy
                  else "rerun before trusting the time")
        out.append(f"  {STALL_MARK}: stalled, the scheduler interfered (p90 > 2x median, or a "
                   f"threaded call 1.5x slower than on 1 thread): {advice}")
        out += notes
    return "\n".join(out)


def json_row(result: Result) -> dict[str, Any]:
    """A result as JSON-ready values: NaN (a failed method's time) becomes null."""
    return {k: None if isinstance(v, float) and math.isnan(v) else v
            for k, v in asdict(result).items()}


def write_json(path: str, info: dict[str, Any], settings: dict[str, Any],
               bandwidth: ReadBandwidth, elapsed: float, results: Sequence[Result]) -> None:
    """Write the machine, the settings, the read bandwidth and every result to ``path``."""
    report = {"machine": info, "settings": settings,
              "read_bandwidth": {**asdict(bandwidth), "label": bandwidth.label},
              "elapsed_s": elapsed, "results": [json_row(r) for r in results]}
    with open(path, "w", encoding="utf-8") as file:
        json.dump(report, file, indent=2, allow_nan=False)
