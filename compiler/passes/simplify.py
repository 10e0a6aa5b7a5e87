"""Simplification: forward copies and trace look-ups, then remove dead code.

- ``y = fn[identity](x)`` is removed and ``y`` replaced by ``x``;
- ``v = trace_get[a](t)`` where ``t = make_trace(...)`` is in scope is
  replaced by the value packed at ``a``;
- an equation none of whose outputs is used is removed (random draws too:
  an unused draw changes no distribution), and so are unused outputs of
  plates, of branches and the stacked outputs of loops;
- a read at a plate's own index (``x[k]``, the categorical density of ``k``)
  becomes an input the plate maps (plate_reads.py).

    >>> # y = fn[identity](x); z = fn[exp](y)   becomes   z = fn[exp](x)
"""

from __future__ import annotations

from ..ir import Atom, Eqn, Function, Lit, Program, Region, Var
from .plate_reads import map_plate_reads


def simplify(program: Program) -> Program:
    functions = {}
    for name, fn in program.functions.items():
        subst: dict[Var, Atom] = {}
        body = _forward(fn.body, subst, {})
        body, _ = _dce(map_plate_reads(body))
        functions[name] = Function(fn.name, body, fn.kind, fn.span)
    return Program(functions, program.entry, program.params, program.data_scale)


def _sub(a: Atom, subst: dict[Var, Atom]) -> Atom:
    return a if isinstance(a, Lit) else subst.get(a, a)


def _forward(region: Region, subst: dict[Var, Atom], traces: dict[Var, dict[str, Atom]]) -> Region:
    traces = dict(traces)
    eqns = []
    for e in region.eqns:
        args = [_sub(a, subst) for a in e.args]
        if e.op == "fn" and e.attrs.get("name") == "identity" and args[0].type == e.outs[0].type:
            subst[e.outs[0]] = args[0]
            continue
        if e.op == "trace_get" and args[0] in traces and e.attrs["address"] in traces[args[0]]:
            subst[e.outs[0]] = traces[args[0]][e.attrs["address"]]
            continue
        regions = [_forward(r, subst, traces) for r in e.regions]
        new = Eqn(e.op, e.outs, args, e.attrs, regions, e.span)
        if e.op == "make_trace":
            traces[e.outs[0]] = dict(zip(e.attrs["addresses"], args))
        eqns.append(new)
    return Region(region.params, eqns, [_sub(o, subst) for o in region.outs])


def _dce(region: Region, keep: list[bool] | None = None) -> tuple[Region, set[Var]]:
    """Remove dead equations; ``keep`` masks the region's outputs still needed."""
    outs = region.outs if keep is None else [o for o, k in zip(region.outs, keep) if k]
    live = {o for o in outs if isinstance(o, Var)}
    eqns: list[Eqn] = []
    for e in reversed(region.eqns):
        used = [o in live for o in e.outs]
        if not any(used) and e.outs:
            continue
        if e.op in ("plate", "cond"):
            mask = used
        elif e.op == "scan":
            c = e.attrs["carries"]
            mask = [True] * c + used[c:]
        else:
            mask = None
        regions = []
        for r in e.regions:
            new_r, free = _dce(r, mask)
            regions.append(new_r)
            live |= free
        new_outs = e.outs if mask is None else [o for o, k in zip(e.outs, mask) if k]
        live |= {a for a in e.args if isinstance(a, Var)}
        eqns.append(Eqn(e.op, new_outs, e.args, e.attrs, regions, e.span))
    eqns.reverse()
    return Region(region.params, eqns, outs), live
