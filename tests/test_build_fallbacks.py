"""setup.py's honest fallbacks when Cython is missing or fails, or the build fails unforeseen
(README, "Install").

What can break: a build environment without Cython, or a Cython that cannot translate
``_core.pyx``, gives a wheel tagged for this platform that holds no compiled code, or a wheel
whose build tag does not say why; FASTL2_REQUIRE_COMPILED=1 lets such a build pass silently
(it once did for a missing Cython).  The no-compiler and FASTL2_NO_EXT=1 causes are checked by
``.ci/run`` part 2 through pip; these two need a doctored build environment: a ``Cython``
package first on the path that cannot be imported, or whose ``cythonize`` raises; and the last
resort, 0buildfailed, a failure setup.py foresees nowhere: build_ext asked for a compiler that
does not exist.

Each case builds a wheel from a copy of the sources (``setup.py bdist_wheel``: seconds, nothing
compiles) and reads the wheel's name and the build's stderr.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(
    not (ROOT / "setup.py").is_file() or not (ROOT / "src" / "fastl2").is_dir(),
    reason="needs the source tree (setup.py and src/): the tests run here from an installed wheel's copy")

# A Cython that is not there (its import fails as a missing package's does), and one whose
# translation fails as a Cython compile error does.
FAKE_CYTHON = {
    "0nocython": {"Cython/__init__.py": "raise ModuleNotFoundError(\"No module named 'Cython'\", name='Cython')\n"},
    "0cythonerror": {
        "Cython/__init__.py": "",
        "Cython/Build/__init__.py": ("def cythonize(*args, **kwargs):\n"
                                     "    raise ValueError('_core.pyx:1:0: a doctored Cython compile error')\n"),
    },
}
REASONS = {"0nocython": "Cython is not installed in the build environment",
           "0cythonerror": "Cython could not translate src/fastl2/_core.pyx"}
# A failure that setup.py foresees nowhere (its last resort, "0buildfailed"): build_ext cannot
# even make its compiler, asked for one that does not exist (a Cython that passes the extension
# through untranslated: nothing is translated or compiled).
UNFORESEEN = {"Cython/__init__.py": "", "Cython/Build/__init__.py": "def cythonize(extensions, **kwargs):\n    return extensions\n"}
UNFORESEEN_ARGS = ["build_ext", "--compiler=bogus"]
UNFORESEEN_REASON = "the extension could not be built (don't know how to compile C/C++ code on platform"


def _copy_sources(dest: Path) -> Path:
    for name in ("setup.py", "pyproject.toml", "README.md", "LICENSE", "MANIFEST.in"):
        shutil.copy(ROOT / name, dest / name)
    shutil.copytree(ROOT / "csrc", dest / "csrc")
    shutil.copytree(ROOT / "src", dest / "src",
                    ignore=shutil.ignore_patterns("*.so", "*.c", "*.html", "__pycache__", "*.egg-info"))
    return dest


# How each cause is brought about in a copy of the sources: the Cython package first on the path,
# build_ext's arguments, the environment, and a change to the sources.
CAUSES = {
    "0nocython": (FAKE_CYTHON["0nocython"], [], {}, None),
    "0cythonerror": (FAKE_CYTHON["0cythonerror"], [], {}, None),
    "0buildfailed": (UNFORESEEN, UNFORESEEN_ARGS, {}, None),
    "0nocompiler": (UNFORESEEN, [], {"CC": "/bin/false"}, None),
    "0noext": ({}, [], {"FASTL2_NO_EXT": "1"}, None),
    # (a C file of fastl2's own that does not compile; the extension left untranslated)
    "0compileerror": (UNFORESEEN, [], {}, ("csrc/fastl2.h", "\n#error a doctored compile error\n")),
}


def _build(tmp_path: Path, cause: str, require: bool, before=None):
    (tmp_path / "sources").mkdir()
    source = _copy_sources(tmp_path / "sources")
    fake = tmp_path / "fake"
    files, args, extra_env, edit = CAUSES[cause]
    for relative, text in files.items():
        (fake / relative).parent.mkdir(parents=True, exist_ok=True)
        (fake / relative).write_text(text)
    if edit is not None:
        with open(source / edit[0], "a") as file:
            file.write(edit[1])
    if before is not None:
        before(source)
    env = {key: value for key, value in os.environ.items() if not key.startswith("FASTL2_")}
    env["PYTHONPATH"] = str(fake)
    env.update(extra_env)
    if require:
        env["FASTL2_REQUIRE_COMPILED"] = "1"
    dist = tmp_path / "dist"
    build = subprocess.run([sys.executable, "setup.py", "-q", *args, "bdist_wheel", "-d", str(dist)], cwd=source,
                           env=env, capture_output=True, text=True, timeout=300)
    wheels = sorted(path.name for path in dist.glob("*.whl")) if dist.is_dir() else []
    return build, wheels


@pytest.mark.parametrize("cause", sorted(FAKE_CYTHON))
def test_a_build_without_a_working_cython_gives_a_pure_wheel_that_says_why(tmp_path, cause):
    build, wheels = _build(tmp_path, cause, require=False)
    assert build.returncode == 0, build.stderr
    assert len(wheels) == 1 and wheels[0].endswith(f"-{cause}-py3-none-any.whl"), (wheels, build.stderr)
    assert f"installing the pure-Python package (NumPy backend only): {REASONS[cause]}" in build.stderr, build.stderr


@pytest.mark.parametrize("cause", sorted(FAKE_CYTHON))
def test_fastl2_require_compiled_fails_such_a_build_and_says_why(tmp_path, cause):
    build, wheels = _build(tmp_path, cause, require=True)
    assert build.returncode != 0 and wheels == [], (wheels, build.stderr)
    assert f"FASTL2_REQUIRE_COMPILED=1 and {REASONS[cause]}" in build.stderr, build.stderr


@pytest.mark.parametrize("require", [False, True], ids=["fallback", "required"])
def test_an_unforeseen_build_failure_gives_a_pure_wheel_tagged_0buildfailed(tmp_path, require):
    build, wheels = _build(tmp_path, "0buildfailed", require=require)
    if require:
        assert build.returncode != 0 and wheels == [], (wheels, build.stderr)
        assert f"FASTL2_REQUIRE_COMPILED=1 and {UNFORESEEN_REASON}" in build.stderr, build.stderr
    else:
        assert build.returncode == 0, build.stderr
        assert len(wheels) == 1 and wheels[0].endswith("-0buildfailed-py3-none-any.whl"), (wheels, build.stderr)
        assert ("installing the pure-Python package (NumPy backend only): "
                f"{UNFORESEEN_REASON}") in build.stderr, build.stderr


def _plant_earlier_builds(source: Path) -> None:
    """Compiled extension files where an earlier build leaves them in a source tree: the
    directories a wheel is assembled from (build/lib.<platform>, build/lib) and an in-place
    build's (src/fastl2)."""
    platform_lib = f"lib.{sysconfig.get_platform()}-{sys.implementation.cache_tag}"
    for directory in (f"build/{platform_lib}/fastl2", "build/lib/fastl2", "src/fastl2"):
        for suffix in EXTENSION_SUFFIXES:
            path = source / directory / f"_core{suffix}"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"\x7fELF an earlier build's extension")


@pytest.mark.parametrize("cause", sorted(CAUSES))
def test_a_fallback_in_a_tree_built_before_gives_a_wheel_without_compiled_code(tmp_path, cause):
    # Found by a new user: CC=/bin/false pip wheel . in an unpacked sdist that python -m build
    # had built before gave a py3-none-any wheel holding the earlier build's _core (its kernels,
    # stale, run while `python -m fastl2 info` said "built").  Every cause, every place.
    build, wheels = _build(tmp_path, cause, require=False, before=_plant_earlier_builds)
    assert build.returncode == 0, build.stderr
    assert len(wheels) == 1 and wheels[0].endswith(f"-{cause}-py3-none-any.whl"), (wheels, build.stderr)
    with zipfile.ZipFile(tmp_path / "dist" / wheels[0]) as wheel:
        names = wheel.namelist()
    compiled = [name for name in names if name.endswith(tuple(EXTENSION_SUFFIXES))]
    assert compiled == [], f"a pure wheel ({cause}) holds compiled code: {compiled}"
    assert "fastl2/_core.pyi" in names and "fastl2/__init__.py" in names, names
