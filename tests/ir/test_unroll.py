"""Printed-IR goldens of the ``unroll`` pass (compiler/passes/unroll.py), an objective pass.

A two-step loop with an enumerated choice that reads the carried state and a
sliced input, and a stacked output read after the loop: after ``simplify`` it
is a ``scan``; after ``unroll`` each step is a copy of the body (the index a
literal, the carry threaded, the input indexed), and the stacked output is a
``stack`` of the steps' values. With the choice overridden to ``reinforce``
the loop stays a ``scan``. The goldens are ``goldens/unroll/<case>.txt``;
after an intended change::

    PPL_REGENERATE_GOLDENS=1 python -m pytest tests/ir/test_unroll.py
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import ppl
from ppl.compiler.ir import format_program, verify

GOLDENS = Path(__file__).parent / "goldens" / "unroll"
REGENERATE = os.environ.get("PPL_REGENERATE_GOLDENS") == "1"

SOURCE = """
objective walk(xs: real[2]) {
    param theta: real<lower=0, upper=1> = 0.3
    return expect {
        s = 0
        for t in 2 {
            b ~ bernoulli(where(s == 1, theta, 0.5))
            s = b
            y = xs[t] * float(b)
        }
        return sum(y) + float(s)
    }
}
"""

CASES = {"enum.simplify": ({}, "simplify"), "enum.unroll": ({}, "unroll"),
         "enum.adev": ({}, "adev"), "reinforce.unroll": ({"b": "reinforce"}, "unroll")}


@pytest.mark.parametrize("case", list(CASES))
def test_unrolled_ir_matches_golden(case):
    estimators, after = CASES[case]
    obj = ppl.compile(SOURCE).walk([1.0, 2.0]).with_estimators(estimators)
    program = obj.program(after=after)
    verify(program)
    text = format_program(program)
    path = GOLDENS / f"{case}.txt"
    if REGENERATE:
        GOLDENS.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return
    assert path.exists(), f"no golden {path.name}; run with PPL_REGENERATE_GOLDENS=1 to write it"
    assert text == path.read_text(), (
        f"the IR of {case} changed; if intended, rerun with PPL_REGENERATE_GOLDENS=1 and "
        "review the diff of tests/ir/goldens/unroll")
