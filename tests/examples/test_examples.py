"""The examples run, print what they say, and their models have the right numbers.

Each example's ``main()`` runs once (its output is checked loosely), then one
exact or statistical property of its model: a density against a closed form,
or draws against known moments (within 5 standard errors, never exact floats).
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import jax
import numpy as np
import pytest

import ppl

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NAMES = ["coin", "linear_regression", "eight_schools", "state_space", "cone", "hmm",
         "vae_digits"]


def load_example(name: str):
    """Import ``examples/<name>.py`` as a module (the examples are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"ppl_example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def normal_logpdf(x, loc, scale):
    z = (np.asarray(x, np.float64) - loc) / scale
    return -0.5 * z ** 2 - np.log(scale) - 0.5 * math.log(2 * math.pi)


def halfnormal_logpdf(x, scale):
    return normal_logpdf(x, 0.0, scale) + math.log(2.0)


def assert_standard_normal(z, what):
    """Mean 0 and variance 1 within 5 standard errors."""
    z = np.asarray(z, np.float64).ravel()
    n = z.size
    assert abs(z.mean()) < 5 / math.sqrt(n), (what, z.mean())
    assert abs(z.var() - 1) < 5 * math.sqrt(2 / n), (what, z.var())


@pytest.mark.parametrize("name", NAMES)
def test_example_is_a_source_and_an_importable_script(name, capsys):
    assert (EXAMPLES / f"{name}.ppl").is_file()
    module = load_example(name)  # importing runs nothing
    assert capsys.readouterr().out == ""
    assert callable(module.main)
    decls = module.load_model().declarations
    assert all(d.kind in ("gen", "objective") for d in decls.values())
    assert any(d.kind == "gen" for d in decls.values())


# ---------------------------------------------------------------- coin


@pytest.fixture(scope="module")
def coin():
    return load_example("coin")


def test_coin_main(coin, capsys):
    result = coin.main()
    out = capsys.readouterr().out
    assert "density(trace)" in out and "exact posterior: beta(" in out and "guide:" in out
    trace, flips = result["trace"], result["flips"]
    p, heads, n = float(trace["p"]), int(flips.sum()), flips.size
    by_hand = (coin.log_beta_pdf(p, 2, 2) + heads * math.log(p) + (n - heads) * math.log1p(-p))
    np.testing.assert_allclose(result["logp"], by_hand, rtol=1e-5)
    np.testing.assert_allclose(result["density"], result["logp"], rtol=1e-5)
    # Conditioning on every flip: the log joint at the simulated p is the trace's density.
    np.testing.assert_allclose(result["log_joint"], result["logp"], rtol=1e-5)
    # The guide starts at beta(1, 1): its log density is 0 everywhere on (0, 1).
    assert set(result["params"]) == {"coin_guide.a", "coin_guide.b"}
    np.testing.assert_allclose(result["log_q"], 0.0, atol=1e-5)
    np.testing.assert_allclose(result["log_w"], result["guide"].module.coin(n).density(
        {"p": result["guide_trace"]["p"], "flips": flips}), rtol=1e-5)
    # Step 5: the ELBO's optimum is the exact posterior beta(2 + heads, 2 + tails).
    assert "fitted  q(p) = beta(" in out and "posterior predictive" in out
    (a, b), (ea, eb) = result["fitted"], result["exact"]
    assert (ea, eb) == (2 + heads, 2 + n - heads)
    assert result["result"].status == "completed"
    assert abs(a / (a + b) - ea / (ea + eb)) < 0.05
    assert abs(coin.beta_sd(a, b) - coin.beta_sd(ea, eb)) < 0.03
    draws = np.asarray(result["draws"]["p"])
    assert abs(draws.mean() - a / (a + b)) < 5 * coin.beta_sd(a, b) / np.sqrt(draws.size)
    predicted = np.asarray(result["predictive"]["flips"])
    assert predicted.shape == (draws.size, n)
    np.testing.assert_allclose(np.asarray(result["predictive"]["p"]), draws)  # p is q's draw
    # E[heads | p] = n p, so the predictive's heads track the draws' p.
    assert abs(predicted.sum(1).mean() - n * draws.mean()) < 5 * np.sqrt(n / 4 / draws.size)


def test_coin_flips_have_the_simulated_bias(coin):
    n = 4000
    trace, _ = coin.load_model().coin(n).simulate(jax.random.PRNGKey(11))
    p, flips = float(trace["p"]), np.asarray(trace["flips"])
    assert flips.shape == (n,) and set(np.unique(flips)) <= {0, 1}
    assert abs(flips.mean() - p) < 5 * math.sqrt(p * (1 - p) / n)


# ---------------------------------------------------------------- linear regression


@pytest.fixture(scope="module")
def regression():
    return load_example("linear_regression")


def test_linear_regression_main(regression, capsys):
    result = regression.main()
    out = capsys.readouterr().out
    assert "least squares" in out and "true parameters" in out
    x, y = result["x"], result["y"]
    by_hand = (normal_logpdf(regression.TRUE_W, 0, 10) + normal_logpdf(regression.TRUE_B, 0, 10)
               + halfnormal_logpdf(regression.TRUE_SIGMA, 1.0)
               + normal_logpdf(y, regression.TRUE_W * x + regression.TRUE_B,
                               regression.TRUE_SIGMA).sum())
    np.testing.assert_allclose(result["log_joints"]["true parameters"], by_hand, rtol=1e-4)
    assert result["log_joints"]["least squares"] > result["log_joints"]["the prior draw"]


def test_linear_regression_residuals_are_standard_normal(regression):
    x = np.linspace(-3, 3, 4000).astype(np.float32)
    model = regression.load_model().regression(x)
    trace, logp = model.simulate(jax.random.PRNGKey(5))
    np.testing.assert_allclose(model.density(trace), logp, rtol=1e-5)
    w, b, sigma = (float(trace[k]) for k in ("w", "b", "sigma"))
    assert_standard_normal((np.asarray(trace["y"]) - (w * x + b)) / sigma, "y")


# ---------------------------------------------------------------- eight schools


@pytest.fixture(scope="module")
def schools():
    return load_example("eight_schools")


# The posterior of eight schools (this model, non-centred): mean and sd of mu and tau from
# numpyro's NUTS, 4 chains of 50 000 draws (ESS 1.5-2e5, so their own error is below 0.01).
SCHOOLS_POSTERIOR = {"mu": (4.401, 3.319), "tau": (3.606, 3.234)}


def test_eight_schools_main(schools, capsys):
    result = schools.main(quick=True)
    out = capsys.readouterr().out
    assert "complete pooling" in out and "no pooling" in out
    assert "VI mean" in out and "NUTS mean" in out and "theta[7]" in out
    # NUTS agrees with the long reference run within its Monte Carlo error; the ELBO's
    # mean-field fit finds the location of mu (its sds are too small, as mean-field's are).
    nuts, summary = result["nuts"], result["nuts"].summary
    for name, (mean, sd) in SCHOOLS_POSTERIOR.items():
        assert summary[name]["r_hat"] < 1.1, (name, summary[name])
        se = sd / np.sqrt(summary[name]["ess"])
        assert abs(summary[name]["mean"] - mean) < 5 * se, (name, summary[name]["mean"], mean)
    assert np.all(nuts.samples["tau"] > 0) and nuts.divergences.mean() < 0.05
    assert result["fit"].status == "completed"
    assert abs(float(np.mean(result["vi"]["mu"])) - SCHOOLS_POSTERIOR["mu"][0]) < 1.5
    trace, logp, model, target = result["trace"], result["logp"], result["model"], result["target"]
    assert trace.addresses == ("mu", "tau", "theta_raw", "y")
    np.testing.assert_allclose(model.density(trace), logp, rtol=1e-5)
    theta = float(trace["mu"]) + float(trace["tau"]) * np.asarray(trace["theta_raw"])
    np.testing.assert_allclose(trace.retval, theta, rtol=1e-5, atol=1e-4)
    # Conditioning on the data replaces the simulated y's density with the data's.
    latents = {k: trace[k] for k in ("mu", "tau", "theta_raw")}
    simulated_y = normal_logpdf(trace["y"], theta, schools.SIGMA).sum()
    data_y = normal_logpdf(schools.Y, theta, schools.SIGMA).sum()
    np.testing.assert_allclose(target.density(latents) - logp, data_y - simulated_y,
                               rtol=1e-4, atol=1e-3)


# ---------------------------------------------------------------- state space


@pytest.fixture(scope="module")
def state_space():
    return load_example("state_space")


def test_state_space_main(state_space, capsys):
    result = state_space.main()
    out = capsys.readouterr().out
    assert "state x" in out and "moving average" in out
    trace, logp = result["trace"], result["logp"]
    np.testing.assert_allclose(result["model"].density(trace), logp, rtol=1e-5)
    np.testing.assert_allclose(result["at_truth"], logp, rtol=1e-5)
    np.testing.assert_allclose(trace.retval, trace["x"][-1])


def test_state_space_noise_is_standard_normal(state_space):
    steps = 4000
    model = state_space.load_model().state_space(steps)
    trace, logp = model.simulate(jax.random.PRNGKey(2))
    a, q, r = (float(trace[k]) for k in ("a", "q", "r"))
    x, y = np.asarray(trace["x"], np.float64), np.asarray(trace["y"], np.float64)
    previous = np.concatenate([[0.0], x[:-1]])  # the state is 0.0 before the first step
    assert_standard_normal((x - a * previous) / q, "process noise")
    assert_standard_normal((y - x) / r, "observation noise")
    by_hand = (math.log(0.5) + halfnormal_logpdf(q, 1.0) + halfnormal_logpdf(r, 1.0)
               + normal_logpdf(x, a * previous, q).sum() + normal_logpdf(y, x, r).sum())
    np.testing.assert_allclose(logp, by_hand, rtol=1e-4)


# ---------------------------------------------------------------- the noisy cone


def test_cone_main_runs_every_objective(capsys):
    cone = load_example("cone")
    values = cone.main(**cone.QUICK)
    out = capsys.readouterr().out
    assert set(values) == set(cone.PAPER)
    assert all(np.isfinite(v) for v in values.values())
    for name in cone.PAPER:
        assert name in out


# ---------------------------------------------------------------- hmm


def test_hmm_main(capsys, tmp_path):
    """A few steps of both fits; the posterior of each step's state (the gradient of
    log p(y) in a per-step offset) sums to one, and is certain where the data are."""
    hmm = load_example("hmm")
    result = hmm.main(T=60, steps=30, vi_steps=10, out=str(tmp_path / "states.png"))
    out = capsys.readouterr().out
    assert "maximum marginal likelihood" in out and "variational inference" in out
    assert "true P" in out
    posterior = result["posterior"]
    assert posterior.shape == (60, 3)
    np.testing.assert_allclose(posterior.sum(1), 1.0, atol=1e-4)
    assert np.all(posterior > -1e-6)
    for p in (result["p_mll"], result["p_vi"]):
        np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-5)
    assert np.all(np.isfinite(np.asarray(result["mll"].history)))
    assert np.all(np.isfinite(np.asarray(result["vi"].history)))


# ---------------------------------------------------------------- a VAE on sklearn's digits


def test_vae_digits_main_trains_every_objective(tmp_path, capsys):
    pytest.importorskip("sklearn")
    digits = load_example("vae_digits")
    results = digits.main(quick=True, out_dir=tmp_path)
    out = capsys.readouterr().out
    assert "held-out ELBO" in out and "IWAE-" in out
    assert set(results) == set(digits.OBJECTIVES)
    for name, row in results.items():
        assert row["fit"].status == "completed", name
        assert all(np.isfinite(row[k]) for k in ("elbo", "iwae", "train_objective")), row
        # The IWAE bound is above the ELBO in expectation, by about a nat per image at these
        # barely trained networks (the held-out means' noise is near 0.1 nats); an estimator
        # that lost the log-mean-exp (a mean of log weights) would be the ELBO itself.
        assert row["iwae"] > row["elbo"] + 0.3, (name, row)
    if importlib.util.find_spec("matplotlib") is not None:
        for what in ("samples", "reconstructions"):
            assert (tmp_path / f"vae_digits_{what}.png").stat().st_size > 0
    # The model of one image: z's standard normal density plus the Bernoulli density of x at
    # the decoder's probabilities, computed from the decoder network run on its own.
    m, fit, width = digits.load_model(), results["dreg"]["fit"], digits.QUICK["width"]
    trace, logp = m.decoder(width).simulate(jax.random.PRNGKey(3), fit.params)
    z, x = np.asarray(trace["z"]), np.asarray(trace["x"], np.float64)
    probs = digits.decoder_means(m, fit.params, z[None], width)[0].astype(np.float64)
    np.testing.assert_allclose(np.asarray(trace.retval), probs, rtol=1e-5)
    by_hand = (normal_logpdf(z, 0.0, 1.0).sum()
               + (x * np.log(probs) + (1 - x) * np.log1p(-probs)).sum())
    np.testing.assert_allclose(logp, by_hand, rtol=1e-4)
