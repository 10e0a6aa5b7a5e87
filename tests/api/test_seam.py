"""The seam between the API and the compiler is one module: ppl/entries.py.

Static checks of the imports and assignments of the API modules: the entry
builder is the only place that builds region builders, objectives and the
entry builder do not know ppl.module, and nothing outside the compiler sets
the lowering's state or patches objectives with minibatch settings.
"""

from __future__ import annotations

import ast
from pathlib import Path

PPL = Path(__file__).resolve().parents[2] / "ppl"


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            found.add("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def test_objectives_and_entries_do_not_import_the_module():
    for name in ("objective.py", "entries.py", "fitting.py"):
        assert not {".module", "ppl.module"} & imports(PPL / name), name


def test_one_place_builds_entries():
    for path in PPL.glob("*.py"):
        text = path.read_text()
        assert ".current_decl" not in text, path.name
        assert "data_scale =" not in text and "minibatched_inputs" not in text, path.name
        if path.name != "entries.py":
            assert "Builder(" not in text, path.name
