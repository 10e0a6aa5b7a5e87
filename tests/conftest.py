"""Test-wide settings.

Hypothesis explores fresh random examples on every local run (so a
developer's runs keep finding new inputs). Under CI (the ``CI`` environment
variable set), its ``ci`` profile is derandomised: the same examples every
run, so a red build always reproduces and never depends on the draw.

``@pytest.mark.slow`` marks the tests that compile programs too large for the suite's
budget on two cores (the NUTS ports' quick runs, AIR's further estimators):
they run when ``PPL_SLOW_TESTS=1`` is set, and are skipped otherwise.

Programs ppl jits itself (fits, quick runs of the examples, single evaluations)
are compiled with XLA's backend optimisation off (``PPL_FAST_COMPILE=1``, see
``ppl/jit.py``): most of the suite's time is compiling, and these programs run
only a few steps. The vectorised estimates of the statistical tests are jitted
by the tests themselves, with the default options. Set ``PPL_FAST_COMPILE=0``
to run the suite with ppl's default compiles.
"""

import os

import pytest
from hypothesis import settings

os.environ.setdefault("PPL_FAST_COMPILE", "1")


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


@pytest.fixture(autouse=True, scope="module")
def _fresh_jax_caches():
    """Each test module starts with JAX's caches empty, and what survives it is frozen out
    of the garbage collector's scans: a process that has compiled every earlier module's
    programs traced and compiled new ones up to three times slower (the suite took twice
    as long as its modules run one by one)."""
    yield
    import gc

    import jax

    jax.clear_caches()
    gc.collect()
    gc.freeze()  # what survives stays: later collections need not scan it again
