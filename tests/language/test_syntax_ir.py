"""Printed-IR goldens of masked choices, index arrays, new axes and ``//``.

One small model, conditioned on data (its IR is a density), printed after
lowering and after expansion, and unconditioned (a simulation) after expansion: the ``sample`` carries its mask as its last
argument (``masked=true``), and expansion hands the mask to the ``logpdf``
only, leaving the ``draw`` without it; the ``index`` specs show new axes
(``n``) and array indices (``d``). The verifier runs after each pass. To
rewrite the goldens after an intended change, review the diff of::

    PPL_REGENERATE_GOLDENS=1 python -m pytest tests/language/test_syntax_ir.py
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import ppl
from ppl.compiler.ir import format_program, verify

GOLDENS = Path(__file__).parent / "goldens"
REGENERATE = os.environ.get("PPL_REGENERATE_GOLDENS", "") not in ("", "0")

SOURCE = """
gen model(x: real[N, 3], rows: int[K], seen: bool[K]) {
    mu ~ normal(zeros(3), 1.0)
    picked = x[rows, rows // 2]
    plate k in K {
        y ~ normal(picked[k] * mu[None, 0], 1.0) if seen[k]
    }
}
"""


@pytest.mark.parametrize("mode, after", [("density", "lower"), ("density", "expand"),
                                         ("simulate", "expand")])
def test_masked_and_indexed_ir(mode, after):
    x = np.arange(12.0, dtype=np.float32).reshape(4, 3)
    g = ppl.compile(SOURCE, name="<masked>").model(x, np.array([0, 3]), np.array([True, False]))
    if mode == "density":
        g = g | {"y": np.float32([[1.0], [np.nan]])}
    program = g.ir(after=after)
    verify(program)
    text = format_program(program)
    path = GOLDENS / f"masked.{mode}.{after}.txt"
    if REGENERATE:
        path.write_text(text)
        return
    assert text == path.read_text()
