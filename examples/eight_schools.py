"""Eight schools: the classic hierarchical model, non-centred.

Simulates school effects and measurements from the prior, scores the
trace, then conditions on the published data and evaluates the log joint
at three settings of the latents (complete, partial and no pooling),
splitting it into the prior's share and the observations'. Then fits a
mean-field family by maximising the ELBO (``ppl.fit``), samples the same
posterior with NUTS (``ppl.nuts``, numpyro's sampler on the model's
density) and prints both posteriors side by side: NUTS is the reference
that shows what the family gets right (the means) and what a mean-field
family misses (it underestimates the spread of tau and of the school effects).

    python examples/eight_schools.py            # about half a minute, most of it compiling
    python examples/eight_schools.py --quick    # fewer steps and draws (the test suite's run)
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import numpy as np
import optax

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


# (fit steps, NUTS draws per chain = warmup steps, chains): the full run, and the quick one.
SETTINGS = {False: (3000, 1000, 4), True: (1000, 300, 2)}


def main(seed: int = 0, quick: bool = False) -> dict:
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

    # Variational inference: fit the mean-field family by maximising the ELBO.
    steps, draws, chains = SETTINGS[quick]
    objective = m.fit_eight_schools(Y, SIGMA)
    fit = ppl.fit(objective, steps=steps, optimizer=optax.adam(optax.cosine_decay_schedule(
        0.05, steps)), key=jax.random.PRNGKey(seed + 1), progress=False)
    vi = m.eight_schools_guide(len(Y)).sample(jax.random.PRNGKey(seed + 2), fit.params,
                                               n=draws * chains)
    print(f"\nVI:   {fit}")

    # NUTS on the same target: the reference posterior.
    nuts = ppl.nuts(target, num_samples=draws, num_warmup=draws, chains=chains,
                    key=jax.random.PRNGKey(seed + 3))
    print(f"NUTS: {nuts}")
    summary = nuts.summary

    print(f"\n  {'':12} {'VI mean':>8} {'VI sd':>6}   {'NUTS mean':>9} {'NUTS sd':>7} "
          f"{'r_hat':>6} {'ess':>6}")
    rows = [("mu", None), ("tau", None)] + [("theta", j) for j in range(len(Y))]
    for name, j in rows:
        v, n = _values(vi, name, j), _values(nuts.samples, name, j)
        if name == "theta":  # a derived quantity: its diagnostics are those of theta_raw[j]
            r_hat, ess = (summary["theta_raw"][k][j] for k in ("r_hat", "ess"))
        else:
            r_hat, ess = summary[name]["r_hat"], summary[name]["ess"]
        label = name if j is None else f"theta[{j}]"
        print(f"  {label:12} {v.mean():8.2f} {v.std():6.2f}   {n.mean():9.2f} {n.std():7.2f} "
              f"{float(r_hat):6.3f} {float(ess):6.0f}")
    print("  (r_hat and ess of theta[j] are those of theta_raw[j]; "
          f"{int(nuts.divergences.sum())} divergent transitions)")

    return {"model": model, "trace": trace, "logp": logp, "target": target, "log_joints": log_joints,
            "fit": fit, "vi": vi, "nuts": nuts}


def _values(draws, name: str, j: int | None) -> np.ndarray:
    """Draws of mu, tau or a school's effect theta[j] = mu + tau * theta_raw[j]."""
    if name == "theta":
        return np.asarray(draws["mu"] + draws["tau"] * draws["theta_raw"][:, j], np.float64)
    return np.asarray(draws[name], np.float64)


if __name__ == "__main__":
    main(quick="--quick" in sys.argv[1:])
