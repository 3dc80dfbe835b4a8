"""Time fastl2 against the libraries a user would otherwise pick: ``python -m fastl2 bench``.

Three operations are timed for each dtype and size:

``mse``
    the unweighted mean squared error (loss only);
``wmse``
    the mean squared error with full-shape positive weights (loss only);
``grad``
    the loss and its gradient with respect to ``y_pred``, ``2 (y_pred - y_true) / n``.

Every method is checked against an exact value of what *that method* computes (``math.fsum`` over
float64 products), so the table shows speed and accuracy side by side. The peers are defined once,
in :data:`PEERS`; the pytest-benchmark suite in ``bench/`` reuses them.

The machine's read bandwidth is measured once per run (:func:`measure_read_bandwidth`) and printed
above the tables; ``--plot FILE.png`` draws every method's throughput against the size, with that
bandwidth as a reference line (matplotlib: ``pip install matplotlib``, or
``pip install '.[plot]'`` in fastl2's checkout).

Run ``python -m fastl2 bench --help`` for the options. Three environment notes:

- Unset ``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE`` where a machine sets them: they slow NumPy.
- On small virtual machines, OpenMP threads that are not bound to cores can stall each parallel
  call by a scheduler tick (rows of exactly 4, 8 or 16 ms, for fastl2, Numba and PyTorch alike);
  ``OMP_PROC_BIND=spread OMP_PLACES=cores`` avoids it. It must be set before Python starts.
- With ``OMP_PROC_BIND`` set, the OpenMP runtime pins the main thread to one core as soon as fastl2
  is imported, and thread pools started later inherit that core (Numba would size its pool to 1
  thread, numexpr would run all its threads on one core). :func:`load_methods` therefore imports
  the peers and starts their pools with the main thread allowed on every CPU (:func:`all_cpus`).

The modules, each named by what it holds:

``cases``
    what is measured: ops, sizes, dtypes, the inputs of a cell and their exact values;
``peers``
    the peers (NumPy, PyTorch, scikit-learn, Numba, numexpr), each a :class:`Method`;
``methods``
    fastl2 on each backend, loading the methods that can run here, their threads;
``timing``
    the one timer, :func:`time_call`, which the scripts in ``bench/`` reuse;
``machine``
    the machine's description, CPU affinity and read bandwidth;
``results``
    each method on each cell, checked then timed;
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
    cpu_model,
    machine_info,
    measure_read_bandwidth,
    timing_environment,
)
from .methods import fastl2_method, fastl2_methods, load_methods, set_threads, using_backend
from .peers import (
    BASELINE,
    PEERS,
    Method,
    Unavailable,
    numba_kernels,
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
from .report import format_header, format_table, format_time
from .results import Result, measure, run
from .timing import (
    DEFAULT_BUDGET_S,
    MAX_SAMPLES,
    MIN_SAMPLE_S,
    WARM_UP_S,
    Call,
    Timing,
    time_call,
)

__all__ = [
    "BASELINE", "CHUNK", "DEFAULT_BUDGET_S", "DEFAULT_DTYPES", "DEFAULT_SIZES", "MAX_SAMPLES",
    "MIN_SAMPLE_S", "OPS", "OP_TITLES", "PEERS", "PLOT_EXTRA_HINT", "PLOT_TITLES", "PROBE_BYTES",
    "SEED", "WARM_UP_S",
    "Call", "Case", "Line", "Method", "ReadBandwidth", "Reference", "Result", "Timing",
    "Unavailable",
    "all_cpus", "build_parser", "check_plot_target", "cpu_model", "fastl2_method",
    "fastl2_methods", "format_header", "format_table", "format_time", "load_methods",
    "machine_info", "main", "make_case", "measure", "measure_read_bandwidth", "numba_kernels",
    "numba_peer", "numexpr_peer", "numpy_dot_peer", "numpy_mean_peer", "parse_size",
    "parse_sizes", "plot_throughput", "plot_title", "relative_error", "require_matplotlib", "run",
    "set_threads", "sklearn_peer", "time_call", "timing_environment", "torch_peer", "unpack",
    "using_backend",
]
