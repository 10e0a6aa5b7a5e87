"""Test-wide settings.

Hypothesis explores fresh random examples on every local run (so a
developer's runs keep finding new inputs). Under CI (the ``CI`` environment
variable set), its ``ci`` profile is derandomised: the same examples every
run, so a red build always reproduces and never depends on the draw.

``@pytest.mark.slow`` marks the tests that compile programs too large for the suite's
budget on two cores (the NUTS ports' quick runs, AIR's further estimators):
they run when ``PPL_SLOW_TESTS=1`` is set, and are skipped otherwise.
"""

import os

import pytest
from hypothesis import settings



def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a large compile, run with PPL_SLOW_TESTS=1")


def pytest_collection_modifyitems(config, items):
    if os.environ.get("PPL_SLOW_TESTS") == "1":
        return
    skip = pytest.mark.skip(reason="a large compile: set PPL_SLOW_TESTS=1 to run it")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)

settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
