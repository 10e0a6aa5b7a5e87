"""Make ``ppl.compiler`` and ``ppl.stdlib`` importable from a checkout that is not installed.

The repository keeps ``compiler/`` and ``stdlib/`` at the top and installs
them as subpackages of ``ppl`` (see pyproject.toml). When ``ppl`` is
installed (``pip install -e .``) this finder is never consulted: it sits at
the end of ``sys.meta_path`` and answers only for names nothing else found.
"""

import importlib.machinery
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"ppl": ROOT / "ppl", "ppl.compiler": ROOT / "compiler", "ppl.stdlib": ROOT / "stdlib"}


class CheckoutFinder:
    """Finds the three top-level packages of the checkout under their installed names."""

    @staticmethod
    def find_spec(fullname, path=None, target=None):
        directory = PACKAGES.get(fullname)
        if directory is None or not directory.is_dir():
            return None
        init = directory / "__init__.py"
        if init.exists():
            return importlib.util.spec_from_file_location(
                fullname, init, submodule_search_locations=[str(directory)])
        spec = importlib.machinery.ModuleSpec(fullname, None, is_package=True)
        spec.submodule_search_locations = [str(directory)]
        return spec


if not any(isinstance(f, CheckoutFinder) or f is CheckoutFinder for f in sys.meta_path):
    sys.meta_path.append(CheckoutFinder)


import jax  # noqa: E402  (after the finder, which must not depend on JAX)
import pytest  # noqa: E402

# Optimising XLA passes take most of the time of compiling numpyro's samplers
# and buy nothing for a test that runs its program once.
QUICK_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def run_once(fn, *args):
    """``jax.jit(fn)(*args)``, compiled with few optimisations (per call; no global setting)."""
    lowered = jax.jit(fn).lower(*args)
    try:
        compiled = lowered.compile(compiler_options=QUICK_COMPILE)
    except Exception:  # an XLA without these options: compile as usual
        compiled = lowered.compile()
    return compiled(*args)


@pytest.fixture(scope="session")
def quick_jit():
    """:func:`run_once`: evaluate a function of arrays as one quickly compiled program."""
    return run_once
