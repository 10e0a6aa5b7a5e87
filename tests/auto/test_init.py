"""Initialisation strategies (NumPyro's ``init_to_value``, ``init_to_median``,
``init_to_sample``) for the automatic families' locations, and the errors of
initial values outside a constraint.

- ``init_to_value``: each location is exactly the value through the bijection onto
  its support (``auto_normal`` per latent, ``auto_mvn`` flattened in address order),
  so ``auto_delta``'s draw is the value itself; ``fit`` starts there;
- ``init_to_median``: over many keys, the mean of the location (a median of 15
  prior draws on the unconstrained scale, unbiased there by symmetry for a
  normal and a log-normal latent) is the prior median; the prior mean of the
  log-normal is many standard errors away (negative control);
- ``init_to_sample``: over many keys, the locations are distributed as the
  prior (mean and variance); a median's spread is far smaller (negative control);
- goldens: an unknown or observed address, a wrong shape, a value outside the
  support, ``init`` on a flow, something that is not a strategy; and a
  ``uniform_init`` on a ``real<lower=0>`` parameter names the parameter.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from adev_stats import check
from numpyro.distributions.transforms import biject_to
from numpyro.distributions import constraints

import ppl

S = ppl.stdlib

SOURCE = """
gen conj(y: real[N]) {
    mu ~ normal(1.0, 2.0)
    s ~ lognormal(0.5, 0.4)
    h ~ halfnormal(2.0)
    w ~ dirichlet([1.0, 2.0, 3.0])
    plate i in N { y ~ normal(mu, s) }
}

gen positive() {
    param scale: real<lower=0> = uniform_init()
    x ~ normal(0.0, scale)
}
"""

Y = np.array([0.1, 0.5, 1.2], np.float32)
VALUES = {"mu": 0.3, "s": 2.0, "h": 1.5, "w": [0.2, 0.3, 0.5]}
KEYS = 100  # initialisations per statistical check


@pytest.fixture(scope="module")
def m():
    return ppl.compile(SOURCE)


@pytest.fixture(scope="module")
def target(m):
    return m.conj(Y) | {"y": Y}


def unconstrained(values):
    stick = biject_to(constraints.simplex).inv(jnp.asarray(values["w"], jnp.float32))
    return {"mu": np.float32(values["mu"]), "s": np.log(values["s"]), "h": np.log(values["h"]),
            "w": np.asarray(stick)}


def test_init_to_value_puts_each_location_at_the_value(target):
    key = jax.random.PRNGKey(0)
    want = unconstrained(VALUES)
    params = S.auto_normal(target, init=ppl.init_to_value(values=VALUES)).init(key)
    for a, u in want.items():
        np.testing.assert_allclose(params[f"auto_normal.conj.{a}.loc"], u, rtol=1e-6, atol=1e-6)
    # the scales keep their default (NumPyro's init_scale, 0.1)
    np.testing.assert_allclose(params["auto_normal.conj.mu.scale"], np.log(0.1), rtol=1e-6)
    joint = S.auto_mvn(target, init=ppl.init_to_value(values=VALUES)).init(key)
    flat = np.concatenate([np.reshape(want[a], -1) for a in sorted(want)])
    np.testing.assert_allclose(joint["auto_mvn.conj.loc"], flat, rtol=1e-6, atol=1e-6)
    # a point mass started there draws exactly the values
    point = S.auto_delta(target, init=ppl.init_to_value(values=VALUES))
    trace, _ = point.simulate(key, point.init(key))
    for a, v in VALUES.items():
        np.testing.assert_allclose(trace[a], v, rtol=1e-5)


def test_fit_and_objective_init_start_at_the_strategy(target):
    obj = S.elbo(target, S.auto_normal(target, init=ppl.init_to_value(values=VALUES)))
    want = unconstrained(VALUES)
    start = obj.init(jax.random.PRNGKey(3))
    fitted = ppl.fit(obj, steps=1, optimizer=optax.sgd(0.0), key=jax.random.PRNGKey(4))
    for a, u in want.items():
        np.testing.assert_allclose(start[f"auto_normal.conj.{a}.loc"], u, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(fitted.params[f"auto_normal.conj.{a}.loc"], u, rtol=1e-6,
                                   atol=1e-6)


def test_a_value_not_given_falls_back_to_uniform(target):
    q = S.auto_normal(target, init=ppl.init_to_value(values={"mu": 0.3}))
    base = q.init(jax.random.PRNGKey(0))
    locs = np.array([q.initial_params(jax.random.PRNGKey(i), base)["auto_normal.conj.s.loc"]
                     for i in range(40)])
    assert np.all(np.abs(locs) < 2.0) and locs.std() > 0.5  # uniform(-2, 2): sd 1.15


def locations(q, n=KEYS):
    base = q.init(jax.random.PRNGKey(0))  # the other parameters, and one compile
    out = [q.initial_params(jax.random.PRNGKey(i), base) for i in range(n)]
    return {a: np.stack([p[f"auto_normal.conj.{a}.loc"] for p in out]) for a in ("mu", "s", "h")}


@pytest.fixture(scope="module")
def medians(target):
    return locations(S.auto_normal(target, init=ppl.init_to_median()))


@pytest.fixture(scope="module")
def samples(target):
    return locations(S.auto_normal(target, init=ppl.init_to_sample()))


def test_init_to_median_starts_at_the_prior_median(medians):
    assert check(medians["mu"], 1.0, name="mu")
    assert check(medians["s"], 0.5, name="log s")   # the log-normal's median exp(0.5)
    # negative control: the log of the log-normal's mean, exp(0.5 + 0.4² / 2)
    assert not check(medians["s"], 0.5 + 0.4 ** 2 / 2, name="log of the mean")


def test_init_to_sample_draws_from_the_prior(samples, medians):
    mu, s, h = samples["mu"], np.exp(samples["s"]), np.exp(samples["h"])
    assert check(mu, 1.0, name="mu")
    assert check((mu - 1.0) ** 2, 4.0, name="var mu")
    assert check(s, np.exp(0.5 + 0.4 ** 2 / 2), name="mean s")
    assert check(h, 2.0 * np.sqrt(2 / np.pi), name="mean h")
    assert check(h ** 2, 4.0, name="second moment h")
    # negative control: a median of 15 draws varies far less than one draw
    assert not check((medians["mu"] - 1.0) ** 2, 4.0, name="var of a median")


@pytest.mark.parametrize("values, words", [
    ({"mux": 1.0}, "init_to_value: 'mux' is not a latent choice of the target (its latents "
                   "are h, mu, s, w)\n  = help: did you mean 'mu'?"),
    ({"y": 1.0}, "'y' is not a latent choice of the target (its latents are h, mu, s, w)\n"
                 "  = help: an observed address is not initialised: it keeps its data"),
    ({"mu": [1.0, 2.0]}, "init_to_value: the value of 'mu' has shape [2], but the latent has "
                         "shape []"),
    ({"h": -1.0}, "init_to_value: the initial value of 'h' is outside its support (0, ∞), so "
                  "it has no finite unconstrained value"),
    ({"w": [0.5, 0.6, 0.1]}, "init_to_value: the initial value of 'w' is outside its support "
                             "(simplex)"),
])
def test_bad_values_are_errors_naming_the_latent(target, values, words):
    q = S.auto_normal(target, init=ppl.init_to_value(values=values))
    with pytest.raises(ppl.DataError) as err:
        q.init(jax.random.PRNGKey(0))
    assert words in str(err.value), str(err.value)


def test_bad_strategies_are_errors(target):
    with pytest.raises(ppl.DataError, match="auto_iaf\\(init=...\\): a flow has no location"):
        S.auto_iaf(target, init=ppl.init_to_median())
    with pytest.raises(ppl.DataError, match="auto_normal\\(init=...\\) takes an initialisation "
                                            "strategy, got 'median'"):
        S.auto_normal(target, init="median")
    with pytest.raises(ppl.DataError, match="init_to_median\\(num_samples=...\\) must be a "
                                            "positive integer, got 0"):
        ppl.init_to_median(num_samples=0)
    assert S.init_to_value is ppl.init_to_value


def test_an_initialiser_outside_a_constraint_names_the_parameter(m):
    # uniform_init draws in [-0.05, 0.05): for a real<lower=0>, about half of its draws
    # are outside the constraint; one of the first keys gives one.
    with pytest.raises(ppl.DataError) as err:
        for i in range(20):
            m.positive().init(jax.random.PRNGKey(i))
    text = str(err.value)
    assert "the initial value of parameter 'positive.scale' is outside its constraint " \
           "(a lower bound: > 0.0)" in text, text
    assert "param scale: real<lower=0> = uniform_init()" in text, text
