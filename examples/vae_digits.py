"""A VAE on real data: the 8x8 handwritten digits of scikit-learn, three objectives.

The 1,797 digit images that scikit-learn ships (``sklearn.datasets.load_digits``,
no download) are binarised (a pixel is 1 where its grey level, 0 to 16, is
above 8) and split into 1,500 training and 297 held-out images (a fixed
permutation). ``vae_digits.ppl`` (beside this script) holds the model of one
image (z ~ normal(0, I_8), a two-layer relu decoder to 64 Bernoulli logits), the
amortised family (a two-layer encoder to the mean and softplus scale of z) and
three objectives, each a sum over images of one bound per image: the ELBO,
the IWAE bound with K = 5 particles, and the same bound with doubly
reparameterised gradients (DReG, K = 5). One model and family is trained per
objective, all from the same initial networks, with Adam on the whole
training set every step (they also fit on minibatches, ``ppl.fit(lambda b:
m.digits_iwelbo(b, 5, 64), data=train, batch_size=100)``: the sum over the
objective's plate over the images is scaled by N/B). Each is then scored on the
held-out images by its ELBO (1,000 particles per image) and the IWAE-5000
estimate of log p(x) (5,000 particles per image, in chunks of images,
combined by log-mean-exp in the language), both in nats per image. Two PNGs
show decoder means of z drawn from the prior, and held-out images beside
their reconstructions (the decoder's mean at the encoder's mean).

    python examples/vae_digits.py            # a few minutes on 2 CPU cores
    python examples/vae_digits.py --quick    # a few steps on a few images (the test suite's run)

Needs scikit-learn (``pip install -e ".[digits]"``); matplotlib for the
pictures (``.[plot]``), which are skipped with a message without it.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

import ppl

SOURCE = Path(__file__).resolve().with_name("vae_digits.ppl")
LATENT = 8
HELD_OUT = 297
# Each objective: its declaration in vae_digits.ppl and its particles per image when trained.
OBJECTIVES = {"elbo": ("digits_elbo", 1), "iwelbo": ("digits_iwelbo", 5),
              "dreg": ("digits_dreg", 5)}
# The full run, and a quick one on a few images with small networks (the test suite's).
FULL = dict(steps=2000, width=64, lr=1e-2, n_train=None, n_held_out=HELD_OUT,
            elbo_particles=1000, iwae_particles=5000, chunk=33, pictures=True)
QUICK = dict(steps=20, width=16, lr=1e-2, n_train=100, n_held_out=20, elbo_particles=20,
             iwae_particles=50, chunk=10, pictures=True)


def load_model() -> ppl.Module:
    """The compiled program: ``decoder(width)`` (the model of one image), ``encoder(image,
    width)`` (its family) and the objectives ``digits_elbo``, ``digits_iwelbo``, ``digits_dreg``."""
    return ppl.load(SOURCE)


def load_digits(seed: int = 0, held_out: int = HELD_OUT) -> tuple[np.ndarray, np.ndarray]:
    """The binarised digits as float32 [n, 64], split into (train, held-out) by a fixed
    permutation. Needs scikit-learn, which ships the images."""
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError as e:
        raise SystemExit("this example needs scikit-learn: pip install -e \".[digits]\"") from e
    images = (sklearn_digits().data > 8).astype(np.float32)
    order = np.random.default_rng(seed).permutation(len(images))
    return images[order[held_out:]], images[order[:held_out]]


def network(params: dict, gen: str, net: str) -> dict:
    """The parameters of ``gen``'s network (called at ``net``) under the names the network's
    own gen has when called from Python: ``decoder.net.logits.W`` -> ``decode.logits.W``."""
    prefix = f"{gen}.net."
    return {f"{net}.{k[len(prefix):]}": v for k, v in params.items() if k.startswith(prefix)}


def train(m: ppl.Module, name: str, images: np.ndarray, steps: int, width: int, lr: float,
          params: dict, key) -> ppl.FitResult:
    """Fit one model and family by maximising objective ``name`` on every image each step,
    from the networks ``params``."""
    declaration, particles = OBJECTIVES[name]
    objective = getattr(m, declaration)(images, particles, width)
    optimizer = optax.adam(optax.cosine_decay_schedule(lr, steps, alpha=0.05))
    return ppl.fit(objective, steps=steps, optimizer=optimizer, key=key, params=params,
                   progress=False)


def held_out_bound(m: ppl.Module, declaration: str, params: dict, images: np.ndarray,
                   particles: int, width: int, chunk: int, key) -> float:
    """The mean per image of objective ``declaration`` with ``particles`` per image, over
    ``images`` in chunks of ``chunk`` images (one compiled program; memory stays small)."""
    total = 0.0
    for start in range(0, len(images), chunk):
        objective = getattr(m, declaration)(images[start:start + chunk], particles, width)
        total += float(objective.value(jax.random.fold_in(key, start), params))
    return total / len(images)


def decoder_means(m: ppl.Module, params: dict, z: np.ndarray, width: int) -> np.ndarray:
    """The decoder's pixel probabilities at each row of ``z`` [n, 8]: [n, 64]."""
    decode = m.decode(jnp.asarray(z, jnp.float32), width)
    trace, _ = decode.simulate(jax.random.PRNGKey(0), network(params, "decoder", "decode"))
    return np.asarray(jax.nn.sigmoid(trace.retval))


def reconstructions(m: ppl.Module, params: dict, images: np.ndarray, width: int) -> np.ndarray:
    """The decoder's mean at the encoder's mean of z, for each image: [n, 64]."""
    encode = m.encode(jnp.asarray(images), width)
    trace, _ = encode.simulate(jax.random.PRNGKey(0), network(params, "encoder", "encode"))
    return decoder_means(m, params, np.asarray(trace.retval)[:, :LATENT], width)


def save_pictures(m: ppl.Module, fits: dict, held_out: np.ndarray, width: int,
                  out_dir: Path) -> list[Path]:
    """vae_digits_samples.png (decoder means of z ~ prior, a row per objective) and
    vae_digits_reconstructions.png (held-out images, then each objective's reconstructions)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib is not installed: pip install -e \".[plot]\" for the pictures)")
        return []
    columns = 16
    z = np.asarray(jax.random.normal(jax.random.PRNGKey(7), (columns, LATENT)))
    shown = held_out[:columns]
    rows = {
        "samples": {name: decoder_means(m, fit.params, z, width) for name, fit in fits.items()},
        "reconstructions": {"held-out": shown} | {
            name: reconstructions(m, fit.params, shown, width) for name, fit in fits.items()},
    }
    paths = []
    for what, grid in rows.items():
        fig, axes = plt.subplots(len(grid), columns, figsize=(columns * 0.6, len(grid) * 0.75),
                                 squeeze=False)
        for r, (label, pictures) in enumerate(grid.items()):
            for c in range(columns):
                ax = axes[r, c]
                ax.imshow(pictures[c].reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
                ax.set_xticks([])
                ax.set_yticks([])
            axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
        fig.suptitle(f"VAE on sklearn digits: {what}", fontsize=9)
        fig.tight_layout()
        path = out_dir / f"vae_digits_{what}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths


def main(steps: int | None = None, quick: bool = False, seed: int = 0,
         out_dir: str | Path = ".") -> dict:
    """Train one VAE per objective, print the held-out table, save the pictures; returns
    ``{objective: {"elbo", "iwae", "train_elbo", "seconds", "fit"}}`` (nats per image)."""
    settings = dict(QUICK if quick else FULL)
    steps = settings["steps"] if steps is None else steps
    width, chunk = settings["width"], settings["chunk"]
    train_images, held_out = load_digits(seed)
    train_images = train_images[:settings["n_train"]]
    held_out = held_out[:settings["n_held_out"]]
    m = load_model()
    print(f"sklearn digits, binarised: {len(train_images)} training and {len(held_out)} held-out "
          f"images of 64 pixels; latent {LATENT}, networks of width {width}; "
          f"{steps} steps of Adam on all training images")
    # Every objective reaches the same parameters (the two networks): all start from one draw.
    start_params = m.digits_elbo(train_images, 1, width).init(jax.random.PRNGKey(seed))
    results = {}
    for i, name in enumerate(OBJECTIVES):
        start = time.perf_counter()
        fit = train(m, name, train_images, steps, width, settings["lr"], start_params,
                    jax.random.PRNGKey(seed * 100 + i))
        seconds = time.perf_counter() - start
        key = jax.random.PRNGKey(seed * 100 + 50 + i)
        results[name] = {
            "elbo": held_out_bound(m, "digits_elbo", fit.params, held_out,
                                   settings["elbo_particles"], width, chunk, key),
            "iwae": held_out_bound(m, "digits_iwelbo", fit.params, held_out,
                                   settings["iwae_particles"], width, chunk, key),
            "train_objective": float(np.mean(fit.history[-50:])) / len(train_images),
            "seconds": seconds, "fit": fit,
        }
    print(f"\n{'objective':<14} {'train objective':>15} {'held-out ELBO':>14} "
          f"{'IWAE-' + str(settings['iwae_particles']):>11} {'train s':>8}   (nats per image)")
    for name, row in results.items():
        label = name if name == "elbo" else f"{name} (K = {OBJECTIVES[name][1]})"
        print(f"{label:<14} {row['train_objective']:>15.2f} {row['elbo']:>14.2f} "
              f"{row['iwae']:>11.2f} {row['seconds']:>8.1f}")
    if settings["pictures"]:
        fits = {name: row["fit"] for name, row in results.items()}
        for path in save_pictures(m, fits, held_out, width, Path(out_dir)):
            print(f"wrote {path}")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few steps on a few images")
    parser.add_argument("--steps", type=int, help="training steps per objective")
    parser.add_argument("--seed", type=int, default=0, help="the split and the fits' keys")
    parser.add_argument("--out-dir", default=".", help="where the PNGs go (default: here)")
    args = parser.parse_args()
    main(steps=args.steps, quick=args.quick, seed=args.seed, out_dir=args.out_dir)
