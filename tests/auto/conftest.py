"""Make the statistical helpers of tests/adev (``adev_stats``) importable here.

The suite runs with ``--import-mode=importlib``, which does not put test
directories on ``sys.path``.
"""

import sys
from pathlib import Path

ADEV = str(Path(__file__).resolve().parent.parent / "adev")
if ADEV not in sys.path:
    sys.path.insert(0, ADEV)
