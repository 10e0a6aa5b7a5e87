"""A hidden Markov model, its states summed out exactly (the forward algorithm).

Simulates a K-state HMM with Gaussian emissions, then fits it two ways, the
discrete states summed out by ``marginal(..., exact=true)`` (no estimator,
no sampled state):

1. **maximum marginal likelihood**: the transition logits, means and scale
   as parameters, log p(y) maximised directly;
2. **variational inference over the parameters**: Dirichlet rows of the
   transition matrix and normal means, with a mean-field family over them,
   the ELBO's states summed exactly (NumPyro's ``TraceEnum_ELBO``).

It prints each fitted transition matrix beside the truth (states ordered by
their means, since their labels are arbitrary) and writes ``hmm_states.png``:
the data, the true state path and the posterior of each state, p(z_t | y),
which is the gradient of log p(y) with respect to a per-step offset of each
state's log density (forward-backward by automatic differentiation).

    python examples/hmm.py                 # T = 400, K = 3
    python examples/hmm.py --steps 3000 --out hmm_states.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

import ppl

SOURCE = Path(__file__).resolve().with_name("hmm.ppl")
TRUE_P = np.array([[0.90, 0.08, 0.02],
                   [0.05, 0.90, 0.05],
                   [0.02, 0.08, 0.90]])
TRUE_MU = np.array([-2.0, 0.0, 2.5])
TRUE_SIGMA = 0.5


def load_model() -> ppl.Module:
    return ppl.load(SOURCE)


def simulate(T: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A state path (starting from state 0) and its observations, from the true HMM."""
    rng = np.random.default_rng(seed)
    z, prev = np.zeros(T, np.int32), 0
    for t in range(T):
        prev = z[t] = rng.choice(3, p=TRUE_P[prev])
    return z, (TRUE_MU[z] + TRUE_SIGMA * rng.standard_normal(T)).astype(np.float32)


def softmax_rows(a) -> np.ndarray:
    a = np.asarray(a, np.float64)
    e = np.exp(a - a.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _rounded(v) -> list:
    return [round(float(x), 3) for x in v]


def show(title: str, fitted: np.ndarray, order: np.ndarray) -> None:
    """The fitted transition matrix (states sorted by mean) beside the truth."""
    fitted = fitted[np.ix_(order, order)]
    print(f"\n{title}")
    print(f"  {'fitted P':<28}{'true P':<28}")
    for row, true_row in zip(fitted, TRUE_P):
        print("  " + " ".join(f"{v:6.3f}" for v in row) + "    "
              + " ".join(f"{v:6.3f}" for v in true_row))


def plot(path: Path, y, z, posterior) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib is not installed: no plot)")
        return False
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 5), sharex=True)
    top.plot(y, ".", ms=3, color="0.4", label="y")
    top.step(range(len(z)), TRUE_MU[z], where="mid", color="C3", label="mean of the true state")
    top.legend(loc="upper right", fontsize=8)
    bottom.imshow(posterior.T, aspect="auto", origin="lower", cmap="Blues", interpolation="nearest",
                  extent=(-0.5, len(z) - 0.5, -0.5, posterior.shape[1] - 0.5))
    bottom.step(range(len(z)), z, where="mid", color="C3", lw=1, label="true state")
    bottom.set_ylabel("state")
    bottom.set_yticks(range(posterior.shape[1]))
    bottom.set_xlabel("t")
    bottom.set_title("p(z_t | y) under the maximum-likelihood fit", fontsize=9)
    bottom.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def main(T: int = 400, steps: int = 1500, vi_steps: int = 3000, seed: int = 0,
         out: str | None = "hmm_states.png") -> dict:
    """Run the example, print what it finds, and return the numbers (for tests)."""
    m = load_model()
    z, y = simulate(T, seed)
    K = 3
    print(f"simulated {T} steps of a {K}-state HMM; states visited: "
          f"{np.bincount(z, minlength=K).tolist()}")

    # 1. Maximum marginal likelihood: log p(y), every state summed out.
    mll = m.marginal_likelihood(y, K)
    fit = ppl.fit(mll, steps=steps, optimizer=optax.adam(0.05), key=jax.random.PRNGKey(seed),
                  progress=False)
    params = fit.params
    mu = np.asarray(params["hmm.mu"])
    order = np.argsort(mu)
    print(f"\nmaximum marginal likelihood ({steps} steps of adam): "
          f"log p(y) = {float(fit.history[-1]):.2f}")
    print(f"  means {_rounded(mu[order])} (true {TRUE_MU.tolist()}), "
          f"sigma {float(jnp.exp(params['hmm.sigma'])):.3f} (true {TRUE_SIGMA})")
    p_mll = softmax_rows(params["hmm.A"])
    show("transition matrix, maximum likelihood", p_mll, order)

    # The posterior of each state: d log p(y) / d offset[t, k] at offset = 0.
    smoothed = m.smoothed(y, K)
    offset = {"hmm.offset": jnp.zeros((T, K))}
    _, grads = smoothed.value_and_grad(jax.random.PRNGKey(0), {**params, **offset})
    posterior = np.asarray(grads["hmm.offset"])[:, order]
    decoded = np.argmax(posterior, 1)
    accuracy = float(np.mean(decoded == z))  # the true states are numbered by their means too
    print(f"  most probable state per step matches the truth at {100 * accuracy:.1f}% of steps")

    # 2. Variational inference over the parameters, states summed out in the ELBO.
    vi = m.vi(y, K)
    vfit = ppl.fit(vi, steps=vi_steps, optimizer=optax.adam(0.05),
                   key=jax.random.PRNGKey(seed + 1), progress=False)
    vparams = vfit.constrained_params
    conc = np.asarray(vparams["posterior.concentration"], np.float64)
    p_vi = conc / conc.sum(-1, keepdims=True)  # the posterior mean of each row
    loc = np.asarray(vparams["posterior.loc"])
    vorder = np.argsort(loc)
    final_elbo = float(np.mean(np.asarray(vfit.history[-50:])))
    print(f"\nvariational inference ({vi_steps} steps): ELBO {final_elbo:.2f} "
          "(mean of the last 50 steps)")
    print(f"  posterior means of mu {_rounded(loc[vorder])}")
    show("transition matrix, posterior mean under the fitted family", p_vi, vorder)

    wrote = plot(Path(out), y, z[:], posterior) if out else False
    if wrote:
        print(f"\nwrote {out}")
    return {"y": y, "z": z, "mll": fit, "vi": vfit, "p_mll": p_mll[np.ix_(order, order)],
            "p_vi": p_vi[np.ix_(vorder, vorder)], "posterior": posterior, "accuracy": accuracy,
            "mu": mu[order], "loc": loc[vorder]}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--T", type=int, default=400)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--vi-steps", type=int, default=3000)
    parser.add_argument("--out", default="hmm_states.png")
    args = parser.parse_args()
    main(args.T, args.steps, args.vi_steps, out=args.out)
