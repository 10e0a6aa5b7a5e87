"""Compile-time values of the lowering.

While lowering, a name is bound to one of:

- an IR atom (:class:`~ppl.compiler.ir.Var` or ``Lit``): a traced array or trace;
- a Python ``int``, ``float`` or ``bool``: a static value, folded at compile time;
- a Python ``tuple`` or ``dict`` of values: a tuple or record;
- a :class:`GenValue`: a generative function applied to its arguments, maybe
  conditioned on observations (static: the compiler specialises on it);
- a :class:`MarginalValue` or :class:`NormalizeValue`: a generative function
  made by ``marginal(q, keep=[…], particles=m)`` or ``normalize(p, q,
  particles=N)`` (compiler/combinators.py lowers their ``sim`` and ``density``);
- an :class:`AutoValue`: an automatic family of a target, ``auto_normal(p)``
  and the others (compiler/auto.py);
- a :class:`DistValue`: a distribution applied to its arguments;
- a :class:`Ref`: a declaration, library function or distribution not yet called.

    >>> GenValue("coin", (("n", 10),), (), ()).label()
    'coin(n=10)'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .diagnostics import Span
from .ir import Lit, Var
from .types import BOOL, INT, REAL, ArrayType, TraceType


@dataclass(frozen=True)
class GenValue:
    decl: str
    static: tuple[tuple[str, Any], ...]
    dynamic: tuple[tuple[str, Any], ...]          # name -> atom
    observations: tuple[tuple[str, Any], ...]     # address -> atom
    span: Span | None = field(default=None, compare=False)
    detached: bool = False  # detach(g): its parameters are held constant (no gradient)

    def label(self) -> str:
        inner = ", ".join(f"{k}={_label(v)}" for k, v in self.static)
        return f"{self.decl}({inner})"


def _label(v: Any) -> str:
    if isinstance(v, GENERATIVE):
        return v.label() + ("|obs" if v.observations else "")
    if isinstance(v, tuple):
        return "(" + ",".join(_label(x) for x in v) + ")"
    if isinstance(v, ArrayType):
        return repr(v)
    return repr(v)


@dataclass(frozen=True)
class MarginalValue:
    """``marginal(family, keep=[…], particles=m, proposal=r)``: ``family`` over its
    ``keep`` addresses, every other choice integrated out by importance sampling with
    ``particles`` inner particles drawn from ``proposal`` (a gen declaration called
    with the kept trace; None: ``family`` itself, its kept choices held), or summed
    out exactly (``exact``). ``observations``: kept addresses given as data."""

    family: Any  # a GenValue, MarginalValue or NormalizeValue
    keep: tuple[str, ...]
    particles: int = 1
    proposal: str | None = None
    exact: bool = False
    observations: tuple[tuple[str, Any], ...] = ()
    span: Span | None = field(default=None, compare=False)
    detached: bool = False  # detach(): the proposal's parameters are held too

    def label(self) -> str:
        how = "exact" if self.exact else f"m={self.particles}"
        via = f",proposal={self.proposal}" if self.proposal else ""
        return f"marginal({_label(self.family)},keep={list(self.keep)},{how}{via})"


@dataclass(frozen=True)
class NormalizeValue:
    """``normalize(target, family, particles=N)``: sampling-importance-resampling of
    ``target`` (an unnormalised density, usually ``model | obs``) with ``family`` as
    the proposal and ``particles`` particles, as a generative function."""

    target: Any
    family: Any
    particles: int
    span: Span | None = field(default=None, compare=False)

    def label(self) -> str:
        return f"normalize({_label(self.target)},{_label(self.family)},N={self.particles})"


@dataclass(frozen=True)
class AutoValue:
    """``auto_normal(target)`` and the other automatic families (compiler/auto.py):
    a family over ``target``'s latent choices, built from its trace type, with its own
    parameters. ``kind``: ``normal``, ``delta``, ``mvn``, ``lowrank`` or ``iaf``;
    ``options``: its keywords (``(("rank", 2),)``)."""

    target: Any  # a GenValue, usually conditioned
    kind: str
    options: tuple[tuple[str, Any], ...] = ()
    span: Span | None = field(default=None, compare=False)
    detached: bool = False  # detach(): its parameters are held
    # For a marginal target (marginal(g, keep=[…]) | obs): the kept addresses not observed,
    # the only ones the family draws (``target`` is then g). None: every latent of target.
    latents: tuple[str, ...] | None = None

    observations = ()  # an automatic family is not conditioned

    def label(self) -> str:
        opts = "".join(f",{k}={v}" for k, v in self.options)
        return f"auto_{self.kind}({_label(self.target)}{opts})"


# Every value that is a generative function: what sim, density and a `gen` argument accept.
GENERATIVE = (GenValue, MarginalValue, NormalizeValue, AutoValue)


def is_generative(v: Any) -> bool:
    return isinstance(v, GENERATIVE)


@dataclass(frozen=True)
class DistValue:
    name: str
    form: tuple[str, ...]
    args: tuple[Any, ...]       # atoms (or static scalars) in form order
    value_type: ArrayType
    span: Span | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Ref:
    """An uncalled name: kind is gen, fn, objective, function, distribution,
    initializer or builtin."""

    kind: str
    name: str


def is_static_number(v: Any) -> bool:
    return isinstance(v, (bool, int, float)) and not isinstance(v, Var)


def literal(v: bool | int | float) -> Lit:
    if isinstance(v, bool):
        return Lit(v, BOOL)
    if isinstance(v, int):
        return Lit(v, INT)
    return Lit(float(v), REAL)


def type_of(v: Any) -> ArrayType | TraceType | None:
    if isinstance(v, (Var, Lit)):
        return v.type
    if is_static_number(v):
        return literal(v).type
    return None


def describe(v: Any) -> str:
    """A user-facing phrase for the kind of a value ("a generative function")."""
    if isinstance(v, (Var, Lit)):
        t = v.type
        return "a trace" if isinstance(t, TraceType) else f"an array of type {t!r}"
    if isinstance(v, bool):
        return "a bool"
    if isinstance(v, int):
        return "an int"
    if isinstance(v, float):
        return "a real number"
    if isinstance(v, tuple):
        return "a tuple"
    if isinstance(v, dict):
        return "a record"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, GenValue):
        return f"the generative function {v.decl}"
    if isinstance(v, MarginalValue):
        return "a marginal() generative function"
    if isinstance(v, NormalizeValue):
        return "a normalize() generative function"
    if isinstance(v, AutoValue):
        return f"the automatic family auto_{v.kind}()"
    if isinstance(v, DistValue):
        return f"the distribution {v.name}"
    if isinstance(v, Ref):
        return {"gen": "the generative function", "fn": "the function", "objective": "the objective",
                "function": "the builtin function", "distribution": "the distribution",
                "initializer": "the initialiser", "builtin": "the builtin"}[v.kind] + f" {v.name}"
    return type(v).__name__
