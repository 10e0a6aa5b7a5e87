"""Make the statistical helpers (``adev_stats``) and shared programs (``programs``)
importable by the tests beside them.

The suite runs with ``--import-mode=importlib``, which does not put test
directories on ``sys.path``.
"""

import sys
from pathlib import Path

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)
