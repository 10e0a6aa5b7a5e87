"""Package discovery for the one import root ``ppl``.

The repository keeps ``compiler/`` and ``stdlib/`` at its top level, installed
as ``ppl.compiler`` and ``ppl.stdlib`` (see README, "Layout"). Every package
below the three roots (with or without an ``__init__.py``) is found by
``find_namespace_packages``, so a new subpackage is installed without listing it here; the metadata lives in pyproject.toml.
"""

from setuptools import find_namespace_packages, setup

ROOTS = {"ppl": "ppl", "ppl.compiler": "compiler", "ppl.stdlib": "stdlib"}

setup(
    packages=[name for name, folder in ROOTS.items()
              for name in [name] + [f"{name}.{sub}" for sub in find_namespace_packages(
                  folder, exclude=["*__pycache__*"])]],
    package_dir=ROOTS,
)
