"""The README's reference tables, generated from the standard library's registries.

The language reference in README.md lists every distribution, builtin
function (operators included) and parameter initialiser. Those lists live in the registries of
``ppl.stdlib`` (``DISTRIBUTIONS``, ``FUNCTIONS``, ``INITIALIZERS``); this
script renders them as markdown and keeps the README in step:

    python examples/reference_tables.py                    # print the tables
    python examples/reference_tables.py --write README.md  # rewrite them in place
    python examples/reference_tables.py --check README.md  # exit 1 if out of date

In README.md each table sits between ``<!-- table:NAME -->`` and
``<!-- end table:NAME -->``; a test runs the check.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from ppl.compiler.library import REQUIRED
from ppl.compiler.types import ArrayType
from ppl.stdlib.distributions import DISTRIBUTIONS
from ppl.stdlib.functions import FUNCTIONS
from ppl.stdlib.initializers import INITIALIZERS

# Operators in the source and the builtin each one lowers to.
OPERATORS = {"add": "a + b", "sub": "a - b", "mul": "a * b", "div": "a / b",
             "floor_divide": "a // b", "mod": "a % b",
             "pow": "a ** b", "neg": "-x", "matmul": "a @ b", "eq": "a == b", "ne": "a != b",
             "lt": "a < b", "le": "a <= b", "gt": "a > b", "ge": "a >= b",
             "logical_and": "a and b", "logical_or": "a or b", "logical_not": "not x"}


def signature(name: str, params) -> str:
    """``sum(x, axis=None)``, with ``*`` before a parameter that collects the rest."""
    parts = []
    for p in params:
        text = ("*" if p.variadic else "") + p.name
        if p.default is not REQUIRED:
            text += f"={p.default!r}"
        parts.append(text)
    return f"{name}({', '.join(parts)})"


def static_note(params) -> str:
    """`` Static: axis.`` for parameters that must be known at compile time."""
    static = [p.name for p in params if p.static]
    return f" *Static: {', '.join(static)}.*" if static else ""


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def draws(d) -> str:
    """``real``, ``int``, ``real vector`` or ``real matrix``: the type of one draw with scalar (or
    vector) arguments, and 3 for a static parameter (a number of steps, a dimension)."""
    form = d.forms[0]
    args = [3 if p in d.static else ArrayType("float32", (3,) * d.ranks.get(p, 0)) for p in form]
    if d.vector_value:
        args[0] = ArrayType("float32", (3,))
    value = d.value_type(form, args)
    return ("int" if d.discrete else "real") + ("", " vector", " matrix")[len(value.shape)]


def forms(d) -> str:
    """Each form as a call, and the parameters that must be known when compiling."""
    static = f"<br>*Static: {', '.join(sorted(d.static))}.*" if d.static else ""
    return "<br>".join(f"`{d.name}({', '.join(f)})`" for f in d.forms) + static


def distributions_table() -> str:
    rows = ["| distribution | parameter forms | draws | default estimator | sound estimators | description |",
            "|---|---|---|---|---|---|"]
    for d in DISTRIBUTIONS.values():
        sound = ", ".join(sorted(d.estimators))
        rows.append(f"| `{d.name}` | {forms(d)} | {draws(d)} | `{d.default_estimator}` | {sound} | "
                    f"{_cell(d.doc)} |")
    return "\n".join(rows)


def operators_table() -> str:
    rows = ["| operator | builtin | description |", "|---|---|---|"]
    for name, text in OPERATORS.items():
        f = FUNCTIONS[name]
        rows.append(f"| `{_cell(text)}` | `{signature(f.name, f.params)}` | {_cell(f.doc)} |")
    return "\n".join(rows)


def functions_table() -> str:
    rows = ["| function | description |", "|---|---|"]
    for f in FUNCTIONS.values():
        if f.name not in OPERATORS:
            rows.append(f"| `{_cell(signature(f.name, f.params))}` | {_cell(f.doc)}{static_note(f.params)} |")
    return "\n".join(rows)


def initializers_table() -> str:
    rows = ["| initialiser | description |", "|---|---|"]
    for i in INITIALIZERS.values():
        rows.append(f"| `{signature(i.name, i.params)}` | {_cell(i.doc)} |")
    return "\n".join(rows)


TABLES = {"distributions": distributions_table, "operators": operators_table,
          "functions": functions_table,
          "initializers": initializers_table}


def render(name: str) -> str:
    return TABLES[name]()


def update(text: str) -> str:
    """``text`` with every generated table replaced by its current rendering."""
    for name in TABLES:
        pattern = re.compile(rf"(<!-- table:{name} -->\n)(?:.*?\n)??(<!-- end table:{name} -->)", re.S)
        if not pattern.search(text):
            raise ValueError(f"the README has no markers for the table '{name}'")
        text = pattern.sub(lambda m: m.group(1) + render(name) + "\n" + m.group(2), text)
    return text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", metavar="README", type=Path, help="rewrite the tables in place")
    group.add_argument("--check", metavar="README", type=Path, help="exit 1 if they are out of date")
    options = parser.parse_args(argv)
    if options.write or options.check:
        path = options.write or options.check
        text = path.read_text(encoding="utf-8")
        new = update(text)
        if options.check:
            if new != text:
                print(f"{path}: the reference tables are out of date; run "
                      f"python examples/reference_tables.py --write {path}", file=sys.stderr)
                return 1
            return 0
        path.write_text(new, encoding="utf-8")
        return 0
    for name in TABLES:
        print(f"<!-- table:{name} -->\n{render(name)}\n<!-- end table:{name} -->\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
