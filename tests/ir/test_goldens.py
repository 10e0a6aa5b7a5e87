"""Printed-IR goldens: each program of conftest.PROGRAMS after each pass.

The expected text lives in ``goldens/<program>.<pass>.txt``. A change in a
pass shows as a readable diff of the printed IR. After an intended change,
rewrite the goldens and review the diff::

    PPL_REGENERATE_GOLDENS=1 python -m pytest tests/ir/test_goldens.py
"""

import os
from pathlib import Path

import pytest

from ppl.compiler.ir import format_program
from ppl.compiler.passes import PASS_NAMES

GOLDENS = Path(__file__).parent / "goldens"
REGENERATE = os.environ.get("PPL_REGENERATE_GOLDENS") == "1"


@pytest.mark.parametrize("after", PASS_NAMES)
def test_printed_ir_matches_golden(build_ir, program_name, after):
    text = format_program(build_ir(program_name, after))
    path = GOLDENS / f"{program_name}.{after}.txt"
    if REGENERATE:
        GOLDENS.mkdir(exist_ok=True)
        path.write_text(text)
        return
    assert path.exists(), f"no golden {path.name}; run with PPL_REGENERATE_GOLDENS=1 to write it"
    assert text == path.read_text(), (
        f"the IR of {program_name} after {after} changed; if intended, rerun with "
        "PPL_REGENERATE_GOLDENS=1 and review the diff of tests/ir/goldens")


def test_every_golden_belongs_to_a_test(program_names):
    """No stale golden files: each one is a (program, pass) pair that is tested."""
    expected = {f"{name}.{after}.txt" for name in program_names for after in PASS_NAMES}
    assert {p.name for p in GOLDENS.glob("*.txt")} <= expected


def test_printing_is_deterministic(build_ir, program_name):
    """Two lowerings of the same program print the same text (names depend on nothing else)."""
    assert format_program(build_ir(program_name, "simplify")) == format_program(
        build_ir(program_name, "simplify"))
