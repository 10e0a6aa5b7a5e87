"""The IR passes, in pipeline order: a rule table of :class:`Pass` rows.

``lower`` (the lowering's own output) is followed by: ``inline`` (calls to
generative functions), ``addresses`` (trace and observation checks),
``expand`` (``sim``/``density`` into draws and log densities), ``simplify``
(forwarding and dead-code elimination) and, for objectives only, ``unroll``
(inside ``expect``, the ``for`` loops whose choices are enumerated or have a
measure-valued derivative become straight-line code, so that the rest of the
expectation is each choice's continuation) and ``adev`` (settle and check each
choice's gradient estimator, with the overrides from Python). :func:`run` applies them, optionally stopping after one (for
``ppl ir --after PASS``) and verifying the IR after each (in tests).

What a pass needs besides the program comes in a :class:`Context`: the
library and the estimator overrides (the ``unroll`` and ``adev`` passes), and whether the
program is an objective. Nothing is set on a program from outside.

    >>> [p.name for p in PASSES]
    ['inline', 'addresses', 'expand', 'simplify', 'unroll', 'adev']
    >>> PASS_NAMES, OBJECTIVE_PASS_NAMES[-1]
    (['lower', 'inline', 'addresses', 'expand', 'simplify'], 'adev')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..ir import Program, verify
from .addresses import check_addresses
from .estimators import assign_estimators
from .expand import expand
from .inline import inline
from .simplify import simplify
from .unroll import unroll


@dataclass(frozen=True)
class Context:
    """What the passes need besides the program.

    ``objective``: the program is an objective's entry, so the objective-only
    passes (``unroll``, ``adev``) run. ``estimators``: ``(pattern, estimator)`` overrides,
    sorted. ``library``: the distribution and estimator library.
    """

    library: Any = None
    objective: bool = False
    estimators: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Pass:
    name: str
    apply: Callable[[Program, Context], Program]
    objectives_only: bool = False


PASSES = [
    Pass("inline", lambda p, c: inline(p)),
    Pass("addresses", lambda p, c: check_addresses(p, c.library)),
    Pass("expand", lambda p, c: expand(p)),
    Pass("simplify", lambda p, c: simplify(p)),
    Pass("unroll", lambda p, c: unroll(p, c.library, dict(c.estimators)), objectives_only=True),
    Pass("adev", lambda p, c: assign_estimators(p, c.library, dict(c.estimators)),
         objectives_only=True),
]
# The stages every program goes through (``lower`` is the lowering's output) ...
PASS_NAMES = ["lower"] + [p.name for p in PASSES if not p.objectives_only]
# ... and those of an objective.
OBJECTIVE_PASS_NAMES = ["lower"] + [p.name for p in PASSES]


def run(program: Program, after: str | None = None, check: bool = False,
        context: Context | None = None) -> Program:
    """Run the pipeline on ``program`` (stopping after pass ``after``, if given).

    Without a ``context`` (or with ``objective=False``) the objective-only
    passes are skipped.
    """
    context = context or Context()
    if check:
        verify(program)
    if after == "lower":
        return program
    for p in PASSES:
        if p.objectives_only and not context.objective:
            continue
        program = p.apply(program, context)
        if check:
            verify(program)
        if p.name == after:
            break
    return program
