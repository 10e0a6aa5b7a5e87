"""The region builder the lowering emits equations into.

A :class:`Builder` collects the parameters and equations of one region
being lowered (a function body, a plate, a loop, a branch or an ``expect``)
and knows its enclosing region, so the lowering can ask where it is
(``inside(("expect",))``) and a plate can hoist ``outer[i]`` into a mapped
input.

    >>> from ppl.compiler.types import REAL
    >>> b = Builder("function")
    >>> x = b.emit1("fn", REAL, [], {"name": "zeros"})
    >>> len(b.eqns), b.defines(x)
    (1, True)
"""

from __future__ import annotations

from typing import Any

from .diagnostics import Span
from .ir import Eqn, Region, Var


class Builder:
    """Collects the equations of one region being lowered.

    ``kind`` is "function", "plate", "scan", "cond" or "expect". A plate's
    builder knows its index variable and hoists ``outer[i]`` into a mapped
    input, so a plate reads its slice of an array the way ``vmap`` would.
    """

    def __init__(self, kind: str, parent: "Builder | None" = None, index: Var | None = None,
                 size: int | None = None):
        self.kind = kind
        self.size = size
        self.parent = parent
        self.index = index
        self.params: list[Var] = [index] if index is not None else []
        self.eqns: list[Eqn] = []
        self.defined: set[Var] = {index} if index is not None else set()
        self.mapped: dict[Var, tuple[Any, Var]] = {}  # outer atom -> (outer atom, slice param)

    def emit(self, op: str, outs: list[Var], args: list, attrs: dict | None = None,
             regions: list[Region] | None = None, span: Span | None = None) -> list[Var]:
        self.eqns.append(Eqn(op, outs, list(args), attrs or {}, regions or [], span))
        self.defined.update(v for v in outs)
        return outs

    def emit1(self, op: str, type_, args: list, attrs: dict | None = None, span=None, hint="",
              regions=None) -> Var:
        return self.emit(op, [Var(type_, hint)], args, attrs, regions, span)[0]

    def defines(self, atom: Any) -> bool:
        return isinstance(atom, Var) and atom in self.defined

    def inside(self, kinds: tuple[str, ...]) -> bool:
        b: Builder | None = self
        while b is not None:
            if b.kind in kinds:
                return True
            b = b.parent
        return False
