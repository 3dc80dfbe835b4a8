"""Build of fastl2's one compiled extension, fastl2._core.

pyproject.toml holds the metadata; this file says only what it cannot:

* the extension's sources and flags (C11, no FMA contraction, POSIX threads for the pool, OpenMP
  for its thread-count default when the compiler has it);
* the fallback: without a working C compiler or Cython, or with FASTL2_NO_EXT=1, the install
  still succeeds and gives the pure-Python package, which runs on the NumPy backend.
"""

import os
import shlex
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).parent
# The per-ISA kernel files take minutes each at -O3: they come first, so that a parallel build
# (one compiler process per core, see _compile_in_parallel) starts the long ones at once.
CSRC = [
    "csrc/kernels_baseline.c", "csrc/kernels_avx2.c", "csrc/kernels_avx512.c",
    "csrc/strided.c", "csrc/fastl2.c", "csrc/config.c", "csrc/pool.c",
]
# Strict ISO C11 (not gnu11): GCC then keeps every a*b+c as two roundings (no FMA contraction), which is what
# makes the kernels of every instruction-set level return the same bits.
BASE_FLAGS = ["-std=c11", "-O3", "-ffp-contract=off", "-fno-math-errno"]


def _say(message):
    print(f"fastl2 setup: {message}", file=sys.stderr)


def _compiles(compiler, flags, link_flags, source):
    """Whether `source` compiles and links with these flags, and with the environment's CFLAGS
    and LDFLAGS, as the extension will be.  (The compile step has CFLAGS already; linking an
    executable takes neither, so a sanitizer build, -fsanitize=... in both, would fail the
    probe and silently lose OpenMP.)"""
    link_flags = [*link_flags, *shlex.split(os.environ.get("CFLAGS", "")),
                  *shlex.split(os.environ.get("LDFLAGS", ""))]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "probe.c")
        with open(path, "w") as f:
            f.write(source)
        try:
            objects = compiler.compile([path], output_dir=tmp, extra_postargs=flags)
            compiler.link_executable(objects, "probe", output_dir=tmp, extra_postargs=link_flags)
        except Exception:
            return False
    return True


OPENMP_PROBE = """
#include <omp.h>
int main(void) {
    int n = 0;
    #pragma omp parallel reduction(+:n)
    n += 1;
    return n > 0 ? 0 : 1;
}
"""


def _compile_in_parallel(compiler):
    """Make ``compiler.compile`` run one compiler process per source, on up to one thread per
    core (setuptools compiles an extension's sources one after the other)."""
    serial = compiler.compile
    workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)

    def compile(sources, *args, **kwargs):
        if workers < 2 or len(sources) < 2:
            return serial(sources, *args, **kwargs)
        with ThreadPoolExecutor(min(workers, len(sources))) as pool:
            parts = list(pool.map(lambda source: serial([source], *args, **kwargs), sources))
        return [obj for part in parts for obj in part]

    compiler.compile = compile


class BuildExt(build_ext):
    """Adds POSIX threads, and OpenMP when the compiler has it; installs pure Python when nothing
    compiles."""

    def build_extensions(self):
        compiler = self.compiler
        if compiler.compiler_type == "msvc":  # (no POSIX threads: csrc/pool.c runs serially)
            flags, omp, threads = ["/O2", "/fp:precise"], (["/openmp"], []), []
        else:
            flags, omp, threads = list(BASE_FLAGS), (["-fopenmp"], ["-fopenmp"]), ["-pthread"]
            if any(flag.startswith("-O") for flag in shlex.split(os.environ.get("CFLAGS", ""))):
                flags.remove("-O3")  # (the environment's optimisation level wins: .ci/run's sanitizer build is -O0)
        flags += threads
        if os.environ.get("FASTL2_NO_OPENMP") != "1" and _compiles(compiler, omp[0], omp[1], OPENMP_PROBE):
            _say("OpenMP found: the default thread count follows OMP_NUM_THREADS and threadpoolctl")
            flags += omp[0]
            link = omp[1]
        else:
            _say("OpenMP not available: the default thread count is the number of CPUs")
            link = []
        link = threads + link
        for ext in self.extensions:
            ext.extra_compile_args = flags + list(ext.extra_compile_args or [])
            ext.extra_link_args = link + list(ext.extra_link_args or [])
        _compile_in_parallel(compiler)
        super().build_extensions()

    def run(self):
        try:
            super().run()
        except Exception as exc:  # no compiler, no Cython, a failed compile: fall back
            if os.environ.get("FASTL2_REQUIRE_COMPILED") == "1":
                raise
            _say(f"the compiled extension could not be built ({exc}); installing the pure-Python package")


def extensions():
    if os.environ.get("FASTL2_NO_EXT") == "1":
        _say("FASTL2_NO_EXT=1: installing the pure-Python package (NumPy backend)")
        return []
    try:
        import numpy
        from Cython.Build import cythonize
        from setuptools import Extension
    except ImportError as exc:
        _say(f"{exc}: installing the pure-Python package (NumPy backend)")
        return []
    ext = Extension(
        "fastl2._core",
        sources=[*CSRC, "src/fastl2/_core.pyx"],
        include_dirs=["csrc", numpy.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_2_0_API_VERSION")],
        depends=[str(p) for p in (*(HERE / "csrc").glob("*.h"), *(HERE / "src/fastl2").glob("_core*.pxi"))],
    )
    return cythonize([ext], compiler_directives={"language_level": 3}, quiet=True)


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExt})
