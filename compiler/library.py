"""The protocols through which the compiler reaches a library.

The compiler never imports ``ppl.stdlib``: distributions, builtin functions,
parameter initialisers and gradient estimators arrive as a :class:`Library`
argument. Compiler tests can pass a tiny fake library; ``ppl`` passes the
standard one.

A function or distribution declares its parameters as :class:`ParamSpec` s.
A *static* parameter must be a compile-time Python value (a size, an axis);
the others are arrays traced by JAX. :func:`bind_arguments` matches a call's
positional and keyword arguments to those specs, the way Python does, and
reports what does not fit in words a user reads::

    >>> specs = (ParamSpec("x"), ParamSpec("axis", static=True, default=None))
    >>> bind_arguments("sum", specs, ["v"], {})
    {'x': 'v', 'axis': None}
    >>> bind_arguments("sum", specs, [], {})
    Traceback (most recent call last):
    ...
    ValueError: sum() is missing its argument 'x'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Protocol, Sequence

from .types import ArrayType

REQUIRED = object()


@dataclass(frozen=True)
class ParamSpec:
    name: str
    static: bool = False
    default: Any = REQUIRED
    variadic: bool = False  # collects the remaining positional arguments (a tuple)


def bind_arguments(fname: str, specs: Sequence[ParamSpec], args: Sequence[Any],
                   kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Match arguments to specs; raise ``ValueError`` with a readable message."""
    bound: dict[str, Any] = {}
    positional = list(args)
    for spec in specs:
        if spec.variadic:
            bound[spec.name] = tuple(positional)
            positional = []
        elif positional:
            bound[spec.name] = positional.pop(0)
    if positional:
        n = sum(1 for s in specs if not s.variadic)
        raise ValueError(f"{fname}() takes {n} positional argument{'s' if n != 1 else ''} "
                         f"but {len(args)} were given")
    names = {s.name for s in specs}
    for key, value in kwargs.items():
        if key not in names:
            allowed = ", ".join(repr(s.name) for s in specs if not s.variadic)
            raise ValueError(f"{fname}() has no keyword '{key}' (it takes {allowed or 'none'})")
        if key in bound:
            raise ValueError(f"{fname}() got argument '{key}' twice")
        bound[key] = value
    for spec in specs:
        if spec.name not in bound:
            if spec.default is REQUIRED:
                raise ValueError(f"{fname}() is missing its argument '{spec.name}'")
            bound[spec.name] = spec.default
    return bound


class Function(Protocol):
    """A builtin deterministic function (``exp``, ``sum``, ``@``, ...).

    ``result_type`` receives the bound arguments: an :class:`ArrayType` for
    each array parameter (a tuple of them for a variadic one) and the Python
    value of each static one. It returns the result's ArrayType, or raises
    ``ValueError`` with a message about shapes. ``impl`` is the JAX code;
    only the backend calls it.
    """

    name: str
    params: tuple[ParamSpec, ...]
    doc: str

    def result_type(self, bound: Mapping[str, Any]) -> ArrayType: ...

    def impl(self, **bound: Any) -> Any: ...


class Distribution(Protocol):
    """A distribution family (numpyro's), as the compiler sees it.

    ``forms`` lists the accepted parameterisations, each a tuple of
    parameter names in positional order, the first being the default
    (``bernoulli``: ``("probs",)`` then ``("logits",)``). A call binds to the
    first form whose names fit its keywords. ``value_type`` gives the type of
    one draw given the argument types (batch shape from broadcasting plus
    event shape) or raises ``ValueError``. ``build`` returns the numpyro
    distribution; only the backend and estimators call it.
    """

    name: str
    forms: tuple[tuple[str, ...], ...]
    discrete: bool
    enumerable: bool            # finite support that can be listed (bernoulli, categorical, binomial)
    reparameterizable: bool     # has a pathwise (explicit or implicit) sampler
    default_estimator: str
    estimators: frozenset[str]  # every estimator sound for this distribution
    doc: str

    def value_type(self, form: tuple[str, ...], args: Sequence[ArrayType]) -> ArrayType: ...

    def build(self, form: tuple[str, ...], args: Sequence[Any]) -> Any: ...


class Initializer(Protocol):
    """A parameter initialiser (``zeros()``, ``normal_init(0.01)``, ``glorot()``).

    ``params`` are static; ``impl(key, shape, dtype, **bound)`` returns an array.
    """

    name: str
    params: tuple[ParamSpec, ...]
    doc: str

    def impl(self, key: Any, shape: tuple[int, ...], dtype: str, **bound: Any) -> Any: ...


class Library(Protocol):
    functions: Mapping[str, Function]
    distributions: Mapping[str, Distribution]
    initializers: Mapping[str, Initializer]
    estimators: Mapping[str, Any]         # name -> estimator rule (used by the backend)
    constraints: Mapping[str, Any]        # name -> constraint factory (used by the backend)
    sources: Mapping[str, str]            # module name -> source text in the language (stdlib objectives)
