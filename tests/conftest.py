"""Test-wide settings.

Hypothesis explores fresh random examples on every local run (so a
developer's runs keep finding new inputs). Under CI (the ``CI`` environment
variable set), its ``ci`` profile is derandomised: the same examples every
run, so a red build always reproduces and never depends on the draw.
"""

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
