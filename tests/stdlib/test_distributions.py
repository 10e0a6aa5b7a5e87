"""Distributions: log densities against numpyro and closed forms, types against draws, moments.

Compiling numpyro's samplers dominates the cost of these tests, so every draw
they inspect comes from one compiled program (:func:`draws`) with one sampler
per (distribution, form), and every density from another: the draws serve the
moment tests, and the first few the log-density and type tests.
"""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
from scipy import special, stats

from ppl.compiler.types import ArrayType
from ppl.stdlib.abstract import dtype_name
from ppl.stdlib.distributions import DISTRIBUTIONS

KEY = jax.random.PRNGKey(0)
N = 20000

# Per distribution, per form: batched example arguments.
SPD = np.array([[2.0, 0.5, 0.1], [0.5, 1.5, 0.2], [0.1, 0.2, 1.0]], np.float32)
EXAMPLES = {
    "normal": {("loc", "scale"): ([0.5, -1.0], [1.0, 2.0])},
    "mvnormal": {
        ("loc", "scale_tril"): ([[0.0, 1.0, 2.0], [1.0, 0.0, -1.0]], np.linalg.cholesky(SPD)),
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
    "logistic": {("loc", "scale"): ([0.0, 1.0], [1.0, 2.0])},
    "weibull": {("scale", "concentration"): ([1.0, 2.0], [1.5, 3.0])},
    "pareto": {("scale", "alpha"): ([1.0, 2.0], [9.0, 10.0])},  # alpha > 8: eight moments, for the SE of the variance
    # the second interval lies above its loc: the log density is taken of the mirror image
    "truncated_normal": {("loc", "scale", "low", "high"): ([0.0, 1.0], [1.0, 2.0], [-1.0, 2.0], [2.0, 6.0]),
                         ("loc", "scale", "low"): ([0.0, 1.0], [1.0, 2.0], [0.5, -1.0]),
                         ("loc", "scale", "high"): ([0.0, 1.0], [1.0, 2.0], [-0.5, 3.0])},
    "gaussian_random_walk": {("scale", "num_steps"): ([1.0, 2.0], 4)},
    "lkj_cholesky": {("dimension", "concentration"): (3, [1.0, 2.5])},
    "von_mises": {("loc", "concentration"): ([0.5, -1.0], [2.0, 5.0])},
    "beta_binomial": {("concentration1", "concentration0", "total_count"): ([2.0, 0.5], [3.0, 0.5], 10)},
    "multinomial": {("total_count", "probs"): (5, [[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]]),
                    ("total_count", "logits"): (5, [[0.0, 1.0, -1.0], [2.0, 0.0, 0.0]])},
    "negative_binomial": {("total_count", "probs"): ([3.0, 1.5], [0.4, 0.7]),
                          ("total_count", "logits"): ([3.0, 1.5], [-0.5, 0.5])},
    "zero_inflated_poisson": {("gate", "rate"): ([0.3, 0.6], [2.0, 4.5]),
                              ("gate_logits", "rate"): ([-0.8, 0.4], [2.0, 4.5])},
}
CASES = [(name, form) for name, forms in EXAMPLES.items() for form in forms]

# The numpyro distribution each row must agree with, written here independently of the table.
NUMPYRO = {
    "normal": dist.Normal, "mvnormal": dist.MultivariateNormal,
    "mvnormal_diag": lambda loc, scale: dist.Independent(dist.Normal(loc, scale), 1),
    "lognormal": dist.LogNormal, "halfnormal": dist.HalfNormal, "student_t": dist.StudentT,
    "cauchy": dist.Cauchy, "halfcauchy": dist.HalfCauchy, "laplace": dist.Laplace, "uniform": dist.Uniform,
    "beta": dist.Beta, "gamma": dist.Gamma, "inverse_gamma": dist.InverseGamma, "exponential": dist.Exponential,
    "dirichlet": dist.Dirichlet, "delta": dist.Delta, "bernoulli": dist.Bernoulli, "categorical": dist.Categorical,
    "binomial": dist.Binomial, "poisson": dist.Poisson, "geometric": dist.Geometric,
    "logistic": dist.Logistic, "weibull": dist.Weibull, "pareto": dist.Pareto,
    "truncated_normal": lambda loc, scale, low=None, high=None: dist.TruncatedNormal(loc, scale, low=low, high=high),
    "gaussian_random_walk": lambda scale, num_steps: dist.GaussianRandomWalk(scale, num_steps),
    "lkj_cholesky": lambda dimension, concentration: dist.LKJCholesky(dimension, concentration),
    "von_mises": dist.VonMises, "beta_binomial": dist.BetaBinomial, "multinomial": dist.Multinomial,
    "negative_binomial": dist.NegativeBinomial,
    "zero_inflated_poisson": lambda rate, gate=None, gate_logits=None: (
        dist.ZeroInflatedPoisson(gate, rate) if gate_logits is None
        else dist.ZeroInflatedDistribution(dist.Poisson(rate), gate_logits=gate_logits)),
}


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def truncated_normal_moments(loc, scale, low=-np.inf, high=np.inf):
    d = stats.truncnorm((low - loc) / scale, (high - loc) / scale, loc, scale)
    return d.mean(), d.var()


def weibull_moments(scale, k):
    m1, m2 = special.gamma(1 + 1 / k), special.gamma(1 + 2 / k)
    return scale * m1, scale ** 2 * (m2 - m1 ** 2)


def negative_binomial_moments(r, p):  # successes (probability p) before r failures
    return r * p / (1 - p), r * p / (1 - p) ** 2


def categorical_moments(p):
    k = np.arange(p.shape[-1])
    mean = (p * k).sum(-1)
    return mean, (p * k ** 2).sum(-1) - mean ** 2


# Textbook (mean, variance) of one draw, as functions of a form's arguments (numpy arrays).
MOMENTS = {
    ("normal", ("loc", "scale")): lambda m, s: (m, s ** 2),
    ("mvnormal_diag", ("loc", "scale")): lambda m, s: (m, s ** 2),
    ("lognormal", ("loc", "scale")): lambda m, s: (np.exp(m + s ** 2 / 2), np.expm1(s ** 2) * np.exp(2 * m + s ** 2)),
    ("halfnormal", ("scale",)): lambda s: (s * np.sqrt(2 / np.pi), s ** 2 * (1 - 2 / np.pi)),
    ("student_t", ("df", "loc", "scale")): lambda df, m, s: (m + 0 * df, s ** 2 * df / (df - 2)),
    ("laplace", ("loc", "scale")): lambda m, s: (m, 2 * s ** 2),
    ("uniform", ("low", "high")): lambda lo, hi: ((lo + hi) / 2, (hi - lo) ** 2 / 12),
    ("beta", ("concentration1", "concentration0")): lambda a, b: (a / (a + b), a * b / ((a + b) ** 2 * (a + b + 1))),
    ("gamma", ("concentration", "rate")): lambda a, b: (a / b, a / b ** 2),
    ("inverse_gamma", ("concentration", "rate")): lambda a, b: (b / (a - 1), b ** 2 / ((a - 1) ** 2 * (a - 2))),
    ("exponential", ("rate",)): lambda r: (1 / r, 1 / r ** 2),
    ("dirichlet", ("concentration",)): lambda c: (
        c / c.sum(-1, keepdims=True),
        c * (c.sum(-1, keepdims=True) - c) / (c.sum(-1, keepdims=True) ** 2 * (c.sum(-1, keepdims=True) + 1))),
    ("bernoulli", ("probs",)): lambda p: (p, p * (1 - p)),
    ("bernoulli", ("logits",)): lambda l: (sigmoid(l), sigmoid(l) * (1 - sigmoid(l))),
    ("categorical", ("probs",)): categorical_moments,
    ("categorical", ("logits",)): lambda l: categorical_moments(special.softmax(l, -1)),
    ("binomial", ("total_count", "probs")): lambda n, p: (n * p, n * p * (1 - p)),
    ("binomial", ("total_count", "logits")): lambda n, l: (n * sigmoid(l), n * sigmoid(l) * (1 - sigmoid(l))),
    ("poisson", ("rate",)): lambda r: (r, r),
    ("geometric", ("probs",)): lambda p: ((1 - p) / p, (1 - p) / p ** 2),
    ("geometric", ("logits",)): lambda l: ((1 - sigmoid(l)) / sigmoid(l), (1 - sigmoid(l)) / sigmoid(l) ** 2),
    ("logistic", ("loc", "scale")): lambda m, s: (m, s ** 2 * np.pi ** 2 / 3),
    ("weibull", ("scale", "concentration")): weibull_moments,
    ("pareto", ("scale", "alpha")): lambda s, a: (a * s / (a - 1), s ** 2 * a / ((a - 1) ** 2 * (a - 2))),
    ("truncated_normal", ("loc", "scale", "low", "high")): truncated_normal_moments,
    ("truncated_normal", ("loc", "scale", "low")): truncated_normal_moments,
    ("truncated_normal", ("loc", "scale", "high")): lambda m, s, hi: truncated_normal_moments(m, s, high=hi),
    # step t (from 1) of the walk is a sum of t normal(0, scale) steps
    ("gaussian_random_walk", ("scale", "num_steps")): lambda s, n: (
        0 * s[:, None], s[:, None] ** 2 * np.arange(1, n + 1)),
    ("beta_binomial", ("concentration1", "concentration0", "total_count")): lambda a, b, n: (
        n * a / (a + b), n * a * b * (a + b + n) / ((a + b) ** 2 * (a + b + 1))),
    ("multinomial", ("total_count", "probs")): lambda n, p: (n * p, n * p * (1 - p)),
    ("multinomial", ("total_count", "logits")): lambda n, l: (
        n * special.softmax(l, -1), n * special.softmax(l, -1) * (1 - special.softmax(l, -1))),
    ("negative_binomial", ("total_count", "probs")): negative_binomial_moments,
    ("negative_binomial", ("total_count", "logits")): lambda r, l: negative_binomial_moments(r, sigmoid(l)),
    ("zero_inflated_poisson", ("gate", "rate")): lambda g, r: ((1 - g) * r, (1 - g) * r * (1 + g * r)),
    ("zero_inflated_poisson", ("gate_logits", "rate")): lambda l, r: (
        (1 - sigmoid(l)) * r, (1 - sigmoid(l)) * r * (1 + sigmoid(l) * r)),
}


def lkj_correlations(draws, concentration):
    """The off-diagonal correlations of L Lᵀ for L ~ lkj_cholesky(3, η): each has (r + 1)/2 ~
    beta(η + 1/2, η + 1/2) (η − 1 + d/2 in dimension d), so mean 0 and variance 1/(2η + 2)."""
    c = np.einsum("...ij,...kj->...ik", draws, draws)
    return c[..., [0, 0, 1], [1, 2, 2]], 0 * concentration[:, None], (1 / (2 * concentration + 2))[:, None]


def von_mises_circular_moments(draws, loc, kappa):
    """(cos(x − μ), sin(x − μ)) for x ~ von_mises(μ, κ): means (I1/I0, 0), variances
    ((1 + I2/I0)/2 − (I1/I0)², (1 − I2/I0)/2)."""
    a1, a2 = special.i1e(kappa) / special.i0e(kappa), special.iv(2, kappa) / special.iv(0, kappa)
    centred = draws - loc
    return (np.stack([np.cos(centred), np.sin(centred)], -1), np.stack([a1, 0 * a1], -1),
            np.stack([(1 + a2) / 2 - a1 ** 2, (1 - a2) / 2], -1))


# (mean, variance) of a statistic of the draws: (statistic, mean, variance) from the draws
# and the form's arguments, where the value itself has no simple moments.
STATISTICS = {("lkj_cholesky", ("dimension", "concentration")): lambda x, d, eta: lkj_correlations(x, eta),
              ("von_mises", ("loc", "concentration")): von_mises_circular_moments}
# Heavy tails have no moments: check the median, where half the draws fall below.
MEDIANS = {("cauchy", ("loc", "scale")): lambda m, s: m, ("halfcauchy", ("scale",)): lambda s: s}
# Every mvnormal example has covariance SPD.
COVARIANCES = {("mvnormal", form): SPD for form in EXAMPLES["mvnormal"]}


def normal_logp(x, loc, scale):
    return -0.5 * np.log(2 * np.pi) - np.log(scale) - (x - loc) ** 2 / (2 * scale ** 2)


# Closed-form log densities: (oracle(x, *args), args, values x).
ORACLES = {
    ("normal", ("loc", "scale")): (normal_logp, [0.3, 1.7], np.array([-0.2, 3.0])),
    ("bernoulli", ("probs",)): (lambda x, p: x * np.log(p) + (1 - x) * np.log1p(-p), [0.3], np.array([0, 1])),
    ("bernoulli", ("logits",)): (lambda x, l: x * l - np.logaddexp(0, l), [-0.8], np.array([0, 1])),
    ("poisson", ("rate",)): (lambda x, r: x * np.log(r) - r - special.gammaln(x + 1), [3.2], np.array([0, 2, 7])),
    ("gamma", ("concentration", "rate")): (
        lambda x, a, b: a * np.log(b) + (a - 1) * np.log(x) - b * x - special.gammaln(a), [2.5, 1.5],
        np.array([0.3, 1.0, 4.0])),
    ("beta", ("concentration1", "concentration0")): (
        lambda x, a, b: (a - 1) * np.log(x) + (b - 1) * np.log1p(-x) - special.betaln(a, b), [2.0, 3.5],
        np.array([0.1, 0.5, 0.9])),
    ("exponential", ("rate",)): (lambda x, r: np.log(r) - r * x, [2.0], np.array([0.1, 1.0, 3.0])),
    ("categorical", ("probs",)): (lambda x, p: np.log(np.asarray(p)[x]), [[0.2, 0.5, 0.3]], np.array([0, 1, 2])),
    ("categorical", ("logits",)): (lambda x, l: np.asarray(l)[x] - special.logsumexp(l), [[0.5, -1.0, 2.0]],
                                   np.array([0, 1, 2])),
    # the rows' own formulas (exact derivatives) against scipy's
    ("negative_binomial", ("total_count", "probs")): (
        lambda x, r, p: stats.nbinom(r, 1 - p).logpmf(x), [2.5, 0.3], np.array([0, 1, 6])),
    ("negative_binomial", ("total_count", "logits")): (
        lambda x, r, l: stats.nbinom(r, 1 - sigmoid(l)).logpmf(x), [2.5, 0.7], np.array([0, 1, 6])),
    ("beta_binomial", ("concentration1", "concentration0", "total_count")): (
        lambda x, a, b, n: stats.betabinom(n, a, b).logpmf(x), [1.5, 0.7, 6], np.array([0, 2, 6])),
    ("multinomial", ("total_count", "probs")): (
        lambda x, n, p: stats.multinomial(n, p).logpmf(x), [4, [0.2, 0.0, 0.8]], np.array([[1, 0, 3], [0, 0, 4]])),
    ("multinomial", ("total_count", "logits")): (
        lambda x, n, l: stats.multinomial(n, special.softmax(l)).logpmf(x), [4, [0.2, -1.0, 0.8]],
        np.array([[1, 0, 3], [2, 2, 0]])),
    ("zero_inflated_poisson", ("gate", "rate")): (
        lambda x, g, r: np.where(x == 0, np.log(g + (1 - g) * np.exp(-r)), np.log1p(-g) + stats.poisson(r).logpmf(x)),
        [0.25, 1.7], np.array([0, 1, 5])),
    ("zero_inflated_poisson", ("gate_logits", "rate")): (
        lambda x, l, r: np.where(x == 0, np.log(sigmoid(l) + (1 - sigmoid(l)) * np.exp(-r)),
                                 np.log1p(-sigmoid(l)) + stats.poisson(r).logpmf(x)),
        [-1.1, 1.7], np.array([0, 1, 5])),
    # an interval far above loc, where numpyro's normaliser loses its digits
    ("truncated_normal", ("loc", "scale", "low", "high")): (
        lambda x, m, s, lo, hi: stats.truncnorm((lo - m) / s, (hi - m) / s, m, s).logpdf(x), [0.0, 1.0, 8.0, 9.0],
        np.array([8.01, 8.5, 8.99])),
}


def concrete(args):
    """Arrays for the example arguments; an integer (binomial's total_count) stays a literal."""
    return [a if isinstance(a, int) else jnp.asarray(a, jnp.float32) for a in args]


def arrays_of(args):
    """The array arguments, which enter the compiled programs as inputs."""
    return [a for a in concrete(args) if not isinstance(a, int)]


def with_literals(raw, arrays):
    """The arguments ``raw`` with its arrays replaced by ``arrays`` (traced inside the
    programs); an integer stays a Python literal (a static num_steps or dimension)."""
    arrays = iter(arrays)
    return [a if isinstance(a, int) else next(arrays) for a in raw]


def types_of(args):
    """ArrayTypes for array arguments; Python scalars stay literals."""
    return [a if isinstance(a, (int, float)) else ArrayType("float32", np.shape(a)) for a in args]


def draws(key, case_arrays):
    """N draws for every case."""
    keys = jax.random.split(key, len(CASES))
    return [DISTRIBUTIONS[name].sample(form, with_literals(EXAMPLES[name][form], arrays), k, (N,))
            for (name, form), arrays, k in zip(CASES, case_arrays, keys)]


def densities(xs, case_arrays, oracle_inputs):
    """For every case, our and numpyro's log densities of values xs; then the oracle cases."""
    case_args = [with_literals(EXAMPLES[name][form], arrays) for (name, form), arrays in zip(CASES, case_arrays)]
    ours = [DISTRIBUTIONS[name].log_prob(form, args, x) for (name, form), args, x in zip(CASES, case_args, xs)]
    reference = [NUMPYRO[name](**dict(zip(form, args))).log_prob(x)
                 for (name, form), args, x in zip(CASES, case_args, xs)]
    oracles = [DISTRIBUTIONS[name].log_prob(form, with_literals(raw, arrays), x)
               for (name, form), (_, raw, _), (arrays, x) in zip(ORACLES, ORACLES.values(), oracle_inputs)]
    return ours, reference, oracles


@pytest.fixture(scope="module")
def computed(quick_jit):
    """Draws and densities for every case, from two compiled programs (see the module doc).

    Arguments enter as inputs of the programs, not as constants: XLA would
    otherwise spend its time folding the constants through the samplers.
    """
    case_arrays = [arrays_of(EXAMPLES[name][form]) for name, form in CASES]
    oracle_inputs = [(arrays_of(args), jnp.asarray(x)) for _, args, x in ORACLES.values()]
    samples = quick_jit(draws, jax.random.PRNGKey(1), case_arrays)
    ours, reference, oracles = quick_jit(densities, [x[:5] for x in samples], case_arrays, oracle_inputs)
    return {"draws": dict(zip(CASES, samples)), "ours": dict(zip(CASES, ours)),
            "reference": dict(zip(CASES, reference)), "oracles": dict(zip(ORACLES, oracles))}


def test_examples_cover_every_distribution_and_form():
    assert set(EXAMPLES) == set(DISTRIBUTIONS) == set(NUMPYRO)
    for name, row in DISTRIBUTIONS.items():
        assert set(EXAMPLES[name]) == set(row.forms), name
    statistics = set(MOMENTS) | set(MEDIANS) | set(COVARIANCES) | set(STATISTICS) | {("delta", ("v",))}
    assert statistics == set(CASES)


# -- log densities ---------------------------------------------------------------------

@pytest.mark.parametrize("name, form", CASES)
def test_log_prob_matches_numpyro(name, form, computed):
    reference = computed["reference"][name, form]
    assert np.all(np.isfinite(reference))
    np.testing.assert_allclose(computed["ours"][name, form], reference, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name, form", list(ORACLES))
def test_log_prob_matches_closed_form(name, form, computed):
    oracle, args, x = ORACLES[(name, form)]
    np.testing.assert_allclose(computed["oracles"][name, form], oracle(x, *args), rtol=1e-5, atol=1e-5)


# -- types -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name, form", CASES)
def test_value_type_matches_draws(name, form, computed):
    row, raw = DISTRIBUTIONS[name], EXAMPLES[name][form]
    draw = computed["draws"][name, form][0]
    assert draw.dtype == (jnp.int32 if row.discrete else jnp.float32)
    assert row.value_type(form, types_of(raw)) == ArrayType(dtype_name(draw.dtype), draw.shape)
    args = concrete(raw)
    assert draw.shape == jax.eval_shape(lambda: NUMPYRO[name](**dict(zip(form, args))).sample(KEY)).shape


# The families whose value is a scalar when every argument is (not a walk, nor a matrix).
SCALAR_CASES = [(name, form) for name, form in CASES
                if not DISTRIBUTIONS[name].ranks and not DISTRIBUTIONS[name].vector_value
                and not DISTRIBUTIONS[name].static]


@pytest.mark.parametrize("name, form", SCALAR_CASES)
def test_value_type_with_literal_arguments(name, form):
    row = DISTRIBUTIONS[name]
    literals = [a if isinstance(a, int) else float(a[0]) for a in EXAMPLES[name][form]]
    reference = jax.eval_shape(lambda: NUMPYRO[name](**dict(zip(form, concrete(literals)))).sample(KEY))
    assert reference.shape == ()
    assert row.value_type(form, literals) == ArrayType("int32" if row.discrete else "float32", ())


def test_value_type_broadcasts_batch_arguments():
    def value_type(name, form, *shapes):
        return DISTRIBUTIONS[name].value_type(form, [ArrayType("float32", s) if isinstance(s, tuple) else s
                                                     for s in shapes])

    assert value_type("normal", ("loc", "scale"), (4, 1), (3,)) == ArrayType("float32", (4, 3))
    assert value_type("mvnormal", ("loc", "covariance_matrix"), (5, 3), (3, 3)) == ArrayType("float32", (5, 3))
    assert value_type("mvnormal", ("loc", "scale_tril"), (3,), (2, 3, 3)) == ArrayType("float32", (2, 3))
    assert value_type("dirichlet", ("concentration",), (2, 4)) == ArrayType("float32", (2, 4))
    assert value_type("categorical", ("logits",), (2, 4)) == ArrayType("int32", (2,))
    assert value_type("mvnormal_diag", ("loc", "scale"), (3,), 1.0) == ArrayType("float32", (3,))
    assert value_type("binomial", ("total_count", "probs"), 10, (2, 3)) == ArrayType("int32", (2, 3))
    bernoulli = DISTRIBUTIONS["bernoulli"]
    assert bernoulli.value_type(("probs",), [ArrayType("int32", (2,))]) == ArrayType("int32", (2,))


@pytest.mark.parametrize("name, form, shapes, words", [
    ("normal", ("loc", "scale"), [(3,), (4,)],
     "normal(loc, scale): loc has shape [3] and scale has shape [4], which do not broadcast"),
    ("uniform", ("low", "high"), [(2, 3), (3, 2)], "which do not broadcast"),
    ("mvnormal", ("loc", "scale_tril"), [(3,), (4, 4)], "whose event sizes differ (3 and 4)"),
    ("mvnormal", ("loc", "covariance_matrix"), [(2, 3), (5, 3, 3)], "whose batch shapes do not broadcast"),
    ("mvnormal", ("loc", "scale_tril"), [(), (3, 3)], "loc must be a vector"),
    ("mvnormal", ("loc", "precision_matrix"), [(3,), (3,)], "precision_matrix must be a matrix"),
    ("categorical", ("probs",), [()], "categorical(probs): probs must be a vector"),
    ("dirichlet", ("concentration",), [()], "concentration must be a vector"),
    ("mvnormal_diag", ("loc", "scale"), [(), ()], "the value is a vector"),
])
def test_value_type_explains_shape_errors(name, form, shapes, words):
    with pytest.raises(ValueError) as error:
        DISTRIBUTIONS[name].value_type(form, [ArrayType("float32", s) for s in shapes])
    assert words in str(error.value)


def test_unknown_form_is_a_value_error():
    with pytest.raises(ValueError, match=r"its forms are \(probs\); \(logits\)"):
        DISTRIBUTIONS["bernoulli"].value_type(("p",), [0.5])


# -- statistics of draws ---------------------------------------------------------------------

def five_standard_errors(draws, mean, variance):
    """Assert that the draws' mean and variance lie within 5 standard errors of the truth."""
    m, v = draws.mean(0), draws.var(0)
    fourth = ((draws - m) ** 4).mean(0)
    assert np.all(np.abs(m - mean) < 5 * np.sqrt(variance / N)), (m, mean)
    assert np.all(np.abs(v - variance) < 5 * np.sqrt((fourth - v ** 2) / N)), (v, variance)


@pytest.mark.parametrize("name, form", list(MOMENTS))
def test_sample_moments(name, form, computed):
    draws = np.asarray(computed["draws"][name, form], np.float64)
    args = [np.asarray(a, np.float64) for a in EXAMPLES[name][form]]
    mean, variance = MOMENTS[name, form](*args)
    five_standard_errors(draws, np.broadcast_to(mean, draws.shape[1:]), np.broadcast_to(variance, draws.shape[1:]))


@pytest.mark.parametrize("name, form", list(STATISTICS))
def test_statistics_of_draws(name, form, computed):
    draws = np.asarray(computed["draws"][name, form], np.float64)
    args = [np.asarray(a, np.float64) for a in EXAMPLES[name][form]]
    statistic, mean, variance = STATISTICS[name, form](draws, *args)
    five_standard_errors(statistic, np.broadcast_to(mean, statistic.shape[1:]),
                         np.broadcast_to(variance, statistic.shape[1:]))


@pytest.mark.parametrize("name, form", list(MEDIANS))
def test_heavy_tailed_draws_have_the_right_median(name, form, computed):
    draws = np.asarray(computed["draws"][name, form])
    median = MEDIANS[name, form](*[np.asarray(a) for a in EXAMPLES[name][form]])
    below = (draws < median).mean(0)  # a mean of indicators, with variance 1/4 per draw
    assert np.all(np.abs(below - 0.5) < 5 * np.sqrt(0.25 / N)), below


@pytest.mark.parametrize("name, form", list(COVARIANCES))
def test_mvnormal_draws_have_the_right_mean_and_covariance(name, form, computed):
    draws = np.asarray(computed["draws"][name, form], np.float64).reshape(N, -1, 3)
    loc = np.broadcast_to(np.asarray(EXAMPLES[name][form][0]), draws.shape[1:])
    cov = COVARIANCES[name, form]
    five_standard_errors(draws, loc, np.broadcast_to(np.diag(cov), draws.shape[1:]))
    # The standard error of a covariance entry of normal draws is sqrt((S_ii S_jj + S_ij^2) / N).
    se = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov ** 2) / N)
    for b in range(draws.shape[1]):
        assert np.all(np.abs(np.cov(draws[:, b].T) - cov) < 5 * se), form


def test_delta_draws_its_parameter(computed):
    draws = computed["draws"]["delta", ("v",)]
    np.testing.assert_array_equal(draws, np.broadcast_to([1.5, -2.0], (N, 2)))


# -- supports and estimators -------------------------------------------------------------

def test_support_sizes_and_values():
    bern, cat, binom = DISTRIBUTIONS["bernoulli"], DISTRIBUTIONS["categorical"], DISTRIBUTIONS["binomial"]
    assert bern.support_size(("logits",), [ArrayType("float32", (4,))]) == 2
    assert cat.support_size(("probs",), [ArrayType("float32", (2, 5))]) == 5
    assert binom.support_size(("total_count", "probs"), [7, 0.5]) == 8
    assert binom.support_size(("total_count", "probs"), [7.0, 0.5]) == 8  # a count written as a float
    assert DISTRIBUTIONS["poisson"].support_size(("rate",), [1.0]) is None
    with pytest.raises(ValueError, match="total_count to be a number written in the program"):
        binom.support_size(("total_count", "probs"), [ArrayType("int32", ()), 0.5])
    values = bern.enumerate_support(("probs",), [jnp.array([0.2, 0.7])])
    assert values.dtype == jnp.int32 and values.shape == (2, 1)
    np.testing.assert_array_equal(values[:, 0], [0, 1])
    values = binom.enumerate_support(("total_count", "probs"), [4, jnp.array([0.2, 0.7])])
    np.testing.assert_array_equal(values[:, 0], np.arange(5))
    values = cat.enumerate_support(("logits",), [jnp.zeros((2, 3))])
    np.testing.assert_array_equal(values[:, 0], np.arange(3))
    beta_binomial, form = DISTRIBUTIONS["beta_binomial"], ("concentration1", "concentration0", "total_count")
    assert beta_binomial.support_size(form, [1.0, 2.0, 6]) == 7
    with pytest.raises(ValueError, match="beta_binomial: enumerating its values needs its total_count"):
        beta_binomial.support_size(form, [1.0, 2.0, ArrayType("int32", ())])
    for name in ("multinomial", "negative_binomial", "zero_inflated_poisson"):
        assert DISTRIBUTIONS[name].support_size(DISTRIBUTIONS[name].forms[0], [1, 0.5]) is None


@pytest.mark.parametrize("name, form, args, words", [
    ("gaussian_random_walk", ("scale", "num_steps"), [1.0, ArrayType("int32", ())],
     "num_steps must be an int known when the program is compiled"),
    ("lkj_cholesky", ("dimension", "concentration"), [ArrayType("int32", ()), 1.0],
     "dimension must be an int known when the program is compiled"),
    ("multinomial", ("total_count", "probs"), [ArrayType("int32", ()), ArrayType("float32", (3,))],
     "total_count must be an int known when the program is compiled"),
    ("truncated_normal", ("loc", "scale", "low", "high"), [0.0, 1.0, 2.0, 2.0], "low must be below high"),
    ("uniform", ("low", "high"), [1.0, 0.0], "low must be below high, but they are 1.0 and 0.0"),
])
def test_static_and_ordered_parameters(name, form, args, words):
    with pytest.raises(ValueError, match=words):
        DISTRIBUTIONS[name].value_type(form, args)


@pytest.mark.parametrize("source, words, caret", [
    ("gen g() { c ~ lkj_cholesky(1, 2.0) }", "the dimension of lkj_cholesky must be an integer of at least 2", "^"),
    ("gen g() { c ~ pareto(-1.0, 2.0) }", "the scale of pareto must be positive, but it is -1.0", "^^^^"),
    ("gen g(n) { d ~ gaussian_random_walk(0.5, n) }", "num_steps must be an int known when the program is compiled",
     "^" * len("gaussian_random_walk(0.5, n)")),
    ("gen g() { c ~ truncated_normal(0.0, 1.0, low=2.0, high=1.0) }", "low must be below high", "^^^^"),
])
def test_bad_literal_and_traced_static_arguments_are_caret_errors(source, words, caret):
    import jax.numpy as jnp
    import ppl
    with pytest.raises(ppl.PPLError) as error:  # a literal when compiled, the rest when bound
        m = ppl.compile(source)
        (m.g(jnp.array(3)) if "(n)" in source else m.g()).simulate(KEY)
    assert words in str(error.value) and caret in str(error.value), str(error.value)


def test_static_parameters_fix_the_value_shape():
    grw, lkj = DISTRIBUTIONS["gaussian_random_walk"], DISTRIBUTIONS["lkj_cholesky"]
    assert grw.value_type(("scale", "num_steps"), [ArrayType("float32", (2,)), 5]) == ArrayType("float32", (2, 5))
    assert lkj.value_type(("dimension", "concentration"), [4, 1.0]) == ArrayType("float32", (4, 4))
    multinomial = DISTRIBUTIONS["multinomial"]
    assert (multinomial.value_type(("total_count", "logits"), [7, ArrayType("float32", (2, 3))])
            == ArrayType("int32", (2, 3)))


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


def test_values_outside_a_discrete_support_have_log_density_minus_infinity(quick_jit):
    """numpyro's formulas give finite numbers there (bernoulli at 2: 2·log p − log(1 − p)),
    a silently wrong density; the rows give −inf (and a DataError is the API's to raise)."""
    cases = [("bernoulli", ("probs",), [0.3], [2, -1]), ("bernoulli", ("logits",), [0.3], [2, -1]),
             ("binomial", ("total_count", "probs"), [3, 0.4], [4, -1]),
             ("binomial", ("total_count", "logits"), [3, 0.4], [4, -1]),
             ("categorical", ("probs",), [jnp.array([0.2, 0.8])], [2, -1]),
             ("categorical", ("logits",), [jnp.array([0.2, 0.8])], [2, -1]),
             ("poisson", ("rate",), [2.0], [-1]), ("geometric", ("probs",), [0.3], [-1]),
             ("geometric", ("logits",), [0.3], [-1]),
             ("beta_binomial", ("concentration1", "concentration0", "total_count"), [1.0, 2.0, 3], [4, -1]),
             ("multinomial", ("total_count", "probs"), [3, jnp.array([0.2, 0.8])], [[1, 1], [4, -1]]),
             ("multinomial", ("total_count", "logits"), [3, jnp.array([0.2, 0.8])], [[1, 1], [4, -1]]),
             ("negative_binomial", ("total_count", "probs"), [2.0, 0.3], [-1]),
             ("negative_binomial", ("total_count", "logits"), [2.0, 0.3], [-1]),
             ("zero_inflated_poisson", ("gate", "rate"), [0.3, 2.0], [-1]),
             ("zero_inflated_poisson", ("gate_logits", "rate"), [0.3, 2.0], [-1])]
    assert_minus_infinity(quick_jit, cases)


def assert_minus_infinity(quick_jit, cases):
    """Every case's log density at its values outside the support is −inf (one program)."""
    logps = quick_jit(lambda: [DISTRIBUTIONS[name].log_prob(form, args, jnp.array(outside))
                               for name, form, args, outside in cases])
    for (name, form, _, _), logp in zip(cases, logps):
        assert np.all(np.isneginf(np.asarray(logp))), (name, form, logp)


def test_values_outside_a_bounded_continuous_support_have_log_density_minus_infinity(quick_jit):
    cases = [("pareto", ("scale", "alpha"), [2.0, 3.0], [1.9, -1.0]),
             ("weibull", ("scale", "concentration"), [1.0, 2.0], [-0.5]),
             ("von_mises", ("loc", "concentration"), [0.0, 1.0], [3.5, -3.5]),
             ("truncated_normal", ("loc", "scale", "low", "high"), [0.0, 1.0, -1.0, 2.0], [-1.1, 2.1]),
             ("truncated_normal", ("loc", "scale", "low", "high"), [0.0, 1.0, 1.0, 2.0], [0.9, 2.1]),
             ("truncated_normal", ("loc", "scale", "low"), [0.0, 1.0, 1.0], [0.9]),
             ("truncated_normal", ("loc", "scale", "high"), [0.0, 1.0, 1.0], [1.1])]
    assert_minus_infinity(quick_jit, [(n, f, [jnp.float32(a) for a in args], x) for n, f, args, x in cases])


UNCHECKED = [name for name, row in DISTRIBUTIONS.items() if row.unchecked]


@pytest.mark.parametrize("name", UNCHECKED)
def test_a_row_without_numpyros_support_check_is_minus_inf_at_the_infinities(name):
    """The rows whose log density skips numpyro's support check (``unchecked``: a select on
    every element and in the gradient) live on the whole real line, are −inf at ±inf
    without it, and equal numpyro's checked log density at finite points."""
    import numpyro.distributions as numpyro_dist

    row = DISTRIBUTIONS[name]
    form = row.forms[0]
    args = [{"loc": 0.3, "scale": 1.7, "df": 2.5}[p] for p in form]
    checked = row.build(form, args)
    assert checked.support is numpyro_dist.constraints.real
    x = jnp.array([jnp.inf, -jnp.inf, -3.0, 0.0, 2.5])
    ours = np.asarray(row.log_prob(form, args, x))
    assert np.all(ours[:2] == -np.inf)
    np.testing.assert_allclose(ours[2:], np.asarray(checked.log_prob(x[2:])), rtol=1e-6)
    assert np.all(np.asarray(checked.log_prob(x[:2])) == -np.inf)


def test_logistic_and_mvnormal_keep_the_check():
    """Without it they would be NaN at infinite values (the reason they are not unchecked)."""
    assert not DISTRIBUTIONS["logistic"].unchecked and not DISTRIBUTIONS["mvnormal"].unchecked
    assert float(DISTRIBUTIONS["logistic"].log_prob(("loc", "scale"), [0.0, 1.0], -jnp.inf)) == -np.inf
