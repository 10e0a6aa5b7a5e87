"""``marginal`` and ``normalize``: their density estimates, bounds and gradients.

- ``marginal``'s ``sim`` is reciprocal-unbiased (E[q(x)/ŵ] = 1) and its
  ``density`` unbiased (E[d̂(x)] = q(x)), for one and several inner particles,
  with the default proposal and with a proposal whose log density is not 0;
- the bounds order as they must on a conjugate model: HVI(m=1) ≤ IWHVI(m) ≤
  the exact marginal ELBO ≤ log p(y), approaching it as m grows;
- ``elbo(p, normalize(p, q, N))`` is IWAE's bound with N particles;
- the gradient of an objective over ``marginal`` with a discrete auxiliary is
  unbiased against exact enumeration, with a negative control.
"""

from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from adev_stats import check, check_all, sample_estimates

import ppl

S = ppl.stdlib

SOURCE = """
gen model() {
    z ~ normal(0.0, 1.0)
    y ~ normal(z, 0.5)
}

# q(z) = N(a, sqrt(b² + s²)) once u is integrated out.
gen fam() {
    param a: real = 0.8
    param b: real = 0.4
    param ls: real = -1.6
    u ~ normal(0.0, 1.0)
    z ~ normal(a + b * u, exp(ls))
}

# A reverse model r(u | z) whose log density is not 0.
gen rev(t) {
    u ~ normal(0.4 * t["z"], 0.9)
}

fn log_normal(x, m, s) {
    return -0.5 * ((x - m) / s) ** 2 - log(s) - 0.5 * log(2.0 * pi)
}

# E[q(z) / ŵ] over (z, ŵ) = sim(q'): 1 when ŵ is reciprocal-unbiased.
objective sim_ratio(q: gen, a: real, sd: real) {
    return expect {
        (t, lw) = sim(q)
        return exp(log_normal(t["z"], a, sd) - lw)
    }
}

# E[d̂(z0)] / q(z0): 1 when d̂ is unbiased.
objective density_ratio(q: gen, z0: real, a: real, sd: real) {
    return expect {
        return exp(density(q, {z: z0}) - log_normal(z0, a, sd))
    }
}

# A wholly discrete family with a discrete auxiliary, where everything can be enumerated.
gen coin_model() {
    x ~ bernoulli(0.7)
    y ~ normal(float(x), 1.0)
}

gen coin_fam() {
    param w: real = 0.2
    param al: real = -0.3
    param be: real = 1.1
    u ~ bernoulli(logits=w)
    x ~ bernoulli(logits=al + be * float(u))
}

gen point() {
    param c: real = 0.1
    z ~ normal(c, 1.2)
}
"""

A, B, LS = 0.8, 0.4, -1.6
SD = math.sqrt(B ** 2 + math.exp(LS) ** 2)  # the sd of fam's marginal of z
Y = 1.0


@pytest.fixture(scope="module")
def m():
    return ppl.compile(SOURCE, "marginal_test.ppl")


def estimates(obj, n=20_000, seed=0):
    return sample_estimates(obj, obj.init(jax.random.PRNGKey(0)), n, seed)


@pytest.mark.parametrize("particles", [1, 4])
@pytest.mark.parametrize("proposal", [None, "rev"])
def test_sim_is_reciprocal_unbiased_and_density_unbiased(m, particles, proposal):
    fam = S.marginal(m.fam(), keep=["z"], particles=particles,
                     proposal=None if proposal is None else m.rev)
    values, _ = estimates(m.sim_ratio(fam, A, SD))
    assert check(values[:, None], [1.0], name="E[q(z)/w]")
    for z0 in (0.1, 1.7):
        values, _ = estimates(m.density_ratio(fam, z0, A, SD), seed=1)
        assert check(values[:, None], [1.0], name=f"E[d(z0={z0})]/q(z0)")


def test_a_wrong_weight_fails_the_same_check(m):
    """Negative control: weighting a particle u ~ rev(z0) by the joint score q(u, z0) alone
    (right only when log r = 0) is not an unbiased estimate of q(z0), and the check says so."""
    src = SOURCE + """
objective joint_only(q: gen, z0: real, a: real, sd: real) {
    return expect {
        (u, lr) = sim(rev({z: z0}))
        return exp(density(q, {z: z0, u: u["u"]}) - log_normal(z0, a, sd))
    }
}
"""
    m2 = ppl.compile(src, "marginal_test.ppl")
    values, _ = estimates(m2.joint_only(m2.fam(), 0.1, A, SD))
    assert not check(values[:, None], [1.0])


def exact_marginal_elbo(a, sd, y=Y):
    """E_q[log p(z, y)] + H(q) for q = N(a, sd), p: z ~ N(0, 1), y ~ N(z, 0.5)."""
    half_log_2pi = 0.5 * math.log(2 * math.pi)
    prior = -0.5 * (a ** 2 + sd ** 2) - half_log_2pi
    lik = -0.5 * ((y - a) ** 2 + sd ** 2) / 0.25 - math.log(0.5) - half_log_2pi
    entropy = 0.5 * math.log(2 * math.pi * math.e * sd ** 2)
    return prior + lik + entropy


def mean_se(obj, n=20_000, seed=2):
    values, _ = estimates(obj, n, seed)
    return values.mean(), values.std() / math.sqrt(n)


def test_bounds_order_and_approach_the_marginal_elbo(m):
    target = m.model() | {"y": Y}
    log_py = -0.5 * Y ** 2 / 1.25 - 0.5 * math.log(2 * math.pi * 1.25)
    exact = exact_marginal_elbo(A, SD)
    assert exact < log_py
    hvi = mean_se(S.hvi(target, m.fam(), keep=["z"]))
    iw5 = mean_se(S.iwhvi(target, m.fam(), keep=["z"], m=5))
    iw50 = mean_se(S.iwhvi(target, m.fam(), keep=["z"], m=50))
    for (lo, lo_se), (hi, hi_se) in [(hvi, iw5), (iw5, iw50)]:
        assert lo + 4 * math.hypot(lo_se, hi_se) < hi, (lo, hi)
    assert iw50[0] < exact + 4 * iw50[1]
    assert exact - iw50[0] < 0.3 * (exact - iw5[0])  # the gap shrinks like 1/m


@pytest.mark.parametrize("n", [2, 8])
def test_normalize_elbo_is_iwelbo(m, n):
    target = m.model() | {"y": Y}
    sir, sir_se = mean_se(S.elbo(target, S.normalize(target, m.point(), particles=n)), seed=3)
    iw, iw_se = mean_se(S.iwelbo(target, m.point(), K=n), seed=4)
    assert abs(sir - iw) < 4 * math.hypot(sir_se, iw_se), (sir, iw)


def test_normalize_approaches_the_evidence(m):
    target = m.model() | {"y": Y}
    log_py = -0.5 * Y ** 2 / 1.25 - 0.5 * math.log(2 * math.pi * 1.25)
    few = mean_se(S.elbo(target, S.normalize(target, m.point(), particles=2)))
    many = mean_se(S.elbo(target, S.normalize(target, m.point(), particles=64)))
    assert few[0] + 4 * math.hypot(few[1], many[1]) < many[0] < log_py + 4 * many[1]
    assert log_py - many[0] < 0.1 * (log_py - few[0])


def test_normalize_of_one_particle_is_its_proposal(m):
    """With N = 1 there is nothing to resample: density(normalize(p, q, 1), x) = q(x)."""
    target = m.model() | {"y": Y}
    src_obj = m.density_ratio(S.normalize(target, m.point(), particles=1), 0.7, 0.1, 1.2)
    values, _ = estimates(src_obj, n=16)
    np.testing.assert_allclose(values, 1.0, rtol=1e-5)


# ---------------------------------------------------------------- gradients (discrete auxiliary)

def _coin_bound(params, m_particles: int, exact_marginal: bool = False):
    """E[log p(x, y) − log ŵ], ŵ = (1/m) Σ_k q(x | u_k), u₁ with x from q, the rest from q(u):
    by enumeration over u₁, x and u₂ … u_m (or, with ``exact_marginal``, the ELBO of q(x))."""
    w, al, be = params["coin_fam.w"], params["coin_fam.al"], params["coin_fam.be"]
    pu = jax.nn.sigmoid(w)

    def q_x_given_u(x, u):
        p1 = jax.nn.sigmoid(al + be * u)
        return jnp.where(x == 1, p1, 1 - p1)

    def log_p(x):
        prior = jnp.where(x == 1, jnp.log(0.7), jnp.log(0.3))
        return prior - 0.5 * (Y - x) ** 2 - 0.5 * jnp.log(2 * jnp.pi)

    def prob_u(u):
        return jnp.where(u == 1, pu, 1 - pu)

    total = 0.0
    for x in (0, 1):
        if exact_marginal:
            qx = prob_u(0) * q_x_given_u(x, 0) + prob_u(1) * q_x_given_u(x, 1)
            total = total + qx * (log_p(x) - jnp.log(qx))
            continue
        for us in itertools.product((0, 1), repeat=m_particles):
            prob = prob_u(us[0]) * q_x_given_u(x, us[0])
            for u in us[1:]:
                prob = prob * prob_u(u)
            w_hat = sum(q_x_given_u(x, u) for u in us) / m_particles
            total = total + prob * (log_p(x) - jnp.log(w_hat))
    return total


@pytest.mark.parametrize("estimator", [None, "reinforce"])
def test_gradient_over_a_marginal_is_unbiased(m, estimator):
    target = m.coin_model() | {"y": Y}
    obj = S.iwhvi(target, m.coin_fam(), keep=["x"], m=3)
    if estimator:
        obj = obj.with_estimators({"*": estimator})
    params = obj.init(jax.random.PRNGKey(0))
    values, grads = sample_estimates(obj, params, 50_000, seed=5)
    exact_value = _coin_bound(params, 3)
    exact = jax.grad(_coin_bound)(params, 3)
    assert check(values[:, None], [float(exact_value)], name="value")
    assert check_all(grads, {k: float(v) for k, v in exact.items()})
    # Negative control: the gradient of the exact marginal's ELBO is another number, and
    # the same check tells them apart.
    wrong = jax.grad(_coin_bound)(params, 3, True)
    assert not check_all(grads, {k: float(v) for k, v in wrong.items()})


@pytest.mark.parametrize("n", [3])
def test_normalize_gradient_is_iwelbos(m, n):
    """elbo(p, normalize(p, q, N)) is IWAE's bound, so its gradient (with the resampled
    index's enum estimator and q's reparameterised draws) estimates iwelbo's: the two
    means agree within their standard errors; the prior's gradient (a wrong target)
    does not."""
    target = m.model() | {"y": Y}
    sir = S.elbo(target, S.normalize(target, m.point(), particles=n))
    iw = S.iwelbo(target, m.point(), K=n)
    params = sir.init(jax.random.PRNGKey(0))
    _, g_sir = sample_estimates(sir, params, 40_000, seed=6)
    _, g_iw = sample_estimates(iw, params, 40_000, seed=7)
    a, b = g_sir["point.c"], g_iw["point.c"]
    diff_se = math.hypot(a.std() / math.sqrt(a.size), b.std() / math.sqrt(b.size))
    assert abs(a.mean() - b.mean()) < 5 * diff_se, (a.mean(), b.mean(), diff_se)
    # negative control: the ELBO's gradient (N = 1) is another number, and is told apart
    _, g_one = sample_estimates(S.elbo(target, m.point()), params, 40_000, seed=8)
    c = g_one["point.c"]
    assert abs(c.mean() - b.mean()) > 5 * math.hypot(c.std() / math.sqrt(c.size),
                                                   b.std() / math.sqrt(b.size))
