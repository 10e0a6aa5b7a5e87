"""Attend-Infer-Repeat on multi-digit images, trained with each gradient estimator.

The model and family (``air.ppl``), shared with the Pyro benchmark: up to T = 3 objects, a
bernoulli z_pres gated by the previous step's, z_where (scale, row and column
shift) and z_what (20 numbers, decoded to a 16x16 window written into the
32x32 canvas by a spatial transformer); the family is an LSTM over the image
and its previous choices. Each estimator below trains it for the same
wall-clock budget from the same initial parameters, and the script reports
seconds per epoch, the objective and the count accuracy (the number of steps
with z_pres = 1 under one draw of the family, against the true number of
digits, on held-out images) against wall-clock time: a table, and PNG plots
(as Figure 7 of the programmable-VI paper) when matplotlib is installed.

    python examples/air/air.py                 # every estimator, a few minutes on 2 cores
    python examples/air/air.py --only enum     # one of them
    python examples/air/air.py --quick         # a few steps on tiny data (the tests run it)

The estimators (names as ``--only`` and ``objective()`` take them):

- ``reinforce``: the ELBO, z_pres by the score function;
- ``baseline``: the same with a running-average baseline (``running(0.9)``);
- ``enum``: the ELBO, z_pres enumerated; in the plate over the batch, each image's
  z_pres is summed over {0, 1} with the other images' at their sampled values
  (local expectation gradients), and the loop's later steps are re-run for each;
- ``mvd``: the ELBO, z_pres by its measure-valued derivative;
- ``hybrid``: the ELBO with measure-valued derivatives for z_pres and z_where
  (the location: the normal's weak derivative), z_what reparameterised;
- ``iwelbo_reinforce``, ``iwelbo_mvd``: the importance-weighted bound, K = 2;
- ``rws``: reweighted wake-sleep (wake-p and wake-q), K = 10.

z_where and z_what are reparameterised unless said otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import ppl

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from data import multi_digits  # noqa: E402  (the module beside this script)

SIZES = {"T": 3, "W": 16, "D": 20, "H": 200, "L": 256}  # the benchmark's (the canvas: the images')
QUICK_SIZES = {"T": 2, "W": 4, "D": 2, "H": 8, "L": 8}  # --quick (the test suite's): tiny networks
ESTIMATORS = ("reinforce", "baseline", "enum", "mvd", "hybrid", "iwelbo_reinforce",
              "iwelbo_mvd", "rws")


def load_module():
    """The compiled ppl module of ``air.ppl``."""
    return ppl.load(os.path.join(HERE, "air.ppl"))


def objective(module, estimator: str, images, K: int | None = None, **sizes):
    """The objective that trains AIR on ``images`` ([B, C, C]) with ``estimator``.

    ``sizes`` override the default ones (``SIZES``): T steps, W x W windows, z_what of D
    numbers, H hidden units in the decoder and encoder, an LSTM of L units.

    Its traced inputs, in the order ``obj.compiled_value_and_grad()`` takes them, are
    ``[images, images]``: the model's observation x, then the family's argument:

        >>> m = load_module()
        >>> obj = objective(m, "reinforce", x)             # doctest: +SKIP
        >>> params = obj.init(jax.random.PRNGKey(0))       # doctest: +SKIP
        >>> value, grads = obj.compiled_value_and_grad()(params, key, [x, x])  # doctest: +SKIP

    ``K``: the particles of the iwelbo (default 2) and rws (default 10) objectives.
    """
    images = jnp.asarray(images, jnp.float32)
    z = {**SIZES, **sizes}
    B, C = images.shape[0], images.shape[-1]
    target = module.air_model(B, z["T"], C, z["W"], z["D"], z["H"]) | {"x": images}
    fam = (z["T"], z["W"], z["D"], z["H"], z["L"])
    family = module.air_family(images, *fam)
    if estimator == "baseline":
        return ppl.stdlib.elbo(target, module.air_family_baselined(images, *fam))
    if estimator in ("reinforce", "enum", "mvd"):
        return ppl.stdlib.elbo(target, family).with_estimators({"z_pres": estimator})
    if estimator == "hybrid":
        return ppl.stdlib.elbo(target, family).with_estimators({"z_pres": "mvd", "z_where": "mvd"})
    if estimator in ("iwelbo_reinforce", "iwelbo_mvd"):
        return ppl.stdlib.iwelbo(target, family, K=K or 2).with_estimators(
            {"z_pres": estimator.split("_")[1]})
    if estimator == "rws":
        return ppl.stdlib.rws(target, family, K=K or 10).with_estimators({"z_pres": "reinforce"})
    raise ValueError(f"unknown estimator {estimator!r}; one of {', '.join(ESTIMATORS)}")


def counter(module, B: int, C: int = 32, **sizes):
    """``count(params, key, images)``: the number of steps with z_pres = 1 in one draw of the
    family for each of ``B`` images ([B, C, C]): int32 [B], jitted."""
    z = {**SIZES, **sizes}
    family = module.air_family(jnp.zeros((B, C, C), jnp.float32), z["T"], z["W"], z["D"],
                               z["H"], z["L"])
    entry, _ = family._simulate_entry()
    names = list(entry.program.params)

    @jax.jit
    def count(params, key, images):
        (values, _), _ = entry.run({p: params[p] for p in names}, key, [images])
        return jnp.sum(values["z_pres"], axis=0).astype(jnp.int32)

    return count


def train(module, estimator, images, held_out, held_counts, params, seconds,
          batch, lr, key, count, log=print, compiler_options=None, sizes=None):
    """Adam on ``estimator``'s objective for ``seconds`` of wall-clock time (after
    compilation), epochs of shuffled minibatches of ``batch`` images. Returns a dict of
    the history (time, objective per image, count accuracy) and timings."""
    n = images.shape[0] // batch * batch
    obj = objective(module, estimator, images[:batch], **(sizes or {}))
    step = obj.compiled_value_and_grad()
    entry, _ = obj.compiled()
    running = {p: info.running for p, info in entry.program.params.items()
               if info.running is not None}
    # The baselined family's parameters start where air_family's do, a running
    # baseline's state at 0 (its init).
    shared = lambda p: p.replace("air_family_baselined.", "air_family.")  # noqa: E731
    params = {p: params[shared(p)] if shared(p) in params
              else jnp.zeros(info.type.shape, jnp.float32)
              for p, info in entry.program.params.items()}
    optimizer = optax.adam(lr)

    def update(params, opt_state, key, xb):
        value, grads = step(params, key, [xb, xb])
        finite = jnp.isfinite(value) & jnp.all(jnp.stack(
            [jnp.all(jnp.isfinite(g)) for g in jax.tree_util.tree_leaves(grads)]))
        grads = jax.tree_util.tree_map(lambda g: jnp.where(finite, g, 0.0), grads)
        descent = {p: jnp.zeros_like(g) if p in running else -g for p, g in grads.items()}
        updates, new_opt = optimizer.update(descent, opt_state, params)
        new = optax.apply_updates(params, updates)
        for p, decay in running.items():
            new[p] = params[p] + (1.0 - decay) * grads[p]
        return new, new_opt, value, finite

    def accuracy(params, key):
        counted = count({shared(p): v for p, v in params.items()}, key, held_out)
        return float(jnp.mean(counted == held_counts))

    opt_state = optimizer.init(params)
    t0 = time.perf_counter()
    key, sub = jax.random.split(key)
    update = jax.jit(update).lower(params, opt_state, sub, images[:batch]).compile(
        compiler_options)
    jax.block_until_ready(update(params, opt_state, sub, images[:batch]))
    compile_s = time.perf_counter() - t0
    history = [(0.0, float("nan"), accuracy(params, key))]
    elapsed, epochs, skipped, epoch_s = 0.0, 0, 0, []
    rng = np.random.default_rng(0)
    while epochs == 0 or elapsed < seconds:
        order = rng.permutation(images.shape[0])[:n].reshape(-1, batch)
        start = time.perf_counter()
        values = []
        for idx in order:
            key, sub = jax.random.split(key)
            params, opt_state, value, finite = update(params, opt_state, sub, images[idx])
            values.append(value)
            skipped += int(not finite)
        values = np.asarray(jax.block_until_ready(values))
        epoch_s.append(time.perf_counter() - start)
        elapsed += epoch_s[-1]
        epochs += 1
        key, sub = jax.random.split(key)
        ok = values[np.isfinite(values)]
        history.append((elapsed, float(np.mean(ok)) / batch if ok.size else float("nan"),
                        accuracy(params, sub)))
        log(f"  {estimator:<17} epoch {epochs:>3}  {elapsed:6.1f} s  objective/image "
            f"{history[-1][1]:9.2f}  count accuracy {history[-1][2]:.3f}")
    return {"estimator": estimator, "compile_s": compile_s, "epochs": epochs,
            "s_per_epoch": float(np.median(epoch_s)), "history": history,
            "skipped_steps": skipped, "params": params}


def plot(results, path):
    """Objective and count accuracy against wall-clock time, one line per estimator."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plots")
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for r in results:
        t, obj, acc = np.asarray(r["history"]).T
        axes[0].plot(t[1:], obj[1:], label=r["estimator"])
        axes[1].plot(t, acc, label=r["estimator"])
    axes[0].set(xlabel="wall-clock time (s)", ylabel="objective per image (training)")
    axes[1].set(xlabel="wall-clock time (s)", ylabel="count accuracy (held out)", ylim=(0, 1))
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"plots: {path}")
    return path


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=ESTIMATORS, action="append", help="estimators to run")
    ap.add_argument("--images", type=int, default=480, help="training images")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=20.0, help="training time per estimator")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--plot", default="air.png", help="where to write the plots")
    ap.add_argument("--quick", action="store_true", help="a few steps on tiny data")
    args = ap.parse_args(argv)
    sizes = {}
    if args.quick:
        args.images, args.batch, args.seconds = 4, 2, 0.0
        args.only = args.only or ["reinforce", "mvd"]
        sizes = QUICK_SIZES
    estimators = args.only or list(ESTIMATORS)
    images, _ = multi_digits(args.images, seed=0)
    held_out, held_counts = multi_digits(2 * args.batch if args.quick else 256, seed=1)
    images, held_out = jnp.asarray(images), jnp.asarray(held_out)
    held_counts = jnp.asarray(held_counts)
    module = load_module()
    print(f"AIR: {args.images} training images, batch {args.batch}, {args.seconds:.0f} s per "
          f"estimator, {jax.devices()[0].device_kind} ({jax.default_backend()})")
    params = objective(module, "reinforce", images[:args.batch], **sizes).init(
        jax.random.PRNGKey(0))
    count = counter(module, held_out.shape[0], **sizes)
    # --quick: XLA's backend unoptimised, to compile faster (the program is the same).
    options = {"xla_backend_optimization_level": 0} if args.quick else None
    results = []
    for name in estimators:
        results.append(train(module, name, images, held_out, held_counts, params,
                             args.seconds, args.batch, args.lr, jax.random.PRNGKey(1), count,
                             compiler_options=options, sizes=sizes))
    print(f"\n{'estimator':<18}{'compile s':>10}{'s/epoch':>9}{'epochs':>7}"
          f"{'objective/image':>17}{'count acc':>10}")
    for r in results:
        _, obj, acc = r["history"][-1]
        print(f"{r['estimator']:<18}{r['compile_s']:>10.1f}{r['s_per_epoch']:>9.2f}"
              f"{r['epochs']:>7}{obj:>17.2f}{acc:>10.3f}")
        if r["skipped_steps"]:
            print(f"  ({r['skipped_steps']} steps with a non-finite estimate were skipped)")
    if not args.quick:
        plot(results, args.plot)
    return results


if __name__ == "__main__":
    main()
