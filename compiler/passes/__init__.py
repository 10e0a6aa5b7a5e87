"""The IR passes, in pipeline order.

``lower`` (the lowering's own output) is followed by: ``inline`` (calls to
generative functions), ``addresses`` (trace and observation checks),
``expand`` (``sim``/``density`` into draws and log densities) and
``simplify`` (forwarding and dead-code elimination). :func:`run` applies
them, optionally stopping after one (for ``ppl ir --after PASS``) and
verifying the IR after each (in tests).

    >>> [name for name, _ in PASSES]
    ['inline', 'addresses', 'expand', 'simplify']
"""

from __future__ import annotations

from ..ir import Program, verify
from .addresses import check_addresses
from .expand import expand
from .inline import inline
from .simplify import simplify

PASSES = [("inline", inline), ("addresses", check_addresses), ("expand", expand),
          ("simplify", simplify)]
PASS_NAMES = ["lower"] + [name for name, _ in PASSES]


def run(program: Program, after: str | None = None, check: bool = False) -> Program:
    """Run the pipeline on ``program`` (stopping after pass ``after``, if given)."""
    if check:
        verify(program)
    if after == "lower":
        return program
    for name, fn in PASSES:
        program = fn(program)
        if check:
            verify(program)
        if name == after:
            break
    return program
