"""Inlining: generative-function calls become their bodies, under an address prefix.

A ``call`` equation ``y = call[callee=g, address=a](x)`` is replaced by a
copy of ``g`` 's body with fresh variables, its parameters replaced by the
arguments, and every address it draws prefixed by ``a/``. A ``sim`` or
``density`` equation keeps its place but receives the callee's (inlined)
body as its region, whose parameters are the equation's trailing arguments;
expand.py turns it into sampling or scoring code.

After this pass no ``call`` remains, and only the entry function is kept.
Parameter reads inside plates, loops and branches (a layer called in a plate)
are lifted to the start of the enclosing region (:func:`hoist_params`).

    >>> # y = call[callee=g(), address=y]()   becomes   y/x = sample[address=y/x, ...](...)
"""

from __future__ import annotations

from ..ir import Atom, Eqn, Function, Lit, Program, Region, Var, call_prefix


def copy_region(region: Region, subst: dict[Var, Atom], prefix: str = "") -> Region:
    """A copy of ``region`` with fresh variables; ``subst`` maps free variables."""
    params = [_fresh(p, subst) for p in region.params]
    eqns = [_copy_eqn(e, subst, prefix) for e in region.eqns]
    outs = [_sub(o, subst) for o in region.outs]
    return Region(params, eqns, outs)


def _fresh(v: Var, subst: dict[Var, Atom]) -> Var:
    new = Var(v.type, v.hint)
    subst[v] = new
    return new


def _sub(a: Atom, subst: dict[Var, Atom]) -> Atom:
    if isinstance(a, Lit):
        return a
    return subst.get(a, a)


def _copy_eqn(e: Eqn, subst: dict[Var, Atom], prefix: str) -> Eqn:
    args = [_sub(a, subst) for a in e.args]
    regions = [copy_region(r, subst, prefix) for r in e.regions]
    attrs = dict(e.attrs)
    if prefix and e.op in ("sample", "call") and "address" in attrs:
        attrs["address"] = prefix + attrs["address"]
    outs = [_fresh(v, subst) for v in e.outs]
    return Eqn(e.op, outs, args, attrs, regions, e.span)


def inline(program: Program) -> Program:
    """Inline every ``call`` and attach callee bodies to ``sim``/``density``."""
    functions = program.functions
    cache: dict[str, Region] = {}

    def inlined_body(name: str) -> Region:
        if name not in cache:
            cache[name] = inline_region(functions[name].body)
        return cache[name]

    def inline_region(region: Region) -> Region:
        eqns: list[Eqn] = []
        for e in region.eqns:
            if e.op == "call":
                body = inlined_body(e.attrs["callee"])
                subst: dict[Var, Atom] = {p: a for p, a in zip(body.params, e.args)}
                copied = copy_region(Region([], body.eqns, body.outs), subst,
                                     call_prefix("", e.attrs["address"]))
                eqns.extend(copied.eqns)
                # The call's outputs are now the copied body's outputs: alias them.
                for out, value in zip(e.outs, copied.outs):
                    eqns.append(Eqn("fn", [out], [value], {"name": "identity"}, [], e.span))
                continue
            regions = [inline_region(r) for r in e.regions]
            if e.op in ("sim", "density", "generate") and not e.regions:
                body = inlined_body(e.attrs["callee"])
                regions = [copy_region(body, {})]
            eqns.append(Eqn(e.op, e.outs, e.args, e.attrs, regions, e.span))
        return Region(region.params, eqns, region.outs)

    entry = functions[program.entry]
    new_entry = Function(entry.name, hoist_params(inline_region(entry.body)), entry.kind,
                         entry.span)
    return Program({entry.name: new_entry}, program.entry, program.params, program.data_scale)


# Regions a parameter read is lifted out of: it reads the same value in every iteration
# and branch. Others (an expect, a sim or density body) keep theirs, at their start.
_LIFTED_FROM = ("plate", "scan", "cond")


def hoist_params(region: Region) -> Region:
    """``region`` with the ``param`` reads of its plates, loops and branches (a layer
    called in a plate) moved to its start, so that an objective's derivative sees
    them where it tracks parameters, not inside a region evaluated as pure code.

        >>> # plate { %W = param[path=enc.h.W](); ... }   becomes   %W = param[...](); plate { ... }
    """
    lifted: list[Eqn] = []
    body = _lift(region.eqns, lifted, top=True)
    return Region(region.params, lifted + body, region.outs)


def _lift(eqns: list[Eqn], lifted: list[Eqn], top: bool) -> list[Eqn]:
    out = []
    for e in eqns:
        if e.op == "param" and not top:
            lifted.append(e)
            continue
        if e.op in _LIFTED_FROM:
            regions = [Region(r.params, _lift(r.eqns, lifted, top=False), r.outs)
                       for r in e.regions]
        else:
            regions = [hoist_params(r) for r in e.regions]
        out.append(Eqn(e.op, e.outs, e.args, e.attrs, regions, e.span) if e.regions else e)
    return out
