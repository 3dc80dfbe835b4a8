"""The Numba backend: the kernels of csrc/ written with Numba, bit-identical to them.

Every kernel mirrors csrc/ operation for operation: blocks of BLOCK_SIZE elements, element i
of a block accumulated into float64 lane i % LANES (compensated lanes when any input is
float64), lanes and block partials combined by the same bottom-up pairwise double-double tree
(csrc/internal.h).  No fastmath: it would reorder the sums.  Each specialisation is a kernel of
its own, compiled on first use and cached on disk.

Its files, named as csrc/'s where they hold the same:

- ``config.py``: sizes and thresholds, what a kernel computes, the thread count, fork;
- ``cache.py``: how kernels are compiled (the SLP vectorizer) and cached on disk;
- ``memory.py``: stack buffers, loads and stores by address, streaming stores, gather/scatter;
- ``combine.py``: the double-double addition and the lane and partial trees;
- ``block_template.py``: the block of one run, and the loss's element functions of a kernel;
- ``block_columns.py``: the columns kernel;
- ``kernels.py``: the 1-d and strided kernels around the block, and their names;
- ``pool.py``: the thread pool (the caller takes part; helpers join if they start in time);
- ``driver.py``: the table of kernels, the launches, ``run``, ``weight_sum``;
- ``strided.py``: ``run_strided`` (N-d arrays in any layout, axes);
- ``fast_paths.py``: ``fast_call``, the common call of any loss without a plan.

Interface (fastl2._backends): ``run``, ``weight_sum``, ``run_strided``, ``set_num_threads``,
``get_num_threads``, ``in_forked_child`` and ``fast_call``.
"""

from __future__ import annotations

# numpy.ma now, not at a kernel's first call: Numba's typeof looks at ``np.ma`` there, which
# NumPy imports lazily, and a fork() while another thread was inside that import left the
# child a half-imported numpy.ma (every numba call in it raised RecursionError).
import importlib

importlib.import_module("numpy.ma")

from .._plan import BLOCK_SIZE
from .config import (LANE_GROUP, LANES, PARALLEL_THRESHOLD, STACK_BLOCKS, STREAM_MIN_BYTES,
                     get_num_threads, in_forked_child, set_num_threads)
from .driver import run, weight_sum
from .fast_paths import fast_call
from .strided import run_strided

__all__ = [
    "BLOCK_SIZE", "LANES", "LANE_GROUP", "PARALLEL_THRESHOLD", "STACK_BLOCKS",
    "STREAM_MIN_BYTES", "fast_call", "get_num_threads", "in_forked_child", "run", "run_strided",
    "set_num_threads", "weight_sum",
]
