"""A distribution's support, and numpyro's bijection from the real line onto it.

The automatic families (``auto_normal(p)`` and the others, compiler/auto.py)
draw each latent of a target on the real line and map it onto the support of
the target's distribution there, as NumPyro's AutoGuides do. Two things come
from here:

- :func:`support_of` describes, when compiling, the support of a family
  row at given arguments (ArrayTypes for traced ones, numbers for literals):
  its kind, its bounds where they are known, which parameters the bounds read
  (``uniform``'s ``low`` and ``high``; none for ``beta``) and the words a
  message uses, ``(0, ∞)``. The support-mismatch check (passes/addresses.py)
  compares a family's with a model's by it;
- :data:`SUPPORT_FUNCTIONS`, three library functions that take the
  distribution's name and form (static) and its arguments: ``to_support(u,
  args…)``, numpyro's ``biject_to(support)(u)``; ``from_support(x, args…)``,
  its inverse; ``to_support_log_det(u, args…)``, ``Σ log|det J|`` at ``u``.
  The bijections are numpyro's, never written here.

    >>> from .distributions import DISTRIBUTIONS
    >>> s = support_of(DISTRIBUTIONS["halfnormal"], ("scale",), [1.0])
    >>> s.kind, s.lower, s.upper, s.words
    ('interval', 0.0, inf, '(0, ∞)')
    >>> from ..compiler.types import ArrayType
    >>> support_of(DISTRIBUTIONS["uniform"], ("low", "high"), [0.0, ArrayType("float32", ())]).depends
    ('high',)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.distributions import Delta, constraints
from numpyro.distributions.transforms import biject_to

from ..compiler.library import ParamSpec
from ..compiler.types import ArrayType
from .abstract import to_abstract


@dataclass(frozen=True)
class Support:
    """The support of a family at some arguments, as the compiler sees it.

    ``kind``: ``interval`` (an elementwise interval of the real line, bounds
    ``lower`` and ``upper``, ``±inf`` when unbounded, ``None`` when they read
    a traced argument), ``discrete``, ``point`` (a ``delta``: where its ``v``
    is), or numpyro's name of a structured one (``simplex``, ``corr_cholesky``...). ``depends``: the parameters its
    bounds are computed from. ``words``: the support in a message."""

    kind: str
    lower: float | None
    upper: float | None
    depends: tuple[str, ...]
    words: str

    def within(self, other: "Support") -> bool | None:
        """Whether this support lies inside ``other``: None when that is not known
        when compiling (traced bounds, structured supports)."""
        if self.kind == "interval" and other.kind == "interval":
            if None in (self.lower, self.upper, other.lower, other.upper):
                return None
            return self.lower >= other.lower and self.upper <= other.upper
        if self.kind == "interval" and other.kind in ("simplex", "discrete"):
            return False  # a box of reals is never inside a simplex, nor in the integers
        return None


def _bounds(support: Any) -> list[Any]:
    return [getattr(support, n) for n in ("lower_bound", "upper_bound") if hasattr(support, n)]


def _is_var(v) -> bool:
    return type(v).__name__ != "Literal"  # a jaxpr's constant operand reads no argument


def support_of(row: Any, form: tuple[str, ...], args: Sequence[Any]) -> Support:
    """The support of ``row`` at ``args`` (ArrayTypes for traced arguments, numbers for
    literals). Which parameters its bounds read is found from the jaxpr of the bounds."""
    traced = [i for i, a in enumerate(args) if isinstance(a, ArrayType)]
    found: list[Any] = []

    def with_args(values):
        full = list(args)
        for i, v in zip(traced, values):
            full[i] = v
        return full

    def bounds(*values):
        d = row.build(form, with_args(values))
        s = d.support
        found.append((s, isinstance(d, Delta)))
        return [jnp.asarray(b) for b in _bounds(s)]

    jaxpr = jax.make_jaxpr(bounds)(*[to_abstract(args[i]) for i in traced]).jaxpr
    reads: dict[Any, set[int]] = {v: {k} for k, v in enumerate(jaxpr.invars)}
    for eqn in jaxpr.eqns:
        r = set().union(*(reads.get(v, set()) for v in eqn.invars if _is_var(v)))
        reads.update({o: r for o in eqn.outvars})
    per_bound = [reads.get(v, set()) if _is_var(v) else set() for v in jaxpr.outvars]
    depends = tuple(sorted({form[traced[k]] for r in per_bound for k in r}))
    s, point = found[0]
    if point:  # numpyro says the real line, but a point mass is only where its v is
        return Support("point", None, None, depends, "its point v")
    if s.is_discrete:
        return Support("discrete", None, None, depends, "the integers")
    name = type(s).__name__.lstrip("_")
    if isinstance(s, constraints.independent):  # delta's support: the real line, as an event
        s = s.base_constraint
        name = type(s).__name__.lstrip("_")
    kinds = {"Real": (-math.inf, math.inf), "Positive": None, "GreaterThan": None,
             "GreaterThanEq": None, "LessThan": None, "Interval": None, "UnitInterval": None,
             "Circular": None}
    if name not in kinds:
        words = {"Simplex": "the simplex"}.get(name, f"numpyro's {name} support")
        return Support(name.lower(), None, None, depends, words)
    # The bounds' values where they read no traced argument (placeholders fill the others),
    # computed now even when the program is compiled inside a trace (a jit of fit's step).
    with jax.ensure_compile_time_eval():
        known = _bounds(row.build(form, with_args([jnp.ones(args[i].shape, args[i].dtype)
                                                    for i in traced])).support)
        known = [np.asarray(b, np.float64) for b in known]
    lower, upper = -math.inf, math.inf
    values = []
    for value, r in zip(known, per_bound):
        a = value
        values.append(float(a.flat[0]) if not r and a.size and np.all(a == a.flat[0]) else None)
    if name in ("LessThan",):
        upper = values[0]
    elif name in ("Positive", "GreaterThan", "GreaterThanEq"):
        lower = values[0]
    elif name != "Real":
        lower, upper = values
    return Support("interval", lower, upper, depends, _interval_words(lower, upper))


def _interval_words(lower: float | None, upper: float | None) -> str:
    if lower == -math.inf and upper == math.inf:
        return "the real line"

    def num(x, inf):
        return "?" if x is None else inf if math.isinf(x) else f"{x:g}"

    return f"({num(lower, '−∞')}, {num(upper, '∞')})"


# ---------------------------------------------------------------- the bijections


def _support(dist: str, form: tuple, args: tuple) -> Any:
    from .distributions import DISTRIBUTIONS  # the rows: distributions.py imports this module

    return DISTRIBUTIONS[dist].build(tuple(form), list(args)).support


def _to_support(u, args, dist, form):
    return biject_to(_support(dist, form, args))(u)


def _from_support(x, args, dist, form):
    return biject_to(_support(dist, form, args)).inv(x)


def _to_support_log_det(u, args, dist, form):
    t = biject_to(_support(dist, form, args))
    return jnp.sum(t.log_abs_det_jacobian(u, t(u)))


def _support_function(name: str, first: str, fn, doc: str):
    from .functions import JaxFunction  # functions.py's row type

    return JaxFunction(name, (ParamSpec(first), ParamSpec("args", variadic=True),
                              ParamSpec("dist", static=True), ParamSpec("form", static=True)),
                       fn, doc)


def support_functions() -> dict[str, Any]:
    """The three library functions (see the module's doc), by name."""
    rows = [
        _support_function("to_support", "u", _to_support,
                          "biject_to(support of dist(args))(u): a real array onto the support."),
        _support_function("from_support", "x", _from_support,
                          "The inverse of to_support: a value on the support to the real line."),
        _support_function("to_support_log_det", "u", _to_support_log_det,
                          "Σ log|det J| of to_support at u (the change of variables)."),
    ]
    return {row.name: row for row in rows}
