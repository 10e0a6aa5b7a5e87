"""Simulating a program draws from the right distribution: moments within 5 standard errors.

Each program draws ``M`` independent copies of one choice in a plate (one
vectorised computation; the plate's iterations get independent keys), so a
single ``simulate`` gives a sample whose mean and variance are compared with
the textbook values. The standard error of a sample variance is estimated
from the sample's fourth central moment, which holds for any distribution
with four moments.
"""

import jax
import numpy as np
import pytest
from scipy import stats

import ppl

M = 20000
Z = 5.0  # standard errors allowed

SOURCE = f"""
gen normal_m() {{ plate i in {M} {{ x ~ normal(1.0, 2.0) }} }}
gen lognormal_m() {{ plate i in {M} {{ x ~ lognormal(0.3, 0.4) }} }}
gen gamma_m() {{ plate i in {M} {{ x ~ gamma(3.0, 2.0) }} }}
gen beta_m() {{ plate i in {M} {{ x ~ beta(2.0, 5.0) }} }}
gen bernoulli_m() {{ plate i in {M} {{ x ~ bernoulli(0.3) }} }}
gen bernoulli_logits_m() {{ plate i in {M} {{ x ~ bernoulli(logits=-1.0) }} }}
gen poisson_m() {{ plate i in {M} {{ x ~ poisson(3.5) }} }}
gen categorical_m(p) {{ plate i in {M} {{ x ~ categorical(p) }} }}
gen dirichlet_m(c) {{ plate i in {M} {{ x ~ dirichlet(c) }} }}
gen mvnormal_m(mu, L) {{ plate i in {M} {{ x ~ mvnormal(mu, L) }} }}
gen batched_normal() {{ x ~ normal(zeros({M}) + 1.0, 2.0) }}
gen families(steps: int, trials: int) {{
    plate i in {M} {{
        x_truncated ~ truncated_normal(0.5, 2.0, low=-1.0, high=3.0)
        x_walk ~ gaussian_random_walk(1.5, steps)
        x_multinomial ~ multinomial(trials, [0.2, 0.3, 0.5])
    }}
}}
"""


@pytest.fixture(scope="module")
def m():
    return ppl.compile(SOURCE)


def draws(g, seed=0):
    trace, logp = g.simulate(jax.random.PRNGKey(seed))
    assert np.isfinite(logp)
    return np.asarray(trace["x"], np.float64)


def assert_moments(x, mean, var):
    """The sample mean and variance along axis 0 are within Z standard errors of (mean, var)."""
    n = x.shape[0]
    m_hat = x.mean(0)
    centred = x - m_hat
    v_hat = (centred ** 2).mean(0)
    m4 = (centred ** 4).mean(0)
    se_mean = np.sqrt(v_hat / n)
    se_var = np.sqrt(np.maximum(m4 - v_hat ** 2, 1e-12) / n)
    assert np.all(np.abs(m_hat - mean) < Z * se_mean), (m_hat, mean, se_mean)
    assert np.all(np.abs(v_hat - var) < Z * se_var), (v_hat, var, se_var)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


@pytest.mark.parametrize("name,mean,var", [
    ("normal_m", 1.0, 4.0),
    ("batched_normal", 1.0, 4.0),
    ("lognormal_m", np.exp(0.3 + 0.08), np.expm1(0.16) * np.exp(0.6 + 0.16)),
    ("gamma_m", 1.5, 0.75),
    ("beta_m", 2 / 7, 10 / (49 * 8)),
    ("bernoulli_m", 0.3, 0.21),
    ("bernoulli_logits_m", sigmoid(-1.0), sigmoid(-1.0) * (1 - sigmoid(-1.0))),
    ("poisson_m", 3.5, 3.5),
])
def test_scalar_moments(m, name, mean, var):
    x = draws(getattr(m, name)())
    assert x.shape == (M,)
    assert_moments(x, mean, var)


def _truncated(loc, scale, low, high=np.inf):
    d = stats.truncnorm((low - loc) / scale, (high - loc) / scale, loc, scale)
    return d.mean(), d.var()


# address -> (a statistic of the draws, its mean, its variance). The families whose size
# comes from a static int argument (walk, multinomial) and a keyword form; every family's
# sampler is checked in tests/stdlib/test_distributions.py, by the same row the program runs.
FAMILIES = {
    "x_truncated": (lambda x: x, *_truncated(0.5, 2.0, -1.0, 3.0)),
    "x_walk": (lambda x: x, 0.0, 1.5 ** 2 * np.arange(1, 5)),
    "x_multinomial": (lambda x: x, 6 * np.array([0.2, 0.3, 0.5]), 6 * np.array([0.2, 0.3, 0.5]) * np.array([0.8, 0.7, 0.5])),
}


@pytest.fixture(scope="module")
def families(m):
    """One simulate of every family above (static steps = 4 and trials = 6 as int arguments)."""
    trace, logp = m.families(4, 6).simulate(jax.random.PRNGKey(2))
    assert np.isfinite(logp)
    return trace


@pytest.mark.parametrize("address", list(FAMILIES))
def test_family_moments(families, address):
    statistic, mean, var = FAMILIES[address]
    x = statistic(np.asarray(families[address], np.float64))
    assert x.shape[0] == M
    assert_moments(x, mean, var)


def test_categorical_frequencies(m):
    p = np.array([0.1, 0.2, 0.3, 0.4], np.float32)
    x = draws(m.categorical_m(p)).astype(int)
    assert x.min() >= 0 and x.max() <= 3
    onehot = np.eye(4)[x]  # the frequency of each value is the mean of an indicator
    assert_moments(onehot, p, p * (1 - p))


def test_dirichlet_moments(m):
    c = np.array([1.0, 2.0, 3.0], np.float32)
    x = draws(m.dirichlet_m(c))
    assert x.shape == (M, 3)
    np.testing.assert_allclose(x.sum(-1), 1.0, rtol=1e-5)
    c0 = c.sum()
    assert_moments(x, c / c0, c * (c0 - c) / (c0 ** 2 * (c0 + 1)))


def test_mvnormal_mean_and_covariance(m):
    mu = np.array([1.0, -1.0, 0.5], np.float32)
    cov = np.array([[2.0, 0.5, 0.1], [0.5, 1.5, 0.2], [0.1, 0.2, 1.0]], np.float32)
    x = draws(m.mvnormal_m(mu, np.linalg.cholesky(cov)))
    assert x.shape == (M, 3)
    assert_moments(x, mu, np.diag(cov))
    # Each covariance entry is the mean of a product of centred coordinates.
    centred = x - mu
    products = (centred[:, :, None] * centred[:, None, :]).reshape(M, 9)
    assert_moments(products, cov.reshape(9), (np.diag(cov)[:, None] * np.diag(cov)[None, :]
                                              + cov ** 2).reshape(9))


def test_plate_iterations_are_independent(m):
    """Neighbouring draws of a plate are uncorrelated (each iteration has its own key)."""
    x = draws(m.normal_m())
    r = np.corrcoef(x[:-1], x[1:])[0, 1]
    assert abs(r) < Z / np.sqrt(M)


def test_keys_reproduce_and_differ(m):
    g = m.normal_m()
    a, b, c = draws(g, 0), draws(g, 0), draws(g, 1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_simulate_under_vmap_of_keys():
    """A jitted simulate can be vmapped over keys, giving independent draws."""
    m = ppl.compile("gen g() { x ~ normal(1.0, 2.0) }")
    g = m.g()
    keys = jax.random.split(jax.random.PRNGKey(0), 4000)
    traces, logps = jax.vmap(g.simulate)(keys)
    x = np.asarray(traces["x"], np.float64)
    assert x.shape == (4000,)
    assert_moments(x, 1.0, 4.0)
    np.testing.assert_allclose(jax.vmap(g.density)(traces), logps, rtol=1e-5)
