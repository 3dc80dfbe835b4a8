"""The command line of ``python -m fastl2 bench``: options, then header, live results, tables, JSON
and plot.

What runs by default, and why (measured 2026-11-30 on the 2-core development machine, cold Numba
caches, ``NUMBA_CACHE_DIR`` a fresh empty directory): the old default run took 150 s, of which
95 s was fastl2's numba backend compiling its kernels on first use, 11 s the exact values (now
computed by ``cases.exact_parts``, about ten times faster), 8 s importing PyTorch, scikit-learn and
Numba, 6 s the Numba peer's kernels and 28 s the timings. So:

- fastl2's numba backend ("fastl2-numba") is not in the default set; ``--methods all`` or
  ``--methods fastl2,fastl2-numba,...`` adds it (a message says it compiles on first use);
- the Numba peers' kernels (``numba``, ``numba-fastmath``) are compiled once, before any timing,
  for the selected ops and dtypes, after a message saying so; Numba caches them on disk, so later
  runs load them;
- the default sizes are 16 (call overhead), 10⁵ (in cache, threaded) and 10⁷ (memory bound), and
  the default budget is 0.05 s per method and cell: 10³ (overhead again) and a longer budget are
  an option away (``--sizes 16,1e3,1e5,1e7 --budget 0.1``).

Each result is printed as soon as it is measured; the tables follow at the end. A row whose time
the scheduler spoiled is marked ``!`` with a footnote (the rule: :mod:`.results`). ``--busy K``
runs the same cells with K CPU-bound processes spinning in the background, to show how each method
behaves on a busy machine (DataLoader workers, a second job): its processes are always stopped.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext

from .cases import DEFAULT_DTYPES, DEFAULT_SIZES, OPS, parse_sizes, split_list
from .machine import (all_cpus, busy_load, machine_info, measure_read_bandwidth,
                      timing_environment)
from .methods import DEFAULT_METHODS, METHOD_KEYS, load_methods, set_threads
from .peers import Unavailable
from .plot import PLOT_EXTRA_HINT, check_plot_target, plot_throughput
from .report import format_header, format_result_line, format_table, write_json
from .results import Result, run
from .timing import DEFAULT_BUDGET_S

BANDWIDTH_BUDGET_S = 0.5  # the read-bandwidth probe gets --budget, up to this


def _choices(allowed: Sequence[str], everything: str | None = None) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        values = split_list(text)
        if everything is not None and everything in values:
            return list(allowed)
        bad = [v for v in values if v not in allowed]
        if bad or not values:
            extra = f" or {everything}" if everything else ""
            raise argparse.ArgumentTypeError(
                f"choose from {','.join(allowed)}{extra}; got {text!r}")
        return values
    return parse


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a whole number at least 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a number of seconds above 0, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    cpus = os.cpu_count() or 1
    parser = argparse.ArgumentParser(
        prog="python -m fastl2 bench",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Time fastl2's mse, weighted mse and mse_and_grad against NumPy, PyTorch, "
        "scikit-learn, Numba (strict and fastmath) and numexpr, and check every result against "
        "an exact value. Each result is printed as it is measured, the tables at the end.",
        epilog="""\
default set: every method but fastl2-numba (fastl2's numba backend compiles its kernels on
  first use: about 95 s on a 2-core machine with cold caches); --methods all adds it. The Numba
  peers' kernels are compiled once before the timings (a message says so; cached afterwards).
  The defaults (3 sizes, budget 0.05 s) keep a first run under a minute on 2 cores.
stalled rows: a time marked ! was spoiled by the scheduler, with a footnote saying why: its
  samples spread (p90 > 2x median), or a threaded call was 1.5x slower than the same call on
  1 thread. Rerun it. Fork/join teams (OpenMP, Numba, PyTorch) stall by scheduler ticks
  (4, 8, 16 ms) on a machine busier than it has cores; fastl2's compiled backend does not.
--busy K: K CPU-bound background processes spin while the cells are timed (stopped at the end,
  on errors and on Ctrl-C); the tables show the median and p99 of each method on a busy machine.""",
    )
    parser.add_argument("--sizes", nargs="+", default=[",".join(map(str, DEFAULT_SIZES))],
                        metavar="N", help="element counts, e.g. 16,1e6 "
                        f"(default: {','.join(map(str, DEFAULT_SIZES))})")
    parser.add_argument("--dtypes", type=_choices(DEFAULT_DTYPES), default=list(DEFAULT_DTYPES),
                        help="float32,float64 (default: both)")
    parser.add_argument("--ops", type=_choices(OPS), default=list(OPS),
                        help="mse,wmse,grad (default: all)")
    parser.add_argument("--methods", type=_choices(METHOD_KEYS, "all"), default=None,
                        help=f"{','.join(METHOD_KEYS)}, or all (default: "
                        f"{','.join(DEFAULT_METHODS)}, those installed; fastl2 is its active "
                        "backend and each other compiled one but numba)")
    parser.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                        help="threads for fastl2 (set_num_threads), PyTorch, Numba and numexpr")
    parser.add_argument("--budget", type=_positive_float, default=DEFAULT_BUDGET_S,
                        metavar="SECONDS",
                        help="time spent timing each method on each cell (default: %(default)s)")
    parser.add_argument("--repeat", type=_positive_int, default=None, metavar="K",
                        help="take exactly K samples per method and cell instead of --budget")
    parser.add_argument("--busy", type=_positive_int, nargs="?", const=cpus, default=None,
                        metavar="K", help="time everything while K CPU-bound background "
                        f"processes spin (K defaults to the number of CPUs, {cpus})")
    parser.add_argument("--json", metavar="FILE", help="also write the machine and all results")
    parser.add_argument("--plot", metavar="FILE.png",
                        help="also draw GB/s against size per op and dtype, with the measured read "
                        f"bandwidth (needs matplotlib: {PLOT_EXTRA_HINT})")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark from the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        sizes = parse_sizes(args.sizes)
    except argparse.ArgumentTypeError as exc:
        parser.error(f"--sizes: {exc}")
    if not sizes:
        parser.error("--sizes: no size given")
    if args.plot:
        try:
            check_plot_target(args.plot)
        except Unavailable as exc:
            parser.error(str(exc))
    if args.json:  # (before the benchmark runs, not after it, as --plot)
        folder = os.path.dirname(os.path.abspath(args.json))
        if not os.path.isdir(folder):
            parser.error(f"--json {args.json}: the folder {folder} does not exist")
    try:
        return _run(args, sizes)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr, flush=True)
        return 130


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _run(args: argparse.Namespace, sizes: list[int]) -> int:
    started = time.perf_counter()
    environment = timing_environment()  # scikit-learn's import sets KMP_* variables
    keys = args.methods if args.methods is not None else list(DEFAULT_METHODS)
    _progress(f"loading {','.join(keys)} ...")
    methods, skipped = load_methods(keys)
    if args.threads is not None:
        with all_cpus():  # pools grown here must not inherit the main thread's single core
            set_threads(args.threads, methods)
    compilers = [(m.key, m.compile) for m in methods if m.compile is not None]
    if compilers:
        _progress(f"compiling the Numba kernels of {', '.join(key for key, _ in compilers)} for "
                  f"{','.join(args.ops)} x {','.join(args.dtypes)} before timing "
                  "(first run only: Numba caches them on disk) ...")
        start = time.perf_counter()
        with all_cpus():
            for _, compile_kernels in compilers:
                compile_kernels(args.ops, args.dtypes)
        _progress(f"  compiled or loaded in {time.perf_counter() - start:.1f} s")
    if any(m.key.startswith("fastl2-numba") for m in methods):  # also numba as active backend
        _progress("fastl2[numba] compiles each of its kernels on first use, untimed (about 95 s "
                  "for the default cells on 2 cores with a cold cache; cached afterwards)")
    info = machine_info(environment)
    _progress("measuring the read bandwidth ...")
    bandwidth = measure_read_bandwidth(min(args.budget, BANDWIDTH_BUDGET_S))
    left_out = [k for k in METHOD_KEYS if k not in DEFAULT_METHODS] if args.methods is None else []
    print(format_header(info, skipped, bandwidth, args.busy, left_out), flush=True)
    cells = [(op, dtype, n) for op in args.ops for dtype in args.dtypes for n in sizes]

    def show(result: Result) -> None:
        print(format_result_line(result), flush=True)

    print()
    load = busy_load(args.busy) if args.busy else nullcontext()
    with load:
        results = run(cells, methods, args.budget, args.repeat, _progress, show)
    elapsed = time.perf_counter() - started

    for op in args.ops:
        print()
        print(format_table(op, [r for r in results if r.op == op], methods, bool(args.busy)))
    stalled = sum(bool(r.stalled) for r in results)
    print(f"\n{len(results)} timings in {elapsed:.1f} s"
          + (f"; {stalled} marked {'!'} (stalled: see the footnotes)" if stalled else ""))
    if args.json:
        write_json(args.json, info, {**vars(args), "sizes": sizes}, bandwidth, elapsed, results)
        _progress(f"wrote {args.json}")
    if args.plot:
        plot_throughput(results, info, bandwidth, args.plot)
        _progress(f"wrote {args.plot}")
    return 1 if any(r.error for r in results) else 0
