"""Reads by a plate's own index become mapped inputs (a rule table, run by ``simplify``).

Inside ``plate[size=S]`` with index ``k``, reading an outer array ``x`` of
leading size S at ``k`` is the plate mapping ``x`` along its first axis, which
the backend does without a copy (``jax.vmap``'s ``in_axes=0``). Written as an
index, it is a gather per element, and a scatter-add in the gradient. Exact
summation makes such reads everywhere (the plate over a choice's support
reads ``means[k]``, ``A[k]``), and so do hand-written plates (``mu[i]``).
Each rule rewrites one equation whose value is a read at the plate's index:

- ``index``: ``x[k, …]`` with ``x`` defined outside the plate and
  ``shape(x)[0] == S`` (and only scalar traced indices, so NumPy's placement
  of advanced indices does not arise) becomes the mapped input ``x_k`` (or
  ``x_k[…]``);
- ``logpdf`` of ``categorical(logits=l)`` at ``k``, with ``l`` of shape [S]
  defined outside the plate: every value of the support, in order, so it is
  ``log_softmax(l)`` computed once before the plate and mapped in.

Nothing else changes: a read at an index that is not the plate's own, or of an
array defined inside the plate, or of another length, stays an index.

    >>> # plate[size=3]() { |k| v = index(means, k); lp = logpdf[categorical](k, w) }
    >>> # becomes  ls = fn[log_softmax](w); plate[size=3](means, ls) { |k, v, lp| }
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..ir import Atom, Eqn, Lit, Region, Var
from ..types import ArrayType


@dataclass
class Plate:
    """An enclosing plate being rewritten: its index, size, the variables defined
    inside it, and the outer values it now maps in (outer atom -> parameter)."""

    index: Var
    size: int
    inside: set
    enclosing: list  # the plates around this one, innermost first
    mapped: dict = field(default_factory=dict)
    # Equations to emit before the plate, in its enclosing region: log_softmax of logits,
    # each once (logits -> its table).
    before: list = field(default_factory=list)
    tables: dict = field(default_factory=dict)

    def map(self, outer: Atom, hint: str) -> Var:
        if outer not in self.mapped:
            self.mapped[outer] = param = Var(ArrayType(outer.type.dtype, outer.type.shape[1:]),
                                             hint)
            self.define(param)
        return self.mapped[outer]

    def define(self, v: Var, here: bool = True) -> None:
        """``v`` is a new variable of this plate's body (``here``) or of the region around
        it: it is inside every plate around that."""
        if here:
            self.inside.add(v)
        for p in self.enclosing:
            p.inside.add(v)


def _outer(a: Atom, plate: Plate) -> bool:
    return isinstance(a, Var) and a not in plate.inside


def _index_read(e: Eqn, plates: list[Plate], subst: dict) -> Eqn | None:
    spec = e.attrs["spec"]
    if not spec or spec[0] != ("d",) or len(e.args) < 2:
        return None
    x, k = e.args[0], e.args[1]
    plate = next((p for p in plates if p.index is k), None)
    if (plate is None or not _outer(x, plate) or not isinstance(x.type, ArrayType)
            or x.type.shape[:1] != (plate.size,)):
        return None
    if any(isinstance(a, Var) and getattr(a.type, "shape", ()) != () for a in e.args[2:]):
        return None  # an array index: NumPy would place the indexed axes differently
    row = plate.map(x, x.hint)
    if len(spec) == 1:
        subst[e.outs[0]] = row
        return None
    return Eqn("index", e.outs, [row] + e.args[2:], {**e.attrs, "spec": spec[1:]}, [], e.span)


def _support_density(e: Eqn, plates: list[Plate], subst: dict) -> Eqn | None:
    if (e.attrs.get("dist") != "categorical" or tuple(e.attrs.get("form", ())) != ("logits",)
            or e.attrs.get("masked") or len(e.args) != 2):
        return None
    k, logits = e.args
    plate = next((p for p in plates if p.index is k), None)
    if (plate is None or not _outer(logits, plate) or not isinstance(logits.type, ArrayType)
            or logits.type.shape != (plate.size,)):
        return None
    if logits not in plate.tables:
        plate.tables[logits] = table = Var(logits.type, "log_p")
        plate.define(table, here=False)
        plate.before.append(Eqn("fn", [table], [logits], {"name": "log_softmax", "axis": -1},
                                [], e.span))
    subst[e.outs[0]] = plate.map(plate.tables[logits], "log_p")
    return None


# op -> rule: the rewritten equation (None: dropped, its value substituted), or the
# equation itself when the rule does not apply.
RULES: dict[str, Callable[[Eqn, list, dict], Eqn | None]] = {
    "index": _index_read,
    "logpdf": _support_density,
}


def map_plate_reads(region: Region, plates: list[Plate] | None = None,
                    subst: dict | None = None) -> Region:
    """``region`` with reads at enclosing plates' indices mapped in (see the module doc)."""
    plates = plates or []
    subst = {} if subst is None else subst
    eqns: list[Eqn] = []
    for e in region.eqns:
        e = Eqn(e.op, e.outs, [_sub(a, subst) for a in e.args], e.attrs, e.regions, e.span)
        if e.op == "plate":
            eqns.extend(_plate(e, plates, subst))
            continue
        rule, current = RULES.get(e.op), e
        while rule is not None and plates and current is not None:
            n_subst = len(subst)
            new = rule(current, plates, subst)
            if new is None and len(subst) == n_subst:
                break  # the rule does not apply
            # Its value is a mapped input now (None), or a read of one, x[k, j] -> x_k[j],
            # which may be an inner plate's to map.
            current, rule = new, (RULES.get(new.op) if new is not None else None)
        if current is not e:
            if current is not None:
                eqns.append(current)
            continue
        regions = [map_plate_reads(r, plates, subst) for r in e.regions]
        eqns.append(Eqn(e.op, e.outs, e.args, e.attrs, regions, e.span))
    return Region(region.params, eqns, [_sub(o, subst) for o in region.outs])


def _plate(e: Eqn, plates: list[Plate], subst: dict) -> list[Eqn]:
    body = e.regions[0]
    plate = Plate(body.params[0], e.attrs["size"], _defined(body), plates)
    # The inputs it already maps (the lowering maps x[k] read at the plate's own level).
    existing = {a: p for a, p in zip(e.args, body.params[1:]) if isinstance(a, Var)}
    plate.mapped.update(existing)
    new_body = map_plate_reads(body, [plate] + plates, subst)
    added = [a for a in plate.mapped if a not in existing]
    params = new_body.params + [plate.mapped[a] for a in added]
    return plate.before + [Eqn(e.op, e.outs, e.args + added, e.attrs,
                               [Region(params, new_body.eqns, new_body.outs)], e.span)]


def _defined(region: Region) -> set:
    out = set(region.params)
    for e in region.eqns:
        out.update(e.outs)
        for r in e.regions:
            out |= _defined(r)
    return out


def _sub(a: Atom, subst: dict) -> Atom:
    return a if isinstance(a, Lit) else subst.get(a, a)
