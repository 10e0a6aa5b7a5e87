"""Parameter initialisers: how a ``param`` gets its first value.

A ``param`` declaration may name an initialiser instead of an expression::

    param w: real[784, 256] = glorot()
    param b: real[256] = zeros()

Each entry of :data:`INITIALIZERS` is one row: a name, its static parameters
(``normal_init(0.01)``: the standard deviation), a one-line doc and a factory
returning a ``jax.nn.initializers`` initialiser. Nothing is sampled by hand.

Invariants:

- ``impl(key, shape, dtype, **bound)`` returns an array of exactly ``shape``
  and ``dtype`` (an IR dtype name: ``float32``, ``int32`` or ``bool``);
- random initialisers need a real dtype; the fan-based ones (``glorot``,
  ``he``, ``lecun``) need at least two dimensions, the last two being
  (fan in, fan out), as for a weight matrix ``x @ w``; anything else is a
  ``ValueError`` in words.

    >>> import jax
    >>> w = INITIALIZERS["glorot"].impl(jax.random.PRNGKey(0), (784, 256), "float32")
    >>> w.shape, str(w.dtype)
    ((784, 256), 'float32')
    >>> INITIALIZERS["glorot"].impl(jax.random.PRNGKey(0), (3,), "float32")
    Traceback (most recent call last):
    ...
    ValueError: glorot() needs a parameter with at least 2 dimensions, got shape [3]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import jax
import jax.numpy as jnp

from ..compiler.diagnostics import DataError, Diagnostic
from ..compiler.library import ParamSpec, bind_arguments
from .abstract import JAX_DTYPES, format_shape


@dataclass(frozen=True)
class JaxInitializer:
    """An initialiser: static parameters and a factory of a ``jax.nn.initializers`` function.

    ``min_ndim`` is the fewest dimensions the parameter may have; ``random``
    initialisers draw from a distribution and so need a real dtype.
    """

    name: str
    params: tuple[ParamSpec, ...]
    factory: Callable[..., Callable[[Any, tuple[int, ...], Any], Any]]
    doc: str
    random: bool = True
    min_ndim: int = 0

    def impl(self, key: Any, shape: tuple[int, ...], dtype: str, **bound: Any) -> Any:
        """An initial value of ``shape`` and ``dtype`` for the static arguments ``bound``."""
        shape = tuple(int(d) for d in shape)
        if len(shape) < self.min_ndim:
            raise ValueError(f"{self.name}() needs a parameter with at least {self.min_ndim} dimensions, "
                             f"got shape {format_shape(shape)}")
        if dtype not in JAX_DTYPES:
            raise ValueError(f"{self.name}(): unknown dtype {dtype!r}")
        if self.random and dtype != "float32":
            raise ValueError(f"{self.name}() draws random reals, so it cannot initialise a parameter of dtype {dtype}")
        bound = bind_arguments(self.name, self.params, [], bound)
        return self.factory(**bound)(key, shape, JAX_DTYPES[dtype])


def _symmetric_uniform(scale: float):
    # jax.nn.initializers.uniform draws from [0, scale); a parameter wants a
    # distribution centred on zero, as Keras's RandomUniform(-0.05, 0.05).
    def init(key, shape, dtype):
        return jax.random.uniform(key, shape, dtype, minval=-scale, maxval=scale)
    return init


def _constant(value: Any):
    return jax.nn.initializers.constant(jnp.asarray(value))


# Fan-based initialisers read (fan in, fan out) from the last two axes: w in x @ w.
_FANS = {"in_axis": -2, "out_axis": -1}

_ROWS = [
    JaxInitializer("zeros", (), lambda: jax.nn.initializers.zeros, "All zeros.", random=False),
    JaxInitializer("ones", (), lambda: jax.nn.initializers.ones, "All ones.", random=False),
    JaxInitializer("constant", (ParamSpec("value", static=True),), _constant,
                   "Every element equal to value.", random=False),
    JaxInitializer("normal_init", (ParamSpec("scale", static=True, default=0.01),),
                   lambda scale: jax.nn.initializers.normal(stddev=scale),
                   "Normal with mean 0 and standard deviation scale (default 0.01)."),
    JaxInitializer("uniform_init", (ParamSpec("scale", static=True, default=0.05),), _symmetric_uniform,
                   "Uniform on [-scale, scale) (default 0.05)."),
    JaxInitializer("glorot", (), lambda: jax.nn.initializers.glorot_normal(**_FANS),
                   "Glorot (Xavier) normal: variance 2 / (fan_in + fan_out).", min_ndim=2),
    JaxInitializer("he", (), lambda: jax.nn.initializers.he_normal(**_FANS),
                   "He (Kaiming) normal: variance 2 / fan_in, for ReLU layers.", min_ndim=2),
    JaxInitializer("lecun", (), lambda: jax.nn.initializers.lecun_normal(**_FANS),
                   "LeCun normal: variance 1 / fan_in.", min_ndim=2),
]

INITIALIZERS: dict[str, JaxInitializer] = {row.name: row for row in _ROWS}


# ---------------------------------------------------------------------------
# Initialisation strategies: where a latent's unconstrained value starts.
#
# NumPyro's ``init_to_uniform``, ``init_to_sample``, ``init_to_median`` and
# ``init_to_value``, for ``ppl.nuts(..., init=...)`` (a chain's first point) and
# the automatic families (``auto_normal(p, init=...)``: the location parameters).
# A strategy maps a target's latent sites (address, shape, numpyro's bijection
# ``transform`` onto the support) to unconstrained values; ``prior(key, n)`` draws
# ``n`` joint traces of the unconditioned target (constrained values, stacked).

@dataclass(frozen=True)
class InitStrategy:
    """A way to pick each latent's starting point (see the strategies below).

    ``unconstrained(key, sites, prior)`` returns ``{address: u}`` with ``u`` of the
    site's unconstrained shape; every ``u`` is finite (a value outside the support
    is a :class:`DataError` naming the site).
    """

    def unconstrained(self, key: Any, sites: list, prior: Callable | None = None) -> dict:
        raise NotImplementedError

    @property
    def needs_prior(self) -> bool:
        return False


def _unconstrained_shape(site) -> tuple[int, ...]:
    out = jax.eval_shape(site.transform.inv, jax.ShapeDtypeStruct(tuple(site.shape), jnp.float32))
    return tuple(out.shape)


@dataclass(frozen=True)
class InitToUniform(InitStrategy):
    """Each unconstrained value uniform in (-radius, radius) (Stan's and NumPyro's default)."""

    radius: float = 2.0

    def unconstrained(self, key, sites, prior=None):
        keys = jax.random.split(key, max(len(sites), 1))
        return {s.address: jax.random.uniform(k, _unconstrained_shape(s), jnp.float32,
                                              -self.radius, self.radius)
                for s, k in zip(sites, keys)}

    def __repr__(self) -> str:
        return f"init_to_uniform(radius={self.radius})"


@dataclass(frozen=True)
class InitToSample(InitStrategy):
    """Each latent at one joint draw of the target's prior (the model run forward)."""

    @property
    def needs_prior(self) -> bool:
        return True

    def unconstrained(self, key, sites, prior=None):
        draws = prior(key, 1)
        return {s.address: _checked_inverse(s, jnp.asarray(draws[s.address])[0], self)
                for s in sites}

    def __repr__(self) -> str:
        return "init_to_sample()"


@dataclass(frozen=True)
class InitToMedian(InitStrategy):
    """Each latent at the median of ``num_samples`` prior draws (NumPyro's default 15),
    taken elementwise on the unconstrained scale (for an odd count and a scalar support,
    the bijection of the median of the draws; for a simplex or a Cholesky factor, a
    point of the support, which an elementwise median of the values is not). Where the
    prior's draws depend on other latents, it is the median of the joint prior's
    marginal (NumPyro's takes the other sites at their own initial values)."""

    num_samples: int = 15

    @property
    def needs_prior(self) -> bool:
        return True

    def unconstrained(self, key, sites, prior=None):
        draws = prior(key, self.num_samples)
        out = {}
        for s in sites:
            # numpyro's bijections act on a leading batch axis of draws
            u = s.transform.inv(jnp.asarray(draws[s.address], jnp.float32))
            out[s.address] = jnp.median(u, axis=0)
        return out

    def __repr__(self) -> str:
        return f"init_to_median(num_samples={self.num_samples})"


@dataclass(frozen=True, eq=False)
class InitToValue(InitStrategy):
    """The given (constrained) values by address; the other latents by ``fallback``
    (NumPyro's: ``init_to_uniform``). Every address must be a latent of the target,
    each value of its shape and inside its support."""

    values: tuple = ()  # ((address, value), ...), sorted; values as numpy arrays
    fallback: InitStrategy = InitToUniform()

    @property
    def needs_prior(self) -> bool:
        return self.fallback.needs_prior

    def unconstrained(self, key, sites, prior=None):
        given = dict(self.values)
        by_address = {s.address: s for s in sites}
        for address in given:
            if address not in by_address:
                from ..compiler.diagnostics import did_you_mean
                raise DataError(Diagnostic(
                    f"init_to_value: '{address}' is not a latent choice of the target (its "
                    f"latents are {', '.join(by_address)})",
                    help=did_you_mean(address, by_address)
                    or "an observed address is not initialised: it keeps its data"))
        rest = [s for s in sites if s.address not in given]
        out = self.fallback.unconstrained(key, rest, prior) if rest else {}
        for s in sites:
            if s.address in given:
                value = jnp.asarray(given[s.address], jnp.float32)
                if tuple(value.shape) != tuple(s.shape):
                    raise DataError(Diagnostic(
                        f"init_to_value: the value of '{s.address}' has shape "
                        f"{format_shape(value.shape)}, but the latent has shape "
                        f"{format_shape(s.shape)}"))
                out[s.address] = _checked_inverse(s, value, self)
        return {s.address: out[s.address] for s in sites}

    def __repr__(self) -> str:
        return f"init_to_value(values={{{', '.join(repr(a) for a, _ in self.values)}}})"


def _checked_inverse(site, value, strategy, check: bool = True):
    """``transform.inv(value)``, which must be finite with ``value`` in the support."""
    u = site.transform.inv(jnp.asarray(value, jnp.float32))
    if check and not isinstance(u, jax.core.Tracer):
        inside = bool(jnp.all(site.transform.codomain(jnp.asarray(value, jnp.float32))))
        if not inside or not bool(jnp.all(jnp.isfinite(u))):
            raise DataError(Diagnostic(
                f"{_spelling(strategy)}: the initial value of "
                f"'{site.address}' is outside its support {_support_words(site.transform)}, "
                "so it has no finite unconstrained value",
                help="give a value inside the support"))
    return u


def _spelling(strategy) -> str:
    return repr(strategy).split("(")[0]


def _support_words(transform) -> str:
    c = transform.codomain
    lower, upper = getattr(c, "lower_bound", None), getattr(c, "upper_bound", None)
    if lower is not None and upper is not None:
        return f"({float(lower):g}, {float(upper):g})"
    if lower is not None:
        return f"({float(lower):g}, ∞)"
    if upper is not None:
        return f"(-∞, {float(upper):g})"
    return f"({type(c).__name__.lstrip('_').lower()})"


def init_to_uniform(radius: float = 2.0) -> InitToUniform:
    """Each latent's unconstrained value uniform in (-radius, radius) (NumPyro's
    ``init_to_uniform``; the default start of ``ppl.nuts``).

        >>> init_to_uniform()
        init_to_uniform(radius=2.0)
    """
    if isinstance(radius, bool) or not isinstance(radius, (int, float)) or not radius > 0:
        raise DataError(Diagnostic(f"init_to_uniform(radius=...) must be a positive number, "
                                   f"got {radius!r}"))
    return InitToUniform(float(radius))


def init_to_sample() -> InitToSample:
    """Each latent at a draw of the prior (NumPyro's ``init_to_sample``).

        >>> init_to_sample()
        init_to_sample()
    """
    return InitToSample()


def init_to_median(num_samples: int = 15) -> InitToMedian:
    """Each latent at the median of ``num_samples`` prior draws (NumPyro's
    ``init_to_median``).

        >>> init_to_median(num_samples=31)
        init_to_median(num_samples=31)
    """
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise DataError(Diagnostic(f"init_to_median(num_samples=...) must be a positive "
                                   f"integer, got {num_samples!r}"))
    return InitToMedian(num_samples)


def init_to_value(values: dict | None = None, fallback: InitStrategy | None = None) -> InitToValue:
    """The latents at the given constrained values by address (NumPyro's
    ``init_to_value(values={...})``); the others by ``fallback`` (default
    :func:`init_to_uniform`).

        >>> init_to_value(values={"mu": 1.0, "tau": 2.0})
        init_to_value(values={'mu', 'tau'})
    """
    if not isinstance(values, dict):
        raise DataError(Diagnostic(f"init_to_value(values=...) must be a dict from addresses "
                                   f"to values, got {type(values).__name__}"))
    fallback = InitToUniform() if fallback is None else fallback
    if not isinstance(fallback, InitStrategy):
        raise DataError(Diagnostic(f"init_to_value(fallback=...) must be an initialisation "
                                   f"strategy (init_to_uniform(), ...), got {fallback!r}"))
    import numpy as np
    items = tuple(sorted((str(a), np.asarray(v, np.float32)) for a, v in values.items()))
    return InitToValue(items, fallback)


def check_strategy(init: Any, where: str) -> InitStrategy | None:
    """``init`` if it is None or a strategy; anything else is a DataError."""
    if init is None or isinstance(init, InitStrategy):
        return init
    raise DataError(Diagnostic(
        f"{where}(init=...) takes an initialisation strategy, got {init!r}",
        help="init_to_median(), init_to_sample(), init_to_value(values={...}) or "
             "init_to_uniform()"))


STRATEGIES = ("init_to_uniform", "init_to_sample", "init_to_median", "init_to_value")
