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
- ``learned_baseline``: the same with a learned baseline per step, a dense layer of
  the detached LSTM state (Pyro's AIR example's);
- ``enum``: the ELBO, z_pres enumerated: each image's expectation is its own, so
  its 2^T presence paths are summed exactly, the later steps of that image
  re-run for each value;
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
ESTIMATORS = ("reinforce", "baseline", "learned_baseline", "enum", "mvd", "hybrid",
              "iwelbo_reinforce", "iwelbo_mvd", "rws")


def load_module():
    """The compiled ppl module of ``air.ppl``."""
    return ppl.load(os.path.join(HERE, "air.ppl"))


def objective(module, estimator: str, images, K: int | None = None, **sizes):
    """The objective that trains AIR on ``images`` ([B, C, C]) with ``estimator``: a plate
    over the images of one expectation each (``air.ppl``'s ``air_elbo``, ``air_iwelbo``,
    ``air_rws``), its choices' estimators set by address.

    ``sizes`` override the default ones (``SIZES``): T steps, W x W windows, z_what of D
    numbers, H hidden units in the decoder and encoder, an LSTM of L units. Its traced
    input, as ``obj.compiled_value_and_grad()`` takes it, is ``[images]``:

        >>> m = load_module()
        >>> obj = objective(m, "reinforce", x)             # doctest: +SKIP
        >>> params = obj.init(jax.random.PRNGKey(0))       # doctest: +SKIP
        >>> value, grads = obj.compiled_value_and_grad()(params, key, [x])  # doctest: +SKIP

    ``K``: the particles of the iwelbo (default 2) and rws (default 10) objectives.
    """
    images = jnp.asarray(images, jnp.float32)
    z = {**SIZES, **sizes}
    net = (z["T"], z["W"], z["D"], z["H"], z["L"])
    if estimator in ("baseline", "learned_baseline"):
        return module.air_elbo(images, *net, 1 if estimator == "baseline" else 2)
    if estimator in ("reinforce", "enum", "mvd"):
        return module.air_elbo(images, *net, 0).with_estimators({"z_pres": estimator})
    if estimator == "hybrid":
        return module.air_elbo(images, *net, 0).with_estimators(
            {"z_pres": "mvd", "z_where": "mvd"})
    if estimator in ("iwelbo_reinforce", "iwelbo_mvd"):
        return module.air_iwelbo(images, *net, K or 2).with_estimators(
            {"z_pres": estimator.split("_")[1]})
    if estimator == "rws":
        return module.air_rws(images, *net, K or 10).with_estimators({"z_pres": "reinforce"})
    raise ValueError(f"unknown estimator {estimator!r}; one of {', '.join(ESTIMATORS)}")


def counter(module, C: int = 32, **sizes):
    """``count(params, key, images)``: the number of steps with z_pres = 1 in one draw of the
    family for each image of ``images`` ([B, C, C]): int32 [B], jitted."""
    z = {**SIZES, **sizes}
    family = module.air_family(jnp.zeros((C, C), jnp.float32), z["T"], z["W"], z["D"],
                               z["H"], z["L"], 0)
    entry, _ = family._simulate_entry()
    names = list(entry.program.params)

    @jax.jit
    def count(params, key, images):
        def one(k, image):
            (values, _), _ = entry.run({p: params[p] for p in names}, k, [image])
            return jnp.sum(values["z_pres"]).astype(jnp.int32)

        return jax.vmap(one)(jax.random.split(key, images.shape[0]), images)

    return count


def train(module, estimator, images, held_out, held_counts, params, seconds,
          batch, lr, key, count, log=print, sizes=None):
    """Adam on ``estimator``'s objective per image for ``seconds`` of wall-clock time:
    ``ppl.fit`` over shuffled minibatches of ``batch`` images, one call per epoch, each
    resuming the last (``resume=``), the count accuracy on ``held_out`` after each.
    Returns a dict of the history (time, objective per image, count accuracy) and timings.

    The first epoch's time includes compiling: the time axis counts it as a median
    epoch, and ``compile_s`` is the rest."""
    def make(b):
        return objective(module, estimator, b, **(sizes or {}))

    per_epoch = images.shape[0] // batch
    # Every estimator starts from the same networks; a running baseline's state at 0.
    init = make(images[:batch]).init(key)
    params = {p: params.get(p, v) for p, v in init.items()}

    def accuracy(params, key):
        return float(jnp.mean(count(params, key, held_out) == held_counts))

    optimizer = optax.adam(lr)  # one object: fit's compiled chunk is cached by it
    history = [(0.0, float("nan"), accuracy(params, key))]
    result, epoch_s, first_s = None, [], 0.0
    while result is None or sum(epoch_s) < seconds:
        start = time.perf_counter()
        result = ppl.fit(make, data=images, batch_size=batch, per_datapoint=True,
                         steps=(len(history)) * per_epoch, chunk=per_epoch, key=key,
                         params=params if result is None else None, resume=result,
                         optimizer=optimizer, progress=False)
        took = time.perf_counter() - start
        if len(history) == 1:
            first_s = took
        else:
            epoch_s.append(took)
        if result.status == "failed":
            log(f"  {estimator:<17} stopped: {result.message}")
            break
        elapsed = sum(epoch_s) + (np.median(epoch_s) if epoch_s else 0.0)
        key, sub = jax.random.split(key)
        history.append((elapsed, float(np.mean(result.history[-per_epoch:])),
                        accuracy(result.params, sub)))
        log(f"  {estimator:<17} epoch {len(history) - 1:>3}  {elapsed:6.1f} s  objective/image "
            f"{history[-1][1]:9.2f}  count accuracy {history[-1][2]:.3f}")
    typical = float(np.median(epoch_s)) if epoch_s else first_s
    if epoch_s:  # the first epoch's point on the time axis: a median epoch
        history = [history[0]] + [(t if i else typical, o, a) for i, (t, o, a) in
                                  enumerate(history[1:])]
    return {"estimator": estimator, "compile_s": first_s - typical if epoch_s else first_s,
            "epochs": len(history) - 1, "s_per_epoch": typical, "history": history,
            "status": result.status, "params": result.params}


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
        # XLA's backend unoptimised, to compile faster (the same program): ppl/jit.py.
        os.environ.setdefault("PPL_FAST_COMPILE", "1")
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
    count = counter(module, **sizes)
    results = []
    for name in estimators:
        results.append(train(module, name, images, held_out, held_counts, params,
                             args.seconds, args.batch, args.lr, jax.random.PRNGKey(1), count,
                             sizes=sizes))
    print(f"\n{'estimator':<18}{'compile s':>10}{'s/epoch':>9}{'epochs':>7}"
          f"{'objective/image':>17}{'count acc':>10}")
    for r in results:
        _, obj, acc = r["history"][-1]
        print(f"{r['estimator']:<18}{r['compile_s']:>10.1f}{r['s_per_epoch']:>9.2f}"
              f"{r['epochs']:>7}{obj:>17.2f}{acc:>10.3f}")
        if r["status"] != "completed":
            print(f"  ({r['estimator']}: {r['status']})")
    if not args.quick:
        plot(results, args.plot)
    return results


if __name__ == "__main__":
    main()
