"""``python -m fastl2._bench``: the same as ``python -m fastl2 bench``."""

import sys

from . import main

sys.exit(main(sys.argv[1:]))
