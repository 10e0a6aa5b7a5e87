"""VAE gradient-step benchmark: ppl vs hand-written JAX vs NumPyro, side by side.

BENCHMARKS.md's first workload: one single-sample reparameterised ELBO
gradient (and IWAE with K particles) for a minibatch of binarised 28x28
images, at batch sizes 64 to 1024. Reports the median time per step of each
implementation (after warm-up, with ``block_until_ready``), the ratios to
hand-written JAX, and the first-call (compile) time.

    python examples/benchmarks/vae.py                      # ELBO, batches 64..1024
    python examples/benchmarks/vae.py --iwae 5 --iwae 20   # also IWAE
    python examples/benchmarks/vae.py --quick              # a smoke run (tests use it)
"""

from __future__ import annotations

import argparse
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.infer import RenyiELBO, Trace_ELBO

import ppl

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import time_steps  # noqa: E402  (the helper beside this script)

HERE = os.path.dirname(os.path.abspath(__file__))
LATENT, HIDDEN, PIXELS = 10, 200, 784


# ------------------------------------------------------------------ hand-written JAX


def _leaky(x):
    return jax.nn.leaky_relu(x, 0.01)


def _encode(p, x):
    h = _leaky(x @ p["encoder.V1"] + p["encoder.c1"])
    out = h @ p["encoder.V2"] + p["encoder.c2"]
    return out[..., :LATENT], jax.nn.softplus(out[..., LATENT:])


def _decode_logits(p, z):
    return _leaky(z @ p["decoder.W1"] + p["decoder.b1"]) @ p["decoder.W2"] + p["decoder.b2"]


def _log_weights(p, key, x, k):
    mu, scale = _encode(p, x)
    eps = jax.random.normal(key, (k,) + mu.shape)
    z = mu + scale * eps
    log_q = jax.scipy.stats.norm.logpdf(z, mu, scale).sum((-1, -2))
    log_prior = jax.scipy.stats.norm.logpdf(z).sum((-1, -2))
    logits = _decode_logits(p, z)
    log_lik = (x * logits - jax.nn.softplus(logits)).sum((-1, -2))
    return log_prior + log_lik - log_q  # [k]


def handwritten_elbo(p, key, x):
    return _log_weights(p, key, x, 1)[0]


def handwritten_iwae(k):
    def f(p, key, x):
        # IWAE over the whole batch's joint weights, as IWAE of the model with a plate.
        return jax.nn.logsumexp(_log_weights(p, key, x, k)) - jnp.log(k)
    return f


# ------------------------------------------------------------------ NumPyro


def numpyro_model(x):
    W1 = numpyro.param("decoder.W1", None)
    b1 = numpyro.param("decoder.b1", None)
    W2 = numpyro.param("decoder.W2", None)
    b2 = numpyro.param("decoder.b2", None)
    with numpyro.plate("batch", x.shape[0]):
        z = numpyro.sample("z", dist.Normal(jnp.zeros(LATENT), 1.0).to_event(1))
        logits = _leaky(z @ W1 + b1) @ W2 + b2
        numpyro.sample("x", dist.Bernoulli(logits=logits).to_event(1), obs=x)


def numpyro_guide(x):
    p = {k: numpyro.param(k, None) for k in ("encoder.V1", "encoder.c1", "encoder.V2", "encoder.c2")}
    mu, scale = _encode(p, x)
    with numpyro.plate("batch", x.shape[0]):
        numpyro.sample("z", dist.Normal(mu, scale).to_event(1))


def numpyro_objective(loss):
    def f(p, key, x):
        return -loss.loss(key, p, numpyro_model, numpyro_guide, x)
    return f


# ------------------------------------------------------------------ the table


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, action="append", help="batch sizes (default 64..1024)")
    ap.add_argument("--iwae", type=int, action="append", default=[], help="IWAE particles K")
    ap.add_argument("--reps", type=int, default=50)
    ap.add_argument("--quick", action="store_true", help="one small batch, few repetitions")
    ap.add_argument("--only", choices=["ppl", "jax", "numpyro"],
                    help="run one implementation (to measure its peak memory with /usr/bin/time -v)")
    args = ap.parse_args(argv)
    batches = args.batch or ([32] if args.quick else [64, 128, 256, 512, 1024])
    reps = 3 if args.quick else args.reps

    m = ppl.load(os.path.join(HERE, "vae.ppl"))
    rng = np.random.default_rng(0)
    rows = []
    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), jax {jax.__version__}")
    print(f"{'objective':<10}{'batch':>6}  {'ppl ms':>8} {'jax ms':>8} {'numpyro ms':>11}"
          f"  {'ppl/jax':>8} {'ppl/numpyro':>11}  {'compile s (ppl/jax/numpyro)':>28}")
    for objective in ["elbo"] + [f"iwae{k}" for k in args.iwae]:
        for batch in batches:
            x = jnp.asarray(rng.random((batch, PIXELS)) < 0.3, jnp.float32)
            target = m.decoder(batch) | {"x": x}
            if objective == "elbo":
                obj = ppl.stdlib.elbo(target, m.encoder(x))
                hand, peer = handwritten_elbo, numpyro_objective(Trace_ELBO())
            else:
                k = int(objective[4:])
                obj = ppl.stdlib.iwelbo(target, m.encoder(x), K=k)
                hand = handwritten_iwae(k)
                peer = numpyro_objective(RenyiELBO(alpha=0.0, num_particles=k))
            params = obj.init(jax.random.PRNGKey(0))
            raw_step = obj.compiled_value_and_grad()
            # Its traced inputs, in order: the observed images, the encoder's argument.
            ppl_step = lambda p, k, xb, raw_step=raw_step: raw_step(p, k, [xb, xb])  # noqa: E731
            jax_step = jax.jit(jax.value_and_grad(hand))
            np_step = jax.jit(jax.value_and_grad(peer))
            keys = jax.random.split(jax.random.PRNGKey(1), reps + 4)
            steps = {"ppl": ppl_step, "jax": jax_step, "numpyro": np_step}
            if args.only:
                steps = {args.only: steps[args.only]}
            results = time_steps(steps, params, keys, x, reps)
            if args.only:
                ms, compile_s = results[args.only]
                print(f"{objective:<10}{batch:>6}  {args.only}: {ms * 1e3:.3f} ms/step, "
                      f"first call {compile_s:.2f} s")
                continue
            row = {"objective": objective, "batch": batch,
                   **{f"{n}_ms": results[n][0] * 1e3 for n in results},
                   **{f"{n}_compile_s": results[n][1] for n in results}}
            rows.append(row)
            print(f"{objective:<10}{batch:>6}  {row['ppl_ms']:>8.3f} {row['jax_ms']:>8.3f} "
                  f"{row['numpyro_ms']:>11.3f}  {row['ppl_ms'] / row['jax_ms']:>8.2f} "
                  f"{row['ppl_ms'] / row['numpyro_ms']:>11.2f}  "
                  f"{row['ppl_compile_s']:>9.2f}/{row['jax_compile_s']:.2f}/{row['numpyro_compile_s']:.2f}")
    return rows


if __name__ == "__main__":
    main()
