"""The self-normalised and χ objectives of the standard library: ``rws``, ``forward_kl``, ``cubo``.

Their estimators are checked against exact expectations of the K-particle
estimators themselves. The model has one binary latent ``b`` with a Gaussian
observation, and the family is a Bernoulli; with K particles, everything an
estimate depends on is the number m of particles at b = 1, so the exact
expectation is a sum over m ~ Binomial(K, q(1)), for any K.

``rws`` and ``forward_kl`` draw from ``detach(q)``, so their expected gradient
is E_m[Σ_k w̃_k ∇log p(b_k)] for the model and E_m[Σ_k w̃_k ∇log q(b_k)] for the
family, with no score of the sampling distribution. ``cubo`` is an ordinary
expectation (renyi with α = 1 − n), so its gradient is the full derivative of
E_m[−(1/n) log mean w^n].
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import ppl
from adev_stats import assert_unbiased, check_all, exact_grad, sample_estimates
from programs import ONE_FLIP

Y = 1.5
PARAMS = {"model.a": jnp.asarray(0.4), "family.t": jnp.asarray(-0.3)}
sg = jax.lax.stop_gradient


@pytest.fixture(scope="module")
def module():
    return ppl.compile(ONE_FLIP)


def particle_terms(params, K: int):
    """For m = 0..K particles at b = 1: P(m), and log p, log q, log w at b = 0 and 1."""
    pa, pt = jax.nn.sigmoid(params["model.a"]), jax.nn.sigmoid(params["family.t"])
    b = jnp.asarray([0.0, 1.0])
    log_p = b * jnp.log(pa) + (1 - b) * jnp.log(1 - pa) + jax.scipy.stats.norm.logpdf(Y, 2 * b)
    log_q = b * jnp.log(pt) + (1 - b) * jnp.log(1 - pt)
    m = jnp.arange(K + 1, dtype=jnp.float32)
    log_choose = (jax.scipy.special.gammaln(K + 1.0) - jax.scipy.special.gammaln(m + 1)
                  - jax.scipy.special.gammaln(K - m + 1))
    prob = jnp.exp(log_choose + m * log_q[1] + (K - m) * log_q[0])
    return m, prob, log_p, log_q, log_p - log_q


def self_normalised(params, K: int):
    """E_m[(logmeanexp(log w), Σ_k w̃_k f(b_k))] as (iwae value, weights per m at b = 0, 1)."""
    m, prob, log_p, log_q, log_w = particle_terms(params, K)
    total = jnp.logaddexp(jnp.log(K - m) + log_w[0], jnp.log(m) + log_w[1])  # log Σ_k w_k
    share = jnp.stack([(K - m) * jnp.exp(log_w[0] - total), m * jnp.exp(log_w[1] - total)], -1)
    iwae = jnp.sum(prob * (total - jnp.log(K)))
    return m, prob, log_p, log_q, share, iwae  # share[m, b]: Σ of w̃ over particles at b


def rws_expectation(params, K: int = 3):
    """Value: the IWAE bound; gradient: E[Σ w̃ ∇log p] for the model, E[Σ w̃ ∇log q] for q."""
    _, prob, log_p, log_q, share, iwae = self_normalised(params, K)
    surrogate = jnp.sum(sg(prob[:, None] * share) * (log_p + log_q)[None, :])
    return sg(iwae) + surrogate - sg(surrogate)


def forward_kl_expectation(params, K: int = 3):
    """Value and gradient: E[Σ w̃ log q(b_k)], the weights held (only q's score is differentiated)."""
    _, prob, log_p, log_q, share, _ = self_normalised(params, K)
    value = jnp.sum(prob[:, None] * share * log_q[None, :])
    surrogate = jnp.sum(sg(prob[:, None] * share) * log_q[None, :])
    return sg(value) + surrogate - sg(surrogate)


def cubo_expectation(params, K: int = 3, n: float = 2.0):
    """E_m[−(1/n) log((1/K) Σ_k w_k^n)], differentiated in full."""
    m, prob, _, _, log_w = particle_terms(params, K)
    inner = jnp.logaddexp(jnp.log(K - m) + n * log_w[0], jnp.log(m) + n * log_w[1]) - jnp.log(K)
    return jnp.sum(prob * -inner / n)


def posterior_one():
    """p(b = 1 | y) of the model at PARAMS."""
    pa = jax.nn.sigmoid(PARAMS["model.a"])
    one = pa * jax.scipy.stats.norm.pdf(Y, 2.0)
    return float(one / (one + (1 - pa) * jax.scipy.stats.norm.pdf(Y, 0.0)))


def test_rws_matches_its_exact_expectation(module):
    obj = ppl.stdlib.rws(module.model() | {"y": Y}, module.family(), K=3)
    assert_unbiased(obj, rws_expectation, n=20_000, params=PARAMS)


def test_rws_family_gradient_is_not_iwelbos(module):
    """The check can fail: rws's family gradient is not the IWAE bound's (negative control)."""
    def iwae(params):
        return self_normalised(params, 3)[-1]

    _, grads = sample_estimates(ppl.stdlib.rws(module.model() | {"y": Y}, module.family(), K=3),
                                PARAMS, n=20_000)
    assert not check_all({"family.t": grads["family.t"]},
                         {"family.t": exact_grad(iwae, PARAMS)["family.t"]})
    # while its model gradient (wake-p) is iwelbo's exactly in expectation
    assert check_all({"model.a": grads["model.a"]}, {"model.a": exact_grad(iwae, PARAMS)["model.a"]})


def test_forward_kl_matches_its_exact_expectation(module):
    obj = ppl.stdlib.forward_kl(module.model() | {"y": Y}, module.family(), K=3)
    assert_unbiased(obj, forward_kl_expectation, n=20_000, params=PARAMS)


def test_forward_kl_with_many_particles_approaches_the_inclusive_kl_gradient(module):
    """E_post[∇_t log q(b)] = p(b=1|y) − q(1); at K = 64 the self-normalised bias is small,
    and the estimates match the exact K = 64 expectation."""
    obj = ppl.stdlib.forward_kl(module.model() | {"y": Y}, module.family(), K=64)
    assert_unbiased(obj, lambda p: forward_kl_expectation(p, K=64), n=4_000, params=PARAMS)
    exact_64 = exact_grad(lambda p: forward_kl_expectation(p, K=64), PARAMS)["family.t"]
    exact_3 = exact_grad(forward_kl_expectation, PARAMS)["family.t"]
    limit = posterior_one() - float(jax.nn.sigmoid(PARAMS["family.t"]))
    assert abs(exact_64 - limit) < 0.01 < abs(exact_3 - limit)


def test_forward_kl_fits_the_family_to_the_posterior(module):
    obj = ppl.stdlib.forward_kl(module.model() | {"y": Y}, module.family(), K=32)
    result = ppl.fit(obj, steps=600, key=jax.random.PRNGKey(0), progress=False,
                     params=PARAMS, optimizer=optax.adam(0.05))
    assert float(result.params["model.a"]) == pytest.approx(0.4)  # the model is held
    assert float(jax.nn.sigmoid(result.params["family.t"])) == pytest.approx(posterior_one(), abs=0.05)


def test_cubo_matches_its_exact_expectation(module):
    obj = ppl.stdlib.cubo(module.model() | {"y": Y}, module.family(), K=3, n=2.0)
    assert_unbiased(obj, cubo_expectation, n=20_000, params=PARAMS)


def test_cubo_bounds_the_evidence_from_above_at_many_particles(module):
    """At K = 256, −cubo's mean lies above log p(x) by more than 5 standard errors; the
    same check finds iwelbo's (K = 2) below it: cubo bounds the evidence from above."""
    pa = jax.nn.sigmoid(PARAMS["model.a"])
    log_evidence = float(jnp.log(pa * jax.scipy.stats.norm.pdf(Y, 2.0)
                                 + (1 - pa) * jax.scipy.stats.norm.pdf(Y, 0.0)))
    target, family = module.model() | {"y": Y}, module.family()
    upper, _ = sample_estimates(ppl.stdlib.cubo(target, family, K=256, n=2.0), PARAMS, n=500)
    lower, _ = sample_estimates(ppl.stdlib.iwelbo(target, family, K=2), PARAMS, n=500)
    for values, above in ((-upper, True), (lower, False)):
        gap = (values.mean() - log_evidence) * (1 if above else -1)
        assert gap > 5 * values.std(ddof=1) / np.sqrt(len(values)), (above, gap)


@pytest.mark.parametrize("make, message", [
    (lambda p, q: ppl.stdlib.rws(p, q, K=0), "K must be an integer of at least 1"),
    (lambda p, q: ppl.stdlib.forward_kl(p, q, K=2.5), "K must be an integer"),
    (lambda p, q: ppl.stdlib.iwelbo(p, q, K=0), "K must be an integer of at least 1"),
    (lambda p, q: ppl.stdlib.dreg(p, q, K=0), "K must be an integer of at least 1"),
    (lambda p, q: ppl.stdlib.renyi(p, q, K=0, alpha=0.5), "K must be an integer of at least 1"),
    (lambda p, q: ppl.stdlib.renyi(p, q, K=4, alpha=float("inf")), "finite number"),
    (lambda p, q: ppl.stdlib.cubo(p, q, K=0), "K must be an integer of at least 1"),
    (lambda p, q: ppl.stdlib.cubo(p, q, K=4, n=0.5), "n must be a number of at least 1"),
    (lambda p, q: ppl.stdlib.cubo(p, q, K=4, n=float("nan")), "n must be a number of at least 1"),
    (lambda p, q: ppl.stdlib.cubo(p, q, K=4, n="two"), "n must be a number"),
])
def test_bad_arguments_are_clear_errors(module, make, message):
    """A particle count of 0 would make every K-particle bound NaN, not an error."""
    with pytest.raises(ppl.DataError, match=message):
        make(module.model() | {"y": Y}, module.family())
