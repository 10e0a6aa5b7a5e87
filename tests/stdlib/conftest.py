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
