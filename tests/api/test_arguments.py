"""Arguments from Python that a program cannot use are DataErrors, never JAX tracebacks
or silently cast values (defects 12, 13 and 15)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ppl

SOURCE = """
gen counts() { lam ~ gamma(2.0, 1.0); plate i in 3 { k ~ poisson(lam) } }
gen line() { w ~ normal(0.0, 1.0); plate i in 3 { y ~ normal(w, 1.0) } }
gen model() { z ~ normal(0.0, 1.0); x ~ normal(z, 1.0) }
gen fam() { param mu: real = 0.0; z ~ normal(mu, 1.0) }
gen coin(n: int) { p ~ beta(2.0, 2.0); plate i in n { flips ~ bernoulli(p) } }
gen cat() { c ~ categorical(probs=[0.2, 0.3, 0.5]) }
gen trials(n: int) { q ~ beta(1.0, 1.0); k ~ binomial(n, q) }
gen outer() { inner ~ cat() }
"""


@pytest.fixture(scope="module")
def m():
    return ppl.compile(SOURCE)


@pytest.mark.parametrize("n", [-1, 0, 2.5, True])
def test_sample_needs_a_positive_count(m, n):
    with pytest.raises(ppl.DataError, match="sample\\(n=...\\) must be a positive integer"):
        m.model().sample(jax.random.PRNGKey(0), n=n)


@pytest.mark.parametrize("key", [3, 2.0, np.zeros(3, np.uint32), "seed"])
def test_a_key_must_be_a_jax_random_key(m, key):
    obj = ppl.stdlib.elbo(m.model() | {"x": 1.0}, m.fam())
    params = {"fam.mu": jnp.float32(0.0)}
    calls = [lambda: m.model().simulate(key), lambda: m.model().sample(key, n=2),
             lambda: m.fam().init(key), lambda: obj.init(key), lambda: obj.value(key, params),
             lambda: obj.value_and_grad(key, params),
             lambda: ppl.fit(obj, steps=1, key=key, progress=False)]
    for call in calls:
        with pytest.raises(ppl.DataError, match="must be a JAX random key"):
            call()


def test_typed_keys_are_keys(m):
    trace, logp = m.model().simulate(jax.random.key(0))
    assert np.isfinite(float(logp))


def test_numpy_integer_particle_counts(m):
    """Defect 15: K=np.int64(2) was "not an integer"; it is K=2, the same program."""
    p, q = m.model() | {"x": 1.0}, m.fam()
    a = ppl.stdlib.iwelbo(p, q, K=np.int64(2))
    assert a.compiled()[0] is ppl.stdlib.iwelbo(p, q, K=2).compiled()[0]
    with pytest.raises(ppl.DataError, match="K must be an integer"):
        ppl.stdlib.iwelbo(p, q, K=np.float32(2))


def test_non_integer_data_for_an_int_choice_is_an_error(m):
    """Defect 12: 0.5 observed for a Poisson count was truncated to 0."""
    with pytest.raises(ppl.DataError, match="observation at 'k' holds 0.5.*an int"):
        (m.counts() | {"k": [1.0, 0.5, 2.0]}).density({"lam": 1.0})
    # Whole numbers stored as floats (binarised images) are data like any other.
    as_floats = (m.counts() | {"k": [1.0, 0.0, 2.0]}).density({"lam": 1.0})
    as_ints = (m.counts() | {"k": np.array([1, 0, 2])}).density({"lam": 1.0})
    exact = math.log(math.exp(-1.0)) + 3 * (-1.0) - math.log(2.0)  # gamma(2,1) at 1, Poisson(1)
    np.testing.assert_allclose([float(as_floats), float(as_ints)], exact, rtol=1e-5)


@pytest.mark.parametrize("bad, what", [(np.nan, "NaN"), (np.inf, "infinite")])
def test_non_finite_data_is_an_error(m, bad, what):
    """Defect 12: a NaN observation gave a finite density."""
    with pytest.raises(ppl.DataError, match=f"observation at 'y' holds {what}"):
        (m.line() | {"y": [0.0, bad, 1.0]}).density({"w": 0.0})
    with pytest.raises(ppl.DataError, match=f"observation at 'x' holds {what}"):
        ppl.stdlib.elbo(m.model() | {"x": bad}, m.fam()).value(jax.random.PRNGKey(0),
                                                                {"fam.mu": 0.0})


@pytest.mark.parametrize("make, observed, latent, what", [
    (lambda m: m.coin(3), {"flips": [0, 2, 1]}, {"p": 0.5}, "holds 2, outside the values of its bernoulli"),
    (lambda m: m.cat(), {"c": 3}, {}, "holds 3, outside the values of its categorical"),
    (lambda m: m.trials(5), {"k": 6}, {"q": 0.5}, "holds 6, outside the values of its binomial"),
    (lambda m: m.outer(), {"inner/c": -1}, {}, "'inner/c' holds -1"),
])
def test_data_outside_a_finite_support_is_an_error(m, make, observed, latent, what):
    """Defect 12: a Bernoulli observation of 2 gave a number."""
    with pytest.raises(ppl.DataError, match=what):
        (make(m) | observed).density(latent)


def test_data_inside_a_finite_support_is_scored(m):
    np.testing.assert_allclose(float((m.cat() | {"c": 2}).density({})), math.log(0.5), rtol=1e-5)
