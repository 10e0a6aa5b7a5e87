"""Constraints a ``param`` may declare, and the unconstrained representation that optimisers see.

A declaration such as ``param s: real<lower=0> = 1.0`` or
``param p: real[5] = ... simplex`` restricts the values a parameter may take.
As in Stan and NumPyro, the optimiser works on an unconstrained array ``u``
and the program sees ``biject_to(constraint)(u)``. :data:`CONSTRAINTS` is the
table of constraint kinds (one row each: static parameters, a doc line and
a factory of a ``numpyro.distributions.constraints`` object); the bijections
are numpyro's ``biject_to``, never written here.

Invariants:

- ``to_constrained(c, to_unconstrained(c, v)) == v`` (to rounding) for every
  ``v`` satisfying ``c``;
- ``unconstrained_shape(c, shape)`` is the shape of ``to_unconstrained(c, v)``
  for ``v`` of ``shape``, found by ``jax.eval_shape`` of the inverse
  bijection (``simplex`` on ``[K]`` is ``[K - 1]``; ``lower_cholesky`` on
  ``[n, n]`` is ``[n (n + 1) / 2]``); a shape the constraint does not fit is a
  ``ValueError`` in words;
- ``lower`` with bound 0 is numpyro's ``positive``, and ``interval(0, 1)`` its
  ``unit_interval``, so that the bijections are the familiar exp and sigmoid.

    >>> c = constraint_for("simplex")
    >>> unconstrained_shape(c, (5,))
    (4,)
    >>> constraint_for_bounds(lower=0.0)
    Positive(lower_bound=0.0)
    >>> float(to_constrained(c, to_unconstrained(c, [0.2, 0.3, 0.5]))[2])  # doctest: +ELLIPSIS
    0.5...
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import jax
import jax.numpy as jnp
from numpyro.distributions import constraints
from numpyro.distributions.transforms import biject_to

from ..compiler.library import ParamSpec, bind_arguments
from .abstract import first_line, format_shape


@dataclass(frozen=True)
class ConstraintKind:
    """A kind of constraint: its static parameters and a factory of the numpyro constraint."""

    name: str
    params: tuple[ParamSpec, ...]
    factory: Callable[..., Any]
    doc: str

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """The numpyro constraint for static arguments given as in the source (``lower(0.0)``)."""
        bound = bind_arguments(self.name, self.params, args, kwargs)
        for name, value in bound.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{self.name}: {name} must be a number known when the program is compiled, "
                                 f"got {value!r}")
        return self.factory(**bound)


def _lower(lower: float) -> Any:
    return constraints.positive if lower == 0 else constraints.greater_than(float(lower))


def _interval(lower: float, upper: float) -> Any:
    if not lower < upper:
        raise ValueError(f"interval: the lower bound {lower} must be below the upper bound {upper}")
    if (lower, upper) == (0, 1):
        return constraints.unit_interval
    return constraints.interval(float(lower), float(upper))


def _bound(name: str) -> tuple[ParamSpec, ...]:
    return (ParamSpec(name, static=True),)


_ROWS = [
    ConstraintKind("real", (), lambda: constraints.real, "Any real number (no constraint)."),
    ConstraintKind("lower", _bound("lower"), _lower, "Above a lower bound: real<lower=a>; exp-transformed."),
    ConstraintKind("upper", _bound("upper"), lambda upper: constraints.less_than(float(upper)),
                   "Below an upper bound: real<upper=b>."),
    ConstraintKind("interval", _bound("lower") + _bound("upper"), _interval,
                   "Between two bounds: real<lower=a, upper=b>; sigmoid-transformed."),
    ConstraintKind("simplex", (), lambda: constraints.simplex,
                   "A vector of non-negative entries summing to 1 (stick-breaking; K - 1 free entries)."),
    ConstraintKind("corr_cholesky", (), lambda: constraints.corr_cholesky,
                   "Cholesky factor of a correlation matrix: lower triangular, rows of unit length."),
    ConstraintKind("lower_cholesky", (), lambda: constraints.lower_cholesky,
                   "Lower triangular with a positive diagonal (a Cholesky factor)."),
    ConstraintKind("positive_definite", (), lambda: constraints.positive_definite,
                   "A symmetric positive-definite matrix (a covariance)."),
]

CONSTRAINTS: dict[str, ConstraintKind] = {row.name: row for row in _ROWS}


def constraint_for(kind: str, **static: Any) -> Any:
    """The numpyro constraint of ``kind`` with static arguments (``constraint_for("lower", lower=0)``)."""
    if kind not in CONSTRAINTS:
        raise ValueError(f"unknown constraint {kind!r}; the constraints are {', '.join(CONSTRAINTS)}")
    return CONSTRAINTS[kind](**static)


def constraint_for_bounds(lower: float | None = None, upper: float | None = None) -> Any:
    """The constraint of a declaration ``real<lower=a, upper=b>``, either bound optional."""
    if lower is None and upper is None:
        return constraint_for("real")
    if upper is None:
        return constraint_for("lower", lower=lower)
    if lower is None:
        return constraint_for("upper", upper=upper)
    return constraint_for("interval", lower=lower, upper=upper)


def to_unconstrained(constraint: Any, value: Any) -> Any:
    """The unconstrained array ``u`` with ``to_constrained(constraint, u) == value``.

    For ``corr_cholesky``, whose inverse bijection gives finite numbers for any
    matrix, a value that is not a Cholesky factor of a correlation matrix (numpyro's
    check: lower triangular, a positive diagonal, rows of unit length) gives NaN, so
    that a wrong initial value is an error rather than another matrix."""
    value = jnp.asarray(value, dtype=jnp.result_type(float))
    u = biject_to(constraint).inv(value)
    if constraint is constraints.corr_cholesky:
        valid = constraint(value)
        u = jnp.where(jnp.expand_dims(valid, -1), u, jnp.nan)
    return u


def to_constrained(constraint: Any, unconstrained: Any) -> Any:
    """The value satisfying ``constraint`` that the unconstrained array represents."""
    return biject_to(constraint)(jnp.asarray(unconstrained, dtype=jnp.result_type(float)))


def unconstrained_shape(constraint: Any, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape of the unconstrained representation of a parameter of ``shape``."""
    shape = tuple(int(d) for d in shape)
    rank = constraint.event_dim
    if len(shape) < rank:
        what = "a vector" if rank == 1 else "a matrix"
        raise ValueError(f"{_name(constraint)} needs a parameter that is {what}, got shape {format_shape(shape)}")
    if rank == 2 and shape[-1] != shape[-2]:
        raise ValueError(f"{_name(constraint)} needs square matrices, got shape {format_shape(shape)}")
    try:
        out = jax.eval_shape(biject_to(constraint).inv, jax.ShapeDtypeStruct(shape, jnp.float32))
    except Exception as error:  # rephrase whatever numpyro raised
        raise ValueError(f"{_name(constraint)} does not fit a parameter of shape {format_shape(shape)}: "
                         f"{first_line(error)}") from None
    return tuple(int(d) for d in out.shape)


def _name(constraint: Any) -> str:
    """The constraint as a user wrote it, for messages (``simplex``)."""
    for kind in ("simplex", "corr_cholesky", "lower_cholesky", "positive_definite"):
        if constraint is getattr(constraints, kind):
            return kind
    return repr(constraint)
