"""The distributions a program can draw from, as numpyro distributions under short names.

Each entry of :data:`DISTRIBUTIONS` is one row: a name users know
(``normal``, ``bernoulli``), its parameterisations (``forms``, each a tuple
of parameter names in positional order, the first being the default), the
numpyro class that does the work, and the gradient estimators that are sound
for it. Log densities, samplers and supports all come from numpyro; this
module only describes and checks.

Invariants:

- ``value_type`` is computed by ``jax.eval_shape`` of :meth:`NumpyroDistribution.sample`,
  so the type the compiler sees is, by construction, the type the backend gets;
- draws from a discrete distribution are ``int32`` (numpyro's geometric gives
  floats; :meth:`~NumpyroDistribution.sample` casts), continuous draws ``float32``;
- real parameters given as integers are promoted to floats before numpyro sees
  them; ``binomial``'s ``total_count`` is kept integral;
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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist

from ..compiler.types import ArrayType
from .abstract import abstract_type, as_real, describe_shapes, first_line, format_shape, shape_of

# Estimator sets, named once so that the table reads as a table.
CONTINUOUS = frozenset({"reparam", "reinforce"})
FINITE = frozenset({"reinforce", "enum", "mvd"})
COUNTS = frozenset({"reinforce", "mvd"})

# Parameters kept integral; every other parameter is real.
INTEGER_PARAMS = frozenset({"total_count"})


@dataclass(frozen=True)
class NumpyroDistribution:
    """A distribution family: one row of the table, backed by a numpyro class.

    ``family(**{param: value})`` builds the numpyro distribution for any form.
    ``support``, for a finite family, gives the number of values from the
    bound arguments (ArrayTypes or literals); ``ranks`` gives the number of trailing (event) dimensions a parameter
    must have (``mvnormal``'s ``scale_tril``: 2); parameters not listed are
    elementwise. ``vector_value`` says the value is a vector even when every
    parameter is elementwise (``mvnormal_diag``).
    """

    name: str
    forms: tuple[tuple[str, ...], ...]
    family: Callable[..., Any]
    discrete: bool
    enumerable: bool
    reparameterizable: bool
    default_estimator: str
    estimators: frozenset[str]
    doc: str
    ranks: Mapping[str, int] = field(default_factory=dict)
    vector_value: bool = False
    support: Callable[[Mapping[str, Any]], int] | None = None

    def build(self, form: tuple[str, ...], args: Sequence[Any]) -> Any:
        """The numpyro distribution for the arguments ``args`` of ``form``."""
        self._check_form(form, args)
        kwargs = {}
        for name, value in zip(form, args):
            kwargs[name] = _as_integer(value) if name in INTEGER_PARAMS else as_real(value)
        return self.family(**kwargs)

    def sample(self, form: tuple[str, ...], args: Sequence[Any], key: Any, sample_shape=()) -> Any:
        """One draw (or ``sample_shape`` draws); discrete values are cast to ``int32``."""
        value = self.build(form, args).sample(key, tuple(sample_shape))
        return value.astype(jnp.int32) if self.discrete else value

    def log_prob(self, form: tuple[str, ...], args: Sequence[Any], value: Any) -> Any:
        """numpyro's log density of ``value``, per batch element (not summed)."""
        return self.build(form, args).log_prob(value)

    def value_type(self, form: tuple[str, ...], args: Sequence[Any]) -> ArrayType:
        """The type of one draw, or ``ValueError`` when the argument shapes do not fit."""
        self._check_form(form, args)
        self._check_shapes(form, args)
        try:
            return abstract_type(lambda *a: self.sample(form, a, jax.random.PRNGKey(0)), list(args))
        except Exception as error:  # numpyro and JAX raise several kinds; rephrase them all
            raise ValueError(f"{self._signature(form)}: {describe_shapes(form, args)}, "
                             f"which do not fit: {first_line(error)}") from None

    def support_size(self, form: tuple[str, ...], args: Sequence[Any]) -> int | None:
        """How many values an enumerable draw can take, or ``None`` if not enumerable.

        Raises ``ValueError`` when the family is finite but the size is not
        known at compile time (a ``binomial`` whose ``total_count`` is traced).
        """
        if self.support is None:
            return None
        self._check_form(form, args)
        return self.support(dict(zip(form, args)))

    def enumerate_support(self, form: tuple[str, ...], args: Sequence[Any]) -> Any:
        """Every value, as numpyro's ``enumerate_support(expand=False)``: shape ``[K, 1, ..., 1]``."""
        self.support_size(form, args)  # raises if the support is not known statically
        return self.build(form, args).enumerate_support(expand=False).astype(jnp.int32)

    # -- checks --------------------------------------------------------------

    def _signature(self, form: tuple[str, ...]) -> str:
        return f"{self.name}({', '.join(form)})"

    def _check_form(self, form: tuple[str, ...], args: Sequence[Any]) -> None:
        if tuple(form) not in self.forms:
            known = "; ".join(f"({', '.join(f)})" for f in self.forms)
            raise ValueError(f"{self.name} has no form ({', '.join(form)}); its forms are {known}")
        if len(args) != len(form):
            raise ValueError(f"{self._signature(form)} takes {len(form)} arguments, got {len(args)}")

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
    value = jnp.asarray(value)
    return value if jnp.issubdtype(value.dtype, jnp.integer) else value.astype(jnp.int32)


def _row(name, forms, family, doc, *, default, estimators, discrete=False, support=None,
         ranks=None, vector_value=False) -> NumpyroDistribution:
    # Every continuous family here has a pathwise sampler (implicit for gamma, beta, dirichlet).
    return NumpyroDistribution(
        name=name, forms=tuple(tuple(f.split()) for f in forms), family=family, discrete=discrete,
        enumerable=support is not None, reparameterizable=not discrete, default_estimator=default,
        estimators=frozenset(estimators), doc=doc, ranks=dict(ranks or {}), vector_value=vector_value,
        support=support)


def _two_values(bound: Mapping[str, Any]) -> int:
    return 2


def _categories(bound: Mapping[str, Any]) -> int:
    (probabilities,) = bound.values()  # probs or logits: the last axis lists the categories
    return shape_of(probabilities)[-1]


def _trials(bound: Mapping[str, Any]) -> int:
    count = bound["total_count"]
    if isinstance(count, (int, np.integer)) and not isinstance(count, bool):
        return int(count) + 1
    raise ValueError("binomial: enumerating its values needs total_count to be an integer literal, "
                     "known when the program is compiled")


def _normal_diag(loc, scale):
    return dist.Normal(loc, scale).to_event(1)


_MATRIX = {"loc": 1, "scale_tril": 2, "covariance_matrix": 2, "precision_matrix": 2}

_ROWS = [
    # continuous, reparameterised (explicitly, or implicitly for gamma, beta, dirichlet)
    _row("normal", ["loc scale"], dist.Normal, "Normal (Gaussian) with mean loc and standard deviation scale.",
         default="reparam", estimators=CONTINUOUS | {"mvd"}),
    _row("mvnormal", ["loc scale_tril", "loc covariance_matrix", "loc precision_matrix"], dist.MultivariateNormal,
         "Multivariate normal with mean vector loc and a Cholesky factor, covariance or precision matrix.",
         default="reparam", estimators=CONTINUOUS, ranks=_MATRIX),
    _row("mvnormal_diag", ["loc scale"], _normal_diag,
         "Multivariate normal with mean vector loc and diagonal standard deviations scale.",
         default="reparam", estimators=CONTINUOUS, vector_value=True),
    _row("lognormal", ["loc scale"], dist.LogNormal, "Log-normal: exp of a normal(loc, scale).",
         default="reparam", estimators=CONTINUOUS),
    _row("halfnormal", ["scale"], dist.HalfNormal, "Half-normal: |x| for x ~ normal(0, scale).",
         default="reparam", estimators=CONTINUOUS),
    _row("student_t", ["df loc scale"], dist.StudentT, "Student's t with df degrees of freedom, location and scale.",
         default="reparam", estimators=CONTINUOUS),
    _row("cauchy", ["loc scale"], dist.Cauchy, "Cauchy with location loc and scale.",
         default="reparam", estimators=CONTINUOUS),
    _row("halfcauchy", ["scale"], dist.HalfCauchy, "Half-Cauchy: |x| for x ~ cauchy(0, scale).",
         default="reparam", estimators=CONTINUOUS),
    _row("laplace", ["loc scale"], dist.Laplace, "Laplace (double exponential) with location loc and scale.",
         default="reparam", estimators=CONTINUOUS),
    # not reinforce: the support moves with low and high, and the score function misses
    # the boundary terms, so REINFORCE is biased (tests/adev/test_unbiased.py)
    _row("uniform", ["low high"], dist.Uniform, "Uniform on the interval [low, high).",
         default="reparam", estimators={"reparam"}),
    _row("beta", ["concentration1 concentration0"], dist.Beta,
         "Beta on (0, 1) with concentrations alpha = concentration1 and beta = concentration0.",
         default="reparam", estimators=CONTINUOUS),
    _row("gamma", ["concentration rate"], dist.Gamma, "Gamma with shape concentration and rate (inverse scale).",
         default="reparam", estimators=CONTINUOUS),
    _row("inverse_gamma", ["concentration rate"], dist.InverseGamma,
         "Inverse gamma: 1/x for x ~ gamma(concentration, rate).",
         default="reparam", estimators=CONTINUOUS),
    _row("exponential", ["rate"], dist.Exponential, "Exponential with the given rate (mean 1/rate).",
         default="reparam", estimators=CONTINUOUS),
    _row("dirichlet", ["concentration"], dist.Dirichlet, "Dirichlet on the simplex, with a concentration vector.",
         default="reparam", estimators=CONTINUOUS, ranks={"concentration": 1}),
    _row("delta", ["v"], dist.Delta, "Point mass at v: the draw is v itself, with log density 0.",
         default="reparam", estimators={"reparam"}),
    # discrete with finite support: exact enumeration is cheap, so it is the default
    _row("bernoulli", ["probs", "logits"], dist.Bernoulli,
         "Bernoulli: 1 with probability probs (or sigmoid(logits)), else 0.",
         default="enum", estimators=FINITE, discrete=True, support=_two_values),
    _row("categorical", ["probs", "logits"], dist.Categorical,
         "Categorical over 0..K-1, with a probability (or logit) vector of size K.",
         default="enum", estimators=FINITE, discrete=True, support=_categories,
         ranks={"probs": 1, "logits": 1}),
    _row("binomial", ["total_count probs", "total_count logits"], dist.Binomial,
         "Binomial: the number of successes in total_count trials with success probability probs.",
         default="reinforce", estimators={"reinforce", "enum"}, discrete=True, support=_trials),
    # discrete with infinite support
    _row("poisson", ["rate"], dist.Poisson, "Poisson count with mean rate.",
         default="reinforce", estimators=COUNTS, discrete=True),
    _row("geometric", ["probs", "logits"], dist.Geometric,
         "Geometric: the number of failures before the first success of probability probs.",
         default="reinforce", estimators=COUNTS, discrete=True),
]

DISTRIBUTIONS: dict[str, NumpyroDistribution] = {row.name: row for row in _ROWS}
