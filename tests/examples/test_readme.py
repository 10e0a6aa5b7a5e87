"""README.md stays true: its snippets run, its programs compile, its tables match the registries.

- every ```python block is marked ``<!-- runnable -->`` on the line before it,
  and the blocks run, in order, in one namespace, from the repository root;
- every ```ppl block is a complete program that compiles; the reference's
  programs are also simulated with the arguments below;
- the generated tables equal what ``examples/reference_tables.py`` renders now;
- the Quickstart's two commands are the exact strings CI runs (``.ci/run``).
"""

from __future__ import annotations

import importlib.util
import os
import re
import stat
from pathlib import Path

import jax
import numpy as np
import pytest

import ppl
from ppl.cli import build_parser, match_arguments, read_data
from ppl.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
INSTALL_AND_RUN = ('pip install -e ".[plot]" && ppl fit examples/coin.ppl --objective fit_coin '
                   '--data examples/coin_flips.csv --steps 2000 --lr 0.05 --out runs/coin')
INSTALL_AND_TEST = 'pip install -e ".[test]" && python -m pytest -q -n 2 --dist loadfile'

BLOCK = re.compile(r"^(?P<marker><!-- runnable -->\n)?```(?P<lang>\w*)\n(?P<body>.*?)^```$", re.M | re.S)


def blocks(lang: str) -> list[tuple[bool, str]]:
    """(marked runnable, text) of every fenced block of ``lang``, in order."""
    text = README.read_text(encoding="utf-8")
    return [(bool(m["marker"]), m["body"]) for m in BLOCK.finditer(text) if m["lang"] == lang]


def section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else None]


def test_quickstart_has_exactly_the_two_commands():
    quickstart = section("Quickstart")
    commands = [body.strip() for lang, body in
                ((m["lang"], m["body"]) for m in BLOCK.finditer(quickstart)) if lang in ("bash", "sh")]
    assert commands == [INSTALL_AND_RUN, INSTALL_AND_TEST]


def test_ci_runs_the_readme_test_command():
    script = ROOT / ".ci" / "run"
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash\n") and "set -euo pipefail" in text
    commands = [line for line in text.splitlines() if line.strip() and not line.startswith("#")
                and not line.startswith("set ") and not line.startswith("cd ")]
    # The README's test command, then the wheel built and used outside the checkout.
    assert commands == [INSTALL_AND_TEST, "bash .ci/wheel-smoke"]
    assert (ROOT / ".ci" / "wheel-smoke").exists()
    assert script.stat().st_mode & stat.S_IXUSR


def test_placeholder_sections_exist():
    for title in ("Objectives and gradient estimators", "Benchmarks", "Language reference",
                  "Command line", "Layout", "Dependencies and why"):
        assert section(title)


def test_every_python_block_is_marked_runnable():
    python = blocks("python")
    assert len(python) >= 5
    assert all(marked for marked, _ in python), "mark each ```python block with <!-- runnable -->"


def test_python_blocks_run(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    namespace: dict = {"__name__": "readme"}
    for i, (_, body) in enumerate(blocks("python")):
        exec(compile(body, f"README.md python block {i + 1}", "exec"), namespace)
    out = capsys.readouterr().out
    assert "coin(6) | {flips}" in out and "error: unknown distribution" in out


def test_ppl_blocks_compile():
    programs = [body for _, body in blocks("ppl")]
    assert len(programs) >= 8
    for body in programs:
        ppl.compile(body, name="README.md")


def test_the_tour_shows_the_coin_example_as_it_is():
    def code(text):  # the lines that are not comments or blank
        return "\n".join(line for line in text.splitlines()
                         if line.strip() and not line.lstrip().startswith("#"))

    assert code(blocks("ppl")[0][1]) == code((ROOT / "examples" / "coin.ppl").read_text())


# Arguments for simulating the reference's programs: declaration -> args.
ARGS = {
    "tanh_layer": (np.ones(3, np.float32), 4), "stack3": (np.ones(3, np.float32),),
    "lstm_sequence": (np.ones((2, 2, 3), np.float32),),
    "regression": (np.linspace(-1, 1, 4).astype(np.float32), 2.0),
    "choices": (), "nested": (), "random_walk": (5,), "branches": (True,),
    "soft_constraint": (), "layer": (3, 2), "layout": (np.ones(3, np.float32),),
    "missing": (np.array([True, False, True]),),
    "hierarchy": (np.zeros(4, np.float32), np.ones(4, np.float32)),
    "expressions": (np.arange(5.0, dtype=np.float32) - 2, np.ones((3, 4), np.float32),
                    np.array([0, 4], np.int32)),
}


@pytest.fixture(scope="module")
def reference():
    """The reference's programs (every ```ppl block after the tour's) as one module."""
    return ppl.compile("\n".join(body for _, body in blocks("ppl")[1:]), name="README.md")


def test_reference_programs_simulate_and_score(reference):
    module = reference
    gens = [name for name, d in module.declarations.items() if d.kind == "gen"]
    assert set(gens) == set(ARGS)
    for name in gens:
        g = getattr(module, name)(*ARGS[name])
        key = jax.random.PRNGKey(0)
        params = g.init(key)
        trace, logp = g.simulate(key, params)
        np.testing.assert_allclose(g.density(trace, params), logp, rtol=1e-5, atol=1e-5)
    walk, _ = module.random_walk(5).simulate(jax.random.PRNGKey(1))
    x, total, path = walk.retval
    np.testing.assert_allclose(path, walk["x"])
    np.testing.assert_allclose(total, np.sum(walk["x"]), rtol=1e-5)
    assert "inner/colour" in module.nested().simulate(jax.random.PRNGKey(2))[0].addresses


def test_expression_example_values(reference):
    module = reference
    v = np.arange(5.0, dtype=np.float32) - 2
    m = np.arange(12.0, dtype=np.float32).reshape(3, 4)
    trace, _ = module.expressions(v, m, np.array([0, 4], np.int32)).simulate(jax.random.PRNGKey(0))
    s, w, product = trace.retval
    np.testing.assert_allclose(s, v[0] + v[-1] + m[:, 0].sum() + (-4.0 + 2.0))
    np.testing.assert_allclose(w, np.where(v > 0, v, 0))
    np.testing.assert_allclose(product, [5.0])


def test_reference_tables_are_current():
    spec = importlib.util.spec_from_file_location("reference_tables", ROOT / "examples" / "reference_tables.py")
    tables = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tables)
    text = README.read_text(encoding="utf-8")
    assert tables.update(text) == text, \
        "README tables are out of date: python examples/reference_tables.py --write README.md"


def test_command_line_output_is_current(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    files = sorted(os.path.relpath(p, ROOT) for p in (ROOT / "examples").glob("*.ppl"))
    assert cli_main(["check", *files]) == 0
    out = capsys.readouterr().out
    assert out in section("Command line")
    for after in (["--after", "lower"], []):
        assert cli_main(["ir", "examples/coin.ppl", "--entry", "coin", "--args", "[3]", *after]) == 0
        assert capsys.readouterr().out in section("Command line")
    assert cli_main(["ir", "examples/coin.ppl", "--entry", "fit_coin", "--args", "[[1, 0, 1]]",
                     "--after", "adev"]) == 0
    assert capsys.readouterr().out in section("Command line")


def test_quickstart_fit_command_names_what_exists(monkeypatch):
    """The Quickstart's `ppl fit` parses, and its program, objective and data exist and match
    (tests/cli/test_cli_fit.py runs the same fit, with fewer steps)."""
    monkeypatch.chdir(ROOT)
    argv = INSTALL_AND_RUN.split(" && ", 1)[1].split()
    assert argv[0] == "ppl"
    options = build_parser().parse_args(argv[1:])
    assert options.command == "fit" and options.steps == 2000 and options.out == "runs/coin"
    module = ppl.load(options.file)
    decl = module.declarations[options.objective]
    assert decl.kind == "objective"
    data = read_data(options.data)
    statics, arrays = match_arguments(module, decl, data, {}, options.data)
    assert statics == {} and sorted(arrays) == ["flips"] and set(np.unique(arrays["flips"])) == {0, 1}
    assert (ROOT / ".gitignore").read_text().count("/runs/") == 1  # the run directory is ignored
