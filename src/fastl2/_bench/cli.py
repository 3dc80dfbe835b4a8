"""The command line of ``python -m fastl2 bench``: options, then header, tables, JSON and plot."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence

from .cases import DEFAULT_DTYPES, DEFAULT_SIZES, OPS, parse_sizes, split_list
from .machine import all_cpus, machine_info, measure_read_bandwidth, timing_environment
from .methods import load_methods, set_threads
from .peers import PEERS, Unavailable
from .plot import PLOT_EXTRA_HINT, check_plot_target, plot_throughput
from .report import format_header, format_table, write_json
from .results import run
from .timing import DEFAULT_BUDGET_S


def _choices(allowed: Sequence[str]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        values = split_list(text)
        bad = [v for v in values if v not in allowed]
        if bad or not values:
            raise argparse.ArgumentTypeError(f"choose from {','.join(allowed)}; got {text!r}")
        return values
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m fastl2 bench",
        description="Time fastl2's mse, weighted mse and mse_and_grad against NumPy, PyTorch, "
        "scikit-learn, Numba and numexpr, and check every result against an exact value.",
        epilog="Rows of exactly 4, 8 or 16 ms for parallel methods on a small virtual machine: "
        "rerun with OMP_PROC_BIND=spread OMP_PLACES=cores set.",
    )
    parser.add_argument("--sizes", nargs="+", default=[",".join(map(str, DEFAULT_SIZES))],
                        metavar="N", help="element counts, e.g. 16,1e6 "
                        f"(default: {','.join(map(str, DEFAULT_SIZES))})")
    parser.add_argument("--dtypes", type=_choices(DEFAULT_DTYPES), default=list(DEFAULT_DTYPES),
                        help="float32,float64 (default: both)")
    parser.add_argument("--ops", type=_choices(OPS), default=list(OPS),
                        help="mse,wmse,grad (default: all)")
    parser.add_argument("--methods", type=_choices(["fastl2", *PEERS]), default=None,
                        help=f"{','.join(['fastl2', *PEERS])} (default: all that are installed; "
                        "fastl2 is every available backend)")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="threads for fastl2 (set_num_threads), PyTorch, Numba and numexpr")
    parser.add_argument("--budget", type=float, default=DEFAULT_BUDGET_S, metavar="SECONDS",
                        help="time spent timing each method on each cell (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=None, metavar="K",
                        help="take exactly K samples per method and cell instead of --budget")
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
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be at least 1")
    if args.repeat is not None and args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.plot:
        try:
            check_plot_target(args.plot)
        except Unavailable as exc:
            parser.error(str(exc))

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    started = time.perf_counter()
    environment = timing_environment()  # scikit-learn's import sets KMP_* variables
    methods, skipped = load_methods(args.methods)
    if args.threads is not None:
        with all_cpus():  # pools grown here must not inherit the main thread's single core
            set_threads(args.threads, methods)
    info = machine_info(environment)
    progress("measuring the read bandwidth ...")
    bandwidth = measure_read_bandwidth(args.budget)
    print(format_header(info, skipped, bandwidth), flush=True)
    cells = [(op, dtype, n) for op in args.ops for dtype in args.dtypes for n in sizes]
    results = run(cells, methods, args.budget, args.repeat, progress)
    elapsed = time.perf_counter() - started

    for op in args.ops:
        print()
        print(format_table(op, [r for r in results if r.op == op], methods))
    print(f"\n{len(results)} timings in {elapsed:.1f} s")
    if args.json:
        write_json(args.json, info, {**vars(args), "sizes": sizes}, bandwidth, elapsed, results)
        progress(f"wrote {args.json}")
    if args.plot:
        plot_throughput(results, info, bandwidth, args.plot)
        progress(f"wrote {args.plot}")
    return 1 if any(r.error for r in results) else 0
