"""A linear-Gaussian state-space model: a sequential loop with carried state.

Simulates a hidden AR(1) state and its noisy observations, shows the first
steps, scores the trace, and conditions on the observations to evaluate the
log joint at the simulated latents and at a "smoothed" guess of the states.

    python examples/state_space.py
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np

import ppl

SOURCE = Path(__file__).resolve().with_name("state_space.ppl")
T = 50


def load_model() -> ppl.Module:
    """The compiled program: ``m.state_space(T)`` is the model for T steps."""
    return ppl.load(SOURCE)


def main(steps: int = T, seed: int = 7) -> dict:
    """Run the example, print what it finds, and return the numbers (for tests)."""
    m = load_model()
    model = m.state_space(steps)

    # Simulate: the parameters a, q, r, then the states x and observations
    # y, each stacked along a leading axis of length T by the loop.
    trace, logp = model.simulate(jax.random.PRNGKey(seed))
    x, y = np.asarray(trace["x"]), np.asarray(trace["y"])
    print(f"model: {model}")
    print(f"  a = {float(trace['a']):.3f}, q = {float(trace['q']):.3f}, r = {float(trace['r']):.3f}; "
          f"x and y have shape {x.shape}")
    print(f"  {'t':>3} {'state x':>9} {'observed y':>11}")
    for t in range(min(steps, 6)):
        print(f"  {t:3d} {x[t]:9.3f} {y[t]:11.3f}")
    print(f"  ... final state (returned) = {float(trace.retval):.3f}")
    print(f"  log p(trace) = {float(logp):.3f}, density(trace) = {float(model.density(trace)):.3f}")

    # Condition on the observations and score two guesses of the latents:
    # the simulated ones, and the observations smoothed by a moving average
    # (which may score higher: the mode of the joint is smoother than the truth).
    target = model | {"y": y}
    smoothed = np.convolve(y, np.ones(3) / 3, mode="same").astype(np.float32)
    latents = {k: trace[k] for k in ("a", "q", "r")}
    at_truth = float(target.density({**latents, "x": x}))
    at_smoothed = float(target.density({**latents, "x": smoothed}))
    print(f"\nconditioned on the {steps} observations:")
    print(f"  log p(a, q, r, x, y) at the simulated states = {at_truth:.3f}")
    print(f"  log p(a, q, r, x, y) at a moving average of y = {at_smoothed:.3f}")

    return {"model": model, "trace": trace, "logp": logp, "at_truth": at_truth,
            "at_smoothed": at_smoothed}


if __name__ == "__main__":
    main()
