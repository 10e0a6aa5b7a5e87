"""Latency benchmark: time to first result of the coin's fit, ppl vs hand-written JAX.

The workload is the README's main fit: the beta-bernoulli coin of
``examples/coin.ppl`` conditioned on the 50 flips of
``examples/coin_flips.csv``, its ``coin_guide`` (a beta with two positive
learnable concentrations) as the family, 2000 steps of ``optax.adam(0.05)``
on the ELBO. Each run is a **cold process** (a fresh Python), timed from
its start to the fitted parameters in hand, so the number is what a user
waits for: the imports, ppl's parse, check and lowering, XLA's compile and
the 2000 steps (the clock stops when the result is in hand, before the
process exits). The hand-written version is the same fit in JAX and optax
(a reparameterised ``jax.random.beta`` draw, the same log densities, the same
chunks of 100 steps in one ``lax.scan``). Runs alternate between the two, and
the report gives the median of each and their ratio (target: within 1.2x).

Inside the ppl process it also reports where the time goes (import,
``ppl.load``, the first fit) and that a second ``ppl.fit`` of the same
objective with data of the same shapes compiles nothing (its seconds and its
count of XLA compiles).

    python examples/benchmarks/latency.py            # 5 cold runs of each
    python examples/benchmarks/latency.py --runs 1   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1]

PPL_RUN = textwrap.dedent("""
    import time
    t0 = time.perf_counter()
    import json, sys
    import jax, jax.monitoring, numpy as np, optax
    import ppl
    t_import = time.perf_counter()
    compiles, xla = [], []
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, secs, **kw: (compiles.append(event), xla.append(secs))
        if event == "/jax/core/compile/backend_compile_duration" else None)
    m = ppl.load(sys.argv[1] + "/coin.ppl")
    t_load = time.perf_counter()
    flips = np.loadtxt(sys.argv[1] + "/coin_flips.csv", skiprows=1, dtype=np.int32)
    opt = optax.adam(0.05)
    obj = ppl.stdlib.elbo(m.coin(flips.size) | {"flips": flips}, m.coin_guide())
    result = ppl.fit(obj, steps=2000, optimizer=opt, progress=False)
    a = float(result.constrained_params["coin_guide.a"])
    t_fit, first_result = time.perf_counter(), time.time()
    xla_s = sum(xla)
    compiles.clear()
    again = ppl.stdlib.elbo(m.coin(flips.size) | {"flips": flips}, m.coin_guide())
    ppl.fit(again, steps=2000, optimizer=opt, progress=False)
    t_again = time.perf_counter()
    print(json.dumps({"import": t_import - t0, "load": t_load - t_import,
                      "fit": t_fit - t_load, "total": t_fit - t0, "a": a, "xla": xla_s,
                      "second_fit": t_again - t_fit, "second_fit_compiles": len(compiles),
                      "first_result": first_result}))
""")

JAX_RUN = textwrap.dedent("""
    import time
    t0 = time.perf_counter()
    import json, sys
    import jax, jax.monitoring, jax.numpy as jnp, numpy as np, optax
    from jax.scipy.special import betaln
    t_import = time.perf_counter()
    xla = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, secs, **kw: xla.append(secs)
        if event == "/jax/core/compile/backend_compile_duration" else None)
    flips = jnp.asarray(np.loadtxt(sys.argv[1] + "/coin_flips.csv", skiprows=1, dtype=np.int32))

    def log_beta(p, a, b):
        return (a - 1) * jnp.log(p) + (b - 1) * jnp.log1p(-p) - betaln(a, b)

    def elbo(u, key):
        a, b = jnp.exp(u["a"]), jnp.exp(u["b"])
        p = jax.random.beta(key, a, b)
        lp = log_beta(p, 2.0, 2.0) + jnp.sum(jnp.where(flips == 1, jnp.log(p), jnp.log1p(-p)))
        return lp - log_beta(p, a, b)

    opt = optax.adam(0.05)

    @jax.jit
    def chunk(u, state, key, first):
        def step(carry, s):
            u, state = carry
            value, g = jax.value_and_grad(elbo)(u, jax.random.fold_in(key, s))
            updates, state = opt.update(jax.tree_util.tree_map(lambda x: -x, g), state, u)
            return (optax.apply_updates(u, updates), state), value
        (u, state), values = jax.lax.scan(step, (u, state), first + jnp.arange(100))
        return u, state, values

    u = {"a": jnp.float32(0.0), "b": jnp.float32(0.0)}
    state = opt.init(u)
    key = jax.random.PRNGKey(0)
    for first in range(0, 2000, 100):
        u, state, values = chunk(u, state, key, first)
    a = float(jnp.exp(u["a"]))
    t_fit, first_result = time.perf_counter(), time.time()
    print(json.dumps({"import": t_import - t0, "fit": t_fit - t_import, "total": t_fit - t0,
                      "a": a, "xla": sum(xla), "first_result": first_result}))
""")


def cold_run(script: str) -> tuple[float, dict]:
    """Seconds from starting a fresh interpreter to its first result (the fitted
    parameters in hand, by the wall clock), and what it reports."""
    env = dict(os.environ)
    start = time.time()
    out = subprocess.run([sys.executable, "-c", script, str(EXAMPLES)], capture_output=True,
                         text=True, env=env, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    report = json.loads(out.stdout.strip().splitlines()[-1])
    return report["first_result"] - start, report


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="cold runs of each (default 5)")
    options = parser.parse_args(argv)
    rows: dict[str, list] = {"ppl": [], "jax": []}
    for _ in range(options.runs):
        for name, script in (("ppl", PPL_RUN), ("jax", JAX_RUN)):
            rows[name].append(cold_run(script))
    ppl_s = statistics.median(w for w, _ in rows["ppl"])
    jax_s = statistics.median(w for w, _ in rows["jax"])
    inside = sorted(rows["ppl"], key=lambda r: r[0])[len(rows["ppl"]) // 2][1]
    by_hand = sorted(rows["jax"], key=lambda r: r[0])[len(rows["jax"]) // 2][1]
    print(f"time to first result, cold process, 2000-step coin fit (median of {options.runs}):")
    print(f"  ppl               {ppl_s:6.2f} s   (import {inside['import']:.2f} s, "
          f"ppl.load {inside['load']:.2f} s, first fit {inside['fit']:.2f} s, "
          f"of which XLA compiles {inside['xla']:.2f} s)")
    print(f"  hand-written JAX  {jax_s:6.2f} s   (import {by_hand['import']:.2f} s, "
          f"fit {by_hand['fit']:.2f} s, of which XLA compiles {by_hand['xla']:.2f} s)")
    print(f"  ratio             {ppl_s / jax_s:6.2f}x  (target: within 1.2x)")
    print(f"  a second ppl.fit of the same objective: {inside['second_fit']:.3f} s, "
          f"{inside['second_fit_compiles']} XLA compiles")
    return {"ppl_s": ppl_s, "jax_s": jax_s, "ratio": ppl_s / jax_s, "ppl": inside, "jax": by_hand,
            "second_fit_compiles": inside["second_fit_compiles"]}


if __name__ == "__main__":
    main()
