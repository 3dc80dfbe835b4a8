"""bench/in_cache.py: fastl2 beside a reference C kernel compiled and timed in the same process."""

import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap

import pytest

import fastl2

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "bench" / "in_cache.py"



def _gcc_with_openmp() -> bool:
    """Whether gcc builds an OpenMP shared library here, as the script does (not Apple's clang
    under that name, nor a Windows toolchain: the script is for Linux machines)."""
    if os.name != "posix" or shutil.which("gcc") is None:
        return False
    with tempfile.TemporaryDirectory() as tmp:
        source = pathlib.Path(tmp, "probe.c")
        source.write_text("#include <omp.h>\nint threads(void) { return omp_get_max_threads(); }\n")
        built = subprocess.run(["gcc", "-O2", "-fopenmp", "-shared", "-fPIC", str(source), "-o",
                                str(pathlib.Path(tmp, "probe.so"))], capture_output=True)
        return built.returncode == 0


pytestmark = [
    pytest.mark.skipif(not SCRIPT.exists(), reason="bench/ is not beside these tests (an installed copy of them)"),
    pytest.mark.skipif(not _gcc_with_openmp(), reason="the script compiles its reference kernel with gcc "
                       "-fopenmp, which this machine lacks"),
]
ENVIRON = {**os.environ, "PYTHONPATH": os.pathsep.join(
    p for p in (str(pathlib.Path(fastl2.__file__).parents[1]), os.environ.get("PYTHONPATH")) if p)}

# A reference kernel with the interface the script asks for (plain loops: any CPU).
REFERENCE = textwrap.dedent("""
    double mse(const float *a, const float *b, long n) {
        double s = 0; for (long i = 0; i < n; i++) { double d = (double)a[i] - b[i]; s += d * d; } return s / n;
    }
    double mse_grad(const float *a, const float *b, float *g, long n, int nt) {
        double s = 0; (void)nt;
        for (long i = 0; i < n; i++) { float d = a[i] - b[i]; g[i] = 2.0f * d / n; s += (double)d * d; }
        return s / n;
    }
    int main(void) { return 0; }  /* (renamed away by the script) */
""")


def test_the_in_cache_benchmark_prints_a_ratio_per_cell(tmp_path):
    reference = tmp_path / "reference.c"
    reference.write_text(REFERENCE)
    out = subprocess.run([sys.executable, str(SCRIPT), "--reference", str(reference), "--sizes", "20000",
                          "--threads", "1", "2", "--calls", "5", "--rounds", "2", "--pause", "0"],
                         env=ENVIRON, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    rows = re.findall(r"threads (\d)\s+n\s+20,000\s+(mse|mse_and_grad)\s+(\d+\.\d\d) \(", out.stdout)
    assert sorted((t, name) for t, name, _ in rows) == [
        ("1", "mse"), ("1", "mse_and_grad"), ("2", "mse"), ("2", "mse_and_grad")], out.stdout
    assert all(float(ratio) > 0 for _, _, ratio in rows)
    assert "load average" in out.stdout


def test_the_in_cache_benchmark_names_a_reference_that_does_not_build(tmp_path):
    reference = tmp_path / "broken.c"
    reference.write_text("this is not C\n")
    out = subprocess.run([sys.executable, str(SCRIPT), "--reference", str(reference), "--sizes", "100"],
                         env=ENVIRON, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "broken.c" in out.stderr
