"""The benchmark scripts run (a smoke run: one small batch, few repetitions).

Timings are never asserted: benchmarks report ratios measured side by side,
and the machine's noise is not a test failure. What is asserted is that the
three implementations compute the same objective.
"""

import importlib.util
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import ppl

BENCH = Path(__file__).resolve().parents[2] / "examples" / "benchmarks"


def load_script():
    spec = importlib.util.spec_from_file_location("vae_benchmark", BENCH / "vae.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_vae_benchmark_quick_run():
    rows = load_script().main(["--quick", "--iwae", "3"])
    assert [r["objective"] for r in rows] == ["elbo", "iwae3"]
    assert all(r["ppl_ms"] > 0 and r["jax_ms"] > 0 and r["numpyro_ms"] > 0 for r in rows)


def test_the_three_implementations_estimate_the_same_elbo():
    bench = load_script()
    m = ppl.load(BENCH / "vae.ppl")
    x = jnp.asarray(np.random.default_rng(0).random((8, bench.PIXELS)) < 0.3, jnp.float32)
    obj = ppl.stdlib.elbo(m.decoder(8) | {"x": x}, m.encoder(x))
    params = obj.init(jax.random.PRNGKey(0))
    keys = jax.random.split(jax.random.PRNGKey(1), 400)
    ppl_values = jax.vmap(lambda k: obj.value(k, params))(keys)
    jax_values = jax.vmap(lambda k: bench.handwritten_elbo(params, k, x))(keys)
    se = np.sqrt(np.var(ppl_values) / 400 + np.var(jax_values) / 400)
    assert abs(float(np.mean(ppl_values) - np.mean(jax_values))) < 5 * se
