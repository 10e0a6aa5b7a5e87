"""ELBO, IWELBO and Rényi bounds agree in distribution with numpyro's ``Trace_ELBO`` and ``RenyiELBO``.

A shared model, written twice by hand (ppl and numpyro): a 2-D Gaussian
latent ``z`` with a plate of 2-D observations, and a mean-field Gaussian
guide with a location and a positive scale. ppl's ``real<lower=0>`` is
``exp`` of an unconstrained parameter (numpyro's ``biject_to(positive)``),
so the numpyro guide takes the unconstrained value as a plain
``numpyro.param`` and applies ``exp`` itself: both gradients are then with
respect to the same unconstrained parameters.

Both libraries draw many independent estimates (one jitted ``vmap`` each);
"agree in distribution" is checked on the first two moments: the means of
the estimates, and the means of their squares, agree within five standard
errors of the difference. numpyro returns a loss, the negated objective.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro.distributions import constraints
from numpyro.distributions.transforms import biject_to
from numpyro.infer import RenyiELBO, Trace_ELBO

import ppl
from adev_stats import Verdict, check, run_once

N = 20_000
K = 5
DATA = np.array([[0.9, -0.4], [1.4, 0.2], [0.3, -1.1], [1.1, 0.5]], np.float32)
LOC0 = np.array([0.3, -0.2], np.float32)
SCALE0 = np.array([0.8, 1.2], np.float32)

SOURCE = """
gen model(n: int) {
    z ~ normal([0.0, 0.0], 1.0)
    plate i in n {
        x ~ normal(z, 1.0)
    }
}

gen guide() {
    param loc: real[2] = [0.3, -0.2]
    param scale: real<lower=0>[2] = [0.8, 1.2]
    z ~ normal(loc, scale)
}
"""


def np_model(x):
    z = numpyro.sample("z", dist.Normal(jnp.zeros(2), 1.0).to_event(1))
    with numpyro.plate("n", x.shape[0]):
        numpyro.sample("x", dist.Normal(z, 1.0).to_event(1), obs=x)


def np_guide(x):
    loc = numpyro.param("loc", jnp.asarray(LOC0))
    scale_u = numpyro.param("scale_u", jnp.log(jnp.asarray(SCALE0)))
    scale = biject_to(constraints.positive)(scale_u)  # exp, as ppl's real<lower=0>
    numpyro.sample("z", dist.Normal(loc, scale).to_event(1))


@pytest.fixture(scope="module")
def module():
    return ppl.compile(SOURCE)


def two_sample(a, b, name: str, z: float = 5.0) -> Verdict:
    """Means of two independent samples (leading axis) agree within z SE of the difference."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    se = np.sqrt(a.var(0, ddof=1) / len(a) + b.var(0, ddof=1) / len(b))
    ok = bool(np.all(np.abs(a.mean(0) - b.mean(0)) < z * se + 1e-6))
    return Verdict(ok, f"{name}: ppl {np.round(a.mean(0), 4).tolist()} numpyro "
                       f"{np.round(b.mean(0), 4).tolist()} SE {np.round(se, 4).tolist()}")


def agree_in_distribution(ours, theirs, name: str) -> Verdict:
    """First and second moments agree (the second on squared deviations from a common centre)."""
    centre = (np.mean(ours, 0) + np.mean(theirs, 0)) / 2
    first = two_sample(ours, theirs, name)
    second = two_sample((ours - centre) ** 2, (theirs - centre) ** 2, name + " (2nd moment)")
    return Verdict(first.ok and second.ok, f"{first}\n{second}")


def ppl_estimates(obj, seed: int):
    params = obj.init(jax.random.PRNGKey(0))
    keys = jax.random.split(jax.random.PRNGKey(seed), N)
    values, grads = run_once(jax.vmap(lambda k: obj.value_and_grad(k, params)), keys)
    return np.asarray(values), {"loc": np.asarray(grads["guide.loc"]),
                                "scale": np.asarray(grads["guide.scale"])}


def numpyro_estimates(elbo, seed: int):
    params = {"loc": jnp.asarray(LOC0), "scale_u": jnp.log(jnp.asarray(SCALE0))}
    x = jnp.asarray(DATA)

    def objective(p, key):  # numpyro's loss is the negated objective
        return -elbo.loss(key, p, np_model, np_guide, x)

    keys = jax.random.split(jax.random.PRNGKey(seed), N)
    values, grads = run_once(jax.vmap(lambda k: jax.value_and_grad(objective)(params, k)), keys)
    return np.asarray(values), {"loc": np.asarray(grads["loc"]),
                                "scale": np.asarray(grads["scale_u"])}


def exact_elbo(loc, log_scale):
    """The ELBO of this conjugate model in closed form (a third, exact reference)."""
    s2 = jnp.exp(2 * log_scale)
    e_log_prior = jnp.sum(-0.5 * (loc ** 2 + s2) - 0.5 * jnp.log(2 * jnp.pi))
    e_log_lik = jnp.sum(-0.5 * ((DATA - loc) ** 2 + s2) - 0.5 * jnp.log(2 * jnp.pi))
    entropy = jnp.sum(0.5 * jnp.log(2 * jnp.pi * jnp.e * s2))
    return e_log_prior + e_log_lik + entropy


@pytest.mark.parametrize("which", ["elbo", "iwelbo", "renyi0.5", "renyi-1"])
def test_agrees_with_numpyro(module, which):
    target = module.model(DATA.shape[0]) | {"x": DATA}
    if which == "elbo":
        obj, elbo = ppl.stdlib.elbo(target, module.guide()), Trace_ELBO()
    elif which == "iwelbo":
        obj, elbo = ppl.stdlib.iwelbo(target, module.guide(), K=K), RenyiELBO(alpha=0, num_particles=K)
    else:
        alpha = float(which[len("renyi"):])
        obj = ppl.stdlib.renyi(target, module.guide(), K=K, alpha=alpha)
        elbo = RenyiELBO(alpha=alpha, num_particles=K)
    ours_v, ours_g = ppl_estimates(obj, seed=1)
    theirs_v, theirs_g = numpyro_estimates(elbo, seed=2)
    verdicts = [agree_in_distribution(ours_v, theirs_v, f"{which} value")]
    verdicts += [agree_in_distribution(ours_g[k], theirs_g[k], f"{which} d/d{k}") for k in ("loc", "scale")]
    assert all(verdicts), "\n".join(map(str, verdicts))


def test_elbo_matches_closed_form(module):
    """ppl's estimates are also unbiased for the exact ELBO and its gradient."""
    target = module.model(DATA.shape[0]) | {"x": DATA}
    values, grads = ppl_estimates(ppl.stdlib.elbo(target, module.guide()), seed=3)
    loc, log_scale = jnp.asarray(LOC0), jnp.log(jnp.asarray(SCALE0))
    g_loc, g_scale = jax.grad(exact_elbo, argnums=(0, 1))(loc, log_scale)
    verdicts = [check(values, float(exact_elbo(loc, log_scale)), name="value"),
                check(grads["loc"], np.asarray(g_loc), name="d/dloc"),
                check(grads["scale"], np.asarray(g_scale), name="d/dscale")]
    assert all(verdicts), "\n".join(map(str, verdicts))
