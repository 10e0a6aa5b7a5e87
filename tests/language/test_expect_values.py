"""``expect`` of an int or bool block is a real, as numpy's mean of ints is (defect 7).

E[k²] for k ~ poisson(3) is 3 + 9 = 12; E[b + b·b] = 2σ(θ) and E[b == 1] = σ(θ)
for b ~ bernoulli(logits=θ). Each objective's estimates are drawn in one
vectorised program and their mean compared with the exact value (and the
gradient with the exact gradient) within standard errors.

A ``fn`` may hold an ``expect`` that draws with ``~`` (defect 15): called from
an objective, E[x²] = θ² + 1 for x ~ normal(θ, 1), with gradient 2θ.
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import ppl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "adev"))
from adev_stats import assert_unbiased, check, run_once  # noqa: E402

SOURCE = """
objective squared_count() {
    return expect { k ~ poisson(3.0); return k * k }
}
fn second_moment(theta) {
    return expect { x ~ normal(theta, 1.0); return x * x }
}
objective through_fn(theta0: real) {
    param theta: real = theta0
    return second_moment(theta)
}
objective flips(theta0: real) {
    param theta: real = theta0
    return expect {
        b ~ bernoulli(logits=theta)
        c ~ bernoulli(logits=theta)
        return (b + b * b) + (c == 1)
    }
}
"""


def test_int_valued_expect_estimates_its_real_mean():
    m = ppl.compile(SOURCE)
    obj = m.squared_count()
    keys = jax.random.split(jax.random.PRNGKey(0), 20_000)
    values = np.asarray(run_once(jax.vmap(lambda k: obj.value(k, {})), keys))
    verdict = check(values[:, None], [12.0], name="E[k^2]")
    assert verdict, verdict


def test_int_and_bool_valued_expect_is_unbiased_with_its_gradient():
    obj = ppl.compile(SOURCE).flips(0.3)
    assert_unbiased(obj, lambda p: 3.0 * jax.nn.sigmoid(p["flips.theta"]), n=20_000,
                    params={"flips.theta": jnp.float32(0.3)})


def test_fn_whose_expect_draws_is_unbiased():
    obj = ppl.compile(SOURCE).through_fn(0.5)
    assert_unbiased(obj, lambda p: p["through_fn.theta"] ** 2 + 1.0, n=20_000,
                    params={"through_fn.theta": jnp.float32(0.5)})
