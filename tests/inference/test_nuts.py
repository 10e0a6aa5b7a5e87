"""ppl.nuts against closed forms and numpyro's own NUTS; its diagnostics against ArviZ.

Every comparison is within Monte Carlo error: a posterior mean within
``Z`` standard errors sd / sqrt(ESS) of the exact value (or of numpyro's
estimate, with both errors combined), and a posterior sd within ``Z``
standard errors of the sample sd, sqrt(var((x - m)²) / ESS((x - m)²)) / (2 sd),
which allows for heavy tails (eight schools' tau). One NUTS run serves each
model (module-scoped fixtures): compiling dominates the time.
"""

from __future__ import annotations

import numpy as np
import pytest
import jax
import numpyro
import numpyro.distributions as dist
from numpyro.diagnostics import effective_sample_size
from numpyro.infer import MCMC, NUTS

import ppl

Z = 5.0
SAMPLES, WARMUP, CHAINS = 500, 300, 2
# Compiling the sampler dominates: "sequential" chains compile faster (no batching of
# NUTS's loops, 1-4 s less per program); examples/eight_schools.py's test runs the
# default, "vectorized".
METHOD = "sequential"

CONJUGATE = """
gen rate_prior() {
    lam ~ gamma(3.0, 2.0)
    return lam
}

gen conjugate(sigma: real, N: int, M: int, K: int, C: int) {
    param loc: real = 0.0
    mu ~ normal(loc, 2.0)
    p ~ beta(2.0, 3.0)
    rate ~ rate_prior()                       # a nested latent: address rate/lam
    w ~ dirichlet([1.0, 2.0, 3.0])
    plate i in N { y ~ normal(mu, sigma) }
    plate i in M { flips ~ bernoulli(p) }
    plate i in K { counts ~ poisson(rate) }
    plate i in C { colour ~ categorical(w) }
}
"""

# Few observations, so that each posterior is wide and a missing Jacobian term moves it
# by many standard errors.
SIGMA, LOC = 1.5, -1.0
Y = np.array([0.3, -1.2, 2.1, 0.8, 1.5], np.float32)
FLIPS = np.array([0, 1, 0, 0, 0], np.int32)
COUNTS = np.array([1, 0, 1], np.int32)
COLOURS = np.array([0, 2, 2, 1, 2, 2], np.int32)


def exact_conjugate() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Posterior (mean, sd) of each latent of CONJUGATE given the data, in closed form."""
    precision = 1 / 2.0 ** 2 + Y.size / SIGMA ** 2
    mu = ((LOC / 2.0 ** 2 + Y.sum() / SIGMA ** 2) / precision, precision ** -0.5)
    a, b = 2 + FLIPS.sum(), 3 + FLIPS.size - FLIPS.sum()
    p = (a / (a + b), np.sqrt(a * b / ((a + b) ** 2 * (a + b + 1))))
    shape, rate = 3 + COUNTS.sum(), 2 + COUNTS.size
    lam = (shape / rate, np.sqrt(shape) / rate)
    alpha = np.array([1.0, 2.0, 3.0]) + np.bincount(COLOURS, minlength=3)
    total = alpha.sum()
    w = (alpha / total, np.sqrt(alpha * (total - alpha) / (total ** 2 * (total + 1))))
    return {"mu": mu, "p": p, "rate/lam": lam, "w": w}


def mc_errors(by_chain) -> tuple[np.ndarray, np.ndarray]:
    """Monte Carlo standard errors of the pooled mean and sd of draws ``[chains, draws, ...]``."""
    x = np.asarray(by_chain, np.float64)
    pooled = x.reshape((-1,) + x.shape[2:])
    sd = pooled.std(0)
    dev2 = (x - pooled.mean(0)) ** 2
    se_mean = sd / np.sqrt(effective_sample_size(x))
    se_sd = np.sqrt(dev2.reshape(pooled.shape).var(0) / effective_sample_size(dev2)) / (2 * sd)
    return se_mean, se_sd


@pytest.fixture(scope="module")
def conjugate():
    m = ppl.compile(CONJUGATE)
    target = m.conjugate(SIGMA, Y.size, FLIPS.size, COUNTS.size, COLOURS.size) | {
        "y": Y, "flips": FLIPS, "counts": COUNTS, "colour": COLOURS}
    return ppl.nuts(target, num_samples=SAMPLES, num_warmup=WARMUP, chains=CHAINS,
                    key=jax.random.PRNGKey(0), params={"conjugate.loc": np.float32(LOC)},
                    chain_method=METHOD)


def test_conjugate_posteriors_match_their_closed_forms(conjugate):
    assert conjugate.by_chain.addresses == ("mu", "p", "rate/lam", "w")
    assert conjugate.by_chain["w"].shape == (CHAINS, SAMPLES, 3)
    summary = conjugate.summary
    for address, (mean, sd) in exact_conjugate().items():
        se_mean, se_sd = mc_errors(conjugate.by_chain[address])
        row = summary[address]
        assert np.all(np.abs(row["mean"] - mean) < Z * se_mean), (address, row["mean"], mean)
        assert np.all(np.abs(row["sd"] - sd) < Z * se_sd), (address, row["sd"], sd)
        assert np.all(row["r_hat"] < 1.05) and np.all(row["ess"] > 100), (address, row)


def test_constrained_latents_stay_on_their_supports(conjugate):
    draws = conjugate.samples
    assert np.all((draws["p"] > 0) & (draws["p"] < 1))
    assert np.all(draws["rate/lam"] > 0)
    np.testing.assert_allclose(draws["w"].sum(-1), 1.0, rtol=1e-5)
    assert np.all(draws["w"] > 0)


def test_a_log_density_infinite_everywhere_is_an_error(conjugate):
    # Negative counts: the poisson's log density is -inf at every rate. Same shapes as the
    # fixture's data, so its compiled sampler runs again (no compile).
    observed = dict(conjugate.target.observations, counts=-1 - COUNTS)
    with pytest.raises(ppl.DataError, match="not finite at any of 20 starting points"):
        ppl.nuts(conjugate.target._unconditioned() | observed, num_samples=SAMPLES,
                 num_warmup=WARMUP, chains=CHAINS, params={"conjugate.loc": np.float32(LOC)},
                 chain_method=METHOD)


# ---------------------------------------------------------------- eight schools

Y8 = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0], np.float32)
SIGMA8 = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0], np.float32)


def numpyro_eight_schools(sigma, y=None):
    """The model of examples/eight_schools.ppl, written in numpyro."""
    mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = numpyro.sample("tau", dist.HalfCauchy(5.0))
    with numpyro.plate("J", sigma.shape[0]):
        theta_raw = numpyro.sample("theta_raw", dist.Normal(0.0, 1.0))
        numpyro.sample("y", dist.Normal(mu + tau * theta_raw, sigma), obs=y)


@pytest.fixture(scope="module")
def schools():
    m = ppl.load("examples/eight_schools.ppl")
    return ppl.nuts(m.eight_schools(SIGMA8) | {"y": Y8}, num_samples=SAMPLES,
                    num_warmup=WARMUP, chains=CHAINS, key=jax.random.PRNGKey(2),
                    chain_method=METHOD)


@pytest.fixture(scope="module")
def numpyro_schools():
    mcmc = MCMC(NUTS(numpyro_eight_schools), num_warmup=WARMUP, num_samples=SAMPLES,
                num_chains=CHAINS, chain_method=METHOD, progress_bar=False)
    mcmc.run(jax.random.PRNGKey(3), SIGMA8, y=Y8)
    return mcmc.get_samples(group_by_chain=True)


def test_eight_schools_agrees_with_numpyros_nuts(schools, numpyro_schools):
    assert schools.by_chain.addresses == ("mu", "tau", "theta_raw")
    for address in ("mu", "tau", "theta_raw"):
        ours, theirs = np.asarray(schools.by_chain[address]), np.asarray(numpyro_schools[address])
        assert ours.shape == theirs.shape
        (se_mean, se_sd), (se_mean2, se_sd2) = mc_errors(ours), mc_errors(theirs)
        pooled, pooled2 = (v.reshape((-1,) + v.shape[2:]) for v in (ours, theirs))
        gap_mean = np.abs(pooled.mean(0) - pooled2.mean(0))
        gap_sd = np.abs(pooled.std(0) - pooled2.std(0))
        assert np.all(gap_mean < Z * np.hypot(se_mean, se_mean2)), (address, gap_mean)
        assert np.all(gap_sd < Z * np.hypot(se_sd, se_sd2)), (address, gap_sd)
    assert np.all(schools.samples["tau"] > 0)
    assert schools.divergences.shape == (CHAINS, SAMPLES) and schools.divergences.dtype == bool
    assert schools.divergences.mean() < 0.05  # the non-centred model hardly diverges


def test_new_data_of_the_same_shapes_reuse_the_compiled_sampler(schools):
    runners = schools.target.module.entries.runners
    before = len(runners)
    shifted = ppl.nuts(schools.target._unconditioned() | {"y": Y8 + 30.0}, num_samples=SAMPLES,
                       num_warmup=WARMUP, chains=CHAINS, key=jax.random.key(5),
                       chain_method=METHOD)
    assert len(runners) == before
    se = np.hypot(*(mc_errors(r.by_chain["mu"])[0] for r in (schools, shifted)))
    assert shifted.summary["mu"]["mean"] - schools.summary["mu"]["mean"] > Z * se


def test_predictive_runs_the_model_at_each_draw(schools):
    predicted = schools.predictive(jax.random.PRNGKey(4))
    n = CHAINS * SAMPLES
    assert predicted["y"].shape == (n, 8)
    np.testing.assert_array_equal(predicted["tau"], schools.samples["tau"])
    # y | draw ~ normal(theta, sigma), theta = mu + tau * theta_raw: the residuals are N(0, 1).
    draws = schools.samples
    theta = draws["mu"][:, None] + draws["tau"][:, None] * draws["theta_raw"]
    z = (np.asarray(predicted["y"], np.float64) - theta) / SIGMA8
    assert np.all(np.abs(z.mean(0)) < Z / np.sqrt(n)) and np.all(np.abs(z.var(0) - 1) < Z * np.sqrt(2 / n))


def test_r_hat_and_ess_agree_with_arviz(schools):
    az = pytest.importorskip("arviz")
    idata = ppl.to_arviz(schools)
    assert isinstance(idata, az.InferenceData)
    assert idata.posterior["theta_raw"].shape == (CHAINS, SAMPLES, 8)
    assert idata.sample_stats["diverging"].shape == (CHAINS, SAMPLES)
    np.testing.assert_array_equal(idata.sample_stats["diverging"], schools.divergences)
    np.testing.assert_array_equal(idata.observed_data["y"], Y8)
    # ArviZ's split r-hat and its ESS without rank normalisation ("identity") are the
    # estimators numpyro computes; the ESS differ only in how the autocorrelation sum is
    # truncated after a negative pair (a few percent at most).
    rhat, ess = az.rhat(idata, method="split"), az.ess(idata, method="identity")
    for address, row in schools.summary.items():
        np.testing.assert_allclose(row["r_hat"], rhat[address].values, rtol=1e-6)
        np.testing.assert_allclose(row["ess"], ess[address].values, rtol=0.1)


def test_to_arviz_of_stacked_traces_is_one_chain(conjugate):
    pytest.importorskip("arviz")
    idata = ppl.to_arviz(conjugate.samples)
    assert idata.posterior["w"].shape == (1, CHAINS * SAMPLES, 3)
    with pytest.raises(ppl.DataError, match="stacked along a leading sample axis"):
        ppl.to_arviz({"mu": 1.0})
    with pytest.raises(ppl.DataError, match="takes the result of ppl.nuts"):
        ppl.to_arviz([1.0, 2.0])


def test_to_arviz_without_arviz_says_how_to_install_it(conjugate, monkeypatch):
    import importlib

    real = importlib.import_module

    def no_arviz(name, *args):
        if name == "arviz":
            raise ImportError("No module named 'arviz'")
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", no_arviz)
    with pytest.raises(ppl.DataError) as err:
        ppl.to_arviz(conjugate)
    assert "pip install 'ppl[arviz]'" in str(err.value)


# ---------------------------------------------------------------- what NUTS refuses

BAD = ppl.compile("""
gen mixture(N: int) {
    z ~ bernoulli(0.3)
    plate i in N { y ~ normal(where(z == 1, 2.0, -2.0), 1.0) }
}

gen bounded(hi: real) {
    x ~ uniform(0.0, hi)
    y ~ normal(x, 1.0)
}

gen literal_bounds() {
    x ~ uniform(-1.0, 3.0)
    y ~ normal(x, 1.0)
}

gen point() {
    x ~ delta(1.0)
    y ~ normal(x, 1.0)
}
""")


def test_a_discrete_latent_is_an_error_at_its_choice():
    with pytest.raises(ppl.DataError) as err:
        ppl.nuts(BAD.mixture(3) | {"y": np.zeros(3, np.float32)}, num_samples=10)
    text = str(err.value)
    assert "discrete latent 'z' (bernoulli)" in text and "z ~ bernoulli(0.3)" in text
    assert "marginal(model, keep=[...], exact=True)" in text


@pytest.mark.parametrize("model, words", [
    (lambda: BAD.bounded(2.0), "depends on values known only when the model runs"),
    (lambda: BAD.point(), "delta is a point mass"),
])
def test_a_latent_nuts_cannot_map_is_an_error(model, words):
    with pytest.raises(ppl.DataError, match=words):
        ppl.nuts(model() | {"y": np.float32(0.5)}, num_samples=10)


def test_a_support_with_literal_bounds_is_mapped():
    from ppl.mcmc import latent_sites

    (site,) = latent_sites(BAD.literal_bounds() | {"y": np.float32(0.5)})
    assert site.address == "x"
    np.testing.assert_allclose(site.transform(np.array([-50.0, 0.0, 50.0], np.float32)),
                               [-1.0, 1.0, 3.0], atol=1e-5)


@pytest.mark.parametrize("kwargs, words", [
    ({"num_samples": 0}, "num_samples must be a positive integer"),
    ({"num_samples": 2.5}, "num_samples must be a positive integer"),
    ({"num_samples": True}, "num_samples must be a positive integer"),
    ({"chains": 0}, "chains must be a positive integer"),
    ({"num_warmup": -1}, "num_warmup must be a non-negative integer"),
    ({"chain_method": "threads"}, "chain_method must be"),
    ({"key": 3}, "key must be a JAX random key"),
])
def test_bad_arguments_are_errors(kwargs, words):
    target = BAD.literal_bounds() | {"y": np.float32(0.5)}
    with pytest.raises(ppl.DataError, match=words):
        ppl.nuts(target, **kwargs)


def test_a_model_with_parameters_starts_from_its_init_without_params():
    from ppl.mcmc import _model_params

    m = ppl.compile(CONJUGATE)
    target = m.conjugate(SIGMA, 1, 1, 1, 1) | {"y": Y[:1]}
    assert set(_model_params(target, None, jax.random.PRNGKey(0))) == {"conjugate.loc"}
    assert _model_params(target, {"conjugate.loc": 2.0}, None) == {"conjugate.loc": 2.0}
    assert _model_params(BAD.literal_bounds() | {"y": 0.5}, None, jax.random.PRNGKey(0)) is None


def test_the_target_must_be_a_conditioned_model():
    with pytest.raises(ppl.DataError, match="observes nothing"):
        ppl.nuts(BAD.literal_bounds())
    with pytest.raises(ppl.DataError, match="needs a conditioned model"):
        ppl.nuts({"y": 1.0})
    with pytest.raises(ppl.DataError, match="no latent choices"):
        ppl.nuts(BAD.literal_bounds() | {"x": np.float32(0.5), "y": np.float32(0.5)})


def test_nuts_on_an_exact_marginal_agrees_with_a_grid():
    """A mixture whose assignments are summed out exactly (marginal(..., exact=True)):
    NUTS moves the free component's mean only; its posterior agrees with a grid."""
    m = ppl.compile("""
gen mix(N: int) {
    mu ~ normal(0.0, 3.0)
    plate i in N {
        z ~ bernoulli(0.3)
        x ~ normal(where(z == 1, mu, -2.0), 1.0)
    }
}""")
    rng = np.random.default_rng(1)
    x = np.where(rng.random(40) < 0.3, rng.normal(3.0, 1.0, 40),
                 rng.normal(-2.0, 1.0, 40)).astype(np.float32)
    target = ppl.stdlib.marginal(m.mix(40), keep=["mu", "x"], exact=True) | {"x": x}
    post = ppl.nuts(target, num_samples=400, num_warmup=300, chains=2,
                    key=jax.random.PRNGKey(0), chain_method="sequential")
    grid = np.linspace(-6.0, 9.0, 3001)

    def log_normal(v, m_):
        return -0.5 * (v - m_) ** 2 - 0.5 * np.log(2 * np.pi)

    lik = np.logaddexp(np.log(0.7) + log_normal(x[None, :], -2.0),
                       np.log(0.3) + log_normal(x[None, :], grid[:, None])).sum(-1)
    log_post = lik + log_normal(grid / 3.0, 0.0)
    w = np.exp(log_post - log_post.max())
    w /= w.sum()
    mean = (w * grid).sum()
    sd = np.sqrt((w * (grid - mean) ** 2).sum())
    summary = post.summary["mu"]
    se = float(summary["sd"]) / np.sqrt(float(summary["ess"]))
    assert abs(float(summary["mean"]) - mean) < 5 * se, (summary, mean)
    assert abs(float(summary["sd"]) - sd) < 0.15 * sd, (summary, sd)
    assert float(summary["r_hat"]) < 1.05


def test_nuts_rejects_an_importance_sampled_marginal():
    m = ppl.compile("gen g() { u ~ normal(0.0, 1.0); x ~ normal(u, 1.0); y ~ normal(x, 1.0) }")
    with pytest.raises(ppl.DataError, match="exact log density"):
        ppl.nuts(ppl.stdlib.marginal(m.g(), keep=["x", "y"], particles=4) | {"y": 1.0},
                 num_samples=10, num_warmup=10)
