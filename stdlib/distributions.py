"""The distributions a program can draw from: one row per family, backed by numpyro.

Each entry of :data:`DISTRIBUTIONS` is one row, and the row owns everything
the compiler and the estimators need to know about its family:

- a name users know (``normal``, ``bernoulli``) and its parameterisations
  (``forms``, each a tuple of parameter names in positional order, the first
  being the default);
- each parameter's domain (``domains``: ``positive``, ``unit``, ``simplex``,
  ``count``, ...), from which :meth:`~NumpyroDistribution.check_literal`
  rejects a literal argument outside it and ``integer_params`` keeps a
  ``count`` integral;
- the finite support, when there is one (``support_values``), and the
  probability of each of its values (``probs``);
- the log density (``log_prob``), written here for the families whose
  numpyro formula has a wrong derivative somewhere (see below);
- the weak derivative that ``mvd`` uses (``weak_derivative``, from
  ``estimators.py``), and so which gradient estimators are sound
  (``estimators``, with :meth:`~NumpyroDistribution.unsound_reason` saying
  why one is not): ``reparam`` where numpyro's sampler is pathwise (not
  ``von_mises``, whose sampler is a rejection sampler), ``reinforce`` where
  the support does not move with the parameters (not ``uniform``, ``pareto``,
  ``truncated_normal``, ``delta``), ``enum`` for a finite support of scalar
  values (``bernoulli``, ``categorical``, and ``binomial`` and
  ``beta_binomial`` with a literal ``total_count``; not ``multinomial``,
  whose values are count vectors), ``mvd`` where a weak derivative is written;
- the parameters that must be known when compiling (``static``: a walk's
  ``num_steps`` and an LKJ ``dimension`` fix the value's shape; numpyro's
  multinomial sampler needs its ``total_count``), reported with a caret when
  traced.

Samplers and the continuous log densities are numpyro's. numpyro's discrete
log-probabilities are not used, because their derivatives are conventions
at boundary points: the logits forms compute ``max(l, 0) + log1p(exp(-|l|))``
(``jax.grad`` at ``l = 0`` gives 0 for the ``max`` and ``abs`` terms, not
1/2), the probs forms clamp ``p`` to ``[eps, 1 - eps]`` (a zero derivative
below ``eps``), and ``xlogy(0, p)`` has a NaN derivative at ``p = 0``. The
formulas here (``x·l − softplus(l)``, a log taken after the value is
gathered, ``0·log p`` as an exact 0) have the right derivatives everywhere
(tests/stdlib/test_gradients.py checks every family and form against
finite differences in float64).

``categorical(probs=p)`` is the categorical of ``p / sum(p)``: numpyro's
sampler normalises ``p`` (it samples from ``log p``), so the log density and
the enumerated probabilities normalise too, and every estimator agrees
(``multinomial(n, probs=p)`` likewise). A literal ``p`` that does not sum to
1 is an error (``check_literal``). The two-sided ``truncated_normal``'s log
density is numpyro's, of the mirror image when the interval lies above
``loc`` (numpyro's normaliser loses its digits there).

Invariants:

- ``value_type`` is computed by ``jax.eval_shape`` of :meth:`NumpyroDistribution.sample`,
  so the type the compiler sees is, by construction, the type the backend gets;
- draws from a discrete distribution are ``int32`` (numpyro's geometric gives
  floats; :meth:`~NumpyroDistribution.sample` casts), continuous draws the default float;
- real parameters given as integers are promoted to floats before numpyro sees
  them; ``count`` parameters (``binomial``'s ``total_count``) are kept integral;
- enumeration (``enumerate_support``) gives numpyro's unexpanded support, of
  shape ``[K, 1, ..., 1]`` (one axis per batch dimension): ``binomial`` needs a
  ``total_count`` given as a Python integer (a literal) to be enumerable.

    >>> from ppl.compiler.types import ArrayType
    >>> normal = DISTRIBUTIONS["normal"]
    >>> normal.value_type(("loc", "scale"), [ArrayType("float32", (3,)), 1.0])
    real[3]
    >>> DISTRIBUTIONS["bernoulli"].value_type(("logits",), [ArrayType("float32", (2, 5))])
    int[2, 5]
    >>> normal.value_type(("loc", "scale"), [ArrayType("float32", (3,)), ArrayType("float32", (4,))])
    Traceback (most recent call last):
    ...
    ValueError: normal(loc, scale): loc has shape [3] and scale has shape [4], which do not broadcast
    >>> normal.check_literal(("loc", "scale"), "scale", 0.0)
    'the scale of normal must be positive, but it is 0.0'
    >>> DISTRIBUTIONS["binomial"].integer_params
    frozenset({'total_count'})
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from jax.scipy.special import gammaln

from ..compiler.types import ArrayType
from .abstract import abstract_type, as_real, describe_shapes, first_line, format_shape, shape_of
from .special import softplus
from .estimators import (ESTIMATORS, binomial_weak_derivative, finite_support_weak_derivative,
                         geometric_weak_derivative, negative_binomial_weak_derivative,
                         normal_weak_derivative, poisson_weak_derivative,
                         zero_inflated_poisson_weak_derivative)

# Tolerance of a literal probability vector's sum (float32 literals such as [0.1, 0.2, 0.7]
# sum to 1 only to rounding).
SIMPLEX_TOLERANCE = 1e-5


class SupportNotStatic(ValueError):
    """A finite support whose size is not known when the program is compiled.

    ``needs`` completes "enumerating the binomial at address 'x' needs ...";
    ``help`` says what to write instead.
    """

    def __init__(self, name: str, needs: str, help: str):
        super().__init__(f"{name}: enumerating its values needs {needs}")
        self.needs = needs
        self.help = help


# -------------------------------------------------------------- parameter domains
# Each domain: (what a value must be, in words; a test on a literal's numpy array).


def _is_finite(a):
    return bool(np.all(np.isfinite(a)))


def _lower_cholesky(a):
    return (a.ndim >= 2 and _is_finite(a) and np.allclose(a, np.tril(a))
            and bool(np.all(np.diagonal(a, axis1=-2, axis2=-1) > 0)))


def _positive_definite(a):
    if a.ndim < 2 or not _is_finite(a) or not np.allclose(a, np.swapaxes(a, -1, -2)):
        return False
    return bool(np.all(np.linalg.eigvalsh(a) > 0))


def _count(a):
    return a.dtype.kind != "b" and _is_finite(a) and bool(np.all((a >= 0) & (a == np.round(a))))


def _simplex(a):
    return (a.ndim >= 1 and _is_finite(a) and bool(np.all(a >= 0))
            and bool(np.all(np.abs(a.sum(-1) - 1) <= SIMPLEX_TOLERANCE)))


def _at_least(low):
    return lambda a: a.dtype.kind != "b" and _count(a) and bool(np.all(a >= low))


DOMAINS: dict[str, tuple[str, Callable[[np.ndarray], bool]]] = {
    "real": ("a finite number", _is_finite),
    "positive": ("positive", lambda a: _is_finite(a) and bool(np.all(a > 0))),
    "unit": ("a probability, in [0, 1]", lambda a: bool(np.all((a >= 0) & (a <= 1)))),
    "success": ("a probability in (0, 1]", lambda a: bool(np.all((a > 0) & (a <= 1)))),
    "below_one": ("a probability in [0, 1)", lambda a: bool(np.all((a >= 0) & (a < 1)))),
    "simplex": ("a probability vector: non-negative, summing to 1", _simplex),
    "count": ("a non-negative integer", _count),
    "size": ("a positive integer", _at_least(1)),
    "dimension": ("an integer of at least 2", _at_least(2)),
    "lower_cholesky": ("lower triangular with a positive diagonal", _lower_cholesky),
    "positive_definite": ("symmetric positive definite", _positive_definite),
}
# Domains of integers: such a parameter is kept integral (``integer_params``).
INTEGER_DOMAINS = frozenset({"count", "size", "dimension"})


@dataclass(frozen=True)
class NumpyroDistribution:
    """A distribution family: one row of the table, backed by a numpyro class.

    ``family(**{param: value})`` builds the numpyro distribution for any form.
    ``domains`` names each parameter's domain (a key of :data:`DOMAINS`).
    ``support``, for a finite family, gives the number of values from the
    bound arguments (ArrayTypes or literals); ``ranks`` gives the number of
    trailing (event) dimensions a parameter must have (``mvnormal``'s
    ``scale_tril``: 2); parameters not listed are elementwise.
    ``vector_value`` says the value is a vector even when every parameter is
    elementwise (``mvnormal_diag``). ``log_densities`` and ``pmfs`` hold, per
    form, the formulas used instead of numpyro's (``log_density(value,
    **params)``; ``pmf(**params)``, the probability of each support value on a
    last axis). ``weak_derivative(site, x, k)`` is the measure-valued
    derivative's extra tangent (``estimators.mvd``). ``moving_support``: the
    support moves with the parameters, so the score function misses boundary
    terms and REINFORCE is biased. ``static`` names the parameters that must be
    known when the program is compiled, because they fix the value's shape
    (``gaussian_random_walk``'s ``num_steps``, ``lkj_cholesky``'s ``dimension``)
    or the sampler needs them (``multinomial``'s ``total_count``). ``ordered``:
    two parameters whose literal values must satisfy ``first < second``
    (``truncated_normal``'s ``low`` and ``high``). ``unsound`` gives the reason
    for an estimator that the general rules of :meth:`unsound_reason` would
    allow or explain wrongly (``multinomial``'s vector values cannot be enumerated).
    ``unchecked``: numpyro's support check is skipped. It is a select of −inf on every
    element, and again in the gradient (a third of a mixture's step); the rows so marked
    live on the whole real line and their formulas are −inf at ±inf without it (NaN
    stays NaN). Not ``logistic`` (NaN at −inf) or ``mvnormal`` (NaN at ±inf).
    """

    name: str
    forms: tuple[tuple[str, ...], ...]
    family: Callable[..., Any]
    discrete: bool
    reparameterizable: bool
    default_estimator: str
    doc: str
    domains: Mapping[str, str]
    ranks: Mapping[str, int] = field(default_factory=dict)
    vector_value: bool = False
    support: Callable[[Mapping[str, Any]], int] | None = None
    log_densities: Mapping[tuple[str, ...], Callable[..., Any]] = field(default_factory=dict)
    pmfs: Mapping[tuple[str, ...], Callable[..., Any]] = field(default_factory=dict)
    weak_derivative: Callable[..., Any] | None = None
    moving_support: bool = False
    static: frozenset[str] = frozenset()
    ordered: tuple[str, str] | None = None
    unsound: Mapping[str, str] = field(default_factory=dict)
    unchecked: bool = False

    # -- what the row implies ------------------------------------------------

    @property
    def enumerable(self) -> bool:
        """Finite support that can be listed (bernoulli, categorical, binomial)."""
        return self.support is not None

    @property
    def integer_params(self) -> frozenset[str]:
        """Parameters kept integral (``binomial``'s ``total_count``); the others are real."""
        return frozenset(n for n, d in self.domains.items() if d in INTEGER_DOMAINS)

    @property
    def estimators(self) -> frozenset[str]:
        """Every gradient estimator sound for this family (see :meth:`unsound_reason`)."""
        return frozenset(e for e in ESTIMATORS if self.unsound_reason(e) is None)

    def unsound_reason(self, estimator: str) -> str | None:
        """Why ``estimator`` is unsound for this family, or None when it is sound."""
        name = self.name
        if estimator in self.unsound:
            return self.unsound[estimator]
        if estimator == "reparam" and not self.reparameterizable:
            return (f"{name} is discrete, so it has no reparameterisation" if self.discrete
                    else f"{name} has no pathwise sampler")
        if estimator == "enum" and not self.enumerable:
            return f"{name} has no finite support to enumerate"
        if estimator == "mvd" and self.weak_derivative is None:
            return f"measure-valued derivatives are not implemented for {name}"
        if estimator == "reinforce" and self.moving_support:
            return (f"the support of {name} moves with its parameters, which the score "
                    "function does not see, so REINFORCE would be biased")
        if estimator not in ESTIMATORS:
            return f"there is no estimator named {estimator!r}"
        return None

    # -- evaluation ----------------------------------------------------------

    def params_of(self, form: tuple[str, ...], args: Sequence[Any]) -> dict[str, Any]:
        """The arguments by name, as numpyro takes them: reals as floats, counts integral."""
        self._check_form(form, args)
        return {name: _as_integer(value) if name in self.integer_params else as_real(value)
                for name, value in zip(form, args)}

    def build(self, form: tuple[str, ...], args: Sequence[Any]) -> Any:
        """The numpyro distribution for the arguments ``args`` of ``form``."""
        return self.family(**self.params_of(form, args))

    def sample(self, form: tuple[str, ...], args: Sequence[Any], key: Any, sample_shape=()) -> Any:
        """One draw (or ``sample_shape`` draws); discrete values are cast to ``int32``."""
        value = self.build(form, args).sample(key, tuple(sample_shape))
        return value.astype(jnp.int32) if self.discrete else value

    def log_prob(self, form: tuple[str, ...], args: Sequence[Any], value: Any) -> Any:
        """The log density of ``value``, per batch element (not summed), with correct
        derivatives in every parameter (this module's formula where numpyro's has not)."""
        formula = self.log_densities.get(tuple(form))
        if formula is None:
            if self.unchecked:  # (see the class's doc)
                return self.family(**self.params_of(form, args), validate_args=False).log_prob(value)
            return self.build(form, args).log_prob(value)
        return formula(jnp.asarray(value), **self.params_of(form, args))

    def value_type(self, form: tuple[str, ...], args: Sequence[Any]) -> ArrayType:
        """The type of one draw, or ``ValueError`` when the argument shapes do not fit."""
        self._check_form(form, args)
        self._check_static(form, args)
        self._check_shapes(form, args)
        try:
            return abstract_type(lambda *a: self.sample(form, a, jax.random.PRNGKey(0)), list(args))
        except Exception as error:  # numpyro and JAX raise several kinds; rephrase them all
            raise ValueError(f"{self._signature(form)}: {describe_shapes(form, args)}, "
                             f"which do not fit: {first_line(error)}") from None

    def support_of(self, form: tuple[str, ...], args: Sequence[Any]) -> Any:
        """The support at ``args`` (ArrayTypes or literals), for the compiler: its kind,
        bounds, the parameters they read and its words (see supports.py)."""
        from .supports import support_of

        return support_of(self, tuple(form), args)

    # -- finite supports -----------------------------------------------------

    def support_size(self, form: tuple[str, ...], args: Sequence[Any]) -> int | None:
        """How many values an enumerable draw can take, or ``None`` if not enumerable.

        Raises :class:`SupportNotStatic` (a ``ValueError``) when the family is
        finite but the size is not known at compile time (a ``binomial`` whose
        ``total_count`` is traced). ``args`` are ArrayTypes, arrays or literals.
        """
        if self.support is None:
            return None
        self._check_form(form, args)
        return self.support(self.name, dict(zip(form, args)))

    def support_values(self, form: tuple[str, ...], args: Sequence[Any]) -> np.ndarray:
        """The finite support, ``0, ..., K - 1``, as ``int32`` (``ValueError`` if there is none)."""
        size = self.support_size(form, args)
        if size is None:
            raise ValueError(f"{self.name} has no finite support")
        return np.arange(size, dtype=np.int32)

    def probs(self, form: tuple[str, ...], args: Sequence[Any]) -> Any:
        """The probability of each support value, on a last axis: shape batch + [K].

        Exact where it can be ([1 − p, p], p / Σp, softmax, sigmoid), so its
        derivative is right at every point, boundaries included (``binomial`` at
        ``p = 0``: its derivative is n·(b_{n−1}(k − 1) − b_{n−1}(k))).
        """
        size = self.support_size(form, args)
        if size is None:
            raise ValueError(f"{self.name} has no finite support")
        pmf = self.pmfs.get(tuple(form))
        params = self.params_of(form, args)
        if pmf is not None:
            return pmf(**params)
        values = jnp.arange(size, dtype=jnp.int32)
        return jax.vmap(lambda v: jnp.exp(self.log_prob(form, args, v)), out_axes=-1)(values)

    def enumerate_support(self, form: tuple[str, ...], args: Sequence[Any]) -> Any:
        """Every value, as numpyro's ``enumerate_support(expand=False)``: shape ``[K, 1, ..., 1]``."""
        values = self.support_values(form, args)  # raises if the support is not known statically
        batch = self.build(form, args).batch_shape
        return jnp.asarray(values.reshape((-1,) + (1,) * len(batch)))

    # -- checks --------------------------------------------------------------

    def check_literal(self, form: tuple[str, ...], name: str, value: Any) -> str | None:
        """An error message when the literal ``value`` of parameter ``name`` is outside
        its domain (a scale of 0, probs outside [0, 1] or not summing to 1, a
        fractional total_count); None when it is inside.

            >>> DISTRIBUTIONS["bernoulli"].check_literal(("probs",), "probs", 0.3) is None
            True
        """
        domain = self.domains.get(name)
        if domain is None or name not in form:
            return None
        words, inside = DOMAINS[domain]
        try:
            array = np.asarray(value)
        except Exception:  # not a number: the type checker reports it
            return None
        if array.dtype.kind not in "biuf":
            return None
        if domain != "count" and array.dtype.kind == "b":
            array = array.astype(np.float64)
        if inside(array if domain == "count" else array.astype(np.float64)):
            return None
        shown = value if np.ndim(value) == 0 else np.asarray(value).tolist()
        extra = ""
        if domain == "simplex" and np.all(array >= 0):
            extra = f" (it sums to {float(np.asarray(array, np.float64).sum(-1).max()):.6g})"
        return f"the {name} of {self.name} must be {words}, but it is {shown}{extra}"

    def _signature(self, form: tuple[str, ...]) -> str:
        return f"{self.name}({', '.join(form)})"

    def _check_form(self, form: tuple[str, ...], args: Sequence[Any]) -> None:
        if tuple(form) not in self.forms:
            known = "; ".join(f"({', '.join(f)})" for f in self.forms)
            raise ValueError(f"{self.name} has no form ({', '.join(form)}); its forms are {known}")
        if len(args) != len(form):
            raise ValueError(f"{self._signature(form)} takes {len(form)} arguments, got {len(args)}")

    def _check_static(self, form: tuple[str, ...], args: Sequence[Any]) -> None:
        """Static parameters are numbers (not traced), and ``ordered`` literals are ordered."""
        for name, value in zip(form, args):
            if name in self.static and not isinstance(value, (int, float, np.integer, np.floating)):
                raise ValueError(f"{self._signature(form)}: {name} must be an int known when the "
                                 "program is compiled (a literal or an int argument), but it is traced")
        bound = dict(zip(form, args))
        if self.ordered and all(n in bound for n in self.ordered):
            low, high = (bound[n] for n in self.ordered)
            if isinstance(low, (int, float)) and isinstance(high, (int, float)) and not low < high:
                raise ValueError(f"{self._signature(form)}: {self.ordered[0]} must be below "
                                 f"{self.ordered[1]}, but they are {low} and {high}")

    def _check_shapes(self, form: tuple[str, ...], args: Sequence[Any]) -> None:
        """Explain, before tracing, the shape errors users make most."""
        shapes = [shape_of(a) for a in args]
        batches, events = [], []
        for name, shape in zip(form, shapes):
            rank = self.ranks.get(name, 0)
            if len(shape) < rank:
                what = "a vector" if rank == 1 else "a matrix"
                raise ValueError(f"{self._signature(form)}: {name} must be {what} (or a batch of them), "
                                 f"but has shape {format_shape(shape)}")
            batches.append(shape[:len(shape) - rank])
            events.extend(shape[len(shape) - rank:])
        try:
            batch = np.broadcast_shapes(*batches)
        except ValueError:
            which = "whose batch shapes do not broadcast" if self.ranks else "which do not broadcast"
            raise ValueError(f"{self._signature(form)}: {describe_shapes(form, args)}, {which}") from None
        if len(set(events)) > 1:
            raise ValueError(f"{self._signature(form)}: {describe_shapes(form, args)}, "
                             f"whose event sizes differ ({' and '.join(map(str, sorted(set(events))))})")
        if self.vector_value and len(batch) == 0:
            raise ValueError(f"{self._signature(form)}: the value is a vector, so some argument must "
                             f"have at least one dimension, but {describe_shapes(form, args)}")


def _as_integer(value: Any) -> Any:
    """``value`` kept integral; a Python int stays concrete (enumeration needs it)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return int(value)
    value = jnp.asarray(value)
    return value if jnp.issubdtype(value.dtype, jnp.integer) else value.astype(jnp.int32)


def _row(name, forms, family, doc, *, default, domains, discrete=False, pathwise=None, support=None,
         ranks=None, vector_value=False, log_densities=None, pmfs=None, weak_derivative=None,
         moving_support=False, static=(), ordered=None, unsound=None,
         unchecked=False) -> NumpyroDistribution:
    # A continuous family has a pathwise sampler (implicit for gamma, beta, dirichlet) unless
    # ``pathwise=False`` says otherwise (von_mises: numpyro's sampler is a rejection sampler).
    split = lambda fs: {tuple(f.split()): v for f, v in (fs or {}).items()}  # noqa: E731
    row = NumpyroDistribution(
        name=name, forms=tuple(tuple(f.split()) for f in forms), family=family, discrete=discrete,
        reparameterizable=not discrete if pathwise is None else pathwise, default_estimator=default,
        doc=doc, domains=dict(domains), ranks=dict(ranks or {}), vector_value=vector_value,
        support=support, log_densities=split(log_densities), pmfs=split(pmfs),
        weak_derivative=weak_derivative, moving_support=moving_support, static=frozenset(static),
        unchecked=unchecked,
        ordered=ordered, unsound=dict(unsound or {}))
    assert set(row.domains) == {p for f in row.forms for p in f}, name
    assert default in row.estimators, name
    return row


# -------------------------------------------------------------- finite supports


def _two_values(name: str, bound: Mapping[str, Any]) -> int:
    return 2


def _categories(name: str, bound: Mapping[str, Any]) -> int:
    (probabilities,) = bound.values()  # probs or logits: the last axis lists the categories
    return shape_of(probabilities)[-1]


def _trials(name: str, bound: Mapping[str, Any]) -> int:
    """0 .. total_count (binomial, beta_binomial), for a count known when compiling."""
    count = bound["total_count"]
    if isinstance(count, (float, np.floating)) and float(count).is_integer() and count >= 0:
        count = int(count)  # binomial(3.0, p): a count written as a float
    if isinstance(count, (int, np.integer)) and not isinstance(count, bool):
        return int(count) + 1
    raise SupportNotStatic(name, "its total_count to be a number written in the program, "
                           "to know its support",
                           "write the count as a literal (binomial(10, p)), or use reinforce")


# -------------------------------------------------------------- log densities with exact derivatives
# x·log y and x·log1p(y) with 0·log 0 = 0 exactly: the log is taken of a safe argument where
# x = 0, so that neither the value nor (forward or reverse) its derivative is NaN.


def _xlogy(x, y):
    zero = x == 0
    return jnp.where(zero, 0.0, x * jnp.log(jnp.where(zero, 1.0, y)))


def _xlog1py(x, y):
    zero = x == 0
    return jnp.where(zero, 0.0, x * jnp.log1p(jnp.where(zero, 0.0, y)))


def _in_support(x, logp, low, high=None):
    """``logp`` where ``low <= x (<= high)``, −inf elsewhere (out-of-support values)."""
    inside = x >= low if high is None else (x >= low) & (x <= high)
    return jnp.where(inside, logp, -jnp.inf)


def _log_choose(n, k):
    n = jnp.asarray(n, jnp.result_type(float))
    return gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)


def _bernoulli_probs(x, probs):
    x = x.astype(probs.dtype)
    return _in_support(x, _xlogy(x, probs) + _xlog1py(1 - x, -probs), 0, 1)


def _bernoulli_logits(x, logits):
    x = x.astype(logits.dtype)
    return _in_support(x, x * logits - softplus(logits), 0, 1)


def _binomial_probs(x, total_count, probs):
    x = x.astype(probs.dtype)
    n = jnp.asarray(total_count, probs.dtype)
    logp = _log_choose(n, x) + _xlogy(x, probs) + _xlog1py(n - x, -probs)
    return _in_support(x, logp, 0, n)


def _binomial_logits(x, total_count, logits):
    x = x.astype(logits.dtype)
    n = jnp.asarray(total_count, logits.dtype)
    logp = _log_choose(n, x) + x * logits - n * softplus(logits)
    return _in_support(x, logp, 0, n)


def _gather_last(table, x):
    """``table[..., x]`` with ``x`` broadcast against the batch axes of ``table``;
    out-of-range ``x`` gives −inf."""
    k = table.shape[-1]
    batch = jnp.broadcast_shapes(jnp.shape(x), table.shape[:-1])
    x = jnp.broadcast_to(x, batch).astype(jnp.int32)
    table = jnp.broadcast_to(table, batch + (k,))
    picked = jnp.take_along_axis(table, jnp.clip(x, 0, k - 1)[..., None], axis=-1)[..., 0]
    return picked, (x >= 0) & (x < k)


def _categorical_probs(x, probs):
    # Gather first, then the log: the log of an unchosen zero probability never enters.
    picked, inside = _gather_last(probs, x)
    logp = jnp.log(jnp.where(inside, picked, 1.0)) - jnp.log(jnp.sum(probs, -1))
    return jnp.where(inside, logp, -jnp.inf)


def _categorical_logits(x, logits):
    picked, inside = _gather_last(logits, x)
    return jnp.where(inside, picked - jax.scipy.special.logsumexp(logits, -1), -jnp.inf)


def _geometric_probs(x, probs):
    x = x.astype(probs.dtype)
    return _in_support(x, _xlog1py(x, -probs) + jnp.log(probs), 0)


def _geometric_logits(x, logits):
    x = x.astype(logits.dtype)
    return _in_support(x, logits - (x + 1) * softplus(logits), 0)


def _poisson(x, rate):
    x = x.astype(rate.dtype)
    return _in_support(x, _xlogy(x, rate) - rate - gammaln(x + 1), 0)


def _negative_binomial_probs(x, total_count, probs):
    # numpyro's GammaPoisson(r, 1/p − 1) marginal: C(x + r − 1, x)·p^x·(1 − p)^r
    x = x.astype(probs.dtype)
    log_choose = gammaln(x + total_count) - gammaln(total_count) - gammaln(x + 1)
    return _in_support(x, log_choose + _xlogy(x, probs) + total_count * jnp.log1p(-probs), 0)


def _negative_binomial_logits(x, total_count, logits):
    x = x.astype(logits.dtype)
    log_choose = gammaln(x + total_count) - gammaln(total_count) - gammaln(x + 1)
    return _in_support(x, log_choose + x * logits - (x + total_count) * softplus(logits), 0)


def _zero_inflated_poisson(x, gate, rate):
    # 0 with probability gate, else a poisson(rate). The log1p(−gate) of the x > 0 branch is
    # taken at a safe gate where x = 0, so that its derivative at gate = 1 is not NaN there.
    x = x.astype(rate.dtype)
    zero = x == 0
    at_zero = jnp.log(gate + (1 - gate) * jnp.exp(-rate))
    above = jnp.log1p(-jnp.where(zero, 0.0, gate)) + _xlogy(x, rate) - rate - gammaln(x + 1)
    return _in_support(x, jnp.where(zero, at_zero, above), 0)


def _zero_inflated_poisson_family(rate, gate=None, gate_logits=None):
    # numpyro's ZeroInflatedPoisson takes a gate only; its gate_logits form is the general
    # ZeroInflatedDistribution's, over a Poisson
    if gate_logits is not None:
        return dist.ZeroInflatedDistribution(dist.Poisson(rate), gate_logits=gate_logits)
    return dist.ZeroInflatedPoisson(gate, rate)


def _zero_inflated_poisson_logits(x, gate_logits, rate):
    # gate = sigmoid(gate_logits): log gate = −softplus(−l) and log(1 − gate) = −softplus(l),
    # exact for any logit (no log of a gate rounded to 0 or 1)
    x = x.astype(rate.dtype)
    zero = x == 0
    at_zero = jnp.logaddexp(-softplus(-gate_logits), -softplus(gate_logits) - rate)
    above = -softplus(gate_logits) + _xlogy(x, rate) - rate - gammaln(x + 1)
    return _in_support(x, jnp.where(zero, at_zero, above), 0)


def _beta_binomial(x, concentration1, concentration0, total_count):
    a, b = concentration1, concentration0
    x = x.astype(a.dtype)
    n = jnp.asarray(total_count, a.dtype)
    log_beta_ratio = (gammaln(x + a) + gammaln(n - x + b) - gammaln(n + a + b)
                      - gammaln(a) - gammaln(b) + gammaln(a + b))
    return _in_support(x, _log_choose(n, x) + log_beta_ratio, 0, n)


def _multinomial_terms(x, total_count, dtype):
    """(x as reals, log n! − Σ log x_k!, whether x is a vector of counts summing to n)."""
    x = x.astype(dtype)
    n = jnp.asarray(total_count, dtype)
    inside = jnp.all(x >= 0, -1) & (jnp.sum(x, -1) == n)
    return x, gammaln(n + 1) - jnp.sum(gammaln(x + 1), -1), inside


def _multinomial_probs(x, total_count, probs):
    # the multinomial of p / Σp (numpyro's sampler normalises, as for categorical)
    x, log_coefficient, inside = _multinomial_terms(x, total_count, probs.dtype)
    logp = log_coefficient + jnp.sum(_xlogy(x, probs), -1) - total_count * jnp.log(jnp.sum(probs, -1))
    return jnp.where(inside, logp, -jnp.inf)


def _multinomial_logits(x, total_count, logits):
    x, log_coefficient, inside = _multinomial_terms(x, total_count, logits.dtype)
    logp = log_coefficient + jnp.sum(x * logits, -1) - total_count * jax.scipy.special.logsumexp(logits, -1)
    return jnp.where(inside, logp, -jnp.inf)


def _truncated_normal_two_sided(x, loc, scale, low, high):
    """numpyro's density, of the mirror image when the interval lies above loc:
    (x, loc, low, high) -> (−x, −loc, −high, −low) has the same density, and numpyro's
    normaliser log(Φ(high) − Φ(low)) from log Φ loses all its digits when both bounds are
    far above loc (truncated_normal(0, 1, low=8, high=9) was 7% off in float64), not below."""
    above = low > loc
    sign = jnp.where(above, -1.0, 1.0)
    mirrored = dist.TruncatedNormal(sign * loc, scale, low=jnp.where(above, -high, low),
                                    high=jnp.where(above, -low, high))
    return mirrored.log_prob(sign * x)


# -------------------------------------------------------------- probabilities of support values


def _bernoulli_pmf_probs(probs):
    return jnp.stack([1 - probs, probs], -1)


def _bernoulli_pmf_logits(logits):
    return jnp.stack([jax.nn.sigmoid(-logits), jax.nn.sigmoid(logits)], -1)


def _categorical_pmf_probs(probs):
    return probs / jnp.sum(probs, -1, keepdims=True)


def _categorical_pmf_logits(logits):
    return jax.nn.softmax(logits, -1)


def _binomial_table(n: int, p):
    """b_n(k; p) for k = 0..n on a last axis (exp of the log pmf: exact values at p = 0, 1)."""
    k = jnp.arange(n + 1, dtype=p.dtype)
    p = p[..., None]
    return jnp.exp(_log_choose(n, k) + _xlogy(k, p) + _xlog1py(n - k, -p))


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _binomial_pmf(n: int, p):
    return _binomial_table(n, p)


@_binomial_pmf.defjvp
def _binomial_pmf_jvp(n, primals, tangents):
    # d/dp b_n(k; p) = n·(b_{n−1}(k − 1; p) − b_{n−1}(k; p)): finite at p = 0 and 1, where the
    # derivative of exp(log pmf) would be 0·∞.
    (p,), (p_dot,) = primals, tangents
    if n == 0:
        return _binomial_table(0, p), jnp.zeros(p.shape + (1,), p.dtype)
    lower = _binomial_table(n - 1, p)
    pad = jnp.zeros(p.shape + (1,), p.dtype)
    derivative = n * (jnp.concatenate([pad, lower], -1) - jnp.concatenate([lower, pad], -1))
    return _binomial_table(n, p), derivative * p_dot[..., None]


def _binomial_pmf_probs(total_count, probs):
    return _binomial_pmf(int(total_count), probs)


def _binomial_pmf_logits(total_count, logits):
    return _binomial_pmf(int(total_count), jax.nn.sigmoid(logits))


def _normal_diag(loc, scale):
    return dist.Normal(loc, scale).to_event(1)


def _truncated_normal(loc, scale, low=None, high=None):
    return dist.TruncatedNormal(loc, scale, low=low, high=high)


def _lkj_cholesky(dimension, concentration):
    return dist.LKJCholesky(dimension, concentration)


def _gaussian_random_walk(scale, num_steps):
    return dist.GaussianRandomWalk(scale, num_steps)


_MATRIX = {"loc": 1, "scale_tril": 2, "covariance_matrix": 2, "precision_matrix": 2}
_LOC_SCALE = {"loc": "real", "scale": "positive"}

_ROWS = [
    # continuous, reparameterised (explicitly, or implicitly for gamma, beta, dirichlet)
    _row("normal", ["loc scale"], dist.Normal, "Normal (Gaussian) with mean loc and standard deviation scale.",
         default="reparam", domains=_LOC_SCALE, weak_derivative=normal_weak_derivative,
         unchecked=True),
    _row("mvnormal", ["loc scale_tril", "loc covariance_matrix", "loc precision_matrix"], dist.MultivariateNormal,
         "Multivariate normal with mean vector loc and a Cholesky factor, covariance or precision matrix.",
         default="reparam", ranks=_MATRIX,
         domains={"loc": "real", "scale_tril": "lower_cholesky", "covariance_matrix": "positive_definite",
                  "precision_matrix": "positive_definite"}),
    _row("mvnormal_diag", ["loc scale"], _normal_diag,
         "Multivariate normal with mean vector loc and diagonal standard deviations scale.",
         default="reparam", vector_value=True, domains=_LOC_SCALE),
    _row("lognormal", ["loc scale"], dist.LogNormal, "Log-normal: exp of a normal(loc, scale).",
         default="reparam", domains=_LOC_SCALE),
    _row("halfnormal", ["scale"], dist.HalfNormal, "Half-normal: |x| for x ~ normal(0, scale).",
         default="reparam", domains={"scale": "positive"}),
    _row("student_t", ["df loc scale"], dist.StudentT, "Student's t with df degrees of freedom, location and scale.",
         default="reparam", domains={"df": "positive", **_LOC_SCALE}, unchecked=True),
    _row("cauchy", ["loc scale"], dist.Cauchy, "Cauchy with location loc and scale.",
         default="reparam", domains=_LOC_SCALE, unchecked=True),
    _row("halfcauchy", ["scale"], dist.HalfCauchy, "Half-Cauchy: |x| for x ~ cauchy(0, scale).",
         default="reparam", domains={"scale": "positive"}),
    _row("laplace", ["loc scale"], dist.Laplace, "Laplace (double exponential) with location loc and scale.",
         default="reparam", domains=_LOC_SCALE, unchecked=True),
    # not reinforce: the support moves with low and high, and the score function misses
    # the boundary terms, so REINFORCE is biased (tests/adev/test_unbiased.py)
    _row("uniform", ["low high"], dist.Uniform, "Uniform on the interval [low, high).",
         default="reparam", domains={"low": "real", "high": "real"}, moving_support=True,
         ordered=("low", "high")),
    _row("beta", ["concentration1 concentration0"], dist.Beta,
         "Beta on (0, 1) with concentrations alpha = concentration1 and beta = concentration0.",
         default="reparam", domains={"concentration1": "positive", "concentration0": "positive"}),
    _row("gamma", ["concentration rate"], dist.Gamma, "Gamma with shape concentration and rate (inverse scale).",
         default="reparam", domains={"concentration": "positive", "rate": "positive"}),
    _row("inverse_gamma", ["concentration rate"], dist.InverseGamma,
         "Inverse gamma: 1/x for x ~ gamma(concentration, rate).",
         default="reparam", domains={"concentration": "positive", "rate": "positive"}),
    _row("exponential", ["rate"], dist.Exponential, "Exponential with the given rate (mean 1/rate).",
         default="reparam", domains={"rate": "positive"}),
    _row("dirichlet", ["concentration"], dist.Dirichlet, "Dirichlet on the simplex, with a concentration vector.",
         default="reparam", ranks={"concentration": 1}, domains={"concentration": "positive"}),
    _row("logistic", ["loc scale"], dist.Logistic, "Logistic with location loc and scale.",
         default="reparam", domains=_LOC_SCALE),
    _row("weibull", ["scale concentration"], dist.Weibull,
         "Weibull on (0, inf) with the given scale and shape concentration.",
         default="reparam", domains={"scale": "positive", "concentration": "positive"}),
    # not reinforce: the support [scale, inf) moves with scale (as uniform's)
    _row("pareto", ["scale alpha"], dist.Pareto, "Pareto on [scale, inf) with tail index alpha.",
         default="reparam", domains={"scale": "positive", "alpha": "positive"}, moving_support=True),
    # not reinforce: the support [low, high] moves with the bounds
    _row("truncated_normal", ["loc scale low high", "loc scale low", "loc scale high"], _truncated_normal,
         "Normal(loc, scale) restricted to [low, high] (either bound may be left out).",
         default="reparam", domains={**_LOC_SCALE, "low": "real", "high": "real"}, moving_support=True,
         ordered=("low", "high"), log_densities={"loc scale low high": _truncated_normal_two_sided}),
    _row("gaussian_random_walk", ["scale num_steps"], _gaussian_random_walk,
         "Gaussian random walk: a vector of num_steps partial sums of normal(0, scale) steps.",
         default="reparam", domains={"scale": "positive", "num_steps": "size"}, static=("num_steps",)),
    _row("lkj_cholesky", ["dimension concentration"], _lkj_cholesky,
         "Cholesky factor of a dimension x dimension LKJ(concentration) correlation matrix.",
         default="reparam", domains={"dimension": "dimension", "concentration": "positive"},
         static=("dimension",)),
    # continuous without a pathwise sampler (numpyro's is a rejection sampler)
    _row("von_mises", ["loc concentration"], dist.VonMises,
         "Von Mises on the circle [-pi, pi) with mean direction loc and concentration.",
         default="reinforce", pathwise=False, domains={"loc": "real", "concentration": "positive"}),
    # a point mass moves with v: no score function
    _row("delta", ["v"], dist.Delta, "Point mass at v: the draw is v itself, with log density 0.",
         default="reparam", domains={"v": "real"}, moving_support=True),
    # discrete with finite support: exact enumeration is cheap, so it is the default
    _row("bernoulli", ["probs", "logits"], dist.Bernoulli,
         "Bernoulli: 1 with probability probs (or sigmoid(logits)), else 0.",
         default="enum", discrete=True, support=_two_values, domains={"probs": "unit", "logits": "real"},
         log_densities={"probs": _bernoulli_probs, "logits": _bernoulli_logits},
         pmfs={"probs": _bernoulli_pmf_probs, "logits": _bernoulli_pmf_logits},
         weak_derivative=finite_support_weak_derivative),
    _row("categorical", ["probs", "logits"], dist.Categorical,
         "Categorical over 0..K-1, with a probability (or logit) vector of size K; probs are normalised.",
         default="enum", discrete=True, support=_categories, ranks={"probs": 1, "logits": 1},
         domains={"probs": "simplex", "logits": "real"},
         log_densities={"probs": _categorical_probs, "logits": _categorical_logits},
         pmfs={"probs": _categorical_pmf_probs, "logits": _categorical_pmf_logits},
         weak_derivative=finite_support_weak_derivative),
    _row("binomial", ["total_count probs", "total_count logits"], dist.Binomial,
         "Binomial: the number of successes in total_count trials with success probability probs.",
         default="reinforce", discrete=True, support=_trials,
         domains={"total_count": "count", "probs": "unit", "logits": "real"},
         log_densities={"total_count probs": _binomial_probs, "total_count logits": _binomial_logits},
         pmfs={"total_count probs": _binomial_pmf_probs, "total_count logits": _binomial_pmf_logits},
         weak_derivative=binomial_weak_derivative),
    _row("beta_binomial", ["concentration1 concentration0 total_count"], dist.BetaBinomial,
         "Beta-binomial: a binomial(total_count, p) with p ~ beta(concentration1, concentration0).",
         default="reinforce", discrete=True, support=_trials,
         domains={"concentration1": "positive", "concentration0": "positive", "total_count": "count"},
         log_densities={"concentration1 concentration0 total_count": _beta_binomial},
         weak_derivative=finite_support_weak_derivative),
    # a finite support of count vectors, which enumeration (of one value per element) cannot list
    _row("multinomial", ["total_count probs", "total_count logits"], dist.Multinomial,
         "Multinomial: the counts of K categories in total_count draws of a categorical(probs).",
         default="reinforce", discrete=True, ranks={"probs": 1, "logits": 1}, static=("total_count",),
         domains={"total_count": "count", "probs": "simplex", "logits": "real"},
         log_densities={"total_count probs": _multinomial_probs, "total_count logits": _multinomial_logits},
         unsound={"enum": "multinomial's values are vectors of counts, and enumeration lists one "
                          "value per element"}),
    # discrete with infinite support
    _row("poisson", ["rate"], dist.Poisson, "Poisson count with mean rate.",
         default="reinforce", discrete=True, domains={"rate": "positive"},
         log_densities={"rate": _poisson}, weak_derivative=poisson_weak_derivative),
    _row("geometric", ["probs", "logits"], dist.Geometric,
         "Geometric: the number of failures before the first success of probability probs.",
         default="reinforce", discrete=True, domains={"probs": "success", "logits": "real"},
         log_densities={"probs": _geometric_probs, "logits": _geometric_logits},
         weak_derivative=geometric_weak_derivative),
    _row("negative_binomial", ["total_count probs", "total_count logits"], dist.NegativeBinomial,
         "Negative binomial: successes (probability probs) before total_count failures; real total_count.",
         default="reinforce", discrete=True,
         domains={"total_count": "positive", "probs": "below_one", "logits": "real"},
         log_densities={"total_count probs": _negative_binomial_probs,
                        "total_count logits": _negative_binomial_logits},
         weak_derivative=negative_binomial_weak_derivative),
    _row("zero_inflated_poisson", ["gate rate", "gate_logits rate"], _zero_inflated_poisson_family,
         "Zero-inflated Poisson: 0 with probability gate (or sigmoid(gate_logits)), else a "
         "poisson(rate) count.",
         default="reinforce", discrete=True,
         domains={"gate": "unit", "gate_logits": "real", "rate": "positive"},
         log_densities={"gate rate": _zero_inflated_poisson,
                        "gate_logits rate": _zero_inflated_poisson_logits},
         weak_derivative=zero_inflated_poisson_weak_derivative),
]

DISTRIBUTIONS: dict[str, NumpyroDistribution] = {row.name: row for row in _ROWS}
