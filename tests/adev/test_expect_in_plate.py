"""An ``expect`` inside a plate: one independent estimate per element (adev.py's ``_expect``).

``plate i in B { v = elbo(p | {y: ys[i]}, q) } return sum(v)`` is a sum of B
expectations, each estimated on its own, as genjax.vi maps a per-datum
objective: each element's block is its own continuation, so an enumerated
choice inside a loop re-runs one element's steps, never the batch's.
Checked against exact values and gradients (the 2^T paths of a gated chain
enumerated in JAX for each element):

- enum (the bernoulli's default) is exact for every key; mvd and reinforce
  are unbiased (means of many vectorised estimates within a few standard
  errors); the same statistic rejects the exact gradient of other data (a
  control of its power);
- values computed in the plate outside the block (with tangents), a trace
  built outside it, values of outer plates read in nested plates;
- the elements' estimates are independent (a sum of B equal elements has
  B times one element's variance, not B² times, as one key shared by the
  elements would give);
- the same expectation written with the plate inside the block agrees in
  mean (differential: there enum is a local expectation per element).
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ppl

from adev_stats import check, check_all, sample_estimates

T = 3
SOURCE = """
gen chain(T: int) {
    param a: real = 0.3
    prev = 1.0
    for t in T {
        z ~ bernoulli(logits=a + (prev - 1.0) * 3.0)
        prev = float(z)
    }
}

gen observed(T: int) {
    param m: real = 0.5
    prev = 1.0
    s = 0.0
    for t in T {
        z ~ bernoulli(logits=m + prev - 1.0)
        s = s + float(z)
        prev = float(z)
    }
    y ~ normal(s, 1.0)
}

objective per_point(ys: real[B], T: int) {
    plate i in B {
        v = elbo(observed(T) | {y: ys[i]}, chain(T))
    }
    return sum(v)
}

# The plate's own values enter the block: a scaled datum (with a tangent in c) and a trace.
objective per_point_direct(ys: real[B], T: int) {
    param c: real = 0.7
    plate i in B {
        shift = c * ys[i]
        obs = {y: ys[i]}
        v = expect {
            (tr, lq) = sim(chain(T))
            return density(observed(T) | obs, tr) - lq + shift * float(sum(tr.z))
        }
    }
    return sum(v)
}

# The same sum of expectations, with the plate inside one expect block.
objective per_point_inside(ys: real[B], T: int) {
    return expect {
        plate i in B {
            (tr, lq) = sim(chain(T))
            v = density(observed(T) | {y: ys[i]}, tr) - lq
        }
        return sum(v)
    }
}

objective nested(ys: real[B, C]) {
    param a: real = 0.2
    plate i in B {
        u = ys[i, 0] * a
        plate j in C {
            w = a * ys[i, j]
            v = expect {
                z ~ bernoulli(logits=w)
                return float(z) * ys[i, j] + u * float(z)
            }
        }
    }
    return sum(v)
}
"""

YS = np.array([0.5, 1.5, 2.0, -0.4], np.float32)
PATHS = np.array(list(itertools.product([0, 1], repeat=T)), np.float32)  # [2^T, T]


@pytest.fixture(scope="module")
def module():
    return ppl.compile(SOURCE)


def _chain_logp(z, logit_of_prev):
    prev = jnp.concatenate([jnp.ones(1), z[:-1]])
    logits = logit_of_prev(prev)
    return jnp.sum(z * jax.nn.log_sigmoid(logits) + (1 - z) * jax.nn.log_sigmoid(-logits))


def exact_per_point(a, m, c, ys):
    """Σ_i E_q[log p(z, y_i) − log q(z) + c·y_i·Σ_t z_t], over the 2^T paths."""
    def one(y):
        def path(z):
            lq = _chain_logp(z, lambda prev: a + (prev - 1.0) * 3.0)
            lp = _chain_logp(z, lambda prev: m + prev - 1.0) + jax.scipy.stats.norm.logpdf(y, z.sum(), 1.0)
            return jnp.exp(lq) * (lp - lq + c * y * z.sum())
        return jnp.sum(jax.vmap(path)(jnp.asarray(PATHS)))
    return jnp.sum(jax.vmap(one)(jnp.asarray(ys)))


def exact_grads(ys, with_c):
    a, m, c = 0.3, 0.5, 0.7 if with_c else 0.0
    value = exact_per_point(a, m, c, ys)
    ga, gm, gc = jax.grad(exact_per_point, argnums=(0, 1, 2))(a, m, c, ys)
    grads = {"chain.a": ga, "observed.m": gm}
    if with_c:
        grads["per_point_direct.c"] = gc
    return float(value), {k: float(v) for k, v in grads.items()}


@pytest.mark.parametrize("name", ["per_point", "per_point_direct"])
def test_enum_in_a_loop_in_a_plate_of_expects_is_exact(module, name):
    obj = getattr(module, name)(YS, T)
    params = obj.init(jax.random.PRNGKey(0))
    values, grads = sample_estimates(obj, params, n=64)
    value, exact = exact_grads(YS, name == "per_point_direct")
    assert check(values, value, z=0, atol=1e-4, rtol=1e-5), "every key"
    assert check_all(grads, exact, z=0, atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("estimator", ["mvd", "reinforce"])
def test_mvd_and_reinforce_in_a_plate_of_expects_are_unbiased(module, estimator):
    obj = module.per_point_direct(YS, T).with_estimators({"z": estimator})
    params = obj.init(jax.random.PRNGKey(0))
    values, grads = sample_estimates(obj, params, n=20_000)
    value, exact = exact_grads(YS, True)
    assert check(values, value)
    assert check_all(grads, exact)
    # Power: the same statistic tells the gradient of other data apart.
    _, other = exact_grads(YS + np.float32(0.5), True)
    assert not check(grads["chain.a"], other["chain.a"])


def test_nested_plates_read_outer_values(module):
    ys = np.array([[0.5, -1.0, 2.0], [1.5, 0.3, -0.7]], np.float32)

    def exact(a):
        w = a * ys
        return jnp.sum(jax.nn.sigmoid(w) * (ys + a * ys[:, :1]))

    for estimator, z in (("enum", 0.0), ("reinforce", 5.0)):
        obj = module.nested(ys).with_estimators({"z": estimator})
        values, grads = sample_estimates(obj, obj.init(jax.random.PRNGKey(0)),
                                         n=64 if z == 0 else 20_000)
        assert check(values, float(exact(0.2)), z=z, atol=1e-5, rtol=1e-5), estimator
        assert check(grads["nested.a"], float(jax.grad(exact)(0.2)), z=z, atol=1e-5, rtol=1e-5), estimator


def test_the_elements_estimates_are_independent(module):
    """A sum of B equal elements: variance B·σ² when each has its own key (B²·σ² if shared)."""
    variances = []
    for ys in (np.full(1, 0.8, np.float32), np.full(4, 0.8, np.float32)):
        obj = module.per_point(ys, T).with_estimators({"z": "reinforce"})
        values, _ = sample_estimates(obj, obj.init(jax.random.PRNGKey(0)), n=20_000, seed=3)
        variances.append(values.var())
    ratio = variances[1] / (4 * variances[0])
    assert 0.85 < ratio < 1.15, ratio


def test_a_plate_of_expects_agrees_with_the_plate_inside_one(module):
    """Inside one block, the batched choice is enumerated per element with the others at
    their sampled values (unbiased, not exact); outside, every key gives the exact value."""
    outside, inside = module.per_point(YS, T), module.per_point_inside(YS, T)
    params = outside.init(jax.random.PRNGKey(0))
    value, grads = outside.value_and_grad(jax.random.PRNGKey(5), params)
    values, inside_grads = sample_estimates(inside, params, n=20_000)
    assert check(values, float(value))
    assert check_all(inside_grads, {k: float(v) for k, v in grads.items()})
