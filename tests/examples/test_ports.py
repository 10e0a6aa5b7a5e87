"""The ports of NumPyro's examples (examples/ports/): each runs ``--quick``, and each
model's log joint density at a fixed point equals NumPyro's own model's
(``numpyro.infer.util.log_density``; ``numpyro.contrib.funsor.log_density`` where
the discrete choices are summed out). The densities are deterministic, so they are
compared to float32 rounding. The point is a draw from the ppl model (its latents,
and the port's data as observations)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ppl

pytest.importorskip("numpyro")
from numpyro.infer.util import log_density  # noqa: E402

PORTS = Path(__file__).resolve().parents[2] / "examples" / "ports"
NAMES = ["baseball", "logistic_regression", "gp", "bnn", "stochastic_volatility", "gmm",
         "hmm_enum", "vae"]
_loaded: dict = {}


def port(name: str):
    """Import ``examples/ports/<name>.py`` once (the ports are scripts, not a package)."""
    if name not in _loaded:
        sys.path.insert(0, str(PORTS))
        spec = importlib.util.spec_from_file_location(f"ppl_port_{name}", PORTS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _loaded[name] = module
    return _loaded[name]


def assert_same_density(ours, theirs):
    np.testing.assert_allclose(float(ours), float(theirs), rtol=2e-5, atol=1e-3)


def latents(model, key, *observed, params=None):
    """A draw of the model's choices other than the observed ones, as float32 arrays."""
    trace, _ = model.simulate(jax.random.PRNGKey(key), params)
    return {a: np.asarray(v) for a, v in trace.values_by_address.items() if a not in observed}


# The quick runs other than the mixture's compile a sampler or a network each (10-25 s on
# two cores): they run with PPL_SLOW_TESTS=1, as do the densities of the four NUTS ports
# with the largest models; the other densities are checked in the suite.
QUICK = [pytest.param(n, marks=pytest.mark.slow) if n != "gmm" else n for n in NAMES]


@pytest.mark.parametrize("name", QUICK)
def test_port_runs_quick(name, capsys):
    result = port(name).main(quick=True)
    assert capsys.readouterr().out.strip()
    assert isinstance(result, dict) and result


@pytest.mark.parametrize("name", NAMES)
def test_port_marks_both_sides_for_the_line_count(name):
    sys.path.insert(0, str(PORTS))
    from common import count_lines
    counts = count_lines(PORTS / f"{name}.py")
    assert counts["ppl"] > 0 and counts["numpyro"] > 0, counts


@pytest.mark.slow  # (the suite's budget: the NUTS ports' densities run with PPL_SLOW_TESTS=1)
def test_baseball_log_densities():
    bb = port("baseball")
    m, (theirs, _) = bb.load_model(), bb.numpyro_models()
    rng = np.random.default_rng(0)  # a fixed point (simulating would compile the binomial sampler)
    phi = rng.uniform(0.2, 0.35, len(bb.HITS)).astype(np.float32)
    points = {"fully_pooled": {"phi": np.float32(0.27)}, "not_pooled": {"phi": phi},
              "partially_pooled": {"m": np.float32(0.26), "kappa": np.float32(40.0), "phi": phi},
              "partially_pooled_with_logit": {"loc": np.float32(-1.1), "scale": np.float32(0.3),
                                              "alpha": np.log(phi / (1 - phi))}}
    for name in bb.MODELS:
        z = points[name]
        ours = (getattr(m, name)(bb.AT_BATS) | {"obs": bb.HITS}).density(z)
        ref, _ = log_density(theirs[name], (jnp.asarray(bb.AT_BATS), jnp.asarray(bb.HITS)), {}, z)
        assert_same_density(ours, ref)


def test_logistic_regression_log_density():
    lr = port("logistic_regression")
    features, labels = lr.get_data()
    features, labels = features[:60], labels[:60]
    model = lr.load_model().model(features)
    z = latents(model, 0, "obs")
    ref, _ = log_density(lr.numpyro_model, (features, labels), {}, z)
    assert_same_density((model | {"obs": labels}).density(z), ref)


@pytest.mark.slow  # (the suite's budget: the NUTS ports' densities run with PPL_SLOW_TESTS=1)
def test_gp_log_density():
    gp = port("gp")
    X, Y, _ = gp.get_data()
    model = gp.load_model().model(X)
    z = {"kernel_var": np.float32(1.3), "kernel_noise": np.float32(0.05),
         "kernel_length": np.float32(0.4)}
    ref, _ = log_density(gp.numpyro_model, (X, Y), {}, z)
    assert_same_density((model | {"Y": Y}).density(z), ref)
    # The predictive mean and variance: the ppl fn against NumPyro's Cholesky solve.
    X_test = np.linspace(-1.3, 1.3, 7, dtype=np.float32)
    ours = gp.load_model().predict(X, Y, X_test, *z_values(z))
    theirs = gp.numpyro_predict(X, Y, X_test, *z_values(z))
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-3, atol=1e-4)


def z_values(z):
    return z["kernel_var"], z["kernel_length"], z["kernel_noise"]


@pytest.mark.slow  # (the suite's budget: the NUTS ports' densities run with PPL_SLOW_TESTS=1)
def test_bnn_log_density():
    bnn = port("bnn")
    X, Y, _ = bnn.get_data(N=20)
    model = bnn.load_model().model(X, 5, 1)
    z = latents(model, 0, "Y")
    ref, _ = log_density(bnn.numpyro_model, (X, Y, 5), {}, z)
    assert_same_density((model | {"Y": Y}).density(z), ref)


@pytest.mark.slow  # (the suite's budget: the NUTS ports' densities run with PPL_SLOW_TESTS=1)
def test_stochastic_volatility_log_density():
    sv = port("stochastic_volatility")
    returns = sv.get_data(50)
    model = sv.load_model().model(50)
    z = latents(model, 0, "r")
    z["sigma"] = np.float32(0.02)
    z["nu"] = np.float32(6.0)
    ref, _ = log_density(sv.numpyro_model, (returns,), {}, z)
    assert_same_density((model | {"r": returns}).density(z), ref)


def _enumerated(model, plates: int):
    from numpyro.contrib.funsor import config_enumerate, enum
    return enum(config_enumerate(model), first_available_dim=-plates - 1)


def test_gmm_exact_marginal_equals_numpyro_enumeration():
    pytest.importorskip("funsor")
    from numpyro.contrib.funsor import log_density as enum_log_density
    gmm = port("gmm")
    z = {"weights": np.array([0.3, 0.7], np.float32), "scale": np.float32(1.5),
         "locs": np.array([0.5, 10.5], np.float32)}
    target = ppl.stdlib.marginal(gmm.load_model().model(gmm.DATA, gmm.K),
                                 keep=["weights", "scale", "locs", "obs"], exact=True)
    ours = (target | {"obs": gmm.DATA}).density(z)
    ref, _ = enum_log_density(_enumerated(gmm.numpyro_model, 1), (jnp.asarray(gmm.DATA),), {},
                              {k: jnp.asarray(v) for k, v in z.items()})
    assert_same_density(ours, ref)
    # The MAP objective (a point mass at each global) at NumPyro's start is its initial
    # TraceEnum_ELBO loss, negated.
    theirs, _ = gmm.numpyro_fit(gmm.DATA, gmm.K, seed=3, steps=1)
    ours, _ = gmm.initialize(gmm.load_model(), gmm.DATA, gmm.K, seed=3)
    assert_same_density(ours, theirs)


def test_hmm_enum_exact_marginal_equals_numpyro_enumeration():
    pytest.importorskip("funsor")
    from numpyro.contrib.funsor import enum
    from numpyro.contrib.funsor import log_density as enum_log_density
    hmm = port("hmm_enum")
    sequences, lengths = hmm.get_data(S=4, T=8, D=3)
    S, T, D = sequences.shape
    rng = np.random.default_rng(1)
    z = {"probs_x": rng.dirichlet(np.ones(2), size=2).astype(np.float32),
         "probs_y": rng.uniform(0.1, 0.9, (2, D)).astype(np.float32)}
    assert (lengths < T).any()  # some steps are masked
    target = ppl.stdlib.marginal(hmm.load_model().model_1(lengths, T, D, 2),
                                 keep=["probs_x", "probs_y", "y"], exact=True) | {"y": sequences}
    ref, _ = enum_log_density(enum(hmm.numpyro_model_1, first_available_dim=-3),
                              (jnp.asarray(sequences), jnp.asarray(lengths), 2), {},
                              {k: jnp.asarray(v) for k, v in z.items()})
    assert_same_density(target.density(z), ref)


def test_vae_log_density():
    vae = port("vae")
    images, _ = vae.load_digits()
    batch, hidden, z_dim = images[:5], 8, 4
    model = vae.load_model().model(batch, hidden, z_dim)
    params = model.init(jax.random.PRNGKey(0))
    params = {k: v * 0.5 for k, v in params.items()}
    params["model.img_loc.b"] = params["model.img_loc.b"] + 0.3
    z = latents(model, 0, "obs", params=params)
    decoder = [(params["model.h.W"], params["model.h.b"]), (),
               (params["model.img_loc.W"], params["model.img_loc.b"]), ()]
    ref, _ = log_density(vae.numpyro_model, (jnp.asarray(batch),),
                         {"hidden_dim": hidden, "z_dim": z_dim},
                         {"z": z["z"], "decoder$params": decoder})
    assert_same_density((model | {"obs": batch}).density(z, params), ref)
