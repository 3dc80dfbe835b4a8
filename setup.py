"""Build of fastl2's one compiled extension, fastl2._core.

pyproject.toml holds the metadata; this file says only what it cannot:

* the extension's sources and flags (C11, no FMA contraction, POSIX threads for the pool, OpenMP
  for its thread-count default when the compiler has it);
* the fallback: without a working C compiler or Cython, when the extension fails to compile, or
  with FASTL2_NO_EXT=1, the install still succeeds and gives the pure-Python package, which runs
  on the NumPy backend.  That wheel is honest about it: tagged py3-none-any (it holds no compiled
  code), with a build tag naming the cause (``fastl2-0.1.0-0nocompiler-py3-none-any.whl``: the
  one place where pip's normal output shows it, "Created wheel for fastl2: filename=..."), and
  the cause in one line on stderr (``pip install -v``, ``python -m build``).
  FASTL2_REQUIRE_COMPILED=1 turns every one of these into a failed build (CI and wheel builds
  set it, so a broken source never ships as a pure wheel);
* a lean extension: no debug info (unless CFLAGS asks for -g) and no run-time search path of the
  build machine (Python's LDSHARED may carry one; an extension module needs none).
"""

import os
import shlex
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

try:
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:  # setuptools < 70.1: the wheel package's
    from wheel.bdist_wheel import bdist_wheel

HERE = Path(__file__).parent
# The per-ISA kernel files (three per level: csrc/kernels.h) take a minute or more each at -O3:
# they come first, longest first, so that a parallel build (one compiler process per core, see
# _compile_in_parallel) keeps every core busy to the end.
CSRC = [
    *(f"csrc/kernels_{level}{part}.c" for part in ("", "_columns", "_rows")
      for level in ("baseline", "avx2", "avx512", "avx512bf16")),
    "csrc/strided.c", "csrc/fastl2.c", "csrc/config.c", "csrc/pool.c", "csrc/convert.c",
    "csrc/exact.c", "csrc/finish.c",
]
# Strict ISO C11 (not gnu11): GCC then keeps every a*b+c as two roundings (no FMA contraction), which is what
# makes the kernels of every instruction-set level return the same bits.
BASE_FLAGS = ["-std=c11", "-O3", "-ffp-contract=off", "-fno-math-errno"]


def _say(message):
    print(f"fastl2 setup: {message}", file=sys.stderr)


REQUIRE_COMPILED = os.environ.get("FASTL2_REQUIRE_COMPILED") == "1"
DECLARED_FALLBACK = None  # the Fallback when the extension is not even declared (main)


class Fallback(Exception):
    """Why the compiled extension is not built; ``tag`` is the wheel's build tag (a digit, then
    letters: PEP 427), ``reason`` the line for people."""

    def __init__(self, tag, reason):
        super().__init__(reason)
        self.tag, self.reason = tag, reason


def _accept_fallback(fallback):
    """Says that the pure-Python package is installed, and why; or, with
    FASTL2_REQUIRE_COMPILED=1, fails the build."""
    if REQUIRE_COMPILED:
        sys.exit(f"fastl2 setup: error: FASTL2_REQUIRE_COMPILED=1 and {fallback.reason}")
    _say(f"installing the pure-Python package (NumPy backend only): {fallback.reason}")


def _fall_back(distribution, fallback):
    """Installs the pure-Python package instead of the extension that failed to build."""
    _accept_fallback(fallback)
    distribution.ext_modules = []
    distribution.fastl2_fallback = fallback


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


C_PROBE = "int main(void) { return 0; }\n"

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
        # (setuptools passes them sorted by name: CSRC's order, longest first, then the rest)
        order = {source: i for i, source in enumerate(CSRC)}
        sources = sorted(sources, key=lambda source: order.get(source, len(order)))
        with ThreadPoolExecutor(min(workers, len(sources))) as pool:
            parts = list(pool.map(lambda source: serial([source], *args, **kwargs), sources))
        return [obj for part in parts for obj in part]

    compiler.compile = compile


class BuildExt(build_ext):
    """Adds POSIX threads, and OpenMP when the compiler has it; installs pure Python when nothing
    compiles."""

    def build_extensions(self):
        compiler = self.compiler
        if not _compiles(compiler, [], [], C_PROBE):
            command = " ".join(getattr(compiler, "compiler_so", None) or [compiler.compiler_type])
            raise Fallback("0nocompiler", f"no working C compiler (a one-line C program did not "
                                          f"compile and link with `{command}`)")
        # An extension module needs no run-time search path; Python's own LDSHARED may carry the
        # build machine's (pyenv: -Wl,-rpath,<prefix>/lib), which a wheel must not.
        if getattr(compiler, "linker_so", None):
            compiler.linker_so = [arg for arg in compiler.linker_so
                                  if not arg.startswith(("-Wl,-rpath", "-Wl,-R", "-R"))]
        if compiler.compiler_type == "msvc":
            # No POSIX threads: csrc/pool.c runs every call on the calling thread, so OpenMP
            # (only the default thread count's source) would add vcomp140.dll and nothing else.
            flags, omp, threads = ["/O2", "/fp:precise", "/std:c11"], None, []
        else:
            flags, omp, threads = list(BASE_FLAGS), (["-fopenmp"], ["-fopenmp"]), ["-pthread"]
            if any(flag.startswith("-O") for flag in shlex.split(os.environ.get("CFLAGS", ""))):
                flags.remove("-O3")  # (the environment's optimisation level wins: .ci/run's sanitizer build is -O0)
            if not any(flag.startswith("-g") for flag in shlex.split(os.environ.get("CFLAGS", ""))):
                flags.append("-g0")  # (Python's own CFLAGS have -g: 19 MB of debug info in a 5 MB wheel)
        flags += threads
        if omp and os.environ.get("FASTL2_NO_OPENMP") != "1" and _compiles(compiler, omp[0], omp[1], OPENMP_PROBE):
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
        try:
            super().build_extensions()
        except Exception as exc:
            raise Fallback("0compileerror", f"the extension failed to compile ({exc}; "
                                            f"pip install -v shows the compiler's message)") from exc

    def run(self):
        if not self.extensions:
            return super().run()
        try:
            super().run()
        except Fallback as fallback:
            _fall_back(self.distribution, fallback)
        except Exception as exc:  # (setuptools or Cython failed in a way not foreseen above)
            _fall_back(self.distribution, Fallback("0buildfailed", f"the extension could not be built ({exc})"))


class BdistWheel(bdist_wheel):
    """A wheel without the compiled extension is a pure wheel (py3-none-any), not one tagged for
    this platform and Python that holds no compiled code; its build tag names the cause.  Nor
    does it hold compiled code an earlier build left behind (see _drop_compiled)."""

    def run(self):
        if not self.skip_build:
            self.run_command("build")  # (bdist_wheel runs it again: a finished command is not rerun)
        fallback = getattr(self.distribution, "fastl2_fallback", None) or DECLARED_FALLBACK
        if fallback is not None and not self.distribution.has_ext_modules():
            self.root_is_pure = True
            self.build_number = fallback.tag
            _drop_compiled(self.distribution)
        super().run()


def _drop_compiled(distribution):
    """Deletes every extension module from the directories a wheel is assembled from (build/lib
    and build/lib.<platform>): a fallback build in a tree built before finds the earlier build's
    ``_core`` there (and build_py copies an in-place build's from src/), and a pure wheel that
    shipped it would run stale kernels while saying it has none."""
    from importlib.machinery import EXTENSION_SUFFIXES

    build = distribution.get_command_obj("build")
    build.ensure_finalized()
    for base in {build.build_lib, build.build_purelib, build.build_platlib}:
        for path in Path(base).rglob("*"):
            if path.is_file() and path.name.endswith(tuple(EXTENSION_SUFFIXES)):
                _say(f"left out of the pure wheel: {path} (an earlier build's)")
                path.unlink()


def extensions():
    """The compiled extension (in a list), or the Fallback saying why it cannot be declared."""
    if os.environ.get("FASTL2_NO_EXT") == "1":
        return Fallback("0noext", "FASTL2_NO_EXT=1 asked for no compiled extension")
    try:
        import numpy
        from Cython.Build import cythonize
        from setuptools import Extension
    except ImportError as exc:
        return Fallback("0nocython", f"{exc.name or exc} is not installed in the build environment")
    ext = Extension(
        "fastl2._core",
        sources=[*CSRC, "src/fastl2/_core.pyx"],
        include_dirs=["csrc", numpy.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_2_0_API_VERSION")],
        # (relative to the project, as setuptools wants them: an absolute path is left out of the
        # sdist's manifest with a warning per file)
        depends=[p.relative_to(HERE).as_posix()
                 for p in (*(HERE / "csrc").glob("*.h"), *(HERE / "src/fastl2").glob("_core*.pxi"))],
    )
    try:
        return cythonize([ext], compiler_directives={"language_level": 3}, quiet=True)
    except Exception as exc:  # (a Cython compile error: its message is above)
        return Fallback("0cythonerror", f"Cython could not translate src/fastl2/_core.pyx ({exc})")


def main():
    ext_modules = extensions()
    if isinstance(ext_modules, Fallback):  # (nothing to build: said once, kept for BdistWheel)
        global DECLARED_FALLBACK
        _accept_fallback(ext_modules)
        DECLARED_FALLBACK, ext_modules = ext_modules, []
    setup(ext_modules=ext_modules, cmdclass={"build_ext": BuildExt, "bdist_wheel": BdistWheel})


main()
