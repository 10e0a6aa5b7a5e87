"""The command line: ``ppl check`` and ``ppl ir``, run in-process through ``ppl.cli.main``.

Exit statuses: 0 success, 1 errors in a program (rendered diagnostics on
stderr, never a traceback), 2 a bad command line.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ppl.cli import main, parse_arguments

ROOT = Path(__file__).resolve().parents[2]
COIN = str(ROOT / "examples" / "coin.ppl")
REGRESSION = str(ROOT / "examples" / "linear_regression.ppl")


def run(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return status, out, err


@pytest.fixture
def write(tmp_path):
    def write(text: str, name: str = "program.ppl") -> str:
        path = tmp_path / name
        path.write_text(text)
        return str(path)
    return write


# ---------------------------------------------------------------- ppl check


def test_check_ok_lists_the_declarations(capsys):
    status, out, err = run(capsys, "check", COIN)
    assert status == 0
    assert out == f"{COIN}: ok (3 declarations: gen coin, gen coin_guide, objective fit_coin)\n"
    assert err == ""


def test_check_counts_one_declaration_and_every_kind(capsys, write):
    path = write("fn twice(x) { return 2.0 * x }\n")
    assert run(capsys, "check", path) == (0, f"{path}: ok (1 declaration: fn twice)\n", "")


def test_check_error_is_rendered_with_a_caret(capsys, write):
    path = write("gen f() {\n    x ~ normall(0.0, 1.0)\n    y ~ normal(z, 1.0)\n}\n")
    status, out, err = run(capsys, "check", path)
    assert status == 1
    assert out == ""
    assert "error: unknown distribution" in err and "did you mean 'normal'?" in err
    assert f"--> {path}:2:9" in err
    assert "    x ~ normall(0.0, 1.0)" in err and "^^^^^^^" in err
    assert "undefined name 'z'" in err and "2 errors" in err  # every error at once


def test_check_syntax_error(capsys, write):
    path = write("gen f() {\n    x ~ \n}\n")
    status, _, err = run(capsys, "check", path)
    assert status == 1
    assert "expected an expression" in err and "^" in err


def test_check_goes_on_after_a_bad_file(capsys, write):
    bad = write("gen f() { factor }", "bad.ppl")
    status, out, err = run(capsys, "check", bad, COIN, str(ROOT / "no_such_file.ppl"))
    assert status == 1
    assert out == f"{COIN}: ok (3 declarations: gen coin, gen coin_guide, objective fit_coin)\n"
    assert "bad.ppl:1:" in err and "cannot read" in err and "no_such_file.ppl" in err


# ---------------------------------------------------------------- ppl ir

# What the IR of coin(3) looks like after each stage.
STAGES = {
    "lower": (["sim[callee=coin(n=3)]()\n", "def coin(n=3)() {", "sample[address=p"], ["draw["]),
    "inline": (["sim[callee=coin(n=3)]() {", "sample[address=p"], ["draw["]),
    "addresses": (["sim[callee=coin(n=3)]() {", "sample[address=flips"], ["draw["]),
    "expand": (["draw[dist=beta", "logpdf[dist=bernoulli", "plate[size=3]", "make_trace"],
               ["sim[", "sample["]),
    "simplify": (["draw[dist=beta", "logpdf[dist=bernoulli", "make_trace"], ["sim[", "sample["]),
}


@pytest.mark.parametrize("stage", list(STAGES))
def test_ir_after_each_pass(capsys, stage):
    status, out, err = run(capsys, "ir", COIN, "--entry", "coin", "--args", "[3]", "--after", stage)
    assert (status, err) == (0, "")
    assert out.startswith("def entry() {")
    present, absent = STAGES[stage]
    for text in present:
        assert text in out, (stage, text)
    for text in absent:
        assert text not in out, (stage, text)


def test_ir_defaults_to_the_whole_pipeline(capsys):
    _, simplified, _ = run(capsys, "ir", COIN, "--entry", "coin", "--args", "[3]",
                           "--after", "simplify")
    assert run(capsys, "ir", COIN, "--entry", "coin", "--args", "[3]") == (0, simplified, "")


def test_ir_with_an_array_argument_and_parameters(capsys):
    status, out, _ = run(capsys, "ir", REGRESSION, "--args", "[[0.0, 0.5, 1.0]]")
    assert status == 0  # the file's only gen is the default entry
    assert out.startswith("def entry(%regression_arg0: real[3]) {")
    assert "plate[size=3]" in out
    status, out, _ = run(capsys, "ir", COIN, "-e", "coin_guide")
    assert status == 0
    assert "param coin_guide.a: real constraint=(lower, 0.0)" in out
    assert "param[path=coin_guide.a]" in out


def test_ir_of_a_fn(capsys, write):
    path = write("fn pair(a, b) { return (a + b, {d: a - b}) }\n")
    status, out, _ = run(capsys, "ir", path, "--entry", "pair", "--args", "{'a': 1.0, 'b': 2.0}")
    assert status == 0
    assert "fn[name=add](%a, %b)" in out and "fn[name=sub](%a, %b)" in out


def test_ir_bad_pass_is_a_usage_error(capsys):
    status, out, err = run(capsys, "ir", COIN, "--entry", "coin", "--args", "[3]", "--after", "inlne")
    assert status == 2 and out == ""
    assert "invalid choice: 'inlne'" in err and "simplify" in err


def test_ir_unknown_entry_is_a_usage_error(capsys):
    status, out, err = run(capsys, "ir", COIN, "--entry", "con", "--args", "[3]")
    assert status == 2 and out == ""
    assert "has no declaration 'con'" in err and "did you mean 'coin'?" in err
    status, _, err = run(capsys, "ir", COIN)  # two gens: --entry is needed
    assert status == 2 and "--entry" in err


def test_ir_of_an_objective_with_gens_named_in_args(capsys, write):
    path = write("gen g() { param m: real = 0.0; z ~ normal(m, 1.0) }\n"
                 "objective o(p: gen) { return expect { (t, lp) = sim(p); return lp } }\n")
    status, out, err = run(capsys, "ir", path, "--entry", "o", "--args", "['g()']")
    assert (status, err) == (0, "")
    assert "expect()" in out and "estimator=reparam" in out and "param[path=g.m]" in out
    status, out, _ = run(capsys, "ir", path, "--entry", "o", "--args", "['g()']", "--after", "lower")
    assert status == 0 and "sim[callee=g()]" in out and "draw[" not in out
    status, _, err = run(capsys, "ir", path, "--entry", "o", "--args", "['h()']")
    assert status == 2 and "'h()' names no generative function" in err


def test_ir_adev_is_for_objectives(capsys):
    status, _, err = run(capsys, "ir", COIN, "--entry", "coin", "--args", "[3]", "--after", "adev")
    assert status == 2 and "adev" in err and "objectives" in err


@pytest.mark.parametrize("arguments", ["[3", "[open]", "[[[1.0, 2.0], [3.0]]]", "['x']"])
def test_ir_bad_args_are_a_usage_error(capsys, arguments):
    status, _, err = run(capsys, "ir", COIN, "--entry", "coin", "--args", arguments)
    assert status == 2 and "--args" in err


def test_ir_args_that_do_not_fit_the_program_are_rendered(capsys):
    status, out, err = run(capsys, "ir", COIN, "--entry", "coin", "--args", "[3.0]")
    assert status == 1 and out == ""
    assert "must be a static int" in err and "^" in err
    status, _, err = run(capsys, "ir", COIN, "--entry", "coin", "--args", "[3, 4]")
    assert status == 1 and "coin() takes 1 argument but 2 were given" in err


def test_parse_arguments():
    values, keywords = parse_arguments("[10, True, 0.5, [[1, 2]], [1.5]]")
    assert keywords == {}
    assert values[:2] == [10, True]
    assert values[2].dtype.name == "float32" and values[3].dtype.name == "int32"
    assert values[3].shape == (1, 2) and values[4].dtype.name == "float32"
    assert parse_arguments("7") == ([7], {})


# ---------------------------------------------------------------- the program


def test_help_and_usage(capsys):
    status, out, _ = run(capsys, "--help")
    assert status == 0 and "check" in out and "ir" in out and "exit status" in out
    status, out, _ = run(capsys, "ir", "--help")
    assert status == 0 and "--after PASS" in out and "lower" in out and "simplify" in out
    status, _, err = run(capsys)
    assert status == 2 and "usage: ppl" in err


def test_python_dash_m_ppl():
    done = subprocess.run([sys.executable, "-m", "ppl", "check", "examples/coin.ppl"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "examples/coin.ppl: ok (3 declarations: gen coin, gen coin_guide, objective fit_coin)\n"
