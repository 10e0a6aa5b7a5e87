"""Masks (``x ~ d(...) if m``) under exact summation: a masked element's log density
is dropped from the sum, as everywhere else (the summation once scored every
element). A masked summed choice contributes a factor of 1 per value, so summing it
out multiplies by its number of values (NumPyro's enumeration does the same)."""

from __future__ import annotations

import numpy as np
from jax.scipy.special import logsumexp
from scipy.stats import norm

import ppl

SOURCE = '''
gen mix(seen: bool[N]) {
    mu ~ normal([-1.0, 2.0], 1.0)
    plate i in N {
        z ~ categorical(probs=[0.3, 0.7])
        y ~ normal(mu[z], 1.0) if seen[i]
    }
}

gen chain(lengths: int[S], T: int) {
    p ~ beta(2.0, 2.0)
    plate i in S {
        x = 0
        for t in T {
            x ~ categorical(probs=[[0.8, 0.2], [0.3, 0.7]][x]) if t < lengths[i]
            y ~ bernoulli(where(x == 1, p, 0.1)) if t < lengths[i]
        }
    }
}
'''

M = ppl.compile(SOURCE)


def test_masked_mixture_elements_drop_out():
    y = np.array([0.5, -1.2, 3.0, 2.2], np.float32)
    seen = np.array([True, False, True, False])
    mu = np.array([-0.8, 2.1], np.float32)
    target = ppl.stdlib.marginal(M.mix(seen), keep=["mu", "y"], exact=True) | {"y": y}
    per_point = logsumexp(np.log([0.3, 0.7]) + norm.logpdf(y[:, None], mu, 1.0), axis=1)
    exact = norm.logpdf(mu, [-1.0, 2.0], 1.0).sum() + per_point[seen].sum()
    np.testing.assert_allclose(target.density({"mu": mu}), exact, rtol=1e-5)
    everything = ppl.stdlib.marginal(M.mix(np.ones(4, bool)), keep=["mu", "y"], exact=True)
    assert abs(float((everything | {"y": y}).density({"mu": mu})) - exact) > 1.0  # control


def test_masked_chain_steps_past_each_length():
    rng = np.random.default_rng(0)
    S, T, p = 3, 5, 0.6
    lengths = np.array([5, 2, 3], np.int32)
    y = (rng.random((S, T)) < 0.5).astype(np.int32)
    A = np.log([[0.8, 0.2], [0.3, 0.7]])
    emit = np.log([[0.9, 0.1], [1 - p, p]])  # [state, y]
    total = np.log(6 * p * (1 - p))  # beta(2, 2) at p
    for i in range(S):
        a = A[0] + emit[:, y[i, 0]]
        for t in range(1, lengths[i]):
            a = logsumexp(a[:, None] + A, axis=0) + emit[:, y[i, t]]
        total += logsumexp(a) + np.log(2.0) * (T - lengths[i])  # a masked x: a factor 2
    target = ppl.stdlib.marginal(M.chain(lengths, T), keep=["p", "y"], exact=True) | {"y": y}
    np.testing.assert_allclose(target.density({"p": np.float32(p)}), total, rtol=1e-5)


def test_density_of_a_marginal_from_python():
    """``marginal(...).density(trace)``: exact without a key; an estimate needs one."""
    import jax
    import pytest
    family = ppl.stdlib.marginal(M.mix(np.ones(2, bool)), keep=["mu", "y"], exact=True)
    trace = {"mu": np.zeros(2, np.float32), "y": np.zeros(2, np.float32)}
    assert np.isfinite(float(family.density(trace)))
    estimate = ppl.stdlib.marginal(M.mix(np.ones(2, bool)), keep=["mu", "y"], particles=4)
    with pytest.raises(ppl.PPLError, match="pass a key"):
        estimate.density(trace)
    assert np.isfinite(float(estimate.density(trace, key=jax.random.PRNGKey(0))))
