"""Inverse autoregressive flow layers, numpyro's, for ``auto_iaf`` (compiler/auto.py).

One layer is numpyro's ``InverseAutoregressiveTransform`` of a MADE network
(``numpyro.nn.AutoregressiveNN(dim, hidden)``): ``y = exp(s(x))·x + m(x)``
with ``(m, s)`` autoregressive in ``x``, so ``log|det J| = Σ s(x)``. The
network's weights travel as one flat real vector (a program's parameter),
unflattened here into the network's own pytree. Library functions:

- ``iaf_weights(x, hidden)``: zeros shaped like the flat weights (its type tells
  the compiler the parameter's size);
- ``iaf(x, w, hidden)``, ``iaf_log_det(x, w, hidden)`` and ``iaf_inverse(y, w,
  hidden)`` (numpyro's sequential inversion, ``dim`` network passes);

and the initialiser ``iaf_init(dim, hidden)``, the network's own init.

    >>> import jax.numpy as jnp
    >>> w = iaf_init_fn(3, (6,))(jax.random.PRNGKey(0), None, None)
    >>> x = jnp.array([0.1, -0.4, 1.0])
    >>> bool(jnp.allclose(_inverse(_forward(x, w, (6,)), w, (6,)), x, atol=1e-5))
    True
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
from numpyro.distributions.flows import InverseAutoregressiveTransform
from numpyro.nn import AutoregressiveNN

from ..compiler.library import ParamSpec


@functools.lru_cache(maxsize=None)
def _network(dim: int, hidden: tuple):
    """(init_fn, apply_fn, unravel, size) of the MADE network on ``dim`` inputs, built
    with concrete masks even when first asked for inside a trace (it is cached)."""
    with jax.ensure_compile_time_eval():
        init_fn, apply_fn = AutoregressiveNN(dim, list(hidden))
        shapes = jax.eval_shape(lambda k: init_fn(k, (dim,))[1], jax.random.PRNGKey(0))
        zeros = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
        flat, unravel = ravel_pytree(zeros)
    return init_fn, apply_fn, unravel, flat.size


def _transform(w, dim: int, hidden: tuple) -> InverseAutoregressiveTransform:
    _, apply_fn, unravel, _ = _network(dim, tuple(hidden))
    params = unravel(w)
    return InverseAutoregressiveTransform(lambda x: apply_fn(params, x))


def _weights(x, hidden):
    return jnp.zeros((_network(x.shape[-1], tuple(hidden))[3],), jnp.float32)


def _forward(x, w, hidden):
    return _transform(w, x.shape[-1], hidden)(x)


def _log_det(x, w, hidden):
    t = _transform(w, x.shape[-1], hidden)
    return jnp.sum(t.log_abs_det_jacobian(x, None))


def _inverse(y, w, hidden):
    return _transform(w, y.shape[-1], hidden)._inverse(y)


def iaf_init_fn(dim: int, hidden):
    """The network's own initialiser, flattened: ``fn(key, shape, dtype)``."""
    init_fn = _network(int(dim), tuple(hidden))[0]
    return lambda key, shape, dtype: ravel_pytree(init_fn(key, (int(dim),))[1])[0]


def flow_functions() -> dict:
    from .functions import JaxFunction  # functions.py's row type

    hidden = ParamSpec("hidden", static=True)
    rows = [
        JaxFunction("iaf_weights", (ParamSpec("x"), hidden), _weights,
                    "Zeros shaped like the flat weights of an IAF layer on x (their type)."),
        JaxFunction("iaf", (ParamSpec("x"), ParamSpec("w"), hidden), _forward,
                    "One inverse autoregressive flow layer (numpyro's) with flat weights w."),
        JaxFunction("iaf_log_det", (ParamSpec("x"), ParamSpec("w"), hidden), _log_det,
                    "log|det J| of iaf(x, w, hidden)."),
        JaxFunction("iaf_inverse", (ParamSpec("y"), ParamSpec("w"), hidden), _inverse,
                    "The inverse of iaf(x, w, hidden) (dim network passes)."),
    ]
    return {row.name: row for row in rows}


def flow_initializers() -> dict:
    from .initializers import JaxInitializer

    row = JaxInitializer("iaf_init", (ParamSpec("dim", static=True), ParamSpec("hidden", static=True)),
                         iaf_init_fn, "The initial flat weights of an IAF layer (its network's init).")
    return {row.name: row}
