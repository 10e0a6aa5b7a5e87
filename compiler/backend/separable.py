"""Which continuations add up one term per plate element: the fast path of enum and mvd in plates.

In a plate of size N, ``enum`` and ``mvd`` need ℓ(x with x_i = v), the rest
of the expectation re-evaluated with one element of the batched choice
changed, for every element i and value v: N·V evaluations of a continuation
that itself costs O(N), so O(N²·V). When the continuation is *separable*,

    ℓ(x) = Σ_i c_i(x_i) + r      (r independent of x),

as an ELBO's sum of per-point log densities is, then ℓ(x with x_i = v) =
ℓ(x) − c_i(x_i) + c_i(v), and all the c_i(v) for one v come from a single
evaluation at x = (v, …, v) in which the sums over the plate axis are
weighted, Σ_i w_i·t_i, and differentiated by w at w = 1: O(N·V) in all.

``separable_sums`` decides this from the IR, conservatively, for a choice
of scalar elements drawn in one plate: after the draw, everything in the
rest of the plate's body is per element; past the plate, a value is either
*elementwise* (axis 0 is the plate's, element i depends on x_i alone), a
*separable sum* (a scalar Σ_i f_i(x_i) + const) or independent of x. Plates
of the same size that map an elementwise value keep it per element; ``sum``
turns an elementwise value into a separable sum; sums, differences and
scalings by independent values keep separable sums separable. Anything else
that the choice reaches (a logsumexp over the axis, a loop, another random
choice) means "not separable", and the estimator evaluates every
alternative in full. The answer is the list of the ``sum`` equations to
weight.

    >>> # plate i in N { z ~ categorical(l[i]) ; lp = logpdf(z, l[i]) } ; s = sum(lp) ; return s
    >>> # -> [the equation of s]
"""

from __future__ import annotations

import jax.numpy as jnp

from ..ir import Eqn, Region, Var, walk

LOCAL = "local"  # inside a plate of the choice's axis: depends on this element's x_i
ELEM = "elementwise"  # axis 0 is the choice's plate axis; element i depends on x_i alone
SEP = "separable"  # a scalar Σ_i f_i(x_i) + const
INT_SEP = "integer separable"  # an int or bool Σ_i f_i(x_i): weighted, it is real, so
# only float() (or identity) may use it (int arithmetic on it would round the weighted sum)


class _NotSeparable(Exception):
    pass


def separable_sums(outer: Region, plate_j: int, draw_j: int) -> list[Eqn] | None:
    """The ``sum`` equations at which the continuation of a choice adds per-element terms.

    The choice is ``outer.eqns[plate_j].regions[0].eqns[draw_j]``, a draw in a plate
    entered from ``outer``, whose first output is the estimated value ℓ. Returns None
    when ℓ is not (provably) separable in the choice's elements.
    """
    plate = outer.eqns[plate_j]
    body = plate.regions[0]
    size = plate.attrs["size"]
    draw = body.eqns[draw_j]
    if draw.outs[0].type.shape != ():
        return None
    cls: dict = {draw.outs[0]: LOCAL}
    sums: list[Eqn] = []
    try:
        _per_element(body.eqns[draw_j + 1:], cls)
        _leave_plate(plate, body, cls)
        for e in outer.eqns[plate_j + 1:]:
            _outside(e, cls, size, sums)
    except _NotSeparable:
        return None
    final = cls.get(outer.outs[0]) if isinstance(outer.outs[0], Var) else None
    return sums if final in (None, SEP) else None  # (an INT_SEP result is an int: not real)


def _nested_inputs(e: Eqn) -> list:
    return [a for r in e.regions for sub in walk(r) for a in sub.args] + \
           [o for r in e.regions for o in r.outs]


def _per_element(eqns: list[Eqn], cls: dict) -> None:
    """Inside a plate of the choice's axis, every equation is per element."""
    for e in eqns:
        if e.op in ("draw", "expect") or any(s.op == "draw" for r in e.regions for s in walk(r)):
            raise _NotSeparable  # another random choice in the continuation
        if any(cls.get(a) for a in list(e.args) + _nested_inputs(e) if isinstance(a, Var)):
            for o in e.outs:
                cls[o] = LOCAL


def _leave_plate(plate: Eqn, body: Region, cls: dict) -> None:
    for out, o in zip(plate.outs, body.outs):
        if isinstance(o, Var) and cls.get(o):
            cls[out] = ELEM


def _outside(e: Eqn, cls: dict, size: int, sums: list[Eqn]) -> None:
    """One equation past the choice's plate."""
    if e.op in ("draw", "expect") or any(s.op == "draw" for r in e.regions for s in walk(r)):
        raise _NotSeparable
    classes = [cls.get(a) if isinstance(a, Var) else None for a in e.args]
    if any(cls.get(a) for a in _nested_inputs(e) if isinstance(a, Var)):
        raise _NotSeparable  # a region closing over a value that depends on the choice
    if not any(classes):
        return
    out = e.outs[0] if e.outs else None
    if e.op == "plate":
        body = e.regions[0]
        if e.attrs["size"] != size or any(c not in (None, ELEM) for c in classes):
            raise _NotSeparable
        for p, c in zip(body.params[1:], classes):
            if c == ELEM:
                cls[p] = LOCAL
        _per_element(body.eqns, cls)
        _leave_plate(e, body, cls)
        return
    if e.op == "make_trace":
        addresses = e.attrs["addresses"]
        if any(classes[len(addresses):]):
            raise _NotSeparable  # a return value that depends on the choice
        cls[out] = {a: c for a, c in zip(addresses, classes) if c}
        return
    if e.op == "trace_get" and isinstance(classes[0], dict):
        fields, address = classes[0], e.attrs["address"]
        prefix = address + "/"
        value = fields.get(address) or {a[len(prefix):]: c for a, c in fields.items()
                                         if a.startswith(prefix)}
        if value:
            cls[out] = value
        return
    if e.op != "fn":
        raise _NotSeparable
    name = e.attrs["name"]
    shape = tuple(out.type.shape)
    if classes[0] == INT_SEP:
        if name in ("identity", "float") and len(classes) == 1:
            cls[out] = INT_SEP if name == "identity" else SEP
            return
        raise _NotSeparable
    if name in ("identity", "float", "neg") or (name == "int" and classes[0] == ELEM):
        cls[out] = classes[0]  # (int of a separable sum would round it: not linear)
        return
    if name == "sum" and e.attrs.get("axis") is None and classes[0] in (ELEM, SEP):
        cls[out] = SEP if out.type.dtype.startswith("float") else INT_SEP
        if classes[0] == ELEM:
            sums.append(e)
        return
    tainted = [c for c in classes if c]
    kinds = set(tainted)
    if len(kinds) != 1 or isinstance(tainted[0], dict):
        raise _NotSeparable
    kind = tainted[0]
    if kind == SEP and shape != ():
        raise _NotSeparable
    if kind == ELEM and (shape[:1] != (size,) or any(
            tuple(getattr(a.type, "shape", ())) not in ((), shape) for a in e.args)):
        raise _NotSeparable  # broadcasting that would move or repeat the plate axis
    linear = (name in ("add", "sub")
              or (name == "mul" and len(tainted) == 1)
              or (name == "div" and not classes[1]))
    if kind == ELEM and name in ("add", "sub", "mul", "div"):
        cls[out] = ELEM  # elementwise, aligned on the plate axis
    elif kind == SEP and linear:
        cls[out] = SEP
    else:
        raise _NotSeparable


def weighted_sum(x, w):
    """Σ_i w_i·x_i over a value's plate axis (axis 0), summing the rest: a weighted
    ``sum`` of a separable block. It is real whatever ``x``'s dtype (the weighted sum of
    ints is not an int), in the weights' precision or ``x``'s, whichever is wider.

        >>> import jax.numpy as jnp
        >>> float(weighted_sum(jnp.array([1, 0, 1]), jnp.array([0.5, 2.0, 0.25])))
        0.75
    """
    x = jnp.asarray(x)
    w = jnp.asarray(w)
    dtype = jnp.promote_types(w.dtype, x.dtype) if jnp.issubdtype(x.dtype, jnp.inexact) else w.dtype
    return jnp.sum(x.astype(dtype) * jnp.reshape(w, w.shape + (1,) * (x.ndim - 1)).astype(dtype))
