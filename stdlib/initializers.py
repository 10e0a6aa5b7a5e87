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
