"""Eight schools: the classic hierarchical model, non-centred.

Simulates school effects and measurements from the prior, scores the
trace, then conditions on the published data and evaluates the log joint
at three settings of the latents (complete, partial and no pooling),
splitting it into the prior's share and the observations'.

    python examples/eight_schools.py
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np

import ppl

SOURCE = Path(__file__).resolve().with_name("eight_schools.ppl")

# Estimated coaching effects and their standard errors (Rubin 1981).
Y = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0], dtype=np.float32)
SIGMA = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0], dtype=np.float32)


def load_model() -> ppl.Module:
    """The compiled program: ``m.eight_schools(sigma)`` is the model."""
    return ppl.load(SOURCE)


def normal_logpdf(x, loc, scale) -> np.ndarray:
    """log normal(x; loc, scale), elementwise, for splitting the log joint by hand."""
    z = (np.asarray(x, np.float64) - loc) / scale
    return -0.5 * z ** 2 - np.log(scale) - 0.5 * np.log(2 * np.pi)


def main(seed: int = 0) -> dict:
    """Run the example, print what it finds, and return the numbers (for tests)."""
    m = load_model()
    model = m.eight_schools(SIGMA)

    # Simulate: the latents mu, tau, theta_raw and measurements y; the
    # return value is theta = mu + tau * theta_raw.
    trace, logp = model.simulate(jax.random.PRNGKey(seed))
    theta = np.asarray(trace.retval)
    print(f"model: {model}, J = {len(SIGMA)} schools")
    print(f"  addresses: {', '.join(trace.addresses)}")
    print(f"  simulated mu = {float(trace['mu']):.2f}, tau = {float(trace['tau']):.2f}")
    print(f"  theta (returned) = {np.round(theta, 1)}")
    print(f"  y (simulated)    = {np.round(np.asarray(trace['y']), 1)}")
    print(f"  log p(trace) = {float(logp):.3f}, density(trace) = {float(model.density(trace)):.3f}")

    # Condition on the data. The density of the conditioned model takes the
    # latents only, and adds log p(y | theta) of the observations. Compare
    # three settings of the latents, from pooling every school into one
    # effect to giving each school its own measured effect.
    target = model | {"y": Y}
    pooled_mu = float(np.sum(Y / SIGMA ** 2) / np.sum(1 / SIGMA ** 2))
    settings = {
        "complete pooling": (pooled_mu, 0.1, np.zeros_like(Y)),
        "partial pooling": (pooled_mu, 5.0, 0.5 * (Y - pooled_mu) / 5.0),
        "no pooling": (pooled_mu, 10.0, (Y - pooled_mu) / 10.0),
    }
    print(f"\nconditioned on y = {Y.astype(int).tolist()}")
    print(f"  {'latents':18} {'mu':>5} {'tau':>5} {'log joint':>10} {'= prior':>9} {'+ log p(y | theta)':>19}")
    log_joints = {}
    for name, (mu, tau, theta_raw) in settings.items():
        latents = {"mu": np.float32(mu), "tau": np.float32(tau),
                   "theta_raw": np.asarray(theta_raw, np.float32)}
        log_joint = float(target.density(latents))
        observed = float(normal_logpdf(Y, mu + tau * theta_raw, SIGMA).sum())
        log_joints[name] = log_joint
        print(f"  {name:18} {mu:5.2f} {tau:5.1f} {log_joint:10.3f} {log_joint - observed:9.3f} "
              f"{observed:19.3f}")

    return {"model": model, "trace": trace, "logp": logp, "target": target, "log_joints": log_joints}


if __name__ == "__main__":
    main()
