"""Masked choices (``y ~ d(...) if m``) and missing observations.

A masked choice's log density is the sum over the elements where the mask
is true; the other elements are still drawn (numpyro's ``mask``). Checked
against hand computations with scipy, over many simulated traces in one
vectorised program: the log density ``simulate`` returns, and ``density`` of
the same traces. A NaN observation of a masked choice means missing (the
mask must be false there); its log density and gradient are those of the
observed elements only, and an ELBO fit on such data matches the fit on the
observed subset (and the exact conjugate posterior). Masks do not change
what is drawn, so gradient estimators stay unbiased: masked bernoulli sites
under enum and reinforce (a vector choice) and enum and mvd (in a plate, their
per-element rules) are checked against the exact value and gradient.
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import stats

import ppl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "adev"))
from adev_stats import assert_unbiased, check, run_once  # noqa: E402

SOURCE = """
gen model(m: bool[N], rows: bool[R]) {
    mu ~ normal(0.0, 2.0)
    y ~ normal(mu + zeros(N), 1.5) if m
    plate i in N { c ~ poisson(exp(mu / 4.0)) if m[i] }
    w ~ mvnormal_diag(zeros(R, 2) + mu, 1.0) if rows        # one element per row
    s ~ gamma(2.0 + zeros(N), 1.0) if not m
    k ~ bernoulli(0.3 + zeros(R, N)) if rows[:, None] and m[None, :]
    off ~ normal(0.0, 1.0) if false
}

gen regression(m: bool[N]) {
    mu ~ normal(0.0, 10.0)
    plate i in N { y ~ normal(mu, 1.0) if m[i] }
}

gen counts(seen: bool[N]) {
    rate ~ gamma(2.0, 1.0)
    plate i in N { c ~ poisson(rate) if seen[i] }
}

gen guide() {
    param loc: real = 0.0
    param scale: real<lower=0> = 1.0
    mu ~ normal(loc, scale)
}

gen flips(m: bool[3]) {
    param theta: real = 0.3
    param phi: real = -0.4
    param psi: real = 0.8
    param chi: real = -1.1
    a ~ bernoulli(logits=theta + zeros(3)) if m               # enum, the default
    b ~ bernoulli(logits=phi + zeros(3)) with reinforce if m
    plate i in 3 {                                            # per-element (separable) rules
        c ~ bernoulli(logits=psi) if m[i]
        d ~ bernoulli(logits=chi) with mvd if m[i]
    }
}

objective log_q(m: bool[3]) {
    return expect {
        (t, lq) = sim(flips(m))
        return lq
    }
}
"""

MASKS = [np.array([True, False, True, True]), np.ones(4, bool), np.zeros(4, bool)]
ROWS = np.array([True, False, True])


@pytest.fixture(scope="module")
def module():
    return ppl.compile(SOURCE)


@pytest.fixture(scope="module")
def simulated(module):
    """For every mask at once (one compile): 2000 simulated traces, the log densities
    ``simulate`` gave them and ``density`` of the same traces."""

    def run(m, keys):
        g = module.model(m, ROWS)
        traces, lps = jax.vmap(g.simulate)(keys)
        return traces, lps, jax.vmap(g.density)(traces)

    keys = jax.random.split(jax.random.PRNGKey(0), 2000)
    return run_once(jax.vmap(run, in_axes=(0, None)), np.stack(MASKS), keys)


def hand_log_density(t: dict, m, rows) -> np.ndarray:
    """The masked log density of a batch of traces, from scipy (leading axis: traces)."""
    mu = t["mu"][:, None]
    lp = stats.norm.logpdf(t["mu"], 0.0, 2.0)
    lp += np.sum(np.where(m, stats.norm.logpdf(t["y"], mu, 1.5), 0.0), 1)
    lp += np.sum(np.where(m, stats.poisson.logpmf(t["c"], np.exp(mu / 4.0)), 0.0), 1)
    lp += np.sum(np.where(rows, stats.norm.logpdf(t["w"], mu[:, :, None], 1.0).sum(2), 0.0), 1)
    lp += np.sum(np.where(~m, stats.gamma.logpdf(t["s"], 2.0), 0.0), 1)
    both = rows[:, None] & m[None, :]
    lp += np.sum(np.where(both, stats.bernoulli.logpmf(t["k"], 0.3), 0.0), (1, 2))
    return lp


@pytest.mark.parametrize("which", range(len(MASKS)))
def test_masked_log_density_is_the_sum_over_unmasked_elements(simulated, which):
    traces, lps, scored = simulated
    t = {a: np.asarray(v[which], np.float64) for a, v in traces.values_by_address.items()}
    want = hand_log_density(t, MASKS[which], ROWS)
    assert np.allclose(lps[which], want, rtol=1e-5, atol=1e-3)
    assert np.allclose(scored[which], want, rtol=1e-5, atol=1e-3)


def test_masked_out_elements_are_still_drawn(simulated):
    traces = simulated[0]
    out = np.asarray(traces["y"][0])[:, ~MASKS[0]] - np.asarray(traces["mu"][0])[:, None]
    # y - mu ~ normal(0, 1.5) where the mask is false, as where it is true.
    verdict = check(np.stack([out, out ** 2], -1).reshape(-1, 2), [0.0, 1.5 ** 2], name="y - mu")
    assert verdict, verdict


def test_nan_observations_of_a_masked_choice_are_missing(module):
    m = np.array([True, False, True, False, True])
    data = np.array([0.5, np.nan, -1.0, np.nan, 2.5], np.float32)
    target = module.regression(m) | {"y": data}
    subset = module.regression(np.ones(3, bool)) | {"y": data[m]}
    for mu in (-1.0, 0.3, 2.0):
        want = stats.norm.logpdf(mu, 0.0, 10.0) + stats.norm.logpdf(data[m], mu, 1.0).sum()
        assert np.isclose(target.density({"mu": mu}), want, rtol=1e-5)
        grad = jax.grad(lambda x: target.density({"mu": x}))(jnp.float32(mu))
        assert np.isclose(grad, -mu / 100.0 + np.sum(data[m] - mu), rtol=1e-4)
        assert np.isclose(grad, jax.grad(lambda x: subset.density({"mu": x}))(jnp.float32(mu)))
    # Data of a discrete choice arrive as floats (NaN for missing) and are cast to ints.
    counts = module.counts(m[:3]) | {"c": np.array([3.0, np.nan, 1.0], np.float32)}
    want = stats.gamma.logpdf(1.5, 2.0) + stats.poisson.logpmf([3, 1], 1.5).sum()
    assert np.isclose(counts.density({"rate": 1.5}), want, rtol=1e-5)


def test_nan_of_an_unmasked_choice_and_inf_are_data_errors(module):
    with pytest.raises(ppl.DataError, match="holds NaN"):
        (module.guide() | {"mu": np.float32(np.nan)}).density({})
    with pytest.raises(ppl.DataError, match="holds infinite values"):
        (module.regression(np.ones(3, bool)) | {"y": np.array([0.5, np.inf, np.nan], np.float32)}
         ).density({"mu": 0.0})


def test_elbo_fit_on_masked_data_matches_the_fit_on_the_observed_subset(module):
    rng = np.random.default_rng(0)
    data = (1.5 + rng.normal(size=12)).astype(np.float32)
    m = rng.random(12) < 0.5
    with_gaps = np.where(m, data, np.nan).astype(np.float32)
    schedule = optax.cosine_decay_schedule(0.1, 600)
    fitted = []
    for target in (module.regression(m) | {"y": with_gaps},
                   module.regression(np.ones(int(m.sum()), bool)) | {"y": data[m]}):
        objective = ppl.stdlib.elbo(target, module.guide())
        result = ppl.fit(objective, steps=600, optimizer=optax.adam(schedule),
                         key=jax.random.PRNGKey(0), progress=False)
        fitted.append(np.array([float(result.constrained_params[f"guide.{k}"])
                                for k in ("loc", "scale")]))
    precision = m.sum() + 1.0 / 100.0
    exact = np.array([data[m].sum() / precision, precision ** -0.5])
    assert np.allclose(fitted[0], fitted[1], atol=0.03), fitted
    assert np.allclose(fitted[0], exact, atol=0.06), (fitted, exact)


def test_gradient_estimators_of_masked_sites_are_unbiased(module):
    m = np.array([True, False, True])

    def exact(p):  # E[log q] over the two unmasked elements of each site
        def neg_entropy(logit):
            q = jax.nn.sigmoid(logit)
            return q * jnp.log(q) + (1 - q) * jnp.log1p(-q)
        return 2.0 * sum(neg_entropy(p[f"flips.{k}"]) for k in ("theta", "phi", "psi", "chi"))

    params = {"flips.theta": 0.3, "flips.phi": -0.4, "flips.psi": 0.8, "flips.chi": -1.1}
    assert_unbiased(module.log_q(m), exact, n=20_000,
                    params={k: jnp.float32(v) for k, v in params.items()})
