"""Checks fastl2's distributables (.ci/run, part 4): python .ci/check_dists.py SDIST WHEEL REPAIRED

* the sdist holds every file git tracks under csrc/, src/fastl2/, tests/, docs/ and examples/,
  besides README.md, LICENSE, CHANGELOG.md, pyproject.toml, setup.py and MANIFEST.in;
* both wheels hold the compiled extension and the license; neither carries debug info;
* the wheel as built has no run-time search path (RPATH/RUNPATH) at all, and the repaired one
  only paths relative to itself ($ORIGIN), its OpenMP runtime vendored beside it.
"""
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

TRACKED_DIRS = ["csrc", "src/fastl2", "tests", "docs", "examples"]
TOP_FILES = ["README.md", "LICENSE", "CHANGELOG.md", "pyproject.toml", "setup.py", "MANIFEST.in"]


def fail(message):
    sys.exit(f"check_dists: {message}")


def check_sdist(path):
    with tarfile.open(path) as tar:
        names = {str(PurePosixPath(*PurePosixPath(name).parts[1:])) for name in tar.getnames()}
    tracked = subprocess.run(["git", "ls-files", *TRACKED_DIRS], capture_output=True, text=True,
                             check=True).stdout.split()
    missing = sorted(set(tracked + TOP_FILES) - names)
    if missing:
        fail(f"{path} lacks {len(missing)} files needed to build or test: {missing[:10]}")
    print(f"{path}: {len(names)} entries, every tracked source, test and document")


def dynamic_paths(so):
    out = subprocess.run(["readelf", "-d", so], capture_output=True, text=True, check=True).stdout
    return [line.split("[", 1)[1].rstrip("]") for line in out.splitlines()
            if "(RPATH)" in line or "(RUNPATH)" in line]


def check_wheel(path, repaired):
    with zipfile.ZipFile(path) as whl, tempfile.TemporaryDirectory() as tmp:
        names = whl.namelist()
        extensions = [n for n in names if n.startswith("fastl2/_core") and n.endswith(".so")]
        if len(extensions) != 1:
            fail(f"{path}: expected one compiled extension, found {extensions}")
        if not any(n.endswith(".dist-info/licenses/LICENSE") for n in names):
            fail(f"{path}: no LICENSE in its dist-info")
        so = whl.extract(extensions[0], tmp)
        sections = subprocess.run(["readelf", "-S", "-W", so], capture_output=True, text=True,
                                  check=True).stdout
        if ".debug_info" in sections:
            fail(f"{path}: {extensions[0]} carries debug info")
        paths = dynamic_paths(so)
        if not repaired and paths:
            fail(f"{path}: run-time search path {paths} (the build machine's)")
        if repaired:
            outside = [p for part in paths for p in part.split(":") if not p.startswith("$ORIGIN")]
            if outside:
                fail(f"{path}: run-time search path outside the wheel: {outside}")
            vendored = [n for n in names if n.startswith("fastl2.libs/")]
            if not any("gomp" in n for n in vendored):
                fail(f"{path}: the OpenMP runtime is not vendored (fastl2.libs/: {vendored})")
        size = Path(path).stat().st_size
        print(f"{path}: {size / 2**20:.1f} MiB, {extensions[0]} without debug info, "
              f"search path {paths or 'none'}")


def main(argv):
    if len(argv) != 3:
        fail("usage: python .ci/check_dists.py SDIST WHEEL REPAIRED_WHEEL")
    sdist, wheel, repaired = argv
    check_sdist(sdist)
    check_wheel(wheel, repaired=False)
    check_wheel(repaired, repaired=True)


if __name__ == "__main__":
    main(sys.argv[1:])
