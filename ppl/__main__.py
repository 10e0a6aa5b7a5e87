"""``python -m ppl``: the command line (see :mod:`ppl.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
