"""Exact enumeration benchmark: an HMM (the forward algorithm) and a mixture, ppl vs
hand-written JAX vs NumPyro (enumeration with funsor).

BENCHMARKS.md's "HMM and mixture, exact enumeration" workload (``hmm.ppl``):
one gradient step of the exact log marginal likelihood, every discrete latent
summed out, with respect to the model's parameters.

- **HMM**: K states, Gaussian emissions, T steps, the state carried by a for
  loop. ppl: ``marginal(hmm(T, K), keep=["y"], exact=true) | {y: y}``, which
  runs the forward algorithm (a scan over the K state log-probabilities).
  Hand-written JAX: the forward algorithm in ``lax.scan``, the emission
  log-likelihoods computed for every step at once, before the scan.
  NumPyro: the model written with ``numpyro.contrib.control_flow.scan``, the
  state enumerated in parallel, and its log density with every enumerated
  site summed out (``numpyro.contrib.funsor.log_density`` under ``enum``, what
  NumPyro's ``hmm_enum`` example runs NUTS on). ``TraceEnum_ELBO`` with an
  empty guide on the same scan model returns a different number (see
  ``traceenum_hmm_disagreement``; its unrolled ``markov`` loop agrees), so
  that is not the timed peer. T in {100, 1000}, K in {3, 10}.
- **mixture**: N points, K = 5 components, a categorical assignment per
  point summed out; hand-written: logsumexp of a K x N table (along K); NumPyro:
  ``TraceEnum_ELBO`` with the assignment enumerated in the model.

Each row prints the median time per step (after warm-up, with
``block_until_ready``, the implementations interleaved, in both orders of ppl
and jax: the geometric mean of the two medians), the ratios, the
first-call (compile) time, and the largest difference of each peer's value
from ppl's (all three compute the same number), then the short HMM on which
``TraceEnum_ELBO`` over ``scan`` disagrees. NumPyro's enumeration needs the
optional package ``funsor`` (``pip install funsor``); without it its columns
are "—".

    python examples/benchmarks/hmm.py            # the full table
    python examples/benchmarks/hmm.py --quick    # a smoke run (tests use it)
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax.scipy.special import logsumexp
from numpyro.infer import TraceEnum_ELBO

import ppl

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from discrete import _compile, _ms, _ratio  # noqa: E402  (the table's cells, as there)
from timing import time_steps  # noqa: E402  (the helper beside this script)

HERE = os.path.dirname(os.path.abspath(__file__))
HAVE_FUNSOR = importlib.util.find_spec("funsor") is not None  # NumPyro's TraceEnum_ELBO needs it
MIXTURE_COMPONENTS = 5


def make_hmm_data(rng: np.random.Generator, t: int, k: int) -> jnp.ndarray:
    """A sticky K-state chain from state 0, seen through unit Gaussian noise."""
    z, prev = np.zeros(t, np.int64), 0
    for i in range(t):
        prev = z[i] = prev if rng.random() < 0.9 else rng.integers(k)
    return jnp.asarray(2.0 * z + rng.normal(size=t), jnp.float32)


def make_mixture_data(rng: np.random.Generator, n: int, k: int) -> jnp.ndarray:
    return jnp.asarray(3.0 * rng.integers(k, size=n) + rng.normal(size=n), jnp.float32)


# ------------------------------------------------------------------ hand-written JAX


def handwritten_hmm(p, key, y):
    """log p(y): the forward algorithm in lax.scan (``key`` is unused)."""
    log_a = jax.nn.log_softmax(p["hmm.A"], -1)
    emission = jax.scipy.stats.norm.logpdf(y[:, None], p["hmm.mu"], jnp.exp(p["hmm.sigma"]))
    alpha = log_a[0] + emission[0]  # the state before the first step is 0

    def step(alpha, e):
        return logsumexp(alpha[:, None] + log_a, 0) + e, None

    alpha, _ = jax.lax.scan(step, alpha, emission[1:])
    return logsumexp(alpha)


def handwritten_mixture(p, key, x):
    """log p(x): Σ_i logsumexp_k (log w_k + log N(x_i; m_k, 1)), the K x N table reduced
    along its first axis (over K rows of N contiguous values: faster than N rows of K)."""
    log_w = jax.nn.log_softmax(p["mixture.weights"])
    table = log_w[:, None] + jax.scipy.stats.norm.logpdf(x[None, :], p["mixture.means"][:, None], 1.0)
    return jnp.sum(logsumexp(table, 0))


# ------------------------------------------------------------------ NumPyro


def numpyro_hmm_model(y):
    from numpyro.contrib.control_flow import scan

    log_a = jax.nn.log_softmax(numpyro.param("hmm.A", None), -1)
    mu = numpyro.param("hmm.mu", None)
    sigma = jnp.exp(numpyro.param("hmm.sigma", None))

    def transition(z_prev, y_t):
        z = numpyro.sample("z", dist.Categorical(logits=log_a[z_prev]),
                           infer={"enumerate": "parallel"})
        numpyro.sample("y", dist.Normal(mu[z], sigma), obs=y_t)
        return z, None

    scan(transition, 0, y)


def numpyro_mixture_model(x):
    means = numpyro.param("mixture.means", None)
    weights = numpyro.param("mixture.weights", None)
    with numpyro.plate("data", x.shape[0]):
        z = numpyro.sample("z", dist.Categorical(logits=weights), infer={"enumerate": "parallel"})
        numpyro.sample("x", dist.Normal(means[z], 1.0), obs=x)


def numpyro_log_density(model, first_available_dim: int):
    """NumPyro's exact log marginal likelihood: the model's log density with its
    enumerated sites summed out by funsor (``numpyro.contrib.funsor.log_density``)."""
    if not HAVE_FUNSOR:
        return None
    from numpyro.contrib.funsor import enum, log_density

    def f(p, key, data):
        return log_density(enum(model, first_available_dim=first_available_dim), (data,), {}, p)[0]
    return f


def traceenum_hmm_disagreement(t: int = 2, k: int = 3, seed: int = 0) -> dict:
    """The exact log p(y) of a short HMM by the forward algorithm, by NumPyro's
    enumerated log density of the scan model, by ``TraceEnum_ELBO`` (empty guide) on the
    same scan model, and by ``TraceEnum_ELBO`` on the model unrolled with ``markov``.
    ``TraceEnum_ELBO`` over ``scan`` is the one that differs (numpyro 0.22)."""
    from numpyro.contrib.funsor import markov

    rng = np.random.default_rng(seed)
    y = make_hmm_data(rng, t, k)
    p = {"hmm.A": jnp.asarray(rng.normal(size=(k, k)), jnp.float32),
         "hmm.mu": jnp.asarray(rng.normal(size=k), jnp.float32), "hmm.sigma": jnp.float32(0.0)}

    def unrolled(y):
        log_a = jax.nn.log_softmax(numpyro.param("hmm.A", None), -1)
        mu, sigma = numpyro.param("hmm.mu", None), jnp.exp(numpyro.param("hmm.sigma", None))
        z = 0
        for i in markov(range(len(y))):
            z = numpyro.sample(f"z_{i}", dist.Categorical(logits=log_a[z]),
                               infer={"enumerate": "parallel"})
            numpyro.sample(f"y_{i}", dist.Normal(mu[z], sigma), obs=y[i])

    key = jax.random.PRNGKey(0)
    return {"forward algorithm": float(handwritten_hmm(p, key, y)),
            "log_density (scan)": float(numpyro_log_density(numpyro_hmm_model, -1)(p, key, y)),
            "TraceEnum_ELBO (scan)": float(numpyro_objective(numpyro_hmm_model)(p, key, y)),
            "TraceEnum_ELBO (markov loop)": float(numpyro_objective(unrolled)(p, key, y))}


def _empty_guide(*args):
    pass


def numpyro_objective(model):
    """-TraceEnum_ELBO's loss: with an empty guide, the exact log marginal likelihood."""
    if not HAVE_FUNSOR:
        return None
    loss = TraceEnum_ELBO(max_plate_nesting=1)

    def f(p, key, data):
        return -loss.loss(key, p, model, _empty_guide, data)
    return f


# ------------------------------------------------------------------ the table


def _diff(row, name):
    return f"{row[name + '_diff']:.1e}" if name + "_diff" in row else "—"


def time_steps_both_orders(steps: dict, params, keys, data, reps: int) -> dict:
    """``time_steps`` twice, in the cyclic orders (ppl, jax, numpyro) and (jax, ppl,
    numpyro): the step run right after NumPyro's larger program is slower by up to ~10%
    at these sub-millisecond sizes (its caches are cold), so each of ppl and jax follows it
    once; the time is the geometric mean of the two medians, the compile time the first
    call's."""
    rest = [n for n in steps if n not in ("ppl", "jax")]
    runs = [time_steps({n: steps[n] for n in order + rest}, params, keys, data, reps)
            for order in (["ppl", "jax"], ["jax", "ppl"])]
    return {n: (math.sqrt(runs[0][n][0] * runs[1][n][0]), runs[0][n][1]) for n in steps}


def workloads(quick: bool, args) -> list[tuple]:
    if quick:
        return [("hmm", 20, 3), ("mixture", 64, MIXTURE_COMPONENTS)]
    hmms = [("hmm", t, k) for t in (args.T or [100, 1000]) for k in (args.K or [3, 10])]
    return hmms + [("mixture", n, MIXTURE_COMPONENTS) for n in (args.N or [1000, 10000])]


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--T", type=int, action="append", help="HMM lengths (default 100, 1000)")
    ap.add_argument("--K", type=int, action="append", help="HMM states (default 3, 10)")
    ap.add_argument("--N", type=int, action="append", help="mixture sizes (default 1000, 10000)")
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--quick", action="store_true", help="small sizes, few repetitions")
    args = ap.parse_args(argv)
    reps = 3 if args.quick else args.reps

    rng = np.random.default_rng(0)
    rows = []
    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), jax {jax.__version__}, "
          f"numpyro {numpyro.__version__}")
    print(f"{'model':<8}{'size':>12}  {'ppl ms':>8} {'jax ms':>8} {'numpyro ms':>11}"
          f"  {'ppl/jax':>8} {'ppl/numpyro':>11}  {'compile s (ppl/jax/numpyro)':>28}"
          f"  {'|value - ppl| (jax, numpyro)':>29}")
    for model, size, k in workloads(args.quick, args):
        m = ppl.load(os.path.join(HERE, "hmm.ppl"))  # a parameter's shape is fixed per program
        if model == "hmm":
            data = make_hmm_data(rng, size, k)
            obj = m.hmm_likelihood(data, k)
            handwritten, peer = handwritten_hmm, numpyro_log_density(numpyro_hmm_model, -1)
            label = f"T={size} K={k}"
        else:
            data = make_mixture_data(rng, size, k)
            obj = m.mixture_likelihood(data, k)
            handwritten, peer = handwritten_mixture, numpyro_objective(numpyro_mixture_model)
            label = f"N={size} K={k}"
        params = obj.init(jax.random.PRNGKey(0))
        raw_step = obj.compiled_value_and_grad()
        ppl_step = lambda p, key, d, raw_step=raw_step: raw_step(p, key, [d])  # noqa: E731
        steps = {"ppl": ppl_step, "jax": jax.jit(jax.value_and_grad(handwritten))}
        if peer is not None:
            steps["numpyro"] = jax.jit(jax.value_and_grad(peer))
        keys = jax.random.split(jax.random.PRNGKey(1), reps + 4)
        results = time_steps_both_orders(steps, params, keys, data, reps)
        value = float(steps["ppl"](params, keys[0], data)[0])
        row = {"model": model, "size": label, "ppl_value": value,
               **{f"{n}_ms": results[n][0] * 1e3 for n in results},
               **{f"{n}_compile_s": results[n][1] for n in results}}
        for n in steps:
            if n != "ppl":
                row[f"{n}_diff"] = abs(float(steps[n](params, keys[0], data)[0]) - value)
        rows.append(row)
        print(f"{model:<8}{label:>12}  {_ms(row, 'ppl'):>8} {_ms(row, 'jax'):>8} "
              f"{_ms(row, 'numpyro'):>11}  {_ratio(row, 'jax'):>8} {_ratio(row, 'numpyro'):>11}  "
              f"{_compile(row, 'ppl'):>9}/{_compile(row, 'jax')}/{_compile(row, 'numpyro')}"
              f"  {_diff(row, 'jax'):>14}, {_diff(row, 'numpyro')}", flush=True)
    return rows


if __name__ == "__main__":
    main()
