"""Every gradient estimator is unbiased: statistical tests against exact gradients.

Each test draws many independent estimates of an objective's value and
gradient (one jitted ``vmap`` over keys, see ``adev_stats``) and checks that
their means lie within five standard errors of the exact values:
``|mean - exact| < 5·SE + 1e-6`` (plus 1e-6 relative, for float32 rounding); where an
estimator is exact (enumerating one choice), every estimate must equal the exact value
within 1e-5. Exact values come from closed forms
(moments of the distribution), exact enumeration, or quadrature, written in
the test as a JAX function of the UNCONSTRAINED parameters, so that
``jax.grad`` of it includes each constraint's Jacobian (``exp`` for
``real<lower=0>``, ``sigmoid`` for ``<lower=0, upper=1>``, numpyro's
stick-breaking for ``simplex``). Nothing asserts a sampled float under a
fixed key.

Compiling dominates the run time (drawing 50,000 estimates takes milliseconds), so
the programs are small and compiled as few times as possible: each case's
variants (one estimator each, with their own parameters) are summed into one
objective, compiled once, whose gradient holds every variant's estimate.
Negative controls show that the check can fail: a wrong REINFORCE rule
monkeypatched into the library, naive differentiation of the ADEV paper's example,
reparam across a jump, and an ignored baseline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.distributions import constraints
from numpyro.distributions.transforms import biject_to

import ppl
from adev_stats import (Verdict, assert_unbiased, check, check_all, exact_grad, run_once,
                        sample_estimates)
from ppl.stdlib.library import STANDARD

pos = jnp.exp  # real<lower=0>
unit = jax.nn.sigmoid  # real<lower=0, upper=1>
simplex = biject_to(constraints.simplex)

BASELINE = 0.5  # the constant baseline
BL0 = 0.7  # the learned baseline's initial value (not E[ℓ], so that its gradient is not 0)

# Gauss–Hermite (probabilists') nodes: E[g(μ + σ·ε)] for ε ~ N(0, 1), exact to float32 for
# smooth g, and differentiable in μ, σ.
_T, _W = np.polynomial.hermite_e.hermegauss(60)
GH_T = jnp.asarray(_T, jnp.float32)
GH_W = jnp.asarray(_W / math.sqrt(2 * math.pi), jnp.float32)


def gauss_expect(g, mu, sigma):
    return jnp.sum(GH_W * g(mu + sigma * GH_T))


def short(params: dict) -> dict:
    """``{"objective.name": v}`` -> ``{"name": v}``."""
    return {k.split(".", 1)[1]: v for k, v in params.items()}


def on_short(expectation):
    return lambda p: expectation(short(p))


# ====================================================================== cases and variants
#
# A case is an expectation E[ℓ] with its exact value; a variant is the estimator of its
# choice (``{est}`` in the body). Each variant is an objective of its own, with its own
# parameters (``case__variant.name``), and one objective sums them all: one compilation
# per case gives independent estimates for every variant, each checked on its own.

VARIANTS = {
    "reparam": " with reparam",
    "reinforce": " with reinforce",
    "reinforce_const": f" with reinforce(baseline={BASELINE})",
    "reinforce_learned": " with reinforce(baseline=bl)",
    "enum": " with enum",
    "mvd": " with mvd",
}
REGISTRY = STANDARD.distributions


@dataclass(frozen=True)
class Case:
    """``E[ℓ]`` for the ``expect`` block ``body``, exactly ``expectation`` (a function of the
    unconstrained parameters by short name), under each estimator of ``variants``."""

    name: str
    params: str
    body: str
    expectation: Callable[[dict], jnp.ndarray]
    variants: tuple[str, ...]
    args: str = ""  # the objective's arguments, e.g. "n: int"
    call: tuple = ()  # and their values
    exact_enum: bool = False  # one enumerated choice and no other randomness: exact


def dist_case(name, params, draw, ret, expectation, baselines=True) -> Case:
    """``E_{x ~ draw}[ret]``, under every estimator the registry allows for the distribution
    (and reinforce's baselines, unless ``baselines`` is False: each variant compiles its own
    sampler, and the baselines' rule does not depend on the family)."""
    allowed = REGISTRY[draw.split("(", 1)[0]].estimators
    variants = tuple(v for v in VARIANTS if v.split("_")[0] in allowed and (baselines or "_" not in v))
    return Case(name, params, f"x ~ {draw}{{est}}\n        return {ret}", expectation, variants,
                exact_enum=True)


def variant_source(case: Case, variant: str) -> str:
    extra = f"\n    param bl: real = {BL0}" if variant == "reinforce_learned" else ""
    body = case.body.replace("{est}", VARIANTS[variant])
    return f"""
objective {case.name}__{variant}({case.args}) {{
    {case.params}{extra}
    return expect {{
        {body}
    }}
}}"""


def cases_source(cases) -> str:
    parts = []
    for case in cases:
        parts += [variant_source(case, v) for v in case.variants]
        names = ", ".join(a.split(":")[0].strip() for a in case.args.split(",") if a.strip())
        terms = " + ".join(f"{case.name}__{v}({names})" for v in case.variants)
        parts.append(f"objective all__{case.name}({case.args}) {{\n    return {terms}\n}}")
    return "\n".join(parts)


class Estimates:
    """Estimates of each case's summed objective, drawn once per case and shared by its tests."""

    def __init__(self, cases):
        self.cases = {c.name: c for c in cases}
        self.module = ppl.compile(cases_source(cases))
        self.cache: dict = {}

    def __call__(self, name: str):
        if name not in self.cache:
            obj = getattr(self.module, f"all__{name}")(*self.cases[name].call)
            params = obj.init(jax.random.PRNGKey(0))
            self.cache[name] = (params, *sample_estimates(obj, params))
        return self.cache[name]

    def check_variant(self, name: str, variant: str):
        """The variant's gradient against the exact one (for a learned baseline b, its own
        gradient is E[ℓ] − b, that of −(ℓ − b)²/2, which fits b to E[ℓ])."""
        case = self.cases[name]
        params, _, grads = self(name)
        prefix = f"{name}__{variant}."
        mine = {k: v for k, v in params.items() if k.startswith(prefix)}
        exact = exact_grad(on_short(case.expectation), mine)
        if variant == "reinforce_learned":
            assert np.isclose(mine[prefix + "bl"], BL0)
            exact[prefix + "bl"] = float(case.expectation(short(mine))) - BL0
        ours = {k: grads[k] for k in mine}
        if variant == "enum" and case.exact_enum:  # every estimate is the exact gradient
            verdict = check_all(ours, exact, z=0.0, atol=1e-5)
            spread = max(float(np.ptp(g, axis=0).max()) for g in ours.values())
            return Verdict(verdict.ok and spread < 1e-5, f"{verdict}\nspread {spread}")
        if variant == "mvd":  # a finite support's (beta_binomial's) is exact at every draw,
            return check_all(ours, exact, rtol=1e-5)  # to float32 rounding: SE 0
        return check_all(ours, exact)

    def check_value(self, name: str):
        case = self.cases[name]
        params, values, _ = self(name)
        total = sum(float(case.expectation(short({k: v for k, v in params.items()
                                                   if k.startswith(f"{name}__{v_}.")})))
                    for v_ in case.variants)
        return check(values, total, atol=1e-5, name=f"value of all__{name}")


def variant_params(cases):
    return [pytest.param(c.name, v, id=f"{c.name}-{v}") for c in cases for v in c.variants]


# ====================================================================== one choice per distribution


def _mvn(mu, cov):  # E[Σx² + x0·x1 + 2x0 − x1] for x ~ N(mu, cov)
    return jnp.trace(cov) + mu @ mu + cov[0, 1] + mu[0] * mu[1] + 2 * mu[0] - mu[1]


def _tril(q):
    return jnp.array([[pos(q["a"]), 0.0], [q["c"], pos(q["b"])]])


def _cov(q):
    return jnp.array([[pos(q["a"]), q["c"]], [q["c"], pos(q["b"])]])


def _geometric(p):  # E[x²] for failures before the first success
    return (1 - p) / p ** 2 + ((1 - p) / p) ** 2


def _truncated_moments(mu, s, lo, hi):
    """(E[x], E[x²]) of normal(mu, s) truncated to [lo, hi]."""
    a, b = (lo - mu) / s, (hi - mu) / s
    z = jax.scipy.stats.norm.cdf(b) - jax.scipy.stats.norm.cdf(a)
    pa, pb = jax.scipy.stats.norm.pdf(a), jax.scipy.stats.norm.pdf(b)
    mean = mu + s * (pa - pb) / z
    var = s ** 2 * (1 + (a * pa - b * pb) / z - ((pa - pb) / z) ** 2)
    return mean, var + mean ** 2


def _gamma_fn(x):
    return jnp.exp(jax.scipy.special.gammaln(x))


def _weibull_moment(scale, k, n):  # E[x^n]
    return scale ** n * _gamma_fn(1 + n / k)


def _negative_binomial_second_moment(r, p):  # E[x²]: successes (probability p) before r failures
    return r * p / (1 - p) ** 2 + (r * p / (1 - p)) ** 2


def _multinomial_square(n, p, v):  # E[(v·x)²] for x ~ multinomial(n, p)
    return n * (p @ v ** 2 - (p @ v) ** 2) + (n * p @ v) ** 2


def _beta_binomial_second_moment(a, b, n):
    mean = n * a / (a + b)
    return n * a * b * (a + b + n) / ((a + b) ** 2 * (a + b + 1)) + mean ** 2


MVN_RET = "sum(x * x) + x[0] * x[1] + 2.0 * x[0] - x[1]"
MVN_PARAMS = """param mu: real[2] = [0.3, -0.4]
    param a: real<lower=0> = 1.2
    param b: real<lower=0> = 0.7
    param c: real = 0.3"""
CATEGORY_VALUES = jnp.array([1.0, -2.0, 3.0])

# ℓ is polynomial (or bounded, where moments do not exist), so E[ℓ] is a closed form.
DISTRIBUTION_CASES = [
    dist_case("normal", "param mu: real = 0.5\n    param s: real<lower=0> = 1.3", "normal(mu, s)",
              "x * x + 3.0 * x", lambda q: q["mu"] ** 2 + pos(q["s"]) ** 2 + 3 * q["mu"]),
    dist_case("mvnormal_tril", MVN_PARAMS, "mvnormal(mu, [[a, 0.0], [c, b]])", MVN_RET,
              lambda q: _mvn(q["mu"], _tril(q) @ _tril(q).T)),
    dist_case("mvnormal_cov", MVN_PARAMS, "mvnormal(mu, covariance_matrix=[[a, c], [c, b]])", MVN_RET,
              lambda q: _mvn(q["mu"], _cov(q))),
    dist_case("mvnormal_diag", "param mu: real[3] = [0.3, -0.4, 1.0]\n    param s: real<lower=0>[3] = [0.5, 1.0, 2.0]",
              "mvnormal_diag(mu, s)", "sum(x * x) + x[0] * x[1] + 2.0 * x[2]",
              lambda q: jnp.sum(q["mu"] ** 2 + pos(q["s"]) ** 2) + q["mu"][0] * q["mu"][1] + 2 * q["mu"][2]),
    dist_case("lognormal", "param mu: real = 0.2\n    param s: real<lower=0> = 0.5", "lognormal(mu, s)",
              "x + 0.5 * x * x",
              lambda q: jnp.exp(q["mu"] + pos(q["s"]) ** 2 / 2) + 0.5 * jnp.exp(2 * q["mu"] + 2 * pos(q["s"]) ** 2)),
    dist_case("laplace", "param mu: real = 0.2\n    param s: real<lower=0> = 0.8", "laplace(mu, s)",
              "x * x + x", lambda q: q["mu"] ** 2 + 2 * pos(q["s"]) ** 2 + q["mu"]),
    # No moments: a bounded ℓ. E[1/(1 + x²)] = (1 + γ)/((1 + γ)² + μ²) (characteristic functions).
    dist_case("cauchy", "param mu: real = 0.5\n    param s: real<lower=0> = 0.8", "cauchy(mu, s)",
              "1.0 / (1.0 + x * x)", lambda q: (1 + pos(q["s"])) / ((1 + pos(q["s"])) ** 2 + q["mu"] ** 2)),
    dist_case("halfcauchy", "param s: real<lower=0> = 0.8", "halfcauchy(s)", "1.0 / (1.0 + x * x)",
              lambda q: 1 / (1 + pos(q["s"]))),
    # df > 4, so that x² has a finite variance; the gradient in df goes through the chi² draw.
    dist_case("student_t", "param df: real<lower=0> = 7.0\n    param mu: real = 0.3\n    param s: real<lower=0> = 0.9",
              "student_t(df, mu, s)", "x * x + x",
              lambda q: pos(q["s"]) ** 2 * pos(q["df"]) / (pos(q["df"]) - 2) + q["mu"] ** 2 + q["mu"]),
    dist_case("uniform", "param lo: real = 0.2\n    param hi: real = 1.5", "uniform(lo, hi)", "x * x",
              lambda q: (q["lo"] ** 2 + q["lo"] * q["hi"] + q["hi"] ** 2) / 3),
    dist_case("halfnormal", "param s: real<lower=0> = 0.8", "halfnormal(s)", "x * x + x",
              lambda q: pos(q["s"]) ** 2 + pos(q["s"]) * math.sqrt(2 / math.pi)),
    dist_case("exponential", "param r: real<lower=0> = 1.5", "exponential(r)", "x * x + x",
              lambda q: 2 / pos(q["r"]) ** 2 + 1 / pos(q["r"])),
    dist_case("gamma", "param a: real<lower=0> = 2.5\n    param r: real<lower=0> = 1.5", "gamma(a, r)", "x * x + x",
              lambda q: pos(q["a"]) * (pos(q["a"]) + 1) / pos(q["r"]) ** 2 + pos(q["a"]) / pos(q["r"])),
    dist_case("inverse_gamma", "param a: real<lower=0> = 6.0\n    param r: real<lower=0> = 1.5",
              "inverse_gamma(a, r)", "x * x + x",
              lambda q: pos(q["r"]) ** 2 / ((pos(q["a"]) - 1) * (pos(q["a"]) - 2)) + pos(q["r"]) / (pos(q["a"]) - 1)),
    dist_case("beta", "param a: real<lower=0> = 2.5\n    param b: real<lower=0> = 1.5", "beta(a, b)", "x * x + x",
              lambda q: (lambda a, b: a * (a + 1) / ((a + b) * (a + b + 1)) + a / (a + b))(pos(q["a"]), pos(q["b"]))),
    dist_case("dirichlet", "param a: real<lower=0>[3] = [1.5, 2.0, 0.7]", "dirichlet(a)",
              "sum(x * x) + 2.0 * x[0] - x[2]",
              lambda q: (lambda a: jnp.sum(a * (a + 1)) / (a.sum() * (a.sum() + 1)) + (2 * a[0] - a[2]) / a.sum())(
                  pos(q["a"]))),
    # discrete; ℓ may depend on the parameters directly, as well as through the choice
    dist_case("bernoulli", "param p: real<lower=0, upper=1> = 0.3", "bernoulli(p)",
              "where(x == 1, 2.0, -1.0) - p * float(x)",
              lambda q: unit(q["p"]) * (2 - unit(q["p"])) - (1 - unit(q["p"]))),
    dist_case("bernoulli_logits", "param l: real = 0.4", "bernoulli(logits=l)", "where(x == 1, 2.0, -1.0)",
              lambda q: 3 * unit(q["l"]) - 1),
    dist_case("categorical", "param l: real[3] = [0.2, -0.5, 0.4]", "categorical(logits=l)", "[1.0, -2.0, 3.0][x]",
              lambda q: jax.nn.softmax(q["l"]) @ CATEGORY_VALUES),
    dist_case("categorical_probs", "param p: simplex[3] = [0.2, 0.5, 0.3]", "categorical(p)",
              "[1.0, -2.0, 3.0][x] + p[0]", lambda q: simplex(q["p"]) @ CATEGORY_VALUES + simplex(q["p"])[0]),
    dist_case("binomial", "param p: real<lower=0, upper=1> = 0.3", "binomial(4, p)", "float(x) * float(x)",
              lambda q: 4 * unit(q["p"]) * (1 - unit(q["p"])) + 16 * unit(q["p"]) ** 2),
    dist_case("poisson", "param r: real<lower=0> = 2.5", "poisson(r)", "float(x) * float(x)",
              lambda q: pos(q["r"]) + pos(q["r"]) ** 2),
    dist_case("geometric", "param p: real<lower=0, upper=1> = 0.4", "geometric(p)", "float(x) * float(x)",
              lambda q: _geometric(unit(q["p"]))),
    dist_case("geometric_logits", "param l: real = 0.2", "geometric(logits=l)", "float(x) * float(x)",
              lambda q: _geometric(unit(q["l"]))),
    # the baselines of reinforce on logistic only among the families below (see dist_case)
    dist_case("logistic", "param mu: real = 0.3\n    param s: real<lower=0> = 0.7", "logistic(mu, s)", "x * x + x",
              lambda q: q["mu"] ** 2 + pos(q["s"]) ** 2 * math.pi ** 2 / 3 + q["mu"]),
    dist_case("weibull", "param l: real<lower=0> = 1.3\n    param k: real<lower=0> = 2.0", "weibull(l, k)",
              "x * x + x", lambda q: _weibull_moment(pos(q["l"]), pos(q["k"]), 2) + _weibull_moment(pos(q["l"]), pos(q["k"]), 1), baselines=False),
    # reparam only (the support [scale, inf) moves with scale); alpha > 4, so x² has a variance
    dist_case("pareto", "param sc: real<lower=0> = 0.8\n    param al: real<lower=0> = 6.0", "pareto(sc, al)",
              "x * x + x", lambda q: (lambda s, a: a * s ** 2 / (a - 2) + a * s / (a - 1))(pos(q["sc"]), pos(q["al"])), baselines=False),
    # reparam only; the gradient in the lower bound goes through numpyro's inverse-cdf sampler
    dist_case("truncated_normal", "param mu: real = 0.3\n    param s: real<lower=0> = 0.9\n    param lo: real = -0.5",
              "truncated_normal(mu, s, low=lo, high=1.5)", "x * x + x",
              lambda q: sum(_truncated_moments(q["mu"], pos(q["s"]), q["lo"], 1.5)), baselines=False),
    dist_case("gaussian_random_walk", "param s: real<lower=0> = 0.7", "gaussian_random_walk(s, 3)",
              "sum(x * x) + x[2]", lambda q: 6 * pos(q["s"]) ** 2, baselines=False),
    # L[1, 0] and L[2, 0] are correlations of L Lᵀ, each with (r + 1)/2 ~ beta(η + 1/2, η + 1/2)
    dist_case("lkj_cholesky", "param eta: real<lower=0> = 1.5", "lkj_cholesky(3, eta)",
              "x[1, 0] * x[1, 0] + x[2, 0] * x[2, 0]", lambda q: 2 / (2 * pos(q["eta"]) + 2), baselines=False),
    # reinforce only (no pathwise sampler): E[cos x] = A(κ) cos μ, E[sin x] = A(κ) sin μ, A = I1/I0
    dist_case("von_mises", "param mu: real = 0.4\n    param kappa: real<lower=0> = 1.5", "von_mises(mu, kappa)",
              "cos(x) + 2.0 * sin(x)",
              lambda q: (lambda a: a * (jnp.cos(q["mu"]) + 2 * jnp.sin(q["mu"])))(
                  jax.scipy.special.i1e(pos(q["kappa"])) / jax.scipy.special.i0e(pos(q["kappa"]))), baselines=False),
    dist_case("beta_binomial", "param a: real<lower=0> = 1.5\n    param b: real<lower=0> = 0.8", "beta_binomial(a, b, 4)",
              "float(x) * float(x)", lambda q: _beta_binomial_second_moment(pos(q["a"]), pos(q["b"]), 4), baselines=False),
    dist_case("multinomial", "param p: simplex[3] = [0.2, 0.5, 0.3]", "multinomial(3, p)",
              "sum([1.0, -2.0, 3.0] * float(x)) * sum([1.0, -2.0, 3.0] * float(x))",
              lambda q: _multinomial_square(3, simplex(q["p"]), CATEGORY_VALUES), baselines=False),
    dist_case("negative_binomial", "param r: real<lower=0> = 2.0\n    param p: real<lower=0, upper=1> = 0.3",
              "negative_binomial(r, probs=p)", "float(x) * float(x)",
              lambda q: _negative_binomial_second_moment(pos(q["r"]), unit(q["p"])), baselines=False),
    dist_case("zero_inflated_poisson", "param g: real<lower=0, upper=1> = 0.3\n    param r: real<lower=0> = 1.5",
              "zero_inflated_poisson(g, r)", "float(x) * float(x)",
              lambda q: (1 - unit(q["g"])) * (pos(q["r"]) + pos(q["r"]) ** 2), baselines=False),
]


@pytest.fixture(scope="module")
def distributions():
    return Estimates(DISTRIBUTION_CASES)


def test_every_distribution_is_tested_with_every_estimator_it_allows():
    tested = {(c.body.split("~ ", 1)[1].split("(", 1)[0], v.split("_")[0])
              for c in DISTRIBUTION_CASES for v in c.variants}
    for name, row in REGISTRY.items():
        if name == "delta":  # a point mass: nothing to estimate
            continue
        for estimator in row.estimators:
            assert (name, estimator) in tested, f"{estimator} on {name} is not tested"
    assert {n for n, r in REGISTRY.items() if "enum" in r.estimators} == {
        "bernoulli", "categorical", "binomial", "beta_binomial"}
    assert {n for n, r in REGISTRY.items() if "mvd" in r.estimators} == {
        "bernoulli", "categorical", "poisson", "geometric", "normal", "binomial",
        "beta_binomial", "negative_binomial", "zero_inflated_poisson"}
    variants = {v for c in DISTRIBUTION_CASES for v in c.variants}
    assert variants == set(VARIANTS)


@pytest.mark.parametrize("name,variant", variant_params(DISTRIBUTION_CASES))
def test_distribution(distributions, name, variant):
    """reparam (implicit for gamma, beta, dirichlet, student_t's df); reinforce with no,
    a constant and a learned baseline; enum (exact: every estimate is the gradient);
    mvd (for normal, both the loc and the scale tangents)."""
    verdict = distributions.check_variant(name, variant)
    assert verdict, f"{name} with {variant}:\n{verdict}"


@pytest.mark.parametrize("name", [c.name for c in DISTRIBUTION_CASES])
def test_distribution_value(distributions, name):
    assert distributions.check_value(name)


@pytest.mark.parametrize("name, params, draw", [
    ("pareto", "param sc: real<lower=0> = 0.8", "pareto(sc, 6.0)"),
    ("truncated_normal", "param lo: real = -0.5", "truncated_normal(0.0, 1.0, low=lo, high=1.5)"),
])
def test_reinforce_is_unsound_where_the_support_moves(name, params, draw):
    """pareto's support [scale, inf) and truncated_normal's [low, high] move with their
    parameters, like uniform's (below): REINFORCE is rejected when compiled."""
    assert "reinforce" not in REGISTRY[name].estimators
    case = dist_case(name, params, draw, "x", lambda q: 0.0)
    with pytest.raises(ppl.PPLError, match=f"support of {name} moves with its parameters"):
        ppl.compile(variant_source(case, "reinforce"))


def test_reinforce_is_unsound_for_uniform():
    """The support of uniform(lo, hi) moves with its parameters: the score function misses
    the boundary terms, so REINFORCE would be biased (its mean gradient in hi is
    −E[x²]/(hi − lo) instead of (lo + 2 hi)/3). It is rejected when compiled."""
    assert "reinforce" not in REGISTRY["uniform"].estimators
    uniform = next(c for c in DISTRIBUTION_CASES if c.name == "uniform")
    with pytest.raises(ppl.PPLError, match="support of uniform moves with its parameters"):
        ppl.compile(variant_source(uniform, "reinforce"))


# ====================================================================== batched choices

N_PLATE = 3


def _sum_moments(mean, var, n=N_PLATE):  # E[S²] for S a sum of n iid copies
    return n * var + (n * mean) ** 2


def _cat_sum(q):
    w = jax.nn.softmax(q["l"])
    m = w @ CATEGORY_VALUES
    return _sum_moments(m, w @ CATEGORY_VALUES ** 2 - m * m)


def plate_case(name, params, draw, ret, expectation, variants) -> Case:
    body = f"plate i in n {{ x ~ {draw}{{est}} }}\n        {ret}"
    return Case(name, params, body, expectation, tuple(variants), args="n: int", call=(N_PLATE,))


BATCHED_CASES = [
    plate_case("pl_bern", "param p: real<lower=0, upper=1> = 0.3", "bernoulli(p)",
               "s = float(sum(x))\n        return s * s - p * s",
               lambda q: (lambda p: _sum_moments(p, p * (1 - p)) - p * N_PLATE * p)(unit(q["p"])),
               ["enum", "reinforce", "mvd"]),
    plate_case("pl_cat", "param l: real[3] = [0.2, -0.5, 0.4]", "categorical(logits=l)",
               "s = sum([1.0, -2.0, 3.0][x])\n        return s * s", _cat_sum, ["enum", "reinforce", "mvd"]),
    plate_case("pl_binom", "param p: real<lower=0, upper=1> = 0.3", "binomial(3, p)",
               "s = float(sum(x))\n        return s * s",
               lambda q: (lambda p: _sum_moments(3 * p, 3 * p * (1 - p)))(unit(q["p"])), ["enum", "reinforce"]),
    plate_case("pl_pois", "param r: real<lower=0> = 1.5", "poisson(r)", "s = float(sum(x))\n        return s * s",
               lambda q: _sum_moments(pos(q["r"]), pos(q["r"])), ["reinforce", "mvd"]),
    plate_case("pl_geom", "param p: real<lower=0, upper=1> = 0.6", "geometric(p)",
               "s = float(sum(x))\n        return s * s",
               lambda q: (lambda p: _sum_moments((1 - p) / p, (1 - p) / p ** 2))(unit(q["p"])),
               ["reinforce", "mvd"]),
    plate_case("pl_norm", "param mu: real = 0.3\n    param s: real<lower=0> = 0.8", "normal(mu, s)",
               "t = sum(x)\n        return t * t", lambda q: _sum_moments(q["mu"], pos(q["s"]) ** 2),
               ["reparam", "reinforce", "reinforce_learned", "mvd"]),
    # vector-valued choices in a plate: each choice is [n, 2]
    plate_case("pl_vec_norm", "param mu: real[2] = [0.3, -0.6]\n    param s: real<lower=0> = 0.8",
               "normal(mu, s)", "t = sum(x)\n        return t * t + sum(x[:, 0])",
               lambda q: _sum_moments(q["mu"].sum(), 2 * pos(q["s"]) ** 2) + N_PLATE * q["mu"][0],
               ["reparam", "reinforce", "mvd"]),
    # a vector-valued choice: array parameters, no plate
    Case("vec_bern", "param p: real<lower=0, upper=1>[3] = [0.2, 0.5, 0.7]",
         "x ~ bernoulli(p){est}\n        t = sum([1.0, -2.0, 3.0] * float(x))\n        return t * t",
         lambda q: (lambda p: jnp.sum(CATEGORY_VALUES ** 2 * p * (1 - p)) + (CATEGORY_VALUES @ p) ** 2)(
             unit(q["p"])), ("enum", "reinforce", "mvd")),
]


@pytest.fixture(scope="module")
def batched():
    return Estimates(BATCHED_CASES)


@pytest.mark.parametrize("name,variant", variant_params(BATCHED_CASES))
def test_batched_choice(batched, name, variant):
    """A choice inside a plate is one batched choice; enumeration and mvd perturb one
    element at a time, the others at their sampled values (local expectation gradients),
    so they are unbiased rather than exact, and linear rather than exponential in n."""
    verdict = batched.check_variant(name, variant)
    assert verdict, f"{name} with {variant}:\n{verdict}"


NESTED_PLATES = """
objective nested_plates() {
    param mu: real[2] = [0.3, -0.2]
    param s: real<lower=0> = 0.8
    param p: real<lower=0, upper=1> = 0.3
    param r: real<lower=0> = 0.5
    param l: real[3] = [0.1, -0.4, 0.6]
    return expect {
        plate i in 3 {
            li = l[i]
            plate j in 2 {
                z ~ normal(mu[j], s)
                b ~ bernoulli(p)
                k ~ poisson(r * float(j + 1))
                g ~ geometric(logits=li)
            }
        }
        t = sum(z)
        nb = float(sum(b))
        nk = float(sum(k))
        return t * t + nb * nb + nk * nk + float(sum(g))
    }
}
"""


def _nested(q):
    mu, s, p, r, pg = q["mu"], pos(q["s"]), unit(q["p"]), pos(q["r"]), unit(q["l"])
    rate = 3 * (r + 2 * r)  # Σ over i, j of r·(j + 1)
    return (6 * s * s + (3 * mu.sum()) ** 2 + 6 * p * (1 - p) + (6 * p) ** 2 + rate + rate ** 2
            + 2 * jnp.sum((1 - pg) / pg))


@pytest.fixture(scope="module")
def nested_module():
    return ppl.compile(NESTED_PLATES)


@pytest.mark.parametrize("estimators", [
    {"z": "mvd", "b": "enum", "k": "reinforce", "g": "reinforce"},
    {"z": "reparam", "b": "mvd", "k": "mvd", "g": "mvd"},
    {"*": "reinforce"},
], ids=lambda e: ",".join(f"{k}={v}" for k, v in e.items()))
def test_nested_plates(nested_module, estimators):
    """Choices in nested plates, whose parameters vary along both plate axes, and a rule
    that runs the rest of the block again after an earlier run has left the plates."""
    assert_unbiased(nested_module.nested_plates().with_estimators(estimators), on_short(_nested))


# ====================================================================== the ADEV paper's example

THETA = 0.3


def flip_value(q):
    """L(θ) = E_{b ~ Bern(θ)}[b ? 0 : −θ/2] = −θ(1 − θ)/2, so dL/dθ = θ − 1/2."""
    theta = unit(q["theta"])
    return -(1 - theta) * theta / 2


FLIP = Case("flip", f"param theta: real<lower=0, upper=1> = {THETA}",
            "b ~ bernoulli(theta){est}\n        return where(b == 1, 0.0, -theta / 2.0)", flip_value,
            ("enum", "reinforce", "reinforce_const", "reinforce_learned", "mvd"), exact_enum=True)


@pytest.fixture(scope="module")
def flip():
    return Estimates([FLIP])


def test_flip_closed_form():
    g = jax.grad(lambda u: flip_value({"theta": u}))(jnp.log(THETA / (1 - THETA)))
    assert np.isclose(g, (THETA - 0.5) * THETA * (1 - THETA))  # (θ − ½)·dθ/du


@pytest.mark.parametrize("name,variant", variant_params([FLIP]))
def test_adev_example(flip, name, variant):
    verdict = flip.check_variant(name, variant)
    assert verdict, f"{name} with {variant}:\n{verdict}"


def test_adev_example_value(flip):
    assert flip.check_value("flip")


def test_naive_differentiation_is_biased(flip):
    """jax.grad of the one-sample value sees only the −θ/2 term (the sample b is discrete),
    so its mean is E[−(1 − b)/2] = −(1 − θ)/2, not θ − 1/2: ADEV exists to fix this."""
    from ppl.compiler.backend.standard import evaluate  # the sampled value, naively

    obj = flip.module.flip__reinforce()
    params = obj.init(jax.random.PRNGKey(0))
    program = obj.program()
    keys = jax.random.split(jax.random.PRNGKey(1), 20_000)
    naive = run_once(jax.vmap(lambda k: jax.grad(
        lambda p: evaluate(program, STANDARD, p, k, [])[0])(params)), keys)
    naive = np.asarray(naive["flip__reinforce.theta"], np.float64)
    jac = THETA * (1 - THETA)
    assert not check(naive, (THETA - 0.5) * jac)  # biased for the true gradient
    assert check(naive, -(1 - THETA) / 2 * jac)  # ... and unbiased for the wrong one
    _, grads = sample_estimates(obj, params, n=20_000)  # while ADEV, on the same program, is right
    assert check(grads["flip__reinforce.theta"], (THETA - 0.5) * jac)


# ====================================================================== discontinuities


def _counts(q):
    r = pos(q["r"])
    pmf = jnp.exp(-r) * r ** jnp.arange(3) / jnp.array([1.0, 1.0, 2.0])
    return 5.0 * (1 - pmf.sum()) - pmf @ jnp.arange(3.0)


def _pick(q):
    w, t = jax.nn.softmax(q["l"]), q["t"]
    return w[2] * t * t - w[0] * t + w[1]


def _step(q):  # P(x > 0) = Φ(μ/σ)
    return jax.scipy.stats.norm.cdf(q["mu"] / pos(q["s"]))


DISCONTINUOUS_CASES = [
    Case("counts", "param r: real<lower=0> = 2.0",
         "k ~ poisson(r){est}\n        return where(k > 2, 5.0, -float(k))", _counts, ("reinforce", "mvd")),
    Case("pick", "param l: real[3] = [0.2, -0.5, 0.4]\n    param t: real = 0.7",
         "c ~ categorical(logits=l){est}\n        return where(c == 2, t * t, where(c == 0, -t, 1.0))", _pick,
         ("enum", "reinforce", "mvd"), exact_enum=True),
    Case("step", "param mu: real = 0.3\n    param s: real<lower=0> = 0.8",
         "x ~ normal(mu, s){est}\n        return where(x > 0.0, 1.0, 0.0)", _step, ("reinforce", "mvd")),
]


@pytest.fixture(scope="module")
def discontinuous():
    return Estimates(DISCONTINUOUS_CASES)


@pytest.mark.parametrize("name,variant", variant_params(DISCONTINUOUS_CASES))
def test_discontinuous_continuation(discontinuous, name, variant):
    """The rest of the expectation jumps with the choice: fine for enum, reinforce, mvd."""
    verdict = discontinuous.check_variant(name, variant)
    assert verdict, f"{name} with {variant}:\n{verdict}"


def test_reparam_misses_a_jump():
    """A known limitation, documented: the pathwise derivative of a step is zero almost
    everywhere, so reparam is biased for a continuation discontinuous in a continuous
    choice (use mvd or reinforce there)."""
    step = DISCONTINUOUS_CASES[2]
    obj = ppl.compile(variant_source(step, "reparam")).step__reparam()
    params = obj.init(jax.random.PRNGKey(0))
    _, grads = sample_estimates(obj, params, n=2000)
    assert not check_all(grads, exact_grad(on_short(_step), params))
    assert np.all(grads["step__reparam.mu"] == 0.0)


# ====================================================================== composition

COMPOSITION_SOURCE = """
objective nested() {
    param mu: real = 0.5
    param s: real<lower=0> = 0.8
    return expect {
        x ~ normal(mu, 1.0)
        return expect { y ~ normal(x, s); return y * y } + x
    }
}
objective nested_discrete() {
    param p: real<lower=0, upper=1> = 0.3
    param s: real<lower=0> = 0.8
    return expect {
        b ~ bernoulli(p) with reinforce
        return 2.0 * expect { y ~ normal(float(b), s) with mvd; return y * y } + float(b)
    }
}
objective seq_sum() {
    param mu: real = 0.5
    param p: real<lower=0, upper=1> = 0.3
    return expect { x ~ normal(mu, 1.0); return x * x } + 2.0 * expect {
        b ~ bernoulli(p) with reinforce
        return where(b == 1, 1.0, -mu)
    }
}
objective seq_prod() {
    param mu: real = 0.5
    param p: real<lower=0, upper=1> = 0.3
    return expect { x ~ normal(mu, 1.0); return x * x } * expect {
        b ~ bernoulli(p) with reinforce
        return where(b == 1, 1.0, -mu)
    }
}
objective mixed() {
    param mu: real = 0.3
    param s: real<lower=0> = 0.7
    param r: real<lower=0> = 1.5
    return expect {
        z ~ normal(mu, s) with reparam
        b ~ bernoulli(sigmoid(z)) with enum
        k ~ poisson(r) with reinforce
        return where(b == 1, z * z, -z) + float(k) * z
    }
}
objective loop_sum() {
    param mu: real = 0.3
    param s: real<lower=0> = 0.8
    param p: real<lower=0, upper=1> = 0.3
    return expect {
        z = 0.0
        c = 0.0
        for t in 3 {
            e ~ normal(mu, s)
            b ~ bernoulli(p) with reinforce
            z = z + e
            c = c + float(b)
        }
        return z * z + c * c
    }
}
objective loop_plate() {
    param mu: real = 0.5
    return expect {
        z = 0.0
        for t in 2 {
            plate i in 3 { e ~ normal(mu, 1.0) }
            z = z + sum(e)
        }
        return z * z
    }
}
objective expect_in_loop() {
    param mu: real = 0.5
    param p: real<lower=0, upper=1> = 0.3
    return expect {
        z = 0.0
        for t in 2 {
            b ~ bernoulli(p) with reinforce
            z = z + float(b) * expect { e ~ normal(mu, 1.0); return e * e }
        }
        return z
    }
}
objective loop_ar() {
    param a: real = 0.6
    param s: real<lower=0> = 0.8
    return expect {
        z = 1.0
        for t in 3 {
            z ~ normal(a * z, s)
        }
        return z * z
    }
}
"""


def _seq_parts(q):
    mu, p = q["mu"], unit(q["p"])
    return mu * mu + 1, p - (1 - p) * mu


def _mixed(q):
    mu, s, r = q["mu"], pos(q["s"]), pos(q["r"])
    sig = jax.nn.sigmoid
    return gauss_expect(lambda z: sig(z) * z * z - (1 - sig(z)) * z, mu, s) + r * mu


def _loop_ar(q):
    a, s = q["a"], pos(q["s"])
    mean, var = 1.0, 0.0
    for _ in range(3):
        mean, var = a * mean, a * a * var + s * s
    return mean * mean + var


COMPOSITION = {
    "nested": (lambda q: q["mu"] ** 2 + 1 + pos(q["s"]) ** 2 + q["mu"], [{}]),
    "nested_discrete": (lambda q: (lambda p, s: 2 * (p * (1 + s * s) + (1 - p) * s * s) + p)(
        unit(q["p"]), pos(q["s"])), [{}]),
    "seq_sum": (lambda q: (lambda a, b: a + 2 * b)(*_seq_parts(q)), [{}, {"b": "mvd"}]),
    "seq_prod": (lambda q: (lambda a, b: a * b)(*_seq_parts(q)), [{}, {"x": "reinforce", "b": "enum"}]),
    "mixed": (_mixed, [{}, {"b": "reinforce"}, {"b": "mvd", "z": "mvd"}]),
    # choices inside a for loop: reparam and reinforce (a lax.scan), mvd (the loop unrolled)
    "loop_sum": (lambda q: (lambda mu, s, p: 3 * s * s + 9 * mu * mu + 3 * p * (1 - p) + 9 * p * p)(
        q["mu"], pos(q["s"]), unit(q["p"])), [{}, {"e": "reinforce"}, {"b": "mvd"}]),
    "loop_ar": (_loop_ar, [{}, {"z": "reinforce"}]),
    "loop_plate": (lambda q: 6 + 36 * q["mu"] ** 2, [{}, {"e": "reinforce"}]),
    "expect_in_loop": (lambda q: 2 * unit(q["p"]) * (q["mu"] ** 2 + 1), [{}]),
}


@pytest.fixture(scope="module")
def composition_module():
    return ppl.compile(COMPOSITION_SOURCE)


def _overrides_id(v):
    return v if isinstance(v, str) else ",".join(f"{a}={b}" for a, b in v.items()) or "default"


@pytest.mark.parametrize("name,estimators",
                         [(n, e) for n, (_, es) in COMPOSITION.items() for e in es], ids=_overrides_id)
def test_composition(composition_module, name, estimators):
    """Nested expect; sums and products of independent expects; several estimators in one
    program (a reparam normal feeding an enumerated bernoulli, then a reinforce poisson);
    choices in a for loop."""
    obj = getattr(composition_module, name)().with_estimators(estimators)
    assert_unbiased(obj, on_short(COMPOSITION[name][0]))


BASELINE_VARIANCE = """
objective offset__none() {
    param p: real<lower=0, upper=1> = 0.3
    return expect { b ~ bernoulli(p) with reinforce; return 10.0 + float(b) }
}
objective offset__const() {
    param p: real<lower=0, upper=1> = 0.3
    return expect { b ~ bernoulli(p) with reinforce(baseline=10.0); return 10.0 + float(b) }
}
objective offset__learned() {
    param p: real<lower=0, upper=1> = 0.3
    param bl: real = 10.0
    return expect { b ~ bernoulli(p) with reinforce(baseline=bl); return 10.0 + float(b) }
}
objective all__offset() {
    return offset__none() + offset__const() + offset__learned()
}
"""


def test_baselines_reduce_variance():
    """A baseline is not only unbiased but used: with ℓ = 10 + b, a baseline of 10 removes
    the offset's contribution ℓ·∂log p, so the variance falls by about (10.3/0.7)² ≈ 200x.
    (An ignored baseline passes every unbiasedness test: this one catches it.)"""
    obj = ppl.compile(BASELINE_VARIANCE).all__offset()
    params = obj.init(jax.random.PRNGKey(0))
    _, grads = sample_estimates(obj, params, n=5000)
    plain = grads["offset__none.p"].var()
    for variant in ("const", "learned"):
        assert grads[f"offset__{variant}.p"].var() < plain / 50, variant
    expectation = on_short(lambda q: 10.0 + unit(q["p"]))
    for variant in ("none", "const", "learned"):
        path = f"offset__{variant}.p"
        assert check(grads[path], exact_grad(expectation, {path: params[path]})[path], name=path)


LOOP_BASELINE = """
objective loop_bl() {
    param p: real<lower=0, upper=1> = 0.3
    param bl: real = 0.7
    return expect {
        c = 0.0
        for t in 3 {
            b ~ bernoulli(p) with reinforce(baseline=bl)
            c = c + float(b)
        }
        return c * c
    }
}
"""


def test_learned_baseline_in_a_for_loop():
    """One learned baseline shared by the three choices of a loop: the model gradient is
    unbiased, and the baseline's gradient is (E[ℓ] − b) per choice that uses it."""
    obj = ppl.compile(LOOP_BASELINE).loop_bl()
    params = obj.init(jax.random.PRNGKey(0))
    expectation = on_short(lambda q: (lambda p: 3 * p * (1 - p) + 9 * p * p)(unit(q["p"])))
    values, grads = sample_estimates(obj, params)
    exact = exact_grad(expectation, params)
    exact["loop_bl.bl"] = 3 * (float(expectation(params)) - BL0)
    verdict = check_all(grads, exact)
    assert verdict, str(verdict)
    assert check(values, float(expectation(params)))


DETACHED_BASELINE = """
objective detached_bl() {
    param p: real<lower=0, upper=1> = 0.3
    param w: real = 2.0
    return expect {
        b ~ bernoulli(p) with reinforce(baseline=w * stop_gradient(p))
        return 10.0 + float(b)
    }
}
objective attached_bl() {
    param p: real<lower=0, upper=1> = 0.3
    param w: real = 2.0
    return expect {
        b ~ bernoulli(p) with reinforce(baseline=w * p)
        return 10.0 + float(b)
    }
}
"""


def test_a_learned_baseline_may_read_a_detached_value():
    """A baseline network of a detached state (Pyro's AIR: dense(h.detach())): the baseline
    reads p only through stop_gradient, so fitting it cannot bias p's gradient (which
    stays unbiased), and its own gradient is (E[ℓ] − b)·∂b/∂w = (E[ℓ] − w·p)·p. Without
    the stop_gradient it is the compile error at the ``~``."""
    m = ppl.compile(DETACHED_BASELINE)
    obj = m.detached_bl()
    params = obj.init(jax.random.PRNGKey(0))
    values, grads = sample_estimates(obj, params, n=20_000)
    expectation = on_short(lambda q: 10.0 + unit(q["p"]))
    p = float(unit(params["detached_bl.p"]))
    exact = {"detached_bl.p": exact_grad(expectation, params)["detached_bl.p"],
             "detached_bl.w": (10.0 + p - 2.0 * p) * p}
    verdict = check_all(grads, exact)
    assert verdict, str(verdict)
    with pytest.raises(ppl.CompileError, match="learned baseline of this choice reads the "
                                               "parameter attached_bl.p"):
        m.attached_bl().value(jax.random.PRNGKey(0))


RUNNING_BASELINE = """
objective running_bl() {
    param p: real<lower=0, upper=1> = 0.3
    return expect {
        b ~ bernoulli(p) with reinforce(baseline=running(0.9))
        return 10.0 + float(b)
    }
}
"""


def test_running_average_baseline():
    """``baseline=running(decay)``: the model gradient stays unbiased wherever the running
    average is; its state's gradient estimate is E[ℓ] − b; fitting moves it to E[ℓ],
    where the variance falls."""
    import optax

    obj = ppl.compile(RUNNING_BASELINE).running_bl()
    params = obj.init(jax.random.PRNGKey(0))
    assert float(params["running_bl.b.baseline"]) == 0.0
    expectation = on_short(lambda q: 10.0 + unit(q["p"]))
    mean = float(expectation(params))
    for b in (0.0, 4.0):
        at = dict(params, **{"running_bl.b.baseline": jnp.float32(b)})
        _, grads = sample_estimates(obj, at, n=20_000)
        exact = {"running_bl.p": exact_grad(expectation, at)["running_bl.p"],
                 "running_bl.b.baseline": mean - b, "running_bl.b.baseline_weight": 1.0}
        verdict = check_all(grads, exact)
        assert verdict, str(verdict)
    # The fit updates the state as an exponential moving average of ℓ, not with the optimiser.
    result = ppl.fit(obj, steps=200, optimizer=optax.sgd(0.0), progress=False)
    # An EMA with weight 0.1 of ℓ ∈ {10, 11} has sd ≈ 0.1 around E[ℓ]: allow 4 sd.
    assert abs(float(result.params["running_bl.b.baseline"]) - mean) < 0.4
    at = dict(params, **{"running_bl.b.baseline": jnp.float32(mean)})
    _, near = sample_estimates(obj, at, n=5000)
    _, far = sample_estimates(obj, params, n=5000)
    assert near["running_bl.p"].var() < far["running_bl.p"].var() / 50


RUNNING_USES = """
objective in_a_loop() {
    param p: real<lower=0, upper=1> = 0.3
    return expect {
        s = 0.0
        for t in 3 {
            b ~ bernoulli(p) with reinforce(baseline=running(0.5))
            s = s + 0.0 * float(b)
        }
        return 6.0 + s
    }
}
objective per_element(ys: real[B]) {
    param p: real<lower=0, upper=1> = 0.3
    plate i in B {
        v = expect {
            for t in 2 {
                b ~ bernoulli(p) with reinforce(baseline=running(0.5))
            }
            return ys[i] + 0.0 * float(sum(b))
        }
    }
    return sum(v)
}
objective batched(ys: real[B]) {
    param p: real<lower=0, upper=1> = 0.3
    return expect {
        plate i in B {
            b ~ bernoulli(p) with reinforce(baseline=running(0.5))
            v = ys[i] + 0.0 * float(b)
        }
        return sum(v)
    }
}
"""


@pytest.mark.parametrize("name, uses, mean_ell", [("in_a_loop", 3, 6.0), ("per_element", 16, 2.5),
                                                  ("batched", 1, 20.0)])
def test_a_running_baseline_averages_its_uses(name, uses, mean_ell):
    """The state's gradient estimate is Σ_u (ℓ_u − b) over its uses (the steps of a loop,
    the elements of a plate of expects; a batched draw is one use) and its weight's is the
    number of uses; fit moves b by their ratio, so with a constant ℓ, b after n steps is
    E[ℓ_u]·(1 − decay^n) exactly (by the sum it would overshoot: in the plate of 8
    expects, by 16 times, and diverge)."""
    import optax

    m = ppl.compile(RUNNING_USES)
    ys = np.linspace(1.0, 4.0, 8).astype(np.float32)
    obj = getattr(m, name)() if name == "in_a_loop" else getattr(m, name)(ys)
    path = f"{name}.b.baseline"
    params = obj.init(jax.random.PRNGKey(0))
    assert float(params[path + "_weight"]) == 0.0
    _, grads = obj.value_and_grad(jax.random.PRNGKey(1), params)
    assert float(grads[path + "_weight"]) == pytest.approx(uses)
    assert float(grads[path]) == pytest.approx(uses * mean_ell, rel=1e-5)
    result = ppl.fit(obj, steps=6, optimizer=optax.sgd(0.0), progress=False)
    assert float(result.params[path]) == pytest.approx(mean_ell * (1 - 0.5 ** 6), rel=1e-5)
    assert float(result.params[path + "_weight"]) == 0.0


def test_a_running_baseline_in_minibatches_averages_its_uses():
    """Fitted on minibatches, the plate's sum is scaled by N/B, and so are both gradient
    estimates: their ratio is still the mean of ℓ_u − b (by the sum, b would move 4 times
    too far here, and diverge)."""
    import optax

    m = ppl.compile(RUNNING_USES)
    ys = np.full(32, 2.5, np.float32)
    result = ppl.fit(lambda batch: m.per_element(batch), data=ys, batch_size=8, steps=6,
                     optimizer=optax.sgd(0.0), progress=False)
    assert float(result.params["per_element.b.baseline"]) == pytest.approx(
        2.5 * (1 - 0.5 ** 6), rel=1e-5)


# ====================================================================== objectives written by users

USER_SOURCE = """
gen model() {
    z ~ normal(0.0, 1.0)
    x ~ normal(z, 1.0)
}
gen guide() {
    param m: real = 0.2
    param s: real<lower=0> = 0.9
    z ~ normal(m, s)
}
# χ²-style (CUBO with n = 2, before the log): E_q[(p/q)²]
objective chi2(p: gen, q: gen) {
    return expect {
        (z, log_q) = sim(q)
        log_w = density(p, z) - log_q
        return exp(2.0 * (log_w))
    }
}
objective my_iwae(p: gen, q: gen, K: int) {
    return expect {
        plate k in K {
            (z, log_q) = sim(q)
            log_w = density(p, z) - log_q
        }
        return logsumexp(log_w) - log(float(K))
    }
}
"""
X_OBS = 1.0


def _log_normal(z, m, s):
    return -0.5 * ((z - m) / s) ** 2 - jnp.log(s) - 0.5 * math.log(2 * math.pi)


def _chi2(q):
    """∫ p(z, x)²/q(z) dz: a Gaussian integral, exp(c + b²/4a)·√(π/a)."""
    m, s, x = q["m"], pos(q["s"]), X_OBS
    a = 2 - 1 / (2 * s * s)
    b = 2 * x - m / (s * s)
    c = -x * x - 1.5 * math.log(2 * math.pi) + m * m / (2 * s * s) + jnp.log(s)
    return jnp.exp(c + b * b / (4 * a)) * jnp.sqrt(jnp.pi / a)


def _iwae2(q):
    """E[log (w1 + w2)/2] by a 2-D Gauss–Hermite rule over the two particles."""
    m, s = q["m"], pos(q["s"])
    z = m + s * GH_T
    log_w = _log_normal(z, 0.0, 1.0) + _log_normal(X_OBS, z, 1.0) - _log_normal(z, m, s)
    pair = jnp.logaddexp(log_w[:, None], log_w[None, :]) - math.log(2)
    return jnp.sum(GH_W[:, None] * GH_W[None, :] * pair)


@pytest.fixture(scope="module")
def user_module():
    return ppl.compile(USER_SOURCE)


@pytest.mark.parametrize("which,estimator", [("chi2", "reparam"), ("chi2", "reinforce"),
                                             ("iwae", "reparam"), ("iwae", "reinforce")])
def test_user_objective(user_module, which, estimator):
    target = user_module.model() | {"x": X_OBS}
    if which == "chi2":
        obj, expectation = user_module.chi2(target, user_module.guide()), _chi2
    else:
        obj, expectation = user_module.my_iwae(target, user_module.guide(), 2), _iwae2
    assert_unbiased(obj.with_estimators({"z": estimator}), on_short(expectation))


def test_stdlib_iwelbo_matches_user_iwae(user_module):
    target = user_module.model() | {"x": X_OBS}
    assert_unbiased(ppl.stdlib.iwelbo(target, user_module.guide(), K=2), on_short(_iwae2))


# ====================================================================== negative controls


def _no_score(site, k):
    """WRONG: REINFORCE without its score term (what naive differentiation does)."""
    return k(site.sample(), None)


def _score_of_another_draw(site, k):
    """WRONG: the score of an independent draw x' instead of x: E[ℓ(x)·s(x')] = E[ℓ]·0."""
    x = site.sample()
    return k(x, None, score=site.score(site.sample(salt=1)))


def _baseline_minus_one(site, k):
    """RIGHT, though it looks wrong: (ℓ + 1)·s is REINFORCE with a baseline of −1, unbiased
    because E[s] = 0; the check must not flag it."""
    x = site.sample()
    s = site.score(x)
    return k(x, None, score=s, shift=s)


@pytest.mark.parametrize("rule,sound", [(_no_score, False), (_score_of_another_draw, False),
                                        (_baseline_minus_one, True)],
                         ids=["no_score", "score_of_another_draw", "baseline_minus_one"])
def test_a_wrong_rule_fails_the_check(monkeypatch, rule, sound):
    """The statistical check can fail: with a deliberately wrong reinforce rule in the
    library's table, the same check as above reports a bias."""
    bernoulli = next(c for c in DISTRIBUTION_CASES if c.name == "bernoulli")
    source = variant_source(bernoulli, "reinforce")
    expectation = on_short(bernoulli.expectation)
    monkeypatch.setitem(STANDARD.estimators, "reinforce", rule)
    obj = ppl.compile(source).bernoulli__reinforce()  # a fresh module: nothing compiled is reused
    params = obj.init(jax.random.PRNGKey(0))
    _, grads = sample_estimates(obj, params)
    verdict = check_all(grads, exact_grad(expectation, params))
    assert bool(verdict) == sound, f"{rule.__doc__}\n{verdict}"
