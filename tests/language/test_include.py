"""Reuse: ``y ~ part(args) at ""`` includes a generative function's choices at the
caller's own addresses (no ``y/`` prefix), so a family can be assembled from parts.
Its parameters are named under the binder (``family.mu.m``), its return value bound
to ``y``; an address drawn twice is an error at the user's ``~``."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from jax.scipy import stats

import ppl

SOURCE = """
gen loc_part(m0: real) {
    param m: real = 0.5
    mu ~ normal(m + m0, 1.0)
    return mu
}
gen scale_part() {
    param s: real = 0.0
    sigma ~ lognormal(s, 0.3)
}
gen family() {
    mu ~ loc_part(1.0) at ""
    sig ~ scale_part() at ""
    twice = 2.0 * mu
    return twice
}
gen model() {
    mu ~ normal(0.0, 1.0)
    sigma ~ lognormal(0.0, 1.0)
    y ~ normal(mu, sigma)
}
"""


@pytest.fixture(scope="module")
def m():
    return ppl.compile(SOURCE, "include_test.ppl")


def test_an_included_family_draws_at_the_callers_addresses(m):
    fam = m.family()
    params = fam.init(jax.random.PRNGKey(0))
    assert sorted(params) == ["family.mu.m", "family.sig.s"]
    trace, logp = fam.simulate(jax.random.PRNGKey(1), params)
    assert sorted(trace.addresses) == ["mu", "sigma"]
    mu, sigma = float(trace["mu"]), float(trace["sigma"])
    want = stats.norm.logpdf(mu, 1.5, 1.0) + stats.norm.logpdf(np.log(sigma), 0.0, 0.3) \
        - np.log(sigma)
    np.testing.assert_allclose(logp, want, rtol=1e-5)
    np.testing.assert_allclose(fam.density(trace, params), logp, rtol=1e-5)
    np.testing.assert_allclose(trace.retval, 2 * mu, rtol=1e-6)


def test_it_is_a_family_for_the_model_it_matches(m):
    obj = ppl.stdlib.elbo(m.model() | {"y": 1.0}, m.family())
    params = obj.init(jax.random.PRNGKey(0))
    value, grads = obj.value_and_grad(jax.random.PRNGKey(0), params)
    assert np.isfinite(value) and sorted(grads) == ["family.mu.m", "family.sig.s"]
