"""The ``unroll`` pass: ``for`` loops whose choices need the rest of the expectation.

Inside ``expect``, ``enum`` and ``mvd`` evaluate the continuation of a choice
(the rest of the block) at other values of it. A ``for`` loop is a ``scan``
(``lax.scan``), and its body cannot see the steps after it. So each ``scan``
inside ``expect`` that draws such a choice is replaced by its steps, in
order, as straight-line equations. A choice counts when its estimator is
``enum`` or ``mvd``, whether the source chose it (``with enum``), its
distribution defaults to it, or a Python override picks it (settled as the
``adev`` pass settles it, ``estimators.settled_estimator``). In the unrolled
code:

- step t is a copy of the body, with the index the literal t, the carried
  values those of step t − 1 (the loop's initial values for step 0), and
  each sliced input indexed at t;
- the loop's carried outputs are the last step's, and its stacked outputs
  (its choices among them) are the steps' values stacked along a leading
  axis, as ``lax.scan`` stacks them: a trace built from them has the same
  addresses and shapes;
- the continuation of a step-t choice is simply the rest of the block: the
  rest of step t, the later steps and what follows the loop.

Loops nest: an inner loop of an unrolled body is unrolled in its turn, if
it needs it. Inside a plate, every loop with random choices (whatever their
estimators) is unrolled, up to ``MAX_STEPS`` steps: ADEV runs a plate's body
batched, and a ``lax.scan`` of random choices there is not supported (the
``adev`` pass rejects a longer one). So a plate of particles can hold a family
with a loop: ``plate k in K { (z, lq) = sim(q) }``. Unrolling has limits, per ``expect`` block,
each reported with a caret at the loop or the choice, why, and what to do
(``reinforce`` keeps a loop a ``lax.scan``, whatever its length):

- ``MAX_STEPS`` (64) steps for one loop: the program grows with them;
- ``MAX_PATHS`` (4096) paths through the enumerated scalar choices of the
  unrolled loops: ``enum`` continues with each value of each, so its cost
  is the product of their support sizes (2^12 for twelve bernoullis);
- ``MAX_RERUN`` (2048) equations re-run for alternatives: an ``mvd`` choice
  (or an enumerated batched one) re-runs the rest of the block for each
  alternative value, for its value only (``ADEV.values_only``), so the
  cost grows with the square of the steps (a step of five equations: 28
  steps). Measured (trace, compile and run) on a loop of bernoulli steps:
  enum 1.6 s for 10 or 12 steps, mvd 4 s for 10 and 7 s for 13. The limit
  admits Attend-Infer-Repeat's three steps of about 130 equations each
  (examples/air: 1608 for the iwelbo of two particles with mvd).

    >>> # scan[length=2](s0) { |t, s| b = draw[enum](f(s)); yield b, b }
    >>> #   becomes   b.0 = draw[enum](f(s0)); b.1 = draw[enum](f(b.0)); b = stack(b.0, b.1)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..diagnostics import Note, error
from ..ir import Atom, Eqn, Function, Lit, Program, Region, Var, walk
from ..types import ArrayType, tree_leaves
from .estimators import settled_estimator
from .inline import copy_region
from .simplify import simplify

MAX_STEPS = 64
MAX_PATHS = 4096
MAX_RERUN = 2048


@dataclass
class _Budget:
    """What the unrolled loops of one ``expect`` block have spent of the limits: the paths
    through their enumerated scalar choices, and the choices that re-run the rest of the
    block for their alternatives, each with the loop it came from."""

    paths: int = 1
    reruns: list = field(default_factory=list)  # (draw, loop)


def unroll(program: Program, library, overrides: dict[str, str] | None = None) -> Program:
    """Unroll, inside ``expect``, every ``for`` loop that draws an ``enum`` or ``mvd`` choice."""
    unroller = _Unroller(library, dict(overrides or {}))
    functions = {name: Function(fn.name, unroller.region(fn.body, None, False), fn.kind, fn.span)
                 for name, fn in program.functions.items()}
    program = Program(functions, program.entry, program.params, program.data_scale)
    # The carried outputs are copies of the last step's values: forward them.
    return simplify(program) if unroller.changed else program


class _Unroller:
    def __init__(self, library, overrides: dict[str, str]):
        self.library = library
        self.overrides = overrides
        self.changed = False

    def estimator(self, draw: Eqn) -> str:
        return settled_estimator(draw.attrs, self.overrides)

    def continued(self, e: Eqn) -> list[Eqn]:
        """The draws of ``e`` 's regions whose estimator needs their continuation."""
        tail = self.library.estimator_tail
        return [x for r in e.regions for x in walk(r)
                if x.op == "draw" and self.estimator(x) not in tail]

    def region(self, region: Region, budget: _Budget | None, in_plate: bool) -> Region:
        """``region`` with its loops unrolled where they need it; ``budget`` is the enclosing
        ``expect`` block's (None outside ``expect``)."""
        out: list[Eqn] = []
        work = list(reversed(region.eqns))  # a stack: unrolled steps go back on it
        while work:
            e = work.pop()
            if e.op == "scan" and budget is not None:
                # Outside plates: the loops whose choices need their continuation. Inside a
                # plate (where ADEV runs no lax.scan with random choices): every loop with
                # random choices, up to MAX_STEPS steps (a longer one is the adev pass's error).
                draws = self.continued(e) if not in_plate else [
                    x for r in e.regions for x in walk(r) if x.op == "draw"]
                if draws and (not in_plate or e.attrs["length"] <= MAX_STEPS):
                    work.extend(reversed(self.steps(e, draws, budget)))
                    self.changed = True
                    continue
            if e.op == "expect":
                inner = _Budget()
                regions = [self.region(e.regions[0], inner, False)]
                self.check_reruns(regions[0], inner)
            elif not e.regions:  # kept as it is: the budget knows the draws by identity
                out.append(e)
                continue
            else:
                regions = [self.region(r, budget, in_plate or e.op == "plate") for r in e.regions]
            out.append(Eqn(e.op, e.outs, e.args, e.attrs, regions, e.span))
        return Region(region.params, out, region.outs)

    # ---------------------------------------------------------- one loop

    def steps(self, e: Eqn, draws: list[Eqn], budget: _Budget) -> list[Eqn]:
        """The equations of loop ``e`` 's steps, then its outputs from them."""
        n, c = e.attrs["length"], e.attrs["carries"]
        if n > MAX_STEPS:
            first = draws[0]
            raise error(
                f"this for loop has {n} steps, more than the {MAX_STEPS} a loop may be unrolled "
                f"to: estimator '{self.estimator(first)}' at address '{first.attrs['address']}' "
                "needs the rest of the expectation, so the loop is unrolled", e.span,
                notes=[Note("the choice is drawn here", first.span)],
                help=f"use reinforce for the choices of long loops (with reinforce, or "
                     f"obj.with_estimators({{{first.attrs['address']!r}: 'reinforce'}}) from "
                     "Python): a loop of reparam and reinforce choices stays a lax.scan")
        self.count_paths(e, budget)
        body = e.regions[0]
        index, carry_params, mapped_params = body.params[0], body.params[1:1 + c], body.params[1 + c:]
        carry: list[Atom] = list(e.args[:c])
        eqns: list[Eqn] = []
        stacked: list[list[Atom]] = [[] for _ in e.outs[c:]]
        for t in range(n):
            subst: dict[Var, Atom] = {index: Lit(t, index.type)}
            subst.update(zip(carry_params, carry))
            for p, xs in zip(mapped_params, e.args[c:]):
                subst[p] = Var(p.type, p.hint)
                eqns.append(Eqn("index", [subst[p]], [xs], {"spec": (("c", t),)}, [], e.span))
            step = copy_region(Region([], body.eqns, body.outs), subst)
            eqns.extend(step.eqns)
            self.note_reruns(step.eqns, e, budget)
            carry = step.outs[:c]
            for parts, y in zip(stacked, step.outs[c:]):
                parts.append(y)
        for out, value in zip(e.outs[:c], carry):
            eqns.append(Eqn("fn", [out], [value], {"name": "identity"}, [], e.span))
        for out, parts in zip(e.outs[c:], stacked):
            eqns.extend(_stack(out, parts, e))
        return eqns

    def count_paths(self, e: Eqn, budget: _Budget) -> None:
        """Multiply the block's paths by those of loop ``e``: each step multiplies them by the
        support sizes of the step's enumerated scalar choices (enum continues with each)."""
        n = e.attrs["length"]
        enumerated = [(d, size) for d in e.regions[0].eqns if d.op == "draw"
                      if (size := self.enumerated_size(d)) is not None]
        if not enumerated:
            return
        per_step = 1
        for _, size in enumerated:
            per_step *= size
        before, budget.paths = budget.paths, budget.paths * per_step ** n
        if budget.paths <= MAX_PATHS:
            return
        first = enumerated[0][0]
        what = (f"the choice at address '{first.attrs['address']}' ({per_step} values)"
                if len(enumerated) == 1 else "the choices at addresses " + ", ".join(
                    f"'{d.attrs['address']}'" for d, _ in enumerated)
                + f" ({'·'.join(str(size) for _, size in enumerated)} values)")
        raise error(
            f"enum sums over every path through the unrolled loops of an expect block, and "
            f"this loop's {n} step{'s' if n != 1 else ''}, each enumerating {what}, make "
            f"{budget.paths} of them"
            + (f" (with the {before} of the loops before or around it)" if before > 1 else "")
            + f", more than the limit of {MAX_PATHS}", first.span,
            notes=[Note("the loop starts here", e.span)],
            help=f"use mvd (its cost grows with the steps, not exponentially) or reinforce for "
                 f"'{first.attrs['address']}' (with mvd, or "
                 f"obj.with_estimators({{{first.attrs['address']!r}: 'mvd'}}) from Python)")

    def note_reruns(self, eqns: list[Eqn], loop: Eqn, budget: _Budget, in_plate: bool = False):
        """Record one step's choices that re-run the rest of the block for alternatives:
        mvd, and enum of a batched choice (a plate's, or an array's)."""
        for e in eqns:
            if (e.op == "draw" and self.estimator(e) not in self.library.estimator_tail
                    and (in_plate or self.enumerated_size(e) is None)):
                budget.reruns.append((e, loop))
            if e.op not in ("scan", "expect"):  # counted when unrolled, or a block of its own
                for r in e.regions:
                    self.note_reruns(r.eqns, loop, budget, in_plate or e.op == "plate")

    def enumerated_size(self, d: Eqn) -> int | None:
        """The support size of ``d`` when it is an enumerated scalar choice (its rule sums
        over every value, continuing with each), else None."""
        if self.estimator(d) != "enum" or d.outs[0].type.shape != ():
            return None
        dist = self.library.distributions[d.attrs["dist"]]
        form = d.attrs["form"]
        args = [a.value if isinstance(a, Lit) else a.type for a in d.args[:len(form)]]
        try:
            return dist.support_size(form, args) or None
        except ValueError:  # not known at compile time: the adev pass says so
            return None

    def check_reruns(self, block: Region, budget: _Budget) -> None:
        """The rest of the block that the unrolled choices re-run for their alternatives
        (``Site.contract_alternatives``), in equations, within ``MAX_RERUN``: each such choice
        re-runs what follows it, so the total grows with the square of a loop's steps."""
        if not budget.reruns:
            return
        sizes = [sum(1 for _ in walk(Region([], [e], []))) for e in block.eqns]
        after, total = {}, sum(sizes)
        for e, size in zip(block.eqns, sizes):
            total -= size
            for x in walk(Region([], [e], [])):
                after[x] = total
        per_loop: dict = {}
        for draw, loop in budget.reruns:
            per_loop.setdefault(loop, []).append(after.get(draw, 0))
        spent = sum(sum(v) for v in per_loop.values())
        if spent <= MAX_RERUN:
            return
        loop, counts = max(per_loop.items(), key=lambda kv: sum(kv[1]))
        draw = next(d for d, l in budget.reruns if l is loop)
        address, n = draw.attrs["address"], loop.attrs["length"]
        raise error(
            f"the choices at address '{address}' (estimator '{self.estimator(draw)}') in this loop's "
            f"{n} steps each re-run the rest of the expectation for their alternatives: "
            f"{spent} equations in all, more than the limit of {MAX_RERUN} (the cost grows with "
            "the square of the number of steps)", draw.span,
            notes=[Note("the loop starts here", loop.span)],
            help=f"use reinforce for '{address}' (with reinforce, or "
                 f"obj.with_estimators({{{address!r}: 'reinforce'}}) from Python), or fewer steps")


def _stack(out: Var, parts: list[Atom], e: Eqn) -> list[Eqn]:
    """Equations defining ``out``, the loop's stacked output, from each step's value."""
    if isinstance(out.type, ArrayType):
        if not parts:  # a loop of no steps
            return [Eqn("fn", [out], [], {"name": "zeros", "shape": out.type.shape}, [], e.span)]
        return [Eqn("fn", [out], parts, {"name": "stack", "count": len(parts), "axis": 0}, [], e.span)]
    # A trace: each address, and each leaf of the return value, stacked, then packed.
    eqns: list[Eqn] = []
    values: list[Atom] = []
    for address, t in out.type.fields:
        gets = []
        for part in parts:
            v = Var(part.type.field(address), address.replace("/", "_"))
            eqns.append(Eqn("trace_get", [v], [part], {"address": address}, [], e.span))
            gets.append(v)
        values.append(Var(t, address.replace("/", "_")))
        eqns.extend(_stack(values[-1], gets, e))
    if out.type.retval is not None:
        leaves = [Var(t, "ret") for t in tree_leaves(out.type.retval)]
        per_step = []
        for part in parts:
            per_step.append([Var(t, "ret") for t in tree_leaves(part.type.retval)])
            eqns.append(Eqn("trace_retval", per_step[-1], [part], {}, [], e.span))
        for i, leaf in enumerate(leaves):
            eqns.extend(_stack(leaf, [step[i] for step in per_step], e))
        values.extend(leaves)
    eqns.append(Eqn("make_trace", [out], values, {"addresses": out.type.addresses}, [], e.span))
    return eqns
