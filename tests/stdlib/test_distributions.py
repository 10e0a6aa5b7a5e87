"""Distributions: log densities against numpyro and closed forms, types against draws, moments."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
from scipy import special

from ppl.compiler.types import ArrayType
from ppl.stdlib.abstract import dtype_name
from ppl.stdlib.distributions import DISTRIBUTIONS

KEY = jax.random.PRNGKey(0)
N = 20000

# Per distribution, per form: batched example arguments, and the numpyro
# distribution the row must agree with (written here independently of the table).
SPD = np.array([[2.0, 0.5, 0.1], [0.5, 1.5, 0.2], [0.1, 0.2, 1.0]], np.float32)
EXAMPLES = {
    "normal": {("loc", "scale"): ([0.5, -1.0], [1.0, 2.0])},
    "mvnormal": {
        ("loc", "scale_tril"): ([[0.0, 1.0, 2.0]] * 2, np.linalg.cholesky(SPD)),
        ("loc", "covariance_matrix"): ([0.0, 1.0, 2.0], SPD),
        ("loc", "precision_matrix"): ([0.0, 1.0, 2.0], np.linalg.inv(SPD)),
    },
    "mvnormal_diag": {("loc", "scale"): ([0.0, 1.0, 2.0], [1.0, 0.5, 2.0])},
    "lognormal": {("loc", "scale"): ([0.0, 0.5], [0.5, 0.25])},
    "halfnormal": {("scale",): ([1.0, 2.0],)},
    "student_t": {("df", "loc", "scale"): ([10.0, 12.0], [0.0, 1.0], [1.0, 2.0])},
    "cauchy": {("loc", "scale"): ([0.0, 1.0], [1.0, 2.0])},
    "halfcauchy": {("scale",): ([1.0, 2.0],)},
    "laplace": {("loc", "scale"): ([0.0, 1.0], [1.0, 2.0])},
    "uniform": {("low", "high"): ([0.0, -1.0], [1.0, 3.0])},
    "beta": {("concentration1", "concentration0"): ([2.0, 0.5], [3.0, 0.5])},
    "gamma": {("concentration", "rate"): ([2.0, 5.0], [1.0, 3.0])},
    "inverse_gamma": {("concentration", "rate"): ([6.0, 9.0], [1.0, 3.0])},
    "exponential": {("rate",): ([1.0, 3.0],)},
    "dirichlet": {("concentration",): ([[1.0, 2.0, 3.0], [0.5, 0.5, 0.5]],)},
    "delta": {("v",): ([1.5, -2.0],)},
    "bernoulli": {("probs",): ([0.2, 0.7],), ("logits",): ([-1.0, 2.0],)},
    "categorical": {("probs",): ([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]],),
                    ("logits",): ([[0.0, 1.0, -1.0], [2.0, 0.0, 0.0]],)},
    "binomial": {("total_count", "probs"): (10, [0.2, 0.7]), ("total_count", "logits"): (10, [-1.0, 0.5])},
    "poisson": {("rate",): ([1.0, 4.5],)},
    "geometric": {("probs",): ([0.3, 0.6],), ("logits",): ([-0.5, 1.0],)},
}

NUMPYRO = {
    "normal": dist.Normal, "mvnormal": dist.MultivariateNormal,
    "mvnormal_diag": lambda loc, scale: dist.Independent(dist.Normal(loc, scale), 1),
    "lognormal": dist.LogNormal, "halfnormal": dist.HalfNormal, "student_t": dist.StudentT,
    "cauchy": dist.Cauchy, "halfcauchy": dist.HalfCauchy, "laplace": dist.Laplace, "uniform": dist.Uniform,
    "beta": dist.Beta, "gamma": dist.Gamma, "inverse_gamma": dist.InverseGamma, "exponential": dist.Exponential,
    "dirichlet": dist.Dirichlet, "delta": dist.Delta, "bernoulli": dist.Bernoulli, "categorical": dist.Categorical,
    "binomial": dist.Binomial, "poisson": dist.Poisson, "geometric": dist.Geometric,
}

CASES = [(name, form) for name, forms in EXAMPLES.items() for form in forms]


def concrete(args):
    return [a if isinstance(a, int) else jnp.asarray(a, jnp.float32) for a in args]


def types_of(args):
    """ArrayTypes for array arguments; Python scalars stay literals."""
    return [a if isinstance(a, (int, float)) else ArrayType("float32", np.shape(a)) for a in args]


def test_examples_cover_every_distribution_and_form():
    assert set(EXAMPLES) == set(DISTRIBUTIONS) == set(NUMPYRO)
    for name, row in DISTRIBUTIONS.items():
        assert set(EXAMPLES[name]) == set(row.forms), name


@functools.lru_cache(maxsize=None)
def draws_and_densities(name, form):
    """One compiled program per case (compiling dominates these tests): our draw,
    numpyro's draws ``x``, and log p(x) from our row, our built distribution and numpyro."""
    row, args = DISTRIBUTIONS[name], concrete(EXAMPLES[name][form])

    def run():
        reference = NUMPYRO[name](**dict(zip(form, args)))
        x = reference.sample(KEY, (5,))
        return (row.sample(form, args, KEY), x, row.build(form, args).log_prob(x),
                row.log_prob(form, args, x), reference.log_prob(x))

    return jax.jit(run)()


@pytest.mark.parametrize("name, form", CASES)
def test_log_prob_matches_numpyro(name, form):
    _, _, built, ours, reference = draws_and_densities(name, form)
    np.testing.assert_allclose(built, reference, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name, form", CASES)
def test_value_type_matches_draws(name, form):
    row, raw = DISTRIBUTIONS[name], EXAMPLES[name][form]
    draw = draws_and_densities(name, form)[0]
    assert draw.dtype == (jnp.int32 if row.discrete else jnp.float32)
    assert row.value_type(form, types_of(raw)) == ArrayType(dtype_name(draw.dtype), draw.shape)
    args = concrete(raw)
    reference = jax.eval_shape(lambda: NUMPYRO[name](**dict(zip(form, args))).sample(KEY))
    assert draw.shape == reference.shape
    assert jax.eval_shape(lambda: row.sample(form, args, KEY, (7,))).shape == (7,) + draw.shape


def test_value_type_broadcasts_batch_arguments():
    normal = DISTRIBUTIONS["normal"]
    got = normal.value_type(("loc", "scale"), [ArrayType("float32", (4, 1)), ArrayType("float32", (3,))])
    assert got == ArrayType("float32", (4, 3))
    mvn = DISTRIBUTIONS["mvnormal"]
    got = mvn.value_type(("loc", "covariance_matrix"), [ArrayType("float32", (5, 3)), ArrayType("float32", (3, 3))])
    assert got == ArrayType("float32", (5, 3))
    assert DISTRIBUTIONS["dirichlet"].value_type(("concentration",), [ArrayType("float32", (2, 4))]) == \
        ArrayType("float32", (2, 4))
    assert DISTRIBUTIONS["categorical"].value_type(("logits",), [ArrayType("float32", (2, 4))]) == \
        ArrayType("int32", (2,))
    assert DISTRIBUTIONS["mvnormal_diag"].value_type(("loc", "scale"), [ArrayType("float32", (3,)), 1.0]) == \
        ArrayType("float32", (3,))
    assert DISTRIBUTIONS["bernoulli"].value_type(("probs",), [ArrayType("int32", (2,))]) == ArrayType("int32", (2,))


@pytest.mark.parametrize("name, form, args, words", [
    ("normal", ("loc", "scale"), [(3,), (4,)], "normal(loc, scale): loc has shape [3] and scale has shape [4], "
                                               "which do not broadcast"),
    ("bernoulli", ("logits",), [(2, 3)], None),
    ("mvnormal", ("loc", "scale_tril"), [(3,), (4, 4)], "event sizes differ (3 and 4)"),
    ("mvnormal", ("loc", "covariance_matrix"), [(2, 3), (5, 3, 3)], "whose batch shapes do not broadcast"),
    ("mvnormal", ("loc", "scale_tril"), [(), (3, 3)], "loc must be a vector"),
    ("categorical", ("probs",), [()], "categorical(probs): probs must be a vector"),
    ("mvnormal_diag", ("loc", "scale"), [(), ()], "the value is a vector"),
    ("uniform", ("low", "high"), [(2, 3), (3, 2)], "which do not broadcast"),
])
def test_value_type_explains_shape_errors(name, form, args, words):
    row = DISTRIBUTIONS[name]
    types = [ArrayType("float32", s) for s in args]
    if words is None:
        row.value_type(form, types)
        return
    with pytest.raises(ValueError) as error:
        row.value_type(form, types)
    assert words in str(error.value)


def test_unknown_form_is_a_value_error():
    with pytest.raises(ValueError, match="its forms are"):
        DISTRIBUTIONS["bernoulli"].value_type(("p",), [0.5])


# -- closed-form oracles -----------------------------------------------------------

def normal_logp(x, loc, scale):
    return -0.5 * np.log(2 * np.pi) - np.log(scale) - (x - loc) ** 2 / (2 * scale ** 2)


ORACLES = {
    ("normal", ("loc", "scale")): (normal_logp, [0.3, 1.7], [np.array([-0.2, 3.0])]),
    ("bernoulli", ("probs",)): (lambda x, p: x * np.log(p) + (1 - x) * np.log1p(-p), [0.3], [np.array([0, 1])]),
    ("bernoulli", ("logits",)): (lambda x, l: x * l - np.logaddexp(0, l), [-0.8], [np.array([0, 1])]),
    ("poisson", ("rate",)): (lambda x, r: x * np.log(r) - r - special.gammaln(x + 1), [3.2],
                             [np.array([0, 2, 7])]),
    ("gamma", ("concentration", "rate")): (
        lambda x, a, b: a * np.log(b) + (a - 1) * np.log(x) - b * x - special.gammaln(a), [2.5, 1.5],
        [np.array([0.3, 1.0, 4.0])]),
    ("beta", ("concentration1", "concentration0")): (
        lambda x, a, b: (a - 1) * np.log(x) + (b - 1) * np.log1p(-x) - special.betaln(a, b), [2.0, 3.5],
        [np.array([0.1, 0.5, 0.9])]),
    ("exponential", ("rate",)): (lambda x, r: np.log(r) - r * x, [2.0], [np.array([0.1, 1.0, 3.0])]),
    ("categorical", ("probs",)): (lambda x, p: np.log(np.asarray(p)[x]), [[0.2, 0.5, 0.3]], [np.array([0, 1, 2])]),
    ("categorical", ("logits",)): (lambda x, l: np.asarray(l)[x] - special.logsumexp(l), [[0.5, -1.0, 2.0]],
                                   [np.array([0, 1, 2])]),
}


@pytest.mark.parametrize("name, form", list(ORACLES))
def test_log_prob_matches_closed_form(name, form):
    oracle, args, (x,) = ORACLES[(name, form)]
    ours = DISTRIBUTIONS[name].log_prob(form, [jnp.asarray(a, jnp.float32) for a in args], jnp.asarray(x))
    np.testing.assert_allclose(ours, oracle(x, *args), rtol=1e-5, atol=1e-5)


# -- moments -----------------------------------------------------------------------------

def textbook_moments():
    """(name, form, scalar args, mean, variance) of draws, from textbook formulas."""
    a, b = 2.0, 3.0
    return [
        ("normal", ("loc", "scale"), [1.0, 2.0], 1.0, 4.0),
        ("lognormal", ("loc", "scale"), [0.0, 0.5], math.exp(0.125), (math.exp(0.25) - 1) * math.exp(0.25)),
        ("halfnormal", ("scale",), [2.0], 2.0 * math.sqrt(2 / math.pi), 4.0 * (1 - 2 / math.pi)),
        ("student_t", ("df", "loc", "scale"), [10.0, 1.0, 2.0], 1.0, 4.0 * 10 / 8),
        ("laplace", ("loc", "scale"), [1.0, 2.0], 1.0, 8.0),
        ("uniform", ("low", "high"), [-1.0, 3.0], 1.0, 16 / 12),
        ("beta", ("concentration1", "concentration0"), [a, b], a / (a + b), a * b / ((a + b) ** 2 * (a + b + 1))),
        ("gamma", ("concentration", "rate"), [a, b], a / b, a / b ** 2),
        ("inverse_gamma", ("concentration", "rate"), [9.0, 4.0], 4.0 / 8, 16.0 / (64 * 7)),
        ("exponential", ("rate",), [2.0], 0.5, 0.25),
        ("bernoulli", ("probs",), [0.3], 0.3, 0.21),
        ("bernoulli", ("logits",), [0.0], 0.5, 0.25),
        ("binomial", ("total_count", "probs"), [10, 0.3], 3.0, 2.1),
        ("categorical", ("probs",), [[0.2, 0.3, 0.5]], 1.3, 0.3 + 2.0 - 1.3 ** 2),
        ("poisson", ("rate",), [3.5], 3.5, 3.5),
        ("geometric", ("probs",), [0.4], 0.6 / 0.4, 0.6 / 0.16),
        ("mvnormal_diag", ("loc", "scale"), [[0.0, 2.0], [1.0, 0.5]], np.array([0.0, 2.0]), np.array([1.0, 0.25])),
        ("mvnormal", ("loc", "covariance_matrix"), [[1.0, 0.0, -1.0], SPD], np.array([1.0, 0.0, -1.0]),
         np.diag(SPD)),
        ("dirichlet", ("concentration",), [[1.0, 2.0, 3.0]], np.array([1, 2, 3]) / 6,
         np.array([1 * 5, 2 * 4, 3 * 3]) / (36 * 7)),
    ]


@pytest.mark.parametrize("name, form, args, mean, variance", textbook_moments(),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_sample_moments(name, form, args, mean, variance):
    row = DISTRIBUTIONS[name]
    draws = jax.jit(lambda: row.sample(form, concrete(args), jax.random.PRNGKey(1), (N,)))()
    # Python scalars stay literals here, so this also checks value_type on literal arguments.
    assert row.value_type(form, types_of(args)) == ArrayType(dtype_name(draws.dtype), draws.shape[1:])
    draws = np.asarray(draws, np.float64)
    m, v = draws.mean(0), draws.var(0)
    mean_se = np.sqrt(variance / N)
    var_se = np.sqrt((((draws - m) ** 4).mean(0) - v ** 2) / N)
    assert np.all(np.abs(m - mean) < 5 * mean_se), (m, mean)
    assert np.all(np.abs(v - variance) < 5 * var_se), (v, variance)


@pytest.mark.parametrize("name, args, median", [("cauchy", [1.0, 2.0], 1.0), ("halfcauchy", [2.0], 2.0)])
def test_heavy_tailed_draws_have_the_right_median(name, args, median):
    # No moments exist; the fraction of draws below the median is a mean of indicators.
    row = DISTRIBUTIONS[name]
    draws = jax.jit(lambda: row.sample(row.forms[0], concrete(args), jax.random.PRNGKey(2), (N,)))()
    assert row.value_type(row.forms[0], args) == ArrayType("float32", ())
    draws = np.asarray(draws)
    below = (draws < median).mean()
    assert abs(below - 0.5) < 5 * math.sqrt(0.25 / N)


def test_mvnormal_draws_have_the_right_covariance():
    row = DISTRIBUTIONS["mvnormal"]
    matrices = {"scale_tril": np.linalg.cholesky(SPD), "covariance_matrix": SPD, "precision_matrix": np.linalg.inv(SPD)}
    # The standard error of a covariance entry is sqrt((S_ii S_jj + S_ij^2) / N) for normal draws.
    se = np.sqrt((np.outer(np.diag(SPD), np.diag(SPD)) + SPD ** 2) / N)
    for form in row.forms:
        args = [jnp.zeros(3), jnp.asarray(matrices[form[1]], jnp.float32)]
        draws = np.asarray(row.sample(form, args, jax.random.PRNGKey(3), (N,)), np.float64)
        assert np.all(np.abs(np.cov(draws.T) - SPD) < 5 * se), form


def test_delta_draws_its_parameter():
    row = DISTRIBUTIONS["delta"]
    np.testing.assert_array_equal(row.sample(("v",), [jnp.array([1.5, -2.0])], KEY), [1.5, -2.0])


# -- supports and estimators ------------------------------------------------------

def test_support_sizes_and_values():
    bern, cat, binom = DISTRIBUTIONS["bernoulli"], DISTRIBUTIONS["categorical"], DISTRIBUTIONS["binomial"]
    assert bern.support_size(("logits",), [ArrayType("float32", (4,))]) == 2
    assert cat.support_size(("probs",), [ArrayType("float32", (2, 5))]) == 5
    assert binom.support_size(("total_count", "probs"), [7, 0.5]) == 8
    assert DISTRIBUTIONS["poisson"].support_size(("rate",), [1.0]) is None
    with pytest.raises(ValueError, match="total_count to be an integer literal"):
        binom.support_size(("total_count", "probs"), [ArrayType("int32", ()), 0.5])
    values = bern.enumerate_support(("probs",), [jnp.array([0.2, 0.7])])
    assert values.dtype == jnp.int32 and values.shape == (2, 1)
    np.testing.assert_array_equal(values[:, 0], [0, 1])
    values = binom.enumerate_support(("total_count", "probs"), [4, jnp.array([0.2, 0.7])])
    np.testing.assert_array_equal(values[:, 0], np.arange(5))
    values = cat.enumerate_support(("logits",), [jnp.zeros((2, 3))])
    np.testing.assert_array_equal(values[:, 0], np.arange(3))


@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
def test_estimator_table_is_sound(name):
    row = DISTRIBUTIONS[name]
    assert row.default_estimator in row.estimators
    assert row.estimators <= {"reparam", "reinforce", "enum", "mvd"}
    assert ("enum" in row.estimators) == row.enumerable
    if row.discrete:
        assert "reparam" not in row.estimators and not row.reparameterizable
    form = row.forms[0]
    built = row.build(form, concrete(EXAMPLES[name][form]))
    assert built.has_rsample == row.reparameterizable
    assert built.is_discrete == row.discrete
    assert row.doc and "\n" not in row.doc
