"""Separable continuations in plates (compiler/backend/separable.py): enum, mvd and reinforce.

When the rest of the expectation is a sum of one term per plate element,
enum sums over the joint support exactly from |support| + 1 evaluations,
the alternatives of every element (mvd) come from M + 1 evaluations instead
of N·M, and reinforce multiplies each element's score by its own term only
(Rao-Blackwellisation). Checked here: the analysis says "separable" exactly
where it should; enum is exact (every estimate equals the exact ELBO and
gradient of a Gaussian mixture); the fast path gives the same mvd estimates
as evaluating every alternative in full (same keys, up to float rounding);
mvd and reinforce through it are unbiased for exact gradients (the
mixture, and moments of poisson, geometric and normal choices); and
per-element reinforce has far lower variance than the whole-batch score.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ppl
from adev_stats import assert_unbiased
from ppl.compiler.backend.site import Site
from ppl.compiler.backend.separable import separable_sums

N, K = 6, 3
DATA = np.array([[0.1, 2.9], [-2.5, -1.2], [2.8, 0.3], [0.5, 3.3], [-2.9, -0.8], [3.1, -0.4]],
                np.float32)
C = np.array([1.0, -0.5, 2.0, 0.3], np.float32)

SOURCE = """
gen mixture() {
    param means: real[3, 2] = [[0.0, 3.0], [-2.6, -1.0], [2.6, -0.5]]
    param weights: real[3] = [0.1, -0.2, 0.3]
    plate i in 6 {
        z ~ categorical(logits=weights)
        x ~ normal(means[z], 1.0)
    }
}

gen assignments() {
    param logits: real[6, 3] = [[0.5, 0.0, -0.5], [0.0, 0.8, 0.1], [-0.3, 0.2, 0.9],
                                [0.7, -0.1, 0.0], [0.1, 0.6, -0.4], [0.0, -0.2, 0.5]]
    plate i in 6 {
        z ~ categorical(logits=logits[i])
    }
}

objective moments_poisson(c: real[4]) {
    param r: real<lower=0>[4] = [0.5, 1.5, 2.0, 0.8]
    return expect {
        plate i in 4 { x ~ poisson(r[i]) with mvd }
        y = float(x)
        return sum(c * y - 0.1 * y * y) / 2.0 + 1.0
    }
}

objective moments_geometric(c: real[4]) {
    param p: real<lower=0, upper=1>[4] = [0.3, 0.6, 0.5, 0.8]
    return expect {
        plate i in 4 { x ~ geometric(p[i]) with mvd }
        y = float(x)
        return sum(c * y - 0.1 * y * y)
    }
}

objective moments_normal(c: real[4]) {
    param mu: real[4] = [0.3, -0.2, 1.0, 0.0]
    param s: real<lower=0>[4] = [0.8, 1.2, 0.5, 1.0]
    return expect {
        plate i in 4 {
            x ~ normal(mu[i], s[i]) with mvd
            t = c[i] * x - 0.1 * x * x
        }
        return sum(t)
    }
}

objective bernoulli_square() {
    param p: real<lower=0, upper=1> = 0.3
    return expect {
        plate i in 4 { b ~ bernoulli(p) with enum }
        s = float(sum(b))
        return s * s
    }
}

objective bernoulli_logsumexp() {
    param p: real<lower=0, upper=1> = 0.3
    return expect {
        plate i in 4 { b ~ bernoulli(p) with enum }
        return logsumexp(float(b))
    }
}

objective bernoulli_then_normal() {
    param p: real<lower=0, upper=1> = 0.3
    return expect {
        plate i in 4 {
            b ~ bernoulli(p) with enum
            e ~ normal(float(b), 1.0)
        }
        return sum(e)
    }
}

objective bernoulli_vector() {
    param p: real<lower=0, upper=1>[2] = [0.3, 0.6]
    return expect {
        plate i in 4 { b ~ bernoulli(p) with enum }
        return sum(float(b))
    }
}

objective bernoulli_rounded() {
    param p: real<lower=0, upper=1> = 0.3
    return expect {
        plate i in 4 { b ~ bernoulli(p) with enum }
        return float(int(sum(float(b)) / 3.0))
    }
}

objective bernoulli_broadcast() {
    param p: real<lower=0, upper=1> = 0.3
    return expect {
        plate i in 4 {
            b ~ bernoulli(p) with enum
            column = [float(b)]
        }
        return sum(float(b) + column)
    }
}

objective bernoulli_particles() {
    param p: real<lower=0, upper=1> = 0.3
    return expect {
        plate k in 4 { b ~ bernoulli(p) with enum }
        return logsumexp(2.0 * float(b)) - log(4.0)
    }
}
"""


@pytest.fixture(scope="module")
def module():
    return ppl.compile(SOURCE)


def elbo(m, estimator):
    return ppl.stdlib.elbo(m.mixture() | {"x": DATA}, m.assignments()).with_estimators(
        {"z": estimator})


def first_plate_site(program):
    """``separable_sums`` for the first choice drawn directly in a plate inside ``expect``."""
    expect = next(e for e in program.functions[program.entry].body.eqns if e.op == "expect")
    region = expect.regions[0]
    for j, e in enumerate(region.eqns):
        if e.op == "plate":
            body = e.regions[0].eqns
            draws = [i for i, x in enumerate(body) if x.op == "draw"]
            if draws:
                return separable_sums(region, j, draws[0])
    raise AssertionError("no plate with a choice")


# ---------------------------------------------------------------- the analysis


def test_an_elbo_over_a_data_plate_is_separable(module):
    sums = first_plate_site(elbo(module, "enum").program(after="adev"))
    assert sums is not None and len(sums) == 2  # log q's plate sum and log p's plate sum


@pytest.mark.parametrize("name", ["moments_poisson", "moments_geometric", "moments_normal"])
def test_elementwise_arithmetic_then_a_sum_is_separable(module, name):
    assert first_plate_site(getattr(module, name)(C).program(after="adev"))


@pytest.mark.parametrize("name", ["bernoulli_square", "bernoulli_logsumexp", "bernoulli_then_normal",
                                  "bernoulli_vector", "bernoulli_rounded", "bernoulli_broadcast",
                                  "bernoulli_particles"])
def test_what_is_not_a_sum_over_elements_is_not_separable(module, name):
    """A square of the sum, a logsumexp over the axis, another choice downstream, a
    vector-valued choice, a rounded sum, a broadcast that pairs every element with
    every other, particles combined by logmeanexp: the full evaluation."""
    assert first_plate_site(getattr(module, name)().program(after="adev")) is None


# ---------------------------------------------------------------- fast = full


def estimates(make, fast: bool, n: int = 64):
    Site.use_separability = fast
    try:
        obj = make(ppl.compile(SOURCE))  # a new module: its own compiled programs
        params = obj.init(jax.random.PRNGKey(0))
        keys = jax.random.split(jax.random.PRNGKey(7), n)
        return jax.vmap(lambda k: obj.value_and_grad(k, params))(keys)
    finally:
        Site.use_separability = True


CASES = {
    "reinforce": lambda m: elbo(m, "reinforce"),
    "enum": lambda m: elbo(m, "enum"),
    "mvd": lambda m: elbo(m, "mvd"),
    "mvd_poisson": lambda m: m.moments_poisson(C),
    "mvd_geometric": lambda m: m.moments_geometric(C),
    "mvd_normal": lambda m: m.moments_normal(C),
}


@pytest.mark.parametrize("case", sorted(set(CASES) - {"reinforce", "enum"}))
def test_the_fast_path_computes_the_same_estimates(case):
    (v1, g1), (v2, g2) = estimates(CASES[case], True), estimates(CASES[case], False)
    np.testing.assert_allclose(v1, v2, rtol=1e-5, atol=1e-4)
    for path in g1:
        scale = float(jnp.max(jnp.abs(g2[path]))) + 1.0
        np.testing.assert_allclose(g1[path], g2[path], rtol=1e-4, atol=1e-4 * scale, err_msg=path)


# ---------------------------------------------------------------- unbiased


def exact_mixture_elbo(params):
    """Σ_i Σ_k q_ik (log p(x_i, k) − log q_ik): the ELBO by enumeration."""
    log_q = jax.nn.log_softmax(params["assignments.logits"], -1)  # [N, K]
    log_prior = jax.nn.log_softmax(params["mixture.weights"])  # [K]
    means = params["mixture.means"]
    log_lik = jax.scipy.stats.norm.logpdf(DATA[:, None, :], means[None]).sum(-1)  # [N, K]
    return jnp.sum(jnp.exp(log_q) * (log_prior + log_lik - log_q))


@pytest.mark.parametrize("estimator", ["mvd", "reinforce"])
def test_mixture_elbo_is_unbiased(module, estimator):
    assert_unbiased(elbo(module, estimator), exact_mixture_elbo, n=20_000)


def test_enum_of_a_separable_block_is_exact():
    """Every estimate is the exact ELBO and gradient (as TraceEnum_ELBO computes them),
    whatever the key; the full evaluation (local expectation gradients) is only unbiased."""
    values, grads = estimates(CASES["enum"], True, 200)
    params = elbo(ppl.compile(SOURCE), "enum").init(jax.random.PRNGKey(0))
    value, exact = jax.value_and_grad(exact_mixture_elbo)(params)
    np.testing.assert_allclose(values, np.full(values.shape, value), rtol=1e-5)
    for path in exact:
        np.testing.assert_allclose(grads[path], np.broadcast_to(exact[path], grads[path].shape),
                                   rtol=1e-4, atol=1e-4, err_msg=path)
    _, local = estimates(CASES["enum"], False, 200)
    assert np.std(np.asarray(local["mixture.means"]), 0).max() > 1e-2  # the sampled version


def _moments(mean, second):
    return lambda params: jnp.sum(C * mean(params) - 0.1 * second(params))


def _pois(q):
    return jnp.exp(q["moments_poisson.r"])


def _geom(q):
    return jax.nn.sigmoid(q["moments_geometric.p"])


EXACT = {
    "moments_poisson": lambda q: _moments(_pois, lambda q: _pois(q) + _pois(q) ** 2)(q) / 2 + 1,
    "moments_geometric": _moments(lambda q: (1 - _geom(q)) / _geom(q),
                                  lambda q: (1 - _geom(q)) * (2 - _geom(q)) / _geom(q) ** 2),
    "moments_normal": _moments(lambda q: q["moments_normal.mu"],
                               lambda q: q["moments_normal.mu"] ** 2
                               + jnp.exp(2 * q["moments_normal.s"])),
}


@pytest.mark.parametrize("name", sorted(EXACT))
def test_mvd_through_the_fast_path_is_unbiased(module, name):
    assert_unbiased(getattr(module, name)(C), EXACT[name], n=20_000)


@pytest.mark.parametrize("name", sorted(EXACT))
def test_reinforce_through_the_separable_path_is_unbiased(module, name):
    assert_unbiased(getattr(module, name)(C).with_estimators({"x": "reinforce"}), EXACT[name],
                    n=20_000)


def test_per_element_reinforce_has_lower_variance():
    """Per-element scores (TraceGraph_ELBO's Rao-Blackwellisation) against ℓ times the
    whole batch's score, on the mixture's ELBO: the same mean, far less noise."""
    make = CASES["reinforce"]
    (_, per_element), (_, whole) = estimates(make, True, 2_000), estimates(make, False, 2_000)
    path = "assignments.logits"
    a, b = np.asarray(per_element[path], np.float64), np.asarray(whole[path], np.float64)
    se = np.sqrt(a.var(0) / len(a) + b.var(0) / len(b))
    assert np.all(np.abs(a.mean(0) - b.mean(0)) < 5 * se + 1e-6)
    assert a.var(0).mean() < 0.5 * b.var(0).mean(), (a.var(0).mean(), b.var(0).mean())
