"""Make the statistical helpers of tests/adev (``adev_stats``) and the conjugate
model shared by the network tests (``conjugate``) importable here.

The suite runs with ``--import-mode=importlib``, which does not put test
directories on ``sys.path``.
"""

import sys
from pathlib import Path

for d in (Path(__file__).resolve().parent, Path(__file__).resolve().parent.parent / "adev"):
    if str(d) not in sys.path:
        sys.path.insert(0, str(d))
