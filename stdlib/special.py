"""Special functions with exact derivatives, as fast as their usual formulas.

``jax.nn.softplus`` is ``logaddexp(x, 0)``, whose derivative rule costs two
more exponentials per element (a VAE's Bernoulli-logits likelihood over 784
pixels took 5-7% longer per step with it). The stable formula
``max(x, 0) + log1p(exp(-|x|))`` is cheap, but differentiating it relies on
the tie conventions of ``max`` and ``abs`` at 0. :func:`softplus` computes
that formula and declares its derivative, σ(x), from the same exponential:
exact everywhere, and itself exactly differentiable (nested derivatives).
tests/stdlib/test_gradients.py checks it against finite differences.

    >>> import jax
    >>> float(jax.grad(softplus)(0.0))
    0.5
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _parts(x):
    """(e, softplus(x)) with e = exp(-|x|), written exp(-x) for x >= 0 and exp(x) below, so
    that its own derivative is right at 0 too (``abs`` has derivative 0 there)."""
    e = jnp.exp(jnp.where(x >= 0, -x, x))
    return e, jnp.maximum(x, 0) + jnp.log1p(e)


@jax.custom_jvp
def softplus(x):
    """log(1 + exp(x)), stably, with the derivative sigmoid(x)."""
    return _parts(x)[1]


@softplus.defjvp
def _softplus_jvp(primals, tangents):
    # σ(x) from the same exponential as the value: 1/(1 + e) for x >= 0, e/(1 + e) below.
    (x,), (x_dot,) = primals, tangents
    e, y = _parts(x)
    return y, jnp.where(x >= 0, 1.0, e) / (1.0 + e) * x_dot
