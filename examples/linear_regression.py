"""Bayesian linear regression: prior predictive draws, and the log joint on synthetic data.

Makes a synthetic data set with numpy (known slope, intercept and noise),
draws a prior predictive data set from the model, then conditions the model
on the synthetic ``y`` and compares the log joint at the true parameters,
at the least-squares fit and at a draw from the prior.

    python examples/linear_regression.py
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np

import ppl

SOURCE = Path(__file__).resolve().with_name("linear_regression.ppl")
TRUE_W, TRUE_B, TRUE_SIGMA = 1.5, -0.5, 0.3


def load_model() -> ppl.Module:
    """The compiled program: ``m.regression(x)`` is the model for inputs ``x``."""
    return ppl.load(SOURCE)


def synthetic_data(n: int = 50, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Inputs on [-2, 2] and outputs from the line y = 1.5 x - 0.5 plus normal(0, 0.3) noise."""
    rng = np.random.default_rng(seed)
    x = np.linspace(-2.0, 2.0, n).astype(np.float32)
    y = (TRUE_W * x + TRUE_B + TRUE_SIGMA * rng.standard_normal(n)).astype(np.float32)
    return x, y


def main(n: int = 50, seed: int = 0) -> dict:
    """Run the example, print what it finds, and return the numbers (for tests)."""
    m = load_model()
    x, y = synthetic_data(n, seed)
    model = m.regression(x)

    # A draw from the prior: slope, intercept, noise and a whole data set y.
    trace, logp = model.simulate(jax.random.PRNGKey(seed))
    print(f"model: {model}, with x of shape {x.shape}")
    print(f"  prior draw: w = {float(trace['w']):.3f}, b = {float(trace['b']):.3f}, "
          f"sigma = {float(trace['sigma']):.3f}, y[:3] = {np.round(np.asarray(trace['y'][:3]), 3)}")
    print(f"  log p(trace) = {float(logp):.3f}, density(trace) = {float(model.density(trace)):.3f}")

    # Condition on the synthetic outputs: the log joint of (w, b, sigma) and y.
    target = model | {"y": y}
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (slope * x + intercept)
    candidates = {
        "true parameters": {"w": TRUE_W, "b": TRUE_B, "sigma": TRUE_SIGMA},
        "least squares": {"w": slope, "b": intercept, "sigma": residual.std()},
        "the prior draw": {"w": trace["w"], "b": trace["b"], "sigma": trace["sigma"]},
    }
    print(f"\nconditioned on {n} synthetic points (w = {TRUE_W}, b = {TRUE_B}, sigma = {TRUE_SIGMA}):")
    log_joints = {}
    for name, latents in candidates.items():
        latents = {k: np.float32(v) for k, v in latents.items()}
        log_joints[name] = float(target.density(latents))
        print(f"  log p(w, b, sigma, y) at {name:16} (w = {latents['w']:7.3f}, b = {latents['b']:7.3f}, "
              f"sigma = {latents['sigma']:6.3f}): {log_joints[name]:10.3f}")

    return {"model": model, "x": x, "y": y, "trace": trace, "logp": logp, "log_joints": log_joints}


if __name__ == "__main__":
    main()
