"""``python -m fastl2 info`` (the installation) and ``python -m fastl2 bench`` (the benchmark)."""

import sys

USAGE = """usage: python -m fastl2 {info,bench} [options]

  info    print version, backends, threads, compiler, OpenMP and SIMD level
  bench   time fastl2 against NumPy, PyTorch, scikit-learn and Numba (bench --help)
"""


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, end="")
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "info":
        if rest:
            print(f"info takes no arguments; got {' '.join(rest)!r}\n\n{USAGE}", end="", file=sys.stderr)
            return 2
        from . import show_config

        show_config()
        return 0
    if command == "bench":
        from ._bench import main as bench

        return bench(rest)
    print(f"unknown command {command!r}\n\n{USAGE}", end="", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
