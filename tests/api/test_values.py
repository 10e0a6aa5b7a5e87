"""``obj.value`` is ADEV's value, and differentiating it gives ADEV's gradient (defect 14).

The README's flip, L(θ) = E_{b ~ bernoulli(θ)}[b ? 0 : −θ/2] at θ = 0.2 (an
interval(0, 1) parameter, whose unconstrained value u has dθ/du =
θ(1 − θ) = 0.16): dL/du = (θ − ½)·0.16 = −0.048 exactly, L = −0.08. Under
``enum`` ADEV's value and gradient are exact, so they are checked without
sampling error; naive AD of the sampled value is biased (−0.064 on average).
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

import ppl

SOURCE = """
objective flip() {
    param theta: real<lower=0, upper=1> = 0.2
    return expect {
        b ~ bernoulli(theta) with enum
        return where(b == 1, 0.0, -theta / 2.0)
    }
}
objective flip_reinforce() {
    param theta: real<lower=0, upper=1> = 0.2
    return expect {
        b ~ bernoulli(theta) with reinforce
        return where(b == 1, 0.0, -theta / 2.0)
    }
}
"""
EXACT_VALUE, EXACT_GRAD = -0.08, -0.048


@pytest.fixture(scope="module")
def m():
    return ppl.compile(SOURCE)


def test_grad_of_value_is_adevs_gradient(m):
    obj = m.flip()
    params = obj.init(jax.random.PRNGKey(0))
    keys = jax.random.split(jax.random.PRNGKey(1), 8)
    grads = jax.jit(jax.vmap(lambda k: jax.grad(lambda p: obj.value(k, p))(params)))(keys)
    # enum's gradient is exact, so every key gives -0.048 (naive AD gave 0 or -0.08).
    np.testing.assert_allclose(np.asarray(grads["flip.theta"]), EXACT_GRAD, rtol=1e-4)


def test_grad_of_a_sampled_value_is_unbiased(m):
    obj = m.flip_reinforce()
    params = obj.init(jax.random.PRNGKey(0))
    n = 4000
    keys = jax.random.split(jax.random.PRNGKey(2), n)
    grads = jax.jit(jax.vmap(lambda k: jax.grad(lambda p: obj.value(k, p))(params)))(keys)
    g = np.asarray(grads["flip_reinforce.theta"], np.float64)
    assert abs(g.mean() - EXACT_GRAD) < 4 * g.std() / np.sqrt(n) + 1e-6
    # ... and it is the same estimate as value_and_grad's, key by key.
    _, direct = jax.jit(jax.vmap(lambda k: obj.value_and_grad(k, params)))(keys[:64])
    np.testing.assert_allclose(g[:64], np.asarray(direct["flip_reinforce.theta"]), rtol=1e-5,
                               atol=1e-7)


def test_value_honours_enum(m):
    obj = m.flip()
    params = obj.init(jax.random.PRNGKey(0))
    keys = jax.random.split(jax.random.PRNGKey(3), 8)
    values = jax.jit(jax.vmap(lambda k: obj.value(k, params)))(keys)
    np.testing.assert_allclose(np.asarray(values), EXACT_VALUE, rtol=1e-5)
