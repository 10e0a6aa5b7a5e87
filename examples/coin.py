"""The beta-bernoulli coin: simulate, score, condition, fit.

Loads ``coin.ppl`` (beside this script), draws a data set from the model,
scores traces, conditions the model on the flips and evaluates the log
joint, draws from the variational family ``coin_guide``, then fits it by
maximising the ELBO (``ppl.fit``) and summarises the fitted posterior and
its posterior predictive. Every number has a closed form (the posterior is
beta(2 + heads, 2 + tails)), printed alongside.

    python examples/coin.py

The same fit from the command line, on the flips in ``coin_flips.csv``:

    ppl fit examples/coin.ppl --objective fit_coin --data examples/coin_flips.csv \\
        --steps 2000 --lr 0.05 --out runs/coin
"""

from __future__ import annotations

import math
from pathlib import Path

import jax
import numpy as np
import optax

import ppl

SOURCE = Path(__file__).resolve().with_name("coin.ppl")
N_FLIPS = 20
FIT_STEPS = 2000
N_DRAWS = 2000


def load_model() -> ppl.Module:
    """The compiled program: ``m.coin(n)`` is the model, ``m.coin_guide()`` the family."""
    return ppl.load(SOURCE)


def log_beta_pdf(p: float, a: float, b: float) -> float:
    """log beta(p; a, b), for checking the model's numbers by hand."""
    log_norm = math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
    return (a - 1) * math.log(p) + (b - 1) * math.log1p(-p) - log_norm


def beta_sd(a: float, b: float) -> float:
    """The standard deviation of beta(a, b)."""
    return math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))


def fmt(x) -> str:
    """A number to 4 decimals, never printed as -0.0000."""
    return f"{round(float(x), 4) + 0.0:.4f}"


def main(n_flips: int = N_FLIPS, seed: int = 0) -> dict:
    """Run the example, print what it finds, and return the numbers (for tests)."""
    m = load_model()
    key_data, key_guide = jax.random.split(jax.random.PRNGKey(seed))

    # 1. Simulate: one run of the model gives a trace (every random choice,
    #    by address) and its log density.
    model = m.coin(n_flips)
    trace, logp = model.simulate(key_data)
    flips = np.asarray(trace["flips"])
    p_true = float(trace["p"])
    heads = int(flips.sum())
    print(f"model:  {model}")
    print(f"  simulated bias p = {p_true:.3f}")
    print(f"  flips            = {''.join(map(str, flips))}  ({heads} heads of {n_flips})")
    print(f"  log p(trace)     = {fmt(logp)}")

    # 2. Score: the density of the same trace, computed by the density entry.
    density = model.density(trace)
    by_hand = log_beta_pdf(p_true, 2, 2) + heads * math.log(p_true) \
        + (n_flips - heads) * math.log1p(-p_true)
    print(f"  density(trace)   = {fmt(density)}  (by hand: {fmt(by_hand)})")

    # 3. Condition on the flips: an unnormalised posterior over p. Its
    #    density takes the latent choices only; the observations are scored too.
    target = model | {"flips": flips}
    log_joint = target.density({"p": p_true})
    post_a, post_b = 2 + heads, 2 + (n_flips - heads)
    print(f"\nconditioned: {target}")
    print(f"  log p(p, flips) at the simulated p = {fmt(log_joint)}")
    post_mean = post_a / (post_a + post_b)
    print(f"  exact posterior: beta({post_a}, {post_b}), mean {post_mean:.3f}")
    print(f"  log p(p, flips) at the posterior mean = {fmt(target.density({'p': post_mean}))}")

    # 4. The variational family: parameters by path, unconstrained (log a,
    #    log b here), then a draw and its log density log q(p).
    guide = m.coin_guide()
    params = guide.init(jax.random.PRNGKey(seed))
    q_trace, log_q = guide.simulate(key_guide, params)
    log_w = target.density(q_trace) - log_q
    print(f"\nguide:  {guide}")
    for path, u in params.items():
        print(f"  param {path}: unconstrained {float(u):.3f}, value exp({float(u):.3f}) = "
              f"{math.exp(float(u)):.3f}")
    print(f"  a draw: p = {float(q_trace['p']):.3f}, log q(p) = {fmt(log_q)}")
    print(f"  one importance weight log p(p, flips) - log q(p) = {fmt(log_w)}")

    # 5. Variational inference: maximise the ELBO of the conditioned model
    #    with coin_guide as the family (ppl.stdlib.elbo; coin.ppl also declares
    #    it as the objective fit_coin, which `ppl fit` runs). Beta is conjugate,
    #    so the family holds the exact posterior and the fit should find it.
    objective = ppl.stdlib.elbo(target, guide)
    schedule = optax.cosine_decay_schedule(0.1, FIT_STEPS)   # a decaying step settles the fit
    result = ppl.fit(objective, steps=FIT_STEPS, optimizer=optax.adam(schedule),
                     key=jax.random.PRNGKey(seed), progress=False)
    fitted = {k.split(".")[-1]: float(v) for k, v in result.constrained_params.items()}
    a, b = fitted["a"], fitted["b"]
    print(f"\nfit:    {result}")
    print(f"  fitted  q(p) = beta({a:.2f}, {b:.2f}), mean {a / (a + b):.3f}, "
          f"sd {beta_sd(a, b):.3f}")
    print(f"  exact   p | flips = beta({post_a}, {post_b}), mean {post_mean:.3f}, "
          f"sd {beta_sd(post_a, post_b):.3f}")

    # Posterior summaries from draws of the fitted family, and the posterior
    #    predictive: new flips from the model with p drawn from q.
    key_draws, key_pred = jax.random.split(jax.random.PRNGKey(seed + 1))
    draws = guide.sample(key_draws, result.params, n=N_DRAWS)
    summary = ppl.summarize(draws)["p"]
    print(f"  {N_DRAWS} draws of p from q: mean {summary['mean']:.3f}, sd {summary['sd']:.3f}, "
          f"90% interval [{summary['q5']:.3f}, {summary['q95']:.3f}]")
    predictive = model.predictive(key_pred, draws, result.params)
    predicted_heads = np.asarray(predictive["flips"]).sum(axis=1)
    print(f"  posterior predictive heads in {n_flips} new flips: mean "
          f"{predicted_heads.mean():.2f} (exact {n_flips * post_mean:.2f}), "
          f"observed {heads}")

    return {"model": model, "trace": trace, "logp": logp, "density": density,
            "flips": flips, "log_joint": log_joint, "guide": guide, "params": params,
            "guide_trace": q_trace, "log_q": log_q, "log_w": log_w, "result": result,
            "fitted": (a, b), "exact": (post_a, post_b), "draws": draws,
            "predictive": predictive}


if __name__ == "__main__":
    main()
