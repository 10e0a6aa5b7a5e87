"""Discrete-latent benchmark: REINFORCE, enumeration and MVD, ppl vs hand-written JAX vs NumPyro.

BENCHMARKS.md's discrete-latent workload: a mixture of K = 5 two-dimensional
Gaussians (``discrete.ppl``) with a categorical assignment ``z`` per data point
in a plate, learnable component means and mixture logits, and a variational
family that gives each point its own categorical over the components,
amortised by a small network 2 -> 32 -> K. One ELBO gradient step for a
minibatch of N points, with each of the three estimators of the discrete
choice ``z``; ppl chooses it from Python with
``obj.with_estimators({"z": estimator})``. Reports the median time per step of
each implementation (after warm-up, with ``block_until_ready``), the ratios,
and the first-call (compile) time.

What each implementation computes, per estimator:

- ``reinforce``: ppl's rule, which here (the ELBO is a sum over the points)
  multiplies each point's score by that point's own terms only; NumPyro
  ``TraceGraph_ELBO``, which Rao-Blackwellises over the plate the same way;
  hand-written JAX, the plain score-function surrogate (ℓ times the score of
  the whole batched choice): same cost, much higher variance.
- ``enum``: ppl sums over the joint support exactly (the ELBO is a sum over
  the points, so K + 1 runs of it give every point's term at every value);
  hand-written JAX enumerates every point's categorical
  exactly (an N x K table: the exact ELBO and gradient); NumPyro
  ``TraceEnum_ELBO`` with the guide's site enumerated
  (``infer={"enumerate": "parallel"}``), also exact. It needs the optional
  package ``funsor`` (``pip install funsor``); without it the column is "—".
- ``mvd``: ppl's rule (the categorical's weak derivative: Σ_v ∂q_i(v)·ℓ(z with
  z_i = v) for each point i); hand-written JAX, the same estimator using that
  the ELBO is a sum over points, so only point i's term changes. NumPyro has
  no measure-valued derivative estimator: "—".

    python examples/benchmarks/discrete.py                  # batches 256, 1024, 4096
    python examples/benchmarks/discrete.py --estimator enum # one estimator
    python examples/benchmarks/discrete.py --quick          # a smoke run (tests use it)
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.infer import TraceEnum_ELBO, TraceGraph_ELBO

import ppl

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import time_steps  # noqa: E402  (the helper beside this script)

HERE = os.path.dirname(os.path.abspath(__file__))
COMPONENTS = 5
ESTIMATORS = ("reinforce", "enum", "mvd")
GUIDE_PARAMS = ("assignments.W1", "assignments.b1", "assignments.W2", "assignments.b2")
HAVE_FUNSOR = importlib.util.find_spec("funsor") is not None  # NumPyro's TraceEnum_ELBO needs it


def make_data(rng: np.random.Generator, n: int, k: int) -> jnp.ndarray:
    """``n`` points from a mixture of ``k`` unit Gaussians centred on a circle of radius 3."""
    angles = 2 * np.pi * np.arange(k) / k
    centres = 3.0 * np.stack([np.cos(angles), np.sin(angles)], -1)
    return jnp.asarray(centres[rng.integers(k, size=n)] + rng.normal(size=(n, 2)), jnp.float32)


# ------------------------------------------------------------------ hand-written JAX


def _guide_logits(p, x):
    h = jnp.tanh(x @ p["assignments.W1"] + p["assignments.b1"])
    return h @ p["assignments.W2"] + p["assignments.b2"]  # [N, K]


def _log_joint(p, x, z):
    """log p(x_i, z_i) per point, at given assignments ``z`` of shape [N]."""
    log_prior = jax.nn.log_softmax(p["mixture.weights"])[z]
    return log_prior + jax.scipy.stats.norm.logpdf(x, p["mixture.means"][z]).sum(-1)


def _log_joint_table(p, x):
    """log p(x_i, z_i = k) for every point and component: [N, K]."""
    log_lik = jax.scipy.stats.norm.logpdf(x[:, None, :], p["mixture.means"]).sum(-1)
    return jax.nn.log_softmax(p["mixture.weights"]) + log_lik


def _sample(key, log_q):
    z = jax.random.categorical(key, jax.lax.stop_gradient(log_q))
    return z, jnp.take_along_axis(log_q, z[:, None], 1)[:, 0]  # z and log q(z_i) per point


def handwritten_reinforce(p, key, x):
    """The sampled ELBO ℓ, with gradient ∂ℓ + ℓ·∂log q(z) (a score-function surrogate)."""
    log_q = jax.nn.log_softmax(_guide_logits(p, x))
    z, log_q_z = _sample(key, log_q)
    ell = jnp.sum(_log_joint(p, x, z) - log_q_z)
    score = jnp.sum(log_q_z)
    return ell + jax.lax.stop_gradient(ell) * (score - jax.lax.stop_gradient(score))


def handwritten_enum(p, key, x):
    """The exact ELBO: each point's categorical enumerated (``key`` is unused)."""
    log_q = jax.nn.log_softmax(_guide_logits(p, x))
    return jnp.sum(jnp.exp(log_q) * (_log_joint_table(p, x) - log_q))


def handwritten_mvd(p, key, x):
    """The sampled ELBO ℓ, with gradient ∂ℓ + Σ_i Σ_v ∂q_i(v)·ℓ(z with z_i = v).

    ℓ is a sum of per-point terms, and Σ_v ∂q_i(v) = 0, so only point i's own
    term ℓ_i(v) = log p(x_i, v) - log q_i(v) is needed: an N x K table.
    """
    log_q = jax.nn.log_softmax(_guide_logits(p, x))
    z, log_q_z = _sample(key, log_q)
    ell = jnp.sum(_log_joint(p, x, z) - log_q_z)
    q = jnp.exp(log_q)
    alternatives = jax.lax.stop_gradient(_log_joint_table(p, x) - log_q)
    return ell + jnp.sum((q - jax.lax.stop_gradient(q)) * alternatives)


HANDWRITTEN = {"reinforce": handwritten_reinforce, "enum": handwritten_enum, "mvd": handwritten_mvd}


# ------------------------------------------------------------------ NumPyro


def numpyro_model(x):
    means = numpyro.param("mixture.means", None)
    weights = numpyro.param("mixture.weights", None)
    with numpyro.plate("data", x.shape[0]):
        z = numpyro.sample("z", dist.Categorical(logits=weights))
        numpyro.sample("x", dist.Normal(means[z], 1.0).to_event(1), obs=x)


def numpyro_guide(x, enumerated=False):
    p = {k: numpyro.param(k, None) for k in GUIDE_PARAMS}
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("z", dist.Categorical(logits=_guide_logits(p, x)),
                       infer={"enumerate": "parallel"} if enumerated else {})


def numpyro_objective(estimator: str):
    """NumPyro's ELBO for this estimator, or None where NumPyro cannot express it."""
    if estimator == "reinforce":
        loss, guide = TraceGraph_ELBO(), numpyro_guide
    elif estimator == "enum" and HAVE_FUNSOR:
        loss, guide = TraceEnum_ELBO(), functools.partial(numpyro_guide, enumerated=True)
    else:
        return None

    def f(p, key, x):
        return -loss.loss(key, p, numpyro_model, guide, x)
    return f


# ------------------------------------------------------------------ ppl and the table


def ppl_objective(m, x, k: int, estimator: str):
    """ppl's ELBO of the mixture for the minibatch ``x``, with ``estimator`` for ``z``."""
    target = m.mixture(x.shape[0], k) | {"x": x}
    return ppl.stdlib.elbo(target, m.assignments(x, k)).with_estimators({"z": estimator})


def _ms(row, name):
    return f"{row[name + '_ms']:.3f}" if name + "_ms" in row else "—"


def _ratio(row, name):
    return f"{row['ppl_ms'] / row[name + '_ms']:.2f}" if name + "_ms" in row else "—"


def _compile(row, name):
    return f"{row[name + '_compile_s']:.2f}" if name + "_compile_s" in row else "—"


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, action="append", help="batch sizes N (default 256, 1024, 4096)")
    ap.add_argument("--estimator", choices=ESTIMATORS, action="append", help="default: all three")
    ap.add_argument("--components", type=int, default=COMPONENTS, help="mixture components K")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--quick", action="store_true", help="one small batch, few repetitions")
    ap.add_argument("--only", choices=["ppl", "jax", "numpyro"],
                    help="run one implementation (to measure its peak memory with /usr/bin/time -v)")
    args = ap.parse_args(argv)
    batches = args.batch or ([64] if args.quick else [256, 1024, 4096])
    estimators = args.estimator or list(ESTIMATORS)
    reps = 3 if args.quick else args.reps
    k = args.components

    m = ppl.load(os.path.join(HERE, "discrete.ppl"))
    rng = np.random.default_rng(0)
    rows = []
    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), jax {jax.__version__}, "
          f"numpyro {numpyro.__version__}, K = {k}")
    print(f"{'estimator':<10}{'batch':>6}  {'ppl ms':>8} {'jax ms':>8} {'numpyro ms':>11}"
          f"  {'ppl/jax':>8} {'ppl/numpyro':>11}  {'compile s (ppl/jax/numpyro)':>28}")
    for estimator in estimators:
        for batch in batches:
            x = make_data(rng, batch, k)
            obj = ppl_objective(m, x, k, estimator)
            params = obj.init(jax.random.PRNGKey(0))
            raw_step = obj.compiled_value_and_grad()
            # Its traced inputs, in order: the observed points, the family's argument.
            ppl_step = lambda p, key, xb, raw_step=raw_step: raw_step(p, key, [xb, xb])  # noqa: E731
            steps = {"ppl": ppl_step, "jax": jax.jit(jax.value_and_grad(HANDWRITTEN[estimator]))}
            peer = numpyro_objective(estimator)
            if peer is not None:
                steps["numpyro"] = jax.jit(jax.value_and_grad(peer))
            if args.only:
                if args.only not in steps:
                    continue
                steps = {args.only: steps[args.only]}
            keys = jax.random.split(jax.random.PRNGKey(1), reps + 4)
            results = time_steps(steps, params, keys, x, reps)
            if args.only:
                ms, compile_s = results[args.only]
                print(f"{estimator:<10}{batch:>6}  {args.only}: {ms * 1e3:.3f} ms/step, "
                      f"first call {compile_s:.2f} s")
                continue
            row = {"estimator": estimator, "batch": batch,
                   **{f"{n}_ms": results[n][0] * 1e3 for n in results},
                   **{f"{n}_compile_s": results[n][1] for n in results}}
            rows.append(row)
            print(f"{estimator:<10}{batch:>6}  {_ms(row, 'ppl'):>8} {_ms(row, 'jax'):>8} "
                  f"{_ms(row, 'numpyro'):>11}  {_ratio(row, 'jax'):>8} {_ratio(row, 'numpyro'):>11}  "
                  f"{_compile(row, 'ppl'):>9}/{_compile(row, 'jax')}/{_compile(row, 'numpyro')}",
                  flush=True)
    return rows


if __name__ == "__main__":
    main()
