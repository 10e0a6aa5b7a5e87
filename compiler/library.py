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


@dataclass(frozen=True)
class LearnedParameter:
    """One array of a *learnable* function's parameters (a Flax or Equinox module
    passed as an extern): its name under the function's (``Dense_0.kernel``; the
    program's parameter is ``enc.Dense_0.kernel``), its type, and the name of the
    library initialiser that draws its initial value (the module's own init)."""

    name: str
    type: ArrayType
    initializer: str


class Function(Protocol):
    """A builtin deterministic function (``exp``, ``sum``, ``@``, ...).

    ``result_type`` receives the bound arguments: an :class:`ArrayType` for
    each array parameter (a tuple of them for a variadic one) and the Python
    value of each static one. It returns the result's ArrayType, or raises
    ``ValueError`` with a message about shapes. ``impl`` is the JAX code;
    only the backend calls it.

    A *learnable* function also has ``parameters``, a tuple of
    :class:`LearnedParameter` (a function without the attribute has none): the
    program reads each as a parameter named ``<function>.<name>`` and passes
    them, in order, after the call's own arguments, to its one variadic
    parameter. Its ``result_type`` and ``impl`` see them there.
    """

    name: str
    params: tuple[ParamSpec, ...]
    doc: str

    def result_type(self, bound: Mapping[str, Any]) -> ArrayType: ...

    def impl(self, **bound: Any) -> Any: ...


class Distribution(Protocol):
    """A distribution family (numpyro's), as the compiler sees it: one row of the
    library's table, which owns everything about the family.

    ``forms`` lists the accepted parameterisations, each a tuple of
    parameter names in positional order, the first being the default
    (``bernoulli``: ``("probs",)`` then ``("logits",)``). A call binds to the
    first form whose names fit its keywords. ``value_type`` gives the type of
    one draw given the argument types (batch shape from broadcasting plus
    event shape) or raises ``ValueError``. The evaluation methods (``build``,
    ``sample``, ``log_prob``, ``probs``) are for the backend and the
    estimators only. ``args`` are ArrayTypes at compile time, arrays (or the
    Python value of a literal) in the backend.
    """

    name: str
    forms: tuple[tuple[str, ...], ...]
    discrete: bool
    enumerable: bool            # finite support that can be listed (bernoulli, categorical, binomial)
    reparameterizable: bool     # has a pathwise (explicit or implicit) sampler
    default_estimator: str
    estimators: frozenset[str]  # every estimator sound for this distribution
    integer_params: frozenset[str]  # parameters kept integral (binomial's total_count); others are real
    weak_derivative: Any        # mvd's rule for this family, weak_derivative(site, x, k), or None
    doc: str

    # The type of one draw, or ValueError in words when the argument shapes do not fit.
    def value_type(self, form: tuple[str, ...], args: Sequence[ArrayType]) -> ArrayType: ...

    # Why an estimator is unsound for this family (for a diagnostic), or None when it is sound.
    def unsound_reason(self, estimator: str) -> str | None: ...

    # An error message when a literal argument is outside its parameter's domain, else None.
    def check_literal(self, form: tuple[str, ...], name: str, value: Any) -> str | None: ...

    # The number of support values (None: infinite); ValueError when not known statically.
    def support_size(self, form: tuple[str, ...], args: Sequence[Any]) -> int | None: ...

    # The finite support's values (int32 numpy array); ValueError when there is none.
    def support_values(self, form: tuple[str, ...], args: Sequence[Any]) -> Any: ...

    # The support at ``args`` (ArrayTypes for traced arguments, numbers for literals): an
    # object with ``kind``, ``lower``, ``upper``, ``depends`` (the parameters its bounds
    # read), ``words`` and ``within(other)`` (stdlib/supports.py). The automatic families
    # (auto.py) and the support-mismatch check (passes/addresses.py) use it.
    def support_of(self, form: tuple[str, ...], args: Sequence[Any]) -> Any: ...

    # The numpyro distribution (its pathwise sampler, event shape).
    def build(self, form: tuple[str, ...], args: Sequence[Any]) -> Any: ...

    # One draw (discrete draws int32).
    def sample(self, form: tuple[str, ...], args: Sequence[Any], key: Any) -> Any: ...

    # log density per batch element, with correct derivatives in every parameter.
    def log_prob(self, form: tuple[str, ...], args: Sequence[Any], value: Any) -> Any: ...

    # Probability of each support value on a last axis (batch + [K]), exact derivatives.
    def probs(self, form: tuple[str, ...], args: Sequence[Any]) -> Any: ...


class EstimatorSite(Protocol):
    """A random choice inside ``expect`` as an estimator rule sees it (the backend's
    ``Site``), at the distribution's dual arguments, broadcast over the enclosing
    plates: one batched choice of ``shape`` = plate axes + value shape.

    ``k`` below is the continuation, ``k(x, x_dot=None, score=None, shift=None) ->
    (ℓ, ℓ̇)``: the rest of the block run at the value x. A "separable" block is a sum
    over the choice's plate elements, ℓ = Σ_i c_i(x_i) + r; methods that need it
    return None otherwise, without running ``k``. Tangents are linear in the
    parameters' tangents; None is a zero tangent. (Like the ``ADEV`` class of
    probcomp/adev's ``Class.hs``: the operations a rule may build an estimator from.)
    """

    distribution: Distribution  # the family's row: support, probabilities, weak derivative
    form: tuple                 # the parameter names of its form (("total_count", "logits"))
    shape: tuple                # plate axes + the value's shape
    size: int                   # the number of elements, prod(shape)
    dtype: Any                  # the value's dtype
    baseline: tuple             # (b, ḃ) of reinforce(baseline=...), (None, None) without
    baseline_weight: Any        # ẇ of a running baseline's weight (added once per use), or None

    # A draw x ~ d(θ) at the primal parameters, without tangent; ``salt`` gives an independent one.
    def sample(self, salt: int = 0) -> Any: ...

    # A pathwise draw: (x, ẋ) with x = T(ε; θ), ẋ = ∂T/∂θ·θ̇.
    def rsample(self) -> tuple[Any, Any]: ...

    # The tangent of log d(x; θ) summed over the elements.
    def score(self, x: Any) -> Any: ...

    # The tangent of log d(x_i; θ) per independent element, flat.
    def element_scores(self, x: Any) -> Any: ...

    # The finite support's values (from the distribution's row).
    def support(self) -> Any: ...

    # (p, ṗ): the probability of each support value per element, shape + [V].
    def probs(self) -> tuple[Any, Any]: ...

    # A parameter (primal or tangent, over the plate axes) broadcast to each element.
    def per_element(self, a: Any) -> Any: ...

    # [(θ, θ̇)] of the named parameters.
    def args_dual(self, names: Sequence[str]) -> list[tuple[Any, Any]]: ...

    # (p, ṗ) of the success probability of a probs- or logits-form family.
    def probs_parameter(self) -> tuple[Any, Any]: ...

    # An independent PRNG key for a rule's own randomness.
    def key_for(self, salt: int) -> Any: ...

    # x with one element changed, per element and per new value (support values, shift, add, set_to).
    def alternatives(self, x: Any, values: Any = None, shift: Any = None, add: Any = None,
                     set_to: Any = None) -> Any: ...

    # Σ_i Σ_m coef[i, m]·ℓ(alternative i, m): M + 1 runs of k when separable, else every one.
    def contract_alternatives(self, k: Any, alts: Any, coef: Any) -> Any: ...

    # ℓ at every alternative, in full: [size, M] (size·M runs of k).
    def evaluate_alternatives(self, k: Any, alts: Any) -> Any: ...

    # (ℓ(y), ℓ̇(y) + Σ_i d_i·c_i(y_i)) for a flat direction d, in one run, when separable.
    def with_terms_along(self, k: Any, y: Any, direction: Any) -> tuple[Any, Any] | None: ...

    # (E[ℓ], ∂E[ℓ]) exactly over this choice's support, in V + 1 runs, when separable.
    def enumerate_separable(self, k: Any) -> tuple[Any, Any] | None: ...


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
    # The estimator registry, the one place estimator names are written: name -> rule
    # ``rule(site: EstimatorSite, k) -> (ℓ, ℓ̇)``, in the order messages list them.
    estimators: Mapping[str, Any]
    estimator_tail: frozenset[str]        # rules that call k once, last: usable in for loops
    constraints: Mapping[str, Any]        # name -> constraint factory (used by the backend)
    sources: Mapping[str, str]            # module name -> source text in the language (stdlib objectives)
