"""``param L: corr_cholesky[D]``: a Cholesky factor of a D x D correlation matrix,
optimised on numpyro's ``CorrCholeskyTransform`` (D (D - 1) / 2 unconstrained reals).

- it starts at the identity; during a fit (checked after each of several chunks)
  it stays lower triangular with a positive diagonal and rows of unit length, and
  it reaches the correlation of the data;
- the objective's gradient with respect to its unconstrained value matches
  central finite differences;
- an initial value that is not such a factor is an error naming the parameter; a
  shape other than one size, and ``corr_cholesky`` as an argument type, are errors.
"""

from __future__ import annotations

import jax
import numpy as np
import optax
import pytest

import ppl

SOURCE = """
objective loglik(y: real[N, 3]) {
    param L: corr_cholesky[3]
    return sum(density(mvnormal(zeros(3), scale_tril=L), y))
}

objective bad_start(y: real[N, 3]) {
    param L: corr_cholesky[3] = 0.5
    return sum(density(mvnormal(zeros(3), scale_tril=L), y))
}
"""
CORR = np.array([[1.0, 0.6, -0.3], [0.6, 1.0, 0.2], [-0.3, 0.2, 1.0]])
Y = (np.random.RandomState(0).randn(1000, 3) @ np.linalg.cholesky(CORR).T).astype(np.float32)


@pytest.fixture(scope="module")
def obj():
    return ppl.compile(SOURCE).loglik(Y)


def valid_factor(L) -> bool:
    L = np.asarray(L, np.float64)
    return (np.allclose(np.triu(L, 1), 0.0) and bool(np.all(np.diag(L) > 0))
            and np.allclose(np.linalg.norm(L, axis=-1), 1.0, atol=1e-5))


def test_it_starts_at_the_identity_and_stays_a_factor_during_a_fit(obj):
    params = obj.init(jax.random.PRNGKey(0))
    assert params["loglik.L"].shape == (3,)
    fitted, adam = None, optax.adam(0.05)  # one optimiser: the chunks share a compiled step
    for _ in range(2):  # two chunks: a valid factor after each
        fitted = ppl.fit(obj, steps=100, optimizer=adam, params=params,
                         key=jax.random.PRNGKey(1))
        L = fitted.constrained_params["loglik.L"]
        assert valid_factor(L), L
        params = fitted.params
    assert np.all(np.isfinite(fitted.history))
    L = np.asarray(fitted.constrained_params["loglik.L"], np.float64)
    sample = np.corrcoef(Y.T)
    np.testing.assert_allclose(L @ L.T, sample, atol=0.05)  # the MLE: near the sample's


def test_its_gradient_matches_finite_differences(obj):
    u = np.array([0.4, -0.7, 0.25], np.float32)
    key = jax.random.PRNGKey(0)
    _, grad = obj.value_and_grad(key, {"loglik.L": u})
    eps = 1e-2
    fd = []
    for i in range(3):
        e = np.zeros(3, np.float32)
        e[i] = eps
        hi = float(obj.value_and_grad(key, {"loglik.L": u + e})[0])
        lo = float(obj.value_and_grad(key, {"loglik.L": u - e})[0])
        fd.append((hi - lo) / (2 * eps))
    np.testing.assert_allclose(np.asarray(grad["loglik.L"]), fd, rtol=2e-2, atol=0.5)


def test_an_initial_value_that_is_not_a_factor_names_the_parameter():
    bad = ppl.compile(SOURCE).bad_start(Y)
    with pytest.raises(ppl.DataError) as err:
        bad.init(jax.random.PRNGKey(0))
    text = str(err.value)
    assert ("the initial value of parameter 'bad_start.L' is outside its constraint (a Cholesky "
            "factor of a correlation matrix: corr_cholesky)") in text, text


@pytest.mark.parametrize("source, words", [
    ("gen g() { param L: corr_cholesky[3, 3]\n x ~ normal(0.0, 1.0) }",
     "a corr_cholesky parameter has one size, the dimension of its correlation matrix"),
    ("gen g(L: corr_cholesky[3]) { x ~ normal(0.0, 1.0) }",
     "corr_cholesky[D] is the type of a parameter ('param L: corr_cholesky[D]'), not of an "
     "argument"),
])
def test_misuses_are_errors(source, words):
    with pytest.raises(ppl.PPLError) as err:
        ppl.compile(source).g().init(jax.random.PRNGKey(0))
    assert words in str(err.value), str(err.value)
