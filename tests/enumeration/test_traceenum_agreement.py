"""``elbo`` over an exactly marginalised mixture agrees with NumPyro's ``TraceEnum_ELBO``.

The model: a mixture whose component means ``mu`` are a latent vector (kept, with
a normal variational family) and whose assignments ``z`` are summed out exactly,
per data point. ppl: ``elbo(marginal(mix(N), keep=["mu", "x"], exact=True) |
{x}, guide())``; NumPyro: the same model with ``z`` enumerated in parallel
under ``TraceEnum_ELBO``. Both draw ``mu`` by reparameterisation and sum ``z``
exactly, so their estimates of the ELBO and of its gradient have the same
distribution: the means of many estimates agree within standard errors, and
so do their spreads. NumPyro's enumeration needs ``funsor``; without it the
test is skipped.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ppl

funsor = pytest.importorskip("funsor")
numpyro = pytest.importorskip("numpyro")
import numpyro.distributions as dist  # noqa: E402
from numpyro.infer import TraceEnum_ELBO  # noqa: E402

SOURCE = '''
gen mix(N: int) {
    param logits: real[3] = [0.3, -0.2, 0.1]
    mu ~ normal(zeros(3), 2.0)
    plate i in N {
        z ~ categorical(logits=logits)
        x ~ normal(mu[z], 1.0)
    }
}

gen guide() {
    param loc: real[3] = [-1.5, 0.2, 1.0]
    param scale: real<lower=0>[3] = 0.4
    mu ~ normal(loc, scale)
}
'''
N_POINTS = 30
ESTIMATES = 2000


def numpyro_model(x):
    logits = numpyro.param("mix.logits", None)
    mu = numpyro.sample("mu", dist.Normal(jnp.zeros(3), 2.0).to_event(1))
    with numpyro.plate("data", x.shape[0]):
        z = numpyro.sample("z", dist.Categorical(logits=logits), infer={"enumerate": "parallel"})
        numpyro.sample("x", dist.Normal(mu[z], 1.0), obs=x)


def numpyro_guide(x):
    loc = numpyro.param("guide.loc", None)
    scale = jnp.exp(numpyro.param("guide.scale", None))  # ppl's unconstrained scale is its log
    numpyro.sample("mu", dist.Normal(loc, scale).to_event(1))


def test_elbo_of_exact_marginal_agrees_with_traceenum_elbo():
    m = ppl.compile(SOURCE)
    x = jnp.asarray(np.random.default_rng(0).normal(size=N_POINTS) * 2.0, jnp.float32)
    target = ppl.stdlib.marginal(m.mix(N_POINTS), keep=["mu", "x"], exact=True) | {"x": x}
    obj = ppl.stdlib.elbo(target, m.guide())
    params = obj.init(jax.random.PRNGKey(0))
    keys = jax.random.split(jax.random.PRNGKey(1), ESTIMATES)
    ours = jax.jit(jax.vmap(lambda k: obj.value_and_grad(k, params)))(keys)

    loss = TraceEnum_ELBO(max_plate_nesting=1)
    elbo = lambda p, k: -loss.loss(k, p, numpyro_model, numpyro_guide, x)  # noqa: E731
    theirs = jax.jit(jax.vmap(lambda k: jax.value_and_grad(elbo)(params, k)))(
        jax.random.split(jax.random.PRNGKey(2), ESTIMATES))

    pairs = [("value", ours[0], theirs[0])] + [(p, ours[1][p], theirs[1][p]) for p in params]
    for name, a, b in pairs:
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        se = np.sqrt(a.var(0) / len(a) + b.var(0) / len(b))
        assert np.all(np.abs(a.mean(0) - b.mean(0)) < 5 * se + 1e-4), (
            name, a.mean(0), b.mean(0), se)
        # The same spread too (the standard deviation of a sample of 2000 varies by ~2%).
        np.testing.assert_allclose(a.std(0), b.std(0), rtol=0.2, atol=1e-3, err_msg=name)
