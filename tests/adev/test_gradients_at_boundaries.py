"""Gradient estimates at the points where the library's formulas used to be wrong, and for
the choices where sites used to fail, against exact gradients (closed forms in plain JAX).

- logits exactly 0 (the default start of a ``real`` parameter): numpyro's logits
  log-probabilities use ``max`` and ``abs``, whose derivatives at 0 are conventions, so
  enum gave 0.5 for d/dθ E[bernoulli(logits=θ)] (exact 0.25) and 3.0 for binomial(3)
  (exact 0.75); scores and densities inherited it (issue 8, defect 2);
- ``categorical(probs=p)`` with p not summing to 1: enum summed p·ℓ while the sampler
  draws from p / Σp; every estimator now uses p / Σp (defect 12);
- ``reinforce`` on a vector-valued choice (``mvnormal_diag``, ``dirichlet``) in a plate,
  iwelbo's included, failed to broadcast its per-element scores (defect 13).

Each group of objectives is summed into one objective, compiled once; each part has its
own parameters, so its gradient is read off the sum's (see test_unbiased.py).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ppl
from adev_stats import check, check_all, exact_grad, sample_estimates

sigmoid = jax.nn.sigmoid

AT_ZERO = """
objective b_enum() {
    param th: real = 0.0
    return expect { x ~ bernoulli(logits=th) with enum
                    return float(x) }
}
objective b_reinforce() {
    param th: real = 0.0
    return expect { x ~ bernoulli(logits=th) with reinforce
                    return float(x) }
}
objective b_mvd() {
    param th: real = 0.0
    return expect { x ~ bernoulli(logits=th) with mvd
                    return float(x) }
}
objective bin_enum() {
    param th: real = 0.0
    return expect { x ~ binomial(3, logits=th) with enum
                    return float(x) }
}
objective bin_reinforce() {
    param th: real = 0.0
    return expect { x ~ binomial(3, logits=th) with reinforce
                    return float(x) }
}
objective plate_enum() {
    param th: real = 0.0
    return expect { plate i in 4 { x ~ bernoulli(logits=th) with enum }
                    return sum(float(x)) }
}
gen observed() {
    param u: real = 0.0
    param v: real = 0.0
    z ~ normal(0.0, 1.0)
    y ~ bernoulli(logits=u)
    c ~ binomial(3, logits=v)
}
gen prior() {
    z ~ normal(0.0, 1.0)
}
objective density_at_zero(y: int, c: int) {
    return elbo(observed() | {y: y, c: c}, prior())
}
objective cat_enum() {
    param w: real<lower=0>[3] = [0.5, 1.0, 2.5]
    return expect { x ~ categorical(probs=w) with enum
                    return float(x) * float(x) }
}
objective cat_reinforce() {
    param w: real<lower=0>[3] = [0.5, 1.0, 2.5]
    return expect { x ~ categorical(probs=w) with reinforce
                    return float(x) * float(x) }
}
objective cat_mvd() {
    param w: real<lower=0>[3] = [0.5, 1.0, 2.5]
    return expect { x ~ categorical(probs=w) with mvd
                    return float(x) * float(x) }
}
objective all_scalar(y: int, c: int) {
    return b_enum() + b_reinforce() + b_mvd() + bin_enum() + bin_reinforce() + plate_enum() +
        density_at_zero(y, c) + cat_enum() + cat_reinforce() + cat_mvd()
}
"""


def _categorical(q):
    w = jnp.exp(q["w"])
    return jnp.sum(w / jnp.sum(w) * jnp.arange(3.0) ** 2)


# objective -> E[ℓ] as a function of its unconstrained parameters (short names)
SCALAR = {
    "b_enum": lambda q: sigmoid(q["th"]),
    "b_reinforce": lambda q: sigmoid(q["th"]),
    "b_mvd": lambda q: sigmoid(q["th"]),
    "bin_enum": lambda q: 3 * sigmoid(q["th"]),
    "bin_reinforce": lambda q: 3 * sigmoid(q["th"]),
    "plate_enum": lambda q: 4 * sigmoid(q["th"]),
    # log p(y = 1; u) + log p(c = 2; v) (the normal terms cancel with the family's)
    "observed": lambda q: (jnp.log(sigmoid(q["u"])) + jnp.log(3.0) + 2 * jnp.log(sigmoid(q["v"]))
                           + jnp.log(sigmoid(-q["v"]))),
    "cat_enum": _categorical,
    "cat_reinforce": _categorical,
    "cat_mvd": _categorical,
}
EXACT_EVERY_TIME = {"b_enum", "bin_enum", "plate_enum", "cat_enum", "observed"}


@pytest.fixture(scope="module")
def scalar_estimates():
    obj = ppl.compile(AT_ZERO).all_scalar(1, 2)
    params = obj.init(jax.random.PRNGKey(0))
    return params, *sample_estimates(obj, params)


@pytest.mark.parametrize("name", sorted(SCALAR))
def test_gradient_at_logits_zero_and_of_unnormalised_probs(name, scalar_estimates):
    params, _, grads = scalar_estimates
    mine = {k: v for k, v in params.items() if k.split(".")[0] == name}
    assert mine, sorted(params)
    exact = exact_grad(lambda p: SCALAR[name]({k.split(".", 1)[1]: v for k, v in p.items()}), mine)
    ours = {k: grads[k] for k in mine}
    if name in EXACT_EVERY_TIME:  # one enumerated choice, or a density: every estimate is exact
        verdict = check_all(ours, exact, z=0.0, atol=1e-5)
    else:
        verdict = check_all(ours, exact)
    assert verdict, verdict


def test_the_exact_values_are_the_issues():
    """The numbers of issue 8: at logits 0, d/dθ E[bernoulli] = 0.25 and d/dθ E[binomial(3)] = 0.75."""
    assert float(jax.grad(SCALAR["b_enum"])({"th": 0.0})["th"]) == pytest.approx(0.25)
    assert float(jax.grad(SCALAR["bin_enum"])({"th": 0.0})["th"]) == pytest.approx(0.75)


def test_categorical_value_is_the_normalised_expectation(scalar_estimates):
    params, values, _ = scalar_estimates
    total = sum(float(SCALAR[name]({k.split(".", 1)[1]: v for k, v in params.items()
                                     if k.split(".")[0] == name})) for name in SCALAR)
    assert check(values, total, atol=1e-4, name="value of all_scalar")


# ---------------------------------------------------------------- vector-valued choices in plates

VECTORS = """
objective mvn_plate() {
    param m: real[2] = [0.3, -0.2]
    return expect { plate i in 3 { x ~ mvnormal_diag(m, 1.5) with reinforce }
                    return sum(x * x) }
}
objective dirichlet_plate() {
    param c: real<lower=0>[3] = [1.0, 2.0, 0.5]
    return expect { plate i in 2 { x ~ dirichlet(c) with reinforce }
                    return sum(x * [1.0, 2.0, 3.0]) + x[0, 0] * x[1, 2] }
}
gen standard() { z ~ mvnormal_diag([0.0, 0.0], 1.0) }
gen shifted() {
    param mu: real[2] = [0.5, -1.0]
    z ~ mvnormal_diag(mu, 1.0) with reinforce
}
gen shifted_one() {
    param mu: real[2] = [0.5, -1.0]
    z ~ mvnormal_diag(mu, 1.0) with reinforce
}
gen shifted_reparam() {
    param mu: real[2] = [0.5, -1.0]
    z ~ mvnormal_diag(mu, 1.0)
}
gen standard_y() {
    z ~ mvnormal_diag([0.0, 0.0], 1.0)
    y ~ normal(z[0] - z[1], 0.5)
}
objective one_particle() { return iwelbo(standard(), shifted_one(), 1) }
objective three_reinforce(y: real) { return iwelbo(standard_y() | {y: y}, shifted(), 3) }
objective three_reparam(y: real) { return iwelbo(standard_y() | {y: y}, shifted_reparam(), 3) }
objective all_vectors(y: real) {
    return mvn_plate() + dirichlet_plate() + one_particle() + three_reinforce(y) + three_reparam(y)
}
"""


def _dirichlet(q):
    c = jnp.exp(q["c"])
    total = jnp.sum(c)
    mean = c / total
    # two independent draws: E[x0,0 · x1,2] = E[x0] E[x2]
    return 2 * jnp.sum(mean * jnp.array([1.0, 2.0, 3.0])) + mean[0] * mean[2]


VECTOR = {
    "mvn_plate": lambda q: 3 * jnp.sum(q["m"] ** 2 + 1.5 ** 2),
    "dirichlet_plate": _dirichlet,
    # iwelbo with one particle is the ELBO: −KL(N(mu, I) ‖ N(0, I)) = −|mu|²/2
    "one_particle": lambda q: -0.5 * jnp.sum(q["mu"] ** 2),
}


@pytest.fixture(scope="module")
def vector_estimates():
    obj = ppl.compile(VECTORS).all_vectors(0.7)
    params = obj.init(jax.random.PRNGKey(0))
    return params, *sample_estimates(obj, params)


@pytest.mark.parametrize("name", sorted(VECTOR))
def test_reinforce_on_a_vector_valued_choice_in_a_plate(name, vector_estimates):
    params, _, grads = vector_estimates
    prefix = {"one_particle": "shifted_one."}.get(name, f"{name}.")
    mine = {k: v for k, v in params.items() if k.startswith(prefix)}
    assert mine, sorted(params)
    exact = exact_grad(lambda p: VECTOR[name]({k.split(".", 1)[1]: v for k, v in p.items()}), mine)
    assert check_all({k: grads[k] for k in mine}, exact)


def test_iwelbo_reinforce_on_vector_choices_agrees_with_reparam(vector_estimates):
    """iwelbo with 3 particles: reinforce's and reparam's gradients have the same mean
    (two independent samples, compared within 5 standard errors of their difference)."""
    params, _, grads = vector_estimates
    reinforce = grads["shifted.mu"]
    reparam = grads["shifted_reparam.mu"]
    difference = reinforce.mean(0) - reparam.mean(0)
    se = np.sqrt(reinforce.var(0, ddof=1) / len(reinforce) + reparam.var(0, ddof=1) / len(reparam))
    assert np.all(np.abs(difference) < 5 * se), (difference, se)


# ---------------------------------------------------------------- under jax_enable_x64

SEPARABLE = """
objective sep_enum(l: real[4]) {
    param th: real = 0.3
    return expect { plate i in 4 { z ~ bernoulli(logits=th + l[i]) with enum }
                    return sum(float(z) * l) }
}
objective sep_mvd(l: real[4]) {
    param th: real = 0.3
    return expect { plate i in 4 { z ~ bernoulli(logits=th + l[i]) with mvd }
                    return sum(float(z) * l) }
}
objective sep_reinforce(l: real[4]) {
    param th: real = 0.3
    return expect { plate i in 4 { z ~ bernoulli(logits=th + l[i]) with reinforce }
                    return sum(float(z) * l) }
}
objective shared_enum(l: real[4]) {
    param th: real = 0.3
    return expect { plate i in 4 { z ~ bernoulli(logits=th) with enum }
                    return sum(float(z)) + sum(l) }
}
objective shared_mvd(l: real[4]) {
    param th: real = 0.3
    return expect { plate i in 4 { z ~ bernoulli(logits=th) with mvd }
                    return sum(float(z)) + sum(l) }
}
objective all_separable(l: real[4]) {
    return sep_enum(l) + sep_mvd(l) + sep_reinforce(l) + shared_enum(l) + shared_mvd(l)
}
"""
L = np.array([0.5, -1.0, 2.0, 0.0])


def test_separable_paths_under_x64():
    """The separable block's weighted runs (enum, mvd's contraction, Rao-Blackwellised
    reinforce) with float64 parameters and data: no float32 written into the site."""
    with jax.enable_x64(True):
        obj = ppl.compile(SEPARABLE).all_separable(jnp.asarray(L))
        params = obj.init(jax.random.PRNGKey(0))
        assert all(v.dtype == jnp.float64 for v in params.values())
        _, grads = sample_estimates(obj, params, n=20_000)
    exact = float(jax.grad(lambda th: jnp.sum(sigmoid(th + L) * L))(0.3))
    assert check(grads["sep_enum.th"], exact, z=0.0, atol=1e-5, name="enum")
    assert check(grads["sep_mvd.th"], exact, name="mvd")
    assert check(grads["sep_reinforce.th"], exact, name="reinforce")
    # a probability that is the parameter itself (float64 under x64), unlike th + l[i]
    shared = float(jax.grad(lambda th: 4 * sigmoid(th))(0.3))
    assert check(grads["shared_enum.th"], shared, z=0.0, atol=1e-5, name="shared enum")
    assert check(grads["shared_mvd.th"], shared, name="shared mvd")
