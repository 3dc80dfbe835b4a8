"""Time fastl2 against the libraries a user would otherwise pick: ``python -m fastl2 bench``.

Three operations are timed for each dtype and size:

``mse``
    the unweighted mean squared error (loss only);
``wmse``
    the mean squared error with full-shape positive weights (loss only);
``grad``
    the loss and its gradient with respect to ``y_pred``, ``2 (y_pred - y_true) / n``.

Every method is checked against an exact value of what *that method* computes (the exact sum of
the float64 products, rounded once: ``math.fsum``'s value, computed by :func:`exact_sum`), so the
table shows speed and accuracy side by side. The peers are defined once, in :data:`PEERS`; the
pytest-benchmark suite in ``bench/`` reuses them. Numba has two: ``numba`` (strict,
``fastmath=False``) and ``numba-fastmath`` (the same loops with ``fastmath=True``, as a Numba user
writes them for speed).

What a run prints: each result as soon as it is measured (median, p99, GB/s, errors), then one
table per op. A row whose time the scheduler spoiled is marked ``!`` with a footnote saying why:
its samples spread (p90 above twice the median), or a threaded call was 1.5 times slower than the
same call on one thread (the rule: :func:`stall_reasons`, in ``results``). ``--busy K`` times the
same cells while K CPU-bound processes spin (:func:`busy_load`), always stopped afterwards.

The default run is sized to finish within a minute on a 2-core machine with cold Numba caches:
fastl2's numba backend (key ``fastl2-numba``, about 95 s of compilation on a first run) is left
out unless asked for (``--methods all``), the Numba peers' kernels are compiled once before the
timings after a message saying so, and three sizes at 0.05 s each are timed (the measurements
behind this choice: ``cli``'s docstring).

The machine's read bandwidth is measured once per run (:func:`measure_read_bandwidth`) and printed
above the tables; ``--plot FILE.png`` draws every method's throughput against the size, with that
bandwidth as a reference line (matplotlib: ``pip install matplotlib``, or
``pip install '.[plot]'`` in fastl2's checkout).

Run ``python -m fastl2 bench --help`` for the options. Three environment notes:

- Unset ``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE`` where a machine sets them: they slow NumPy.
- On a machine busier than it has cores, fork/join thread teams (OpenMP, Numba, PyTorch) stall
  each parallel call by a scheduler tick (rows of exactly 4, 8 or 16 ms); such rows are marked
  ``!``. fastl2's compiled backend runs on its own pool, whose calls never wait for a thread that
  has not started.
- With ``OMP_PROC_BIND`` set, the OpenMP runtime pins the main thread to one core as soon as fastl2
  is imported, and threads started later inherit that core (fastl2's pool helpers, Numba's pool,
  numexpr's threads would all share it). :func:`load_methods` therefore imports the peers and
  starts their pools with the main thread allowed on every CPU (:func:`all_cpus`); do not set it
  for fastl2.

The modules, each named by what it holds:

``cases``
    what is measured: ops, sizes, dtypes, the inputs of a cell and their exact values;
``peers``
    the peers (NumPy, PyTorch, scikit-learn, Numba strict and fastmath, numexpr), each a
    :class:`Method`;
``methods``
    fastl2 on each backend, the method keys and the default set, loading the methods that can run
    here, their threads;
``timing``
    the one timer, :func:`time_call`, which the scripts in ``bench/`` reuse, and its samples;
``machine``
    the machine's description, CPU affinity, read bandwidth and the busy processes of ``--busy``;
``results``
    each method on each cell, checked, timed, then judged (the stalled-row rule);
``report`` and ``plot``
    the text tables and JSON file, the matplotlib figure;
``cli``
    the command line, :func:`main`.

Importing this package imports none of the peers' libraries, nor matplotlib: each is imported
when its method is loaded or a plot is drawn. The names below are re-exported from the modules.
"""

from .cases import (
    CHUNK,
    DEFAULT_DTYPES,
    DEFAULT_SIZES,
    OP_TITLES,
    OPS,
    SEED,
    Case,
    Reference,
    exact_parts,
    exact_sum,
    make_case,
    parse_size,
    parse_sizes,
    relative_error,
    unpack,
)
from .cli import build_parser, main
from .machine import (
    PROBE_BYTES,
    ReadBandwidth,
    all_cpus,
    busy_load,
    cpu_model,
    machine_info,
    measure_read_bandwidth,
    start_spinners,
    stop_spinners,
    timing_environment,
)
from .methods import (
    DEFAULT_METHODS,
    METHOD_KEYS,
    fastl2_method,
    fastl2_methods,
    load_methods,
    set_threads,
    using_backend,
)
from .peers import (
    BASELINE,
    PEERS,
    Method,
    Unavailable,
    numba_kernels,
    numba_fastmath_peer,
    numba_peer,
    numexpr_peer,
    numpy_dot_peer,
    numpy_mean_peer,
    sklearn_peer,
    torch_peer,
)
from .plot import (
    PLOT_EXTRA_HINT,
    PLOT_TITLES,
    Line,
    check_plot_target,
    plot_throughput,
    plot_title,
    require_matplotlib,
)
from .report import format_header, format_result_line, format_table, format_time
from .results import SERIAL_LIMIT, SPREAD_LIMIT, Result, measure, run, stall_reasons
from .timing import (
    DEFAULT_BUDGET_S,
    MAX_SAMPLES,
    MIN_SAMPLE_S,
    WARM_UP_S,
    Call,
    Timing,
    percentile,
    time_call,
)

__all__ = [
    "BASELINE", "CHUNK", "DEFAULT_BUDGET_S", "DEFAULT_DTYPES", "DEFAULT_METHODS",
    "DEFAULT_SIZES", "MAX_SAMPLES", "METHOD_KEYS", "MIN_SAMPLE_S", "OPS", "OP_TITLES", "PEERS",
    "PLOT_EXTRA_HINT", "PLOT_TITLES", "PROBE_BYTES", "SEED", "SERIAL_LIMIT", "SPREAD_LIMIT",
    "WARM_UP_S",
    "Call", "Case", "Line", "Method", "ReadBandwidth", "Reference", "Result", "Timing",
    "Unavailable",
    "all_cpus", "build_parser", "busy_load", "check_plot_target", "cpu_model", "exact_parts",
    "exact_sum", "fastl2_method", "fastl2_methods", "format_header", "format_result_line",
    "format_table", "format_time", "load_methods", "machine_info", "main", "make_case",
    "measure", "measure_read_bandwidth", "numba_fastmath_peer", "numba_kernels", "numba_peer",
    "numexpr_peer", "numpy_dot_peer", "numpy_mean_peer", "parse_size", "parse_sizes",
    "percentile", "plot_throughput", "plot_title", "relative_error", "require_matplotlib", "run",
    "set_threads", "sklearn_peer", "stall_reasons", "start_spinners", "stop_spinners",
    "time_call", "timing_environment", "torch_peer", "unpack", "using_backend",
]
