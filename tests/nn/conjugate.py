"""An amortised Gaussian family on a conjugate model, with its exact ELBO.

For z_i ~ normal(0, 1), x_i ~ normal(z_i, 0.5), each z_i | x_i is normal
with mean 0.8·x_i and sd √0.2: a family whose location and log-scale are an
affine function of x_i (a dense layer, a Flax ``Dense(2)``, an Equinox
``Linear``) contains the posterior, so the best ELBO is log p(x) exactly, a
sum of normal(0, √1.25) log densities. A network is plugged in as ``ENC``:
``out = ...`` gives ``[N, 2]`` rows (location, log-scale) from x.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import ppl
from adev_stats import run_once

X = np.random.default_rng(0).normal(0.0, np.sqrt(1.25), size=8).astype(np.float32)
LOG_EVIDENCE = float(np.sum(-0.5 * np.log(2 * np.pi * 1.25) - X.astype(np.float64) ** 2 / 2.5))

SOURCE = """
gen model(N: int) {
    plate i in N {
        z ~ normal(0.0, 1.0)
        x ~ normal(z, 0.5)
    }
}

gen family(x: real[N]) {
    ENC
    plate i in N { z ~ normal(out[i, 0], exp(out[i, 1])) }
}

objective fit_family(x: real[N]) {
    return elbo(model(N) | {x: x}, family(x))
}
"""


def program(encoder: str, externs: dict | None = None) -> ppl.Module:
    return ppl.compile(SOURCE.replace("ENC", encoder), externs=externs)


def fit_and_estimate(module: ppl.Module, steps: int = 1000, n: int = 4000):
    """Fit the family, then ``n`` independent ELBO estimates at the fitted parameters."""
    objective = module.fit_family(X)
    result = ppl.fit(objective, steps=steps, optimizer=optax.adam(optax.cosine_decay_schedule(
        0.05, steps)), key=jax.random.PRNGKey(0), progress=False)
    keys = jax.random.split(jax.random.PRNGKey(1), n)
    values = run_once(jax.vmap(lambda k: objective.value(k, result.params)), keys)
    return objective, result, np.asarray(values, np.float64)


def assert_exact_elbo(values: np.ndarray, tolerance: float = 0.03) -> None:
    """The mean ELBO estimate is log p(x) within ``tolerance`` nats plus 5 standard errors."""
    mean, se = values.mean(), values.std(ddof=1) / np.sqrt(values.size)
    assert abs(mean - LOG_EVIDENCE) < tolerance + 5 * se, (mean, se, LOG_EVIDENCE)
