"""``density(d(args), x)``: a distribution's log density written directly.

Its value is the sum over x's elements of the library row's log density (the
one every choice is scored by), with the row's exact derivatives; it is
deterministic, so it may appear anywhere (in a ``gen`` as a ``factor``, in a
``fn``, in an objective).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy import stats

import ppl

SOURCE = """
fn normals(mu, s, x) { return density(normal(mu, s), x) }
fn coins(p, k) { return density(bernoulli(p), k) }
fn gammas(a, r, x) { return density(gamma(a, r), x) }
fn simplex(c, x) { return density(dirichlet(c), x) }
gen soft(x: real[3]) {
    mu ~ normal(0.0, 1.0)
    factor density(normal(mu, 1.0), x)
}
"""


@pytest.fixture(scope="module")
def m():
    return ppl.compile(SOURCE, "density_test.ppl")


def test_values_are_the_summed_log_densities(m):
    x = np.array([0.1, -1.0, 2.0], np.float32)
    np.testing.assert_allclose(m.normals(0.5, 2.0, x), stats.norm.logpdf(x, 0.5, 2.0).sum(),
                               rtol=1e-5)
    k = np.array([1, 0, 1], np.int32)
    np.testing.assert_allclose(m.coins(0.3, k), np.log([0.3, 0.7, 0.3]).sum(), rtol=1e-5)
    g = np.array([0.5, 2.0], np.float32)
    np.testing.assert_allclose(m.gammas(2.0, 3.0, g),
                               stats.gamma.logpdf(g, 2.0, scale=1 / 3.0).sum(), rtol=1e-5)
    c, s = np.array([1.5, 2.0, 3.0], np.float32), np.array([0.2, 0.3, 0.5], np.float32)
    np.testing.assert_allclose(m.simplex(c, s), stats.dirichlet.logpdf(s, c), rtol=1e-5)


def test_a_factor_of_a_density_is_part_of_the_joint(m):
    x = np.array([0.1, -1.0, 2.0], np.float32)
    trace, logp = m.soft(x).simulate(jax.random.PRNGKey(0))
    mu = float(trace["mu"])
    want = stats.norm.logpdf(mu) + stats.norm.logpdf(x, mu, 1.0).sum()
    np.testing.assert_allclose(logp, want, rtol=1e-5)


@pytest.mark.parametrize("p", [1e-6, 0.3, 1 - 1e-6])
def test_the_gradient_is_the_closed_form_at_and_near_the_boundary(p):
    """d/dp Σ log Bern(k; p) = Σ (k/p − (1−k)/(1−p)), also where numpyro's clipped
    density would give 0."""
    m = ppl.compile("objective o(k: int[3]) { param p: real<lower=0, upper=1> = 0.5\n"
                    "return expect { return density(bernoulli(p), k) } }")
    k = np.array([1, 0, 1], np.int32)
    obj = m.o(k)
    u = jnp.log(p) - jnp.log1p(-p)  # the unconstrained value of p
    _, g = obj.value_and_grad(jax.random.PRNGKey(0), {"o.p": u})
    dlp_dp = np.sum(k / p - (1 - k) / (1 - p))
    np.testing.assert_allclose(g["o.p"], dlp_dp * p * (1 - p), rtol=1e-3)


def test_a_value_of_the_wrong_shape_is_a_caret_error():
    with pytest.raises(ppl.CompileError, match="scores values of shape") as info:
        m = ppl.compile("fn f(c: real[3], x: real[2]) { return density(dirichlet(c), x) }")
        m.f(np.ones(3, np.float32), np.ones(2, np.float32))
    assert "^" in str(info.value)
