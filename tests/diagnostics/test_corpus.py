"""Golden tests over the good and bad program corpora (the stanc3 pattern).

``bad/*.ppl`` are small programs with one problem each (a few have several,
to show that semantic errors are reported together). Beside each is
``*.expected``: exactly what the user sees, ``str(err)`` of the
:class:`ppl.PPLError` raised. The file name prefix says which stage must
catch the problem:

- ``syntax_*``: the parser (:class:`ppl.SyntaxErrorPPL`);
- ``check_*``: the semantic checker, when loading (:class:`ppl.CheckError`);
- ``lower_*``: the lowering, when the program is specialised
  (:class:`ppl.CompileError`). Their first line names the entry point,
  ``# entry: model(3)``; the test loads the file, then runs
  ``m.model(3).simulate(key)`` (for an objective ``init(key)``, which
  compiles it; for a ``fn``, just ``m.helper(...)``). The
  arguments are Python literals (``ast.literal_eval``).

``good/*.ppl`` must load without error. Their ``*.expected`` holds a stable
summary from the AST: each declaration's signature, then an outline of its
statements with every expression fully parenthesised (so operator
precedence, newline handling and ``else`` placement are pinned down). A good
program with an ``# entry:`` line is also simulated, and the addresses,
dtypes and shapes of its trace are added to the summary (never sampled
values).

Programs are loaded by their path relative to this directory, so the file
names in the goldens do not depend on the machine.

To regenerate the goldens after an intended change of a message, run::

    PPL_REGENERATE_GOLDENS=1 pytest tests/diagnostics

which rewrites the ``.expected`` files instead of comparing; review the diff
before committing it.
"""

from __future__ import annotations

import ast as pyast
import os
import re
from pathlib import Path

import jax
import pytest

import ppl
from ppl.compiler import ast

HERE = Path(__file__).parent
REGENERATE = os.environ.get("PPL_REGENERATE_GOLDENS", "") not in ("", "0")
BAD = sorted(p.name for p in (HERE / "bad").glob("*.ppl"))
GOOD = sorted(p.name for p in (HERE / "good").glob("*.ppl"))
STAGES = {"syntax": ppl.SyntaxErrorPPL, "check": ppl.CheckError, "lower": ppl.CompileError}
_ENTRY = re.compile(r"#\s*entry:\s*([A-Za-z_]\w*)\((.*)\)\s*$")
_CARET_LINE = re.compile(r"^ *\d* +\| *\^+$", re.MULTILINE)


def entry_point(text: str) -> tuple[str, tuple] | None:
    """The ``# entry: NAME(ARGS)`` on a program's first line, as (name, args)."""
    first = text.split("\n", 1)[0]
    m = _ENTRY.match(first)
    if m is None:
        return None
    args = pyast.literal_eval(f"({m.group(2)},)") if m.group(2).strip() else ()
    return m.group(1), args


def compare_golden(path: Path, actual: str) -> None:
    expected_path = path.with_suffix(".expected")
    if REGENERATE:
        expected_path.write_text(actual)
        return
    assert expected_path.exists(), (
        f"{expected_path.name} is missing; run PPL_REGENERATE_GOLDENS=1 pytest tests/diagnostics")
    assert actual == expected_path.read_text()


@pytest.fixture(autouse=True)
def _in_this_directory(monkeypatch):
    monkeypatch.chdir(HERE)


# ---------------------------------------------------------------- bad programs


def raise_error(name: str) -> ppl.PPLError:
    """Load ``bad/name`` (and run its entry point); return the error raised."""
    rel = f"bad/{name}"
    entry = entry_point((HERE / rel).read_text())
    try:
        m = ppl.load(rel)
        if entry is not None:
            target = getattr(m, entry[0])(*entry[1])
            if hasattr(target, "simulate"):
                target.simulate(jax.random.PRNGKey(0))
            elif hasattr(target, "init"):  # an objective: compile it
                target.init(jax.random.PRNGKey(0))
    except ppl.PPLError as err:
        return err
    pytest.fail(f"{rel} raised no error")


@pytest.mark.parametrize("name", BAD)
def test_bad_program(name):
    err = raise_error(name)
    stage = name.split("_", 1)[0]
    assert stage in STAGES, f"{name}: name bad programs syntax_*, check_* or lower_*"
    assert isinstance(err, STAGES[stage]), f"{name} raised {type(err).__name__}"
    if stage == "lower":
        assert entry_point((HERE / "bad" / name).read_text()) is not None, \
            f"{name} needs an '# entry: NAME(ARGS)' first line"
    text = str(err)
    if err.first.span is not None:
        assert err.line is not None and err.column is not None
        assert err.filename == f"bad/{name}"
        assert f"--> bad/{name}:{err.line}:{err.column}" in text
        assert _CARET_LINE.search(text), "the report has no caret line"
    if name.startswith("check_many_errors"):
        assert len(err.diagnostics) > 1 and text.endswith(f"{len(err.diagnostics)} errors")
    compare_golden(HERE / "bad" / name, text + "\n")


def test_every_golden_has_a_program():
    for corpus in ("bad", "good"):
        programs = {p.stem for p in (HERE / corpus).glob("*.ppl")}
        orphans = [p.name for p in (HERE / corpus).glob("*.expected") if p.stem not in programs]
        assert not orphans, f"{corpus}/ has goldens without programs: {orphans}"


def test_corpus_sizes():
    assert len(BAD) >= 45 and len(GOOD) >= 15


# ---------------------------------------------------------------- good programs


@pytest.mark.parametrize("name", GOOD)
def test_good_program(name):
    rel = f"good/{name}"
    m = ppl.load(rel)
    lines = summarize(m.program)
    entry = entry_point((HERE / rel).read_text())
    if entry is not None:
        call, args = entry
        g = getattr(m, call)(*args)
        key = jax.random.PRNGKey(0)
        trace, logp = g.simulate(key, g.init(key))
        assert logp.shape == ()
        lines.append(f"simulate {call}({', '.join(map(repr, args))}):")
        for address, value in trace.values_by_address.items():
            lines.append(f"  {address}: {value.dtype}{list(value.shape)}")
    compare_golden(HERE / "good" / name, "\n".join(lines) + "\n")


def summarize(program: ast.Program) -> list[str]:
    """Declarations and an outline of their statements, from the AST."""
    lines = []
    for d in program.decls:
        args = ", ".join(a.name + (f": {type_text(a.type)}" if a.type else "") for a in d.args)
        lines.append(f"{d.kind} {d.name}({args})")
        lines.extend(outline(d.body, "  "))
    return lines


def type_text(t: ast.TypeAnn) -> str:
    text = t.name
    if t.constraint:
        text += "<" + ", ".join(f"{k}={v!r}" for k, v in t.constraint) + ">"
    if t.dims is not None:
        text += "[" + ", ".join(str(d) for d in t.dims) + "]"
    return text


def outline(block: ast.Block, indent: str) -> list[str]:
    out = []
    for s in block.stmts:
        if isinstance(s, ast.Sample):
            line = f"{s.target} ~ {expr(s.value, indent)}"
            if s.address is not None:
                line += f" at {s.address!r}"
            if s.estimator is not None:
                line += f" with {s.estimator.name}"
                if s.estimator.args or s.estimator.kwargs:
                    line += "(" + call_args(s.estimator.args, s.estimator.kwargs) + ")"
            if s.mask is not None:
                line += f" if {expr(s.mask, indent)}"
            out.append(indent + line)
        elif isinstance(s, ast.Assign):
            names = ", ".join(s.targets)
            names = f"({names})" if s.destructure else names
            out.append(f"{indent}{names} = {expr(s.value, indent)}")
        elif isinstance(s, ast.ParamDecl):
            init = f" = {expr(s.init)}" if s.init is not None else ""
            out.append(f"{indent}param {s.name}: {type_text(s.type)}{init}")
        elif isinstance(s, (ast.Plate, ast.For)):
            kind = "plate" if isinstance(s, ast.Plate) else "for"
            out.append(f"{indent}{kind} {s.index} in {expr(s.size)}:")
            out.extend(outline(s.body, indent + "  "))
        elif isinstance(s, ast.If):
            out.append(f"{indent}if {expr(s.cond)}:")
            out.extend(outline(s.then, indent + "  "))
            if s.orelse is not None:
                out.append(f"{indent}else:")
                out.extend(outline(s.orelse, indent + "  "))
        elif isinstance(s, ast.Factor):
            out.append(f"{indent}factor {expr(s.value, indent)}")
        elif isinstance(s, ast.Return):
            out.append(f"{indent}return {expr(s.value, indent)}")
        else:
            out.append(f"{indent}<{type(s).__name__}>")
    return out


def call_args(args, kwargs, indent: str = "") -> str:
    return ", ".join([expr(a, indent) for a in args]
                     + [f"{k.name}={expr(k.value, indent)}" for k in kwargs])


def expr(e, indent: str = "") -> str:
    """An expression, with every compound subexpression parenthesised.

    ``indent`` is the indentation of the statement holding it, for the lines
    of an ``expect`` block.
    """

    def expr(x):  # the same indentation for subexpressions
        return globals()["expr"](x, indent)

    if isinstance(e, ast.Name):
        return e.id
    if isinstance(e, ast.Literal):
        return repr(e.value) if not isinstance(e.value, bool) else str(e.value).lower()
    if isinstance(e, ast.Unary):
        return f"({'-' if e.op == 'neg' else 'not '}{expr(e.operand)})"
    if isinstance(e, ast.Binary):
        return f"({expr(e.left)} {e.op} {expr(e.right)})"
    if isinstance(e, ast.Condition):
        return f"({expr(e.target)} | {expr(e.observations)})"
    if isinstance(e, ast.Call):
        return f"{expr(e.func)}({call_args(e.args, e.kwargs, indent)})"
    if isinstance(e, ast.Index):
        return f"{expr(e.value)}[{', '.join(expr(i) for i in e.indices)}]"
    if isinstance(e, ast.Slice):
        return (expr(e.start) if e.start is not None else "") + ":" + \
            (expr(e.stop) if e.stop is not None else "")
    if isinstance(e, ast.NewAxis):
        return "None"
    if isinstance(e, ast.Field):
        return f"{expr(e.value)}.{e.name}"
    if isinstance(e, ast.TupleLit):
        return "(" + ", ".join(expr(x) for x in e.items) + ("," if len(e.items) == 1 else "") + ")"
    if isinstance(e, ast.ArrayLit):
        return "[" + ", ".join(expr(x) for x in e.items) + "]"
    if isinstance(e, ast.RecordLit):
        return "{" + ", ".join(f"{k!r}: {expr(v)}" for k, v in e.fields) + "}"
    if isinstance(e, ast.Expect):
        return "\n".join(["expect {", *outline(e.body, indent + "    "), indent + "  }"])
    return f"<{type(e).__name__}>"


# ---------------------------------------------------------------- ppl check


@pytest.mark.parametrize("name", [n for n in BAD if n.startswith("check_estimate_")])
def test_ppl_check_rejects_every_estimated_real_misuse(name, capsys):
    """``ppl check`` reports each estimated-real rejection exactly as its golden, and fails."""
    from ppl.cli import main

    status = main(["check", f"bad/{name}"])
    captured = capsys.readouterr()
    assert status == 1 and captured.out == ""
    assert captured.err == (HERE / "bad" / name).with_suffix(".expected").read_text()
