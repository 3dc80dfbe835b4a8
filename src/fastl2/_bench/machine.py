"""The machine the numbers depend on: its description, its CPUs, its read bandwidth, its load.

:func:`machine_info` records the CPU, the cores, fastl2's configuration, the peers' versions and
the environment variables that change timings. :func:`all_cpus` lets thread pools started inside
it use every CPU (see the package's notes on ``OMP_PROC_BIND``). :func:`measure_read_bandwidth`
times a pure read of memory once per run: the reference line of the plot. :func:`busy_load` keeps
K CPU-bound processes spinning for ``--busy K``.
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import numpy as np

from .timing import DEFAULT_BUDGET_S, Call, time_call

PROBE_BYTES = 100_000_000  # the array read by the bandwidth probe: far past any last-level cache
#: Environment variables that change the timings (thread pools, BLAS, backends): shown and saved.
_TIMING_ENVIRONMENT = ("OMP_", "GOMP_", "KMP_", "OPENBLAS_", "MKL_", "NUMBA_", "FASTL2_")
#: The variables, set on some machines, that make NumPy's BLAS slower.
SLOW_BLAS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
#: The libraries whose versions are shown and saved, each with the module whose ``__version__`` is
#: read where it is imported (else the installed distribution's version is).
PEER_LIBRARIES = {"numpy": "numpy", "torch": "torch", "numba": "numba", "scikit-learn": None,
                  "numexpr": "numexpr"}


# --------------------------------------------------------------------------------------------
# CPUs and thread affinity
# --------------------------------------------------------------------------------------------


def _binds_threads() -> bool:
    return os.environ.get("OMP_PROC_BIND", "false").strip().lower() not in ("", "false")


@contextmanager
def all_cpus() -> Iterator[None]:
    """Let the main thread, and the threads started in the block, run on every online CPU.

    With ``OMP_PROC_BIND`` set, the OpenMP runtime pins the main thread to its first place when
    fastl2 loads; a library imported afterwards sizes its thread pool from that one-CPU affinity
    (Numba) or starts threads that inherit it (numexpr). Outside that case, and where the affinity
    cannot be changed, this does nothing. The main thread's affinity is restored on exit.
    """
    if not (_binds_threads() and hasattr(os, "sched_setaffinity")):
        yield
        return
    pinned = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, range(os.cpu_count() or 1))
    except OSError:  # a CPU set the process may not widen: leave it as it is
        pinned = None
    try:
        yield
    finally:
        if pinned is not None:
            os.sched_setaffinity(0, pinned)


# --------------------------------------------------------------------------------------------
# Description
# --------------------------------------------------------------------------------------------


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _version(distribution: str, module: str | None = None) -> str | None:
    """The version of ``module`` where it is imported, else of the installed ``distribution``."""
    version = getattr(sys.modules.get(module), "__version__", None) if module else None
    if version:
        return version
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def timing_environment() -> dict[str, str]:
    """The environment variables that change timings (take it before the peers' imports edit it)."""
    return {k: v for k, v in sorted(os.environ.items()) if k.startswith(_TIMING_ENVIRONMENT)}


def slow_blas_warning(environment: Mapping[str, str]) -> str | None:
    """Which variables of :data:`SLOW_BLAS` are set in ``environment``, and why that matters."""
    slow_blas = [k for k in SLOW_BLAS if k in environment]
    return f"{' and '.join(slow_blas)} set: NumPy's BLAS may run slower" if slow_blas else None


def machine_info(environment: dict[str, str] | None = None) -> dict[str, Any]:
    """What the numbers depend on: CPU, cores, fastl2's configuration and the peers' versions."""
    import fastl2

    try:  # the main thread's CPUs: fewer than all where OMP_PROC_BIND pinned it at start-up
        affinity = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        affinity = list(range(os.cpu_count() or 1))
    return {
        "date": datetime.date.today().isoformat(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "main_thread_cpus": affinity,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "fastl2": getattr(fastl2, "__version__", "unknown"),
        "backend": fastl2.get_backend(),
        "backends": list(fastl2.available_backends()),
        "threads": fastl2.get_num_threads(),
        **{name: _version(name, module) for name, module in PEER_LIBRARIES.items()},
        "environment": timing_environment() if environment is None else environment,
    }


# --------------------------------------------------------------------------------------------
# The read bandwidth
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReadBandwidth:
    """Bytes read per second by a probe over :data:`PROBE_BYTES` bytes.

    ``probe`` names the call in a few words (the plot's legend), ``how`` describes it fully.
    """

    gbytes_per_s: float
    bytes_read: int
    probe: str
    how: str

    @property
    def label(self) -> str:
        return f"read bandwidth {self.gbytes_per_s:.1f} GB/s: {self.how}"

    @property
    def short_label(self) -> str:
        return f"read bandwidth {self.gbytes_per_s:.1f} GB/s ({self.probe})"


def _bandwidth_probe() -> tuple[Call, int, str, str]:
    """The call that reads memory, the bytes it reads per call, its short and long descriptions.

    With a compiled fastl2 backend, ``fastl2.l2_penalty(x, 1.0)`` reads a float32 array exactly
    once and writes nothing: the closest to a pure multithreaded read. Otherwise ``np.copyto``
    (single-threaded, and it writes as many bytes as it reads) gives a portable lower estimate.
    """
    import fastl2

    megabytes = f"{PROBE_BYTES / 1e6:.0f} MB"
    backend = fastl2.get_backend()
    if backend != "numpy":
        x = np.ones(PROBE_BYTES // 4, dtype=np.float32)
        return (lambda: fastl2.l2_penalty(x, 1.0), x.nbytes,
                f"fastl2.l2_penalty, {megabytes} float32",
                f"fastl2.l2_penalty of a {megabytes} float32 array ({backend} backend, "
                f"threads {fastl2.get_num_threads()}), bytes read once / median time")
    source = np.ones(PROBE_BYTES // 8)
    target = np.zeros_like(source)
    return (lambda: np.copyto(target, source), source.nbytes, f"np.copyto, {megabytes}",
            f"np.copyto of {megabytes} (one thread; it also writes as many bytes), "
            "bytes read / median time")


def measure_read_bandwidth(budget: float = DEFAULT_BUDGET_S) -> ReadBandwidth:
    """Time the probe of :func:`_bandwidth_probe` the way methods are timed."""
    call, bytes_read, probe, how = _bandwidth_probe()
    call()  # first touch
    timing = time_call(call, budget)
    return ReadBandwidth(bytes_read / timing.seconds / 1e9, bytes_read, probe, how)


# --------------------------------------------------------------------------------------------
# A busy machine
# --------------------------------------------------------------------------------------------

#: The busy process: a pure-Python loop that spins until it is stopped, or until its parent is
#: gone (its parent id changes), so that a benchmark killed outright leaves no spinner behind.
SPIN = (
    "import os\n"
    "parent = os.getppid()\n"
    "while os.getppid() == parent:\n"
    "    for _ in range(200_000):\n"
    "        pass\n"
)
STOP_TIMEOUT_S = 5.0  # after terminate(), wait this long before kill()


def start_spinners(count: int) -> list[subprocess.Popen[bytes]]:
    """Start ``count`` CPU-bound processes (:data:`SPIN`), each a fresh ``python -S -c``.

    Each runs in a session of its own, so that Ctrl-C in the terminal reaches only the benchmark,
    which stops them itself (:func:`stop_spinners`).
    """
    spinners: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(count):
            spinners.append(subprocess.Popen(
                [sys.executable, "-S", "-c", SPIN], stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
    except BaseException:
        stop_spinners(spinners)
        raise
    return spinners


def stop_spinners(spinners: list[subprocess.Popen[bytes]]) -> None:
    """Terminate, then if need be kill, and reap every process of ``spinners``."""
    for process in spinners:
        if process.poll() is None:
            process.terminate()
    for process in spinners:
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def busy_load(count: int, settle_s: float = 0.2) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Keep ``count`` CPU-bound processes spinning for the duration of the block.

    They are stopped on the way out however the block ends: normally, by an exception, or by
    Ctrl-C (KeyboardInterrupt). ``settle_s`` gives them time to start before the block runs.
    """
    spinners: list[subprocess.Popen[bytes]] = []
    try:
        spinners.extend(start_spinners(count))
        time.sleep(settle_s)
        yield spinners
    finally:
        stop_spinners(spinners)
