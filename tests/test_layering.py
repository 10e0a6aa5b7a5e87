"""Dependencies flow one way (DESIGN.md, "Layout"): checked by reading every import.

- nothing under ``compiler/`` imports ``ppl``'s API (``ppl``, ``ppl.module``,
  ``ppl.errors``, ``ppl.trace``, ``ppl.objective``, ``ppl.fit``, ``ppl.cli``, ...)
  or the standard library (``..stdlib``, ``ppl.stdlib``): the library reaches
  the compiler as an argument;
- inside ``compiler/``, only ``compiler/backend/`` imports JAX (or numpyro):
  parsing, checking, lowering and the passes are plain Python;
- ``stdlib/`` never imports ``ppl``'s API; of the compiler it uses only the
  protocols and types (``..compiler.library``, ``..compiler.types``).

Imports are read with :mod:`ast` (every ``import`` statement, including those
inside functions), with relative imports resolved against the installed names
(``compiler/`` is ``ppl.compiler``, ``stdlib/`` is ``ppl.stdlib``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"ppl": ROOT / "ppl", "ppl.compiler": ROOT / "compiler", "ppl.stdlib": ROOT / "stdlib"}
JAX = ("jax", "jaxlib", "numpyro", "flax", "equinox", "optax")
# The protocols, the types, and the errors a user sees (all pure Python).
STDLIB_MAY_USE = ("ppl.compiler.library", "ppl.compiler.types", "ppl.compiler.diagnostics")


def module_name(path: Path) -> tuple[str, bool]:
    """The installed module name of a source file, and whether it is a package's __init__."""
    for package, directory in sorted(PACKAGES.items(), key=lambda kv: -len(str(kv[1]))):
        try:
            rel = path.relative_to(directory)
        except ValueError:
            continue
        parts = list(rel.with_suffix("").parts)
        is_init = parts[-1] == "__init__"
        if is_init:
            parts = parts[:-1]
        return ".".join([package] + parts), is_init
    raise ValueError(f"{path} is not in a package")


def imports(source: str, name: str, is_init: bool) -> list[tuple[str, int]]:
    """Every module ``source`` imports (absolute names), with its line.

    ``from a import b`` counts as importing ``a`` and ``a.b`` (b may be a submodule).
    """
    package = name if is_init else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            found.append((target, node.lineno))
            found.extend((f"{target}.{alias.name}", node.lineno) for alias in node.names)
    return found


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def violations(path: Path, source: str | None = None) -> list[str]:
    name, is_init = module_name(path)
    source = path.read_text(encoding="utf-8") if source is None else source
    where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    out = []
    for target, line in imports(source, name, is_init):
        bad = None
        if within(name, "ppl.compiler"):
            if within(target, "ppl") and not within(target, "ppl.compiler"):
                bad = "the compiler imports ppl's API or the standard library"
            elif target.split(".")[0] in JAX and not within(name, "ppl.compiler.backend"):
                bad = "only compiler/backend/ may import JAX"
        elif within(name, "ppl.stdlib"):
            if within(target, "ppl.compiler"):
                # ``from ..compiler import types`` names ppl.compiler and ppl.compiler.types
                if target != "ppl.compiler" and not any(within(target, ok) for ok in STDLIB_MAY_USE):
                    bad = ("the standard library uses only compiler.library, compiler.types "
                           "and compiler.diagnostics")
            elif within(target, "ppl") and not within(target, "ppl.stdlib"):
                bad = "the standard library imports ppl's API"
        if bad:
            out.append(f"{where}:{line}: imports {target}: {bad}")
    return out


def sources(package: str) -> list[Path]:
    return sorted(PACKAGES[package].rglob("*.py"))


@pytest.mark.parametrize("package", ["ppl.compiler", "ppl.stdlib"])
def test_imports_flow_one_way(package):
    files = sources(package)
    assert files, f"no sources found for {package}"
    problems = [v for path in files for v in violations(path)]
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------- the checker itself


@pytest.mark.parametrize("file,text", [
    ("compiler/lower.py", "from ..stdlib import library"),
    ("compiler/lower.py", "from ppl.stdlib.library import STANDARD"),
    ("compiler/lower.py", "import ppl"),
    ("compiler/passes/inline.py", "def f():\n    from ...module import Module"),
    ("compiler/passes/inline.py", "from ... import trace"),
    ("compiler/ir.py", "import jax.numpy as jnp"),
    ("compiler/passes/expand.py", "from numpyro import distributions"),
    ("stdlib/functions.py", "from ..module import GenerativeFunction"),
    ("stdlib/functions.py", "from ppl.errors import DataError"),
    ("stdlib/functions.py", "from ..compiler.lower import Lowerer"),
    ("stdlib/functions.py", "from ..compiler import lower"),
])
def test_the_checker_finds_violations(file, text):
    assert violations(ROOT / file, text)


@pytest.mark.parametrize("file,text", [
    ("compiler/backend/standard.py", "import jax\nfrom ...compiler.ir import Var\nfrom ..ir import Eqn"),
    ("compiler/lower.py", "from .passes.addresses import trace_type\nfrom ppl.compiler import ir"),
    ("stdlib/functions.py", "import jax\nfrom ..compiler.types import ArrayType\nfrom ..compiler import types"),
    ("stdlib/library.py", "from .functions import FUNCTIONS\nfrom ppl.stdlib import constraints"),
    ("ppl/module.py", "from .compiler import passes\nfrom .stdlib.library import STANDARD\nimport jax"),
])
def test_the_checker_allows_the_intended_imports(file, text):
    assert violations(ROOT / file, text) == []
