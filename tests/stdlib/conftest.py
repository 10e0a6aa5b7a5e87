"""Shared fixtures for the standard library's tests.

Compiling dominates the cost of these tests, so they evaluate what they
inspect as a few whole programs (:func:`quick_jit`), compiled without XLA's
expensive optimisations, rather than op by op.
"""

import jax
import pytest

# Optimising XLA passes take most of the time of compiling numpyro's samplers
# and buy nothing for a program that runs once.
QUICK_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def run_once(fn, *args):
    """``jax.jit(fn)(*args)``, compiled with few optimisations (for this call only; no global setting)."""
    lowered = jax.jit(fn).lower(*args)
    try:
        compiled = lowered.compile(compiler_options=QUICK_COMPILE)
    except Exception:  # an XLA that lacks these options: compile as usual
        compiled = lowered.compile()
    return compiled(*args)


@pytest.fixture(scope="session")
def quick_jit():
    """:func:`run_once`: evaluate a function of arrays as one quickly compiled program."""
    return run_once
