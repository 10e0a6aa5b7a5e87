"""Every compile-time rejection of objectives and estimators, with the exact message users see.

``bad/*.ppl`` each hold one mistake; beside each, ``*.expected`` is exactly
``str(err)`` of the :class:`ppl.PPLError` raised (the goldens of
tests/diagnostics, same mechanism). The first line of each program names its
entry point, ``# entry: NAME()``: the test loads the file (the checker
catches most mistakes there) and then compiles that objective (``init``),
where the rest are caught. Programs are loaded by their path relative to this
directory, so the goldens do not depend on the machine.

To regenerate the goldens after an intended change of a message::

    PPL_REGENERATE_GOLDENS=1 pytest tests/adev/test_rejections.py

and review the diff. Overrides from Python have no source line of their own:
those are checked by message substrings below.
"""

from __future__ import annotations

import gc
import importlib.util
import os
import re
from pathlib import Path

import jax
import pytest

import ppl

HERE = Path(__file__).parent
BAD = sorted(p.name for p in (HERE / "bad").glob("*.ppl"))
_ENTRY = re.compile(r"#\s*entry:\s*([A-Za-z_]\w*)\(\)\s*$")


def _local_compare_golden(path: Path, actual: str) -> None:
    expected_path = path.with_suffix(".expected")
    if os.environ.get("PPL_REGENERATE_GOLDENS", "") not in ("", "0"):
        expected_path.write_text(actual)
        return
    assert expected_path.exists(), (
        f"{expected_path.name} is missing; run PPL_REGENERATE_GOLDENS=1 pytest {__file__}")
    assert actual == expected_path.read_text()


def _golden_helper():
    """tests/diagnostics' ``compare_golden`` where it exists (one mechanism for all goldens)."""
    path = HERE.parent / "diagnostics" / "test_corpus.py"
    try:
        spec = importlib.util.spec_from_file_location("_diagnostics_corpus", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.compare_golden
    except Exception:  # not there (or not importable): the same logic, here
        return _local_compare_golden


compare_golden = _golden_helper()


@pytest.fixture(autouse=True)
def _in_this_directory(monkeypatch):
    monkeypatch.chdir(HERE)


def raise_error(name: str) -> ppl.PPLError:
    rel = f"bad/{name}"
    first = (HERE / rel).read_text().split("\n", 1)[0]
    entry = _ENTRY.match(first)
    assert entry, f"{rel} must start with '# entry: NAME()'"
    try:
        m = ppl.load(rel)
        getattr(m, entry.group(1))().init(jax.random.PRNGKey(0))
    except ppl.PPLError as err:
        return err
    pytest.fail(f"{rel} raised no error")


def test_corpus_covers_the_feature():
    expected = {"reparam_on_discrete", "enum_on_infinite_support", "mvd_without_weak_derivative",
                "unknown_estimator", "estimator_arguments", "reinforce_positional_baseline",
                "reinforce_unknown_argument", "non_scalar_baseline", "sim_outside_expect",
                "sample_outside_expect", "expect_returns_vector", "factor_in_objective",
                "enum_in_a_long_for_loop", "enum_paths_in_a_for_loop", "mvd_reruns_in_a_for_loop",
                "enum_in_a_for_loop_in_a_plate", "log_of_expect", "product_of_dependent_expects",
                "expect_in_for_loop", "for_loop_in_plate"}
    assert expected <= {Path(n).stem for n in BAD}
    orphans = [p.name for p in (HERE / "bad").glob("*.expected") if not (p.with_suffix(".ppl")).exists()]
    assert not orphans


@pytest.mark.parametrize("name", BAD)
def test_rejection(name):
    err = raise_error(name)
    text = str(err)
    assert err.first.span is not None, "a rejection in the source points at it"
    assert f"--> bad/{name}:{err.line}:{err.column}" in text
    assert re.search(r"^ *\d* +\| *\^+$", text, re.MULTILINE), "the report has no caret line"
    assert "Traceback" not in text and "jax" not in text.lower()
    compare_golden(HERE / "bad" / name, text + "\n")


# ---------------------------------------------------------------- overrides from Python

SOURCE = """
objective flip() {
    param theta: real<lower=0, upper=1> = 0.3
    return expect {
        b ~ bernoulli(theta)
        return where(b == 1, 0.0, -theta / 2.0)
    }
}
objective walk() {
    param theta: real<lower=0, upper=1> = 0.3
    return expect {
        n = 0.0
        for t in 3 {
            b ~ bernoulli(theta) with reinforce
            n = n + float(b)
        }
        return n * n
    }
}
objective long_walk() {
    param theta: real<lower=0, upper=1> = 0.3
    return expect {
        n = 0.0
        for t in 100 {
            b ~ bernoulli(theta) with reinforce
            n = n + float(b)
        }
        return n * n
    }
}
"""


@pytest.fixture(scope="module")
def module():
    return ppl.compile(SOURCE)


def _error(obj) -> ppl.PPLError:
    with pytest.raises(ppl.PPLError) as info:
        obj.init(jax.random.PRNGKey(0))
    return info.value


def test_override_matching_nothing(module):
    err = _error(module.flip().with_estimators({"c*": "enum"}))
    assert isinstance(err, ppl.DataError)
    assert "no random choice matches the estimator pattern 'c*'" in str(err)
    assert "the choices are: b" in str(err)


def test_unsound_override(module):
    err = _error(module.flip().with_estimators({"b": "reparam"}))
    text = str(err)
    assert "estimator 'reparam' is unsound for the bernoulli at address 'b'" in text
    assert "bernoulli is discrete, so it has no reparameterisation" in text
    assert "(chosen by the override {'b': 'reparam'})" in text
    assert "sound estimators here: enum, mvd, reinforce" in text
    assert err.line == 5  # the draw the override chose for


def test_unknown_override(module):
    err = _error(module.flip().with_estimators({"b": "enumerate"}))
    assert "unknown estimator 'enumerate' for pattern 'b'" in str(err)
    assert "reparam, reinforce, enum, mvd" in str(err)


def test_enum_override_in_a_long_for_loop(module):
    """An override to enum unrolls the loop (compiler/passes/unroll.py): past its limit of
    steps, the loop's line is blamed and the help says what to do."""
    module.walk().with_estimators({"b": "enum"}).init(jax.random.PRNGKey(0))  # 3 steps: fine
    err = _error(module.long_walk().with_estimators({"b": "enum"}))
    assert ("this for loop has 100 steps, more than the 64 a loop may be unrolled to: "
            "estimator 'enum' at address 'b' needs the rest of the expectation") in str(err)
    assert "use reinforce for the choices of long loops" in str(err)
    assert err.line == 24  # the loop


def test_all_problems_at_once(module):
    err = _error(module.flip().with_estimators({"b": "reparam", "z": "enum"}))
    assert len(err.diagnostics) == 2
    assert "unsound for the bernoulli" in str(err) and "pattern 'z'" in str(err)


def test_many_lowerings_in_one_module_keep_estimates_apart():
    """Regression: estimated reals were tracked by ``id()`` of IR variables, which Python
    reuses once a variable is freed, so a later lowering in the same module could take an
    ordinary value for an expectation and reject it (it did, at random, in CI)."""
    m = ppl.compile("""
objective two(n: int) {
    param theta: real<lower=0, upper=1> = 0.3
    return expect { b ~ bernoulli(theta); return float(b) } + expect { c ~ bernoulli(theta); return float(c) * float(n) }
}
objective flip(n: int) {
    param theta: real<lower=0, upper=1> = 0.3
    return expect {
        b ~ bernoulli(theta)
        return where(b == 1, 0.0, -theta / float(n))
    }
}
""")
    for n in range(1, 80):
        m.two(n).program()
        gc.collect()
        m.flip(n).program()  # raised "eq() of an expectation has no unbiased estimator"


def test_override_of_a_choice_that_rsim_draws():
    m = ppl.compile("""
gen model() { z ~ normal(0.0, 1.0); y ~ normal(z, 1.0) }
gen family() { param mu: real = 0.0; z ~ normal(mu, 1.0) }
""")
    obj = ppl.stdlib.dreg(m.model() | {"y": 1.0}, m.family(), K=4).with_estimators({"z": "reinforce"})
    err = _error(obj)
    assert ("the choice at address 'z' is drawn by rsim(), which needs estimator 'reparam', "
            "not 'reinforce' (chosen by the override {'z': 'reinforce'})") in str(err)
    assert err.line == 3  # the family's choice
