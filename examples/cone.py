"""The noisy cone: hierarchical families against mean-field ones (PLDI 2024, Table 4).

The model (``cone.ppl``) puts x, y ~ N(0, 10) and observes z ~ N(r, 0.1 + r/100)
with r = x² + y², at z = 5: the posterior is a thin ring of radius √5. A
mean-field family (``naive``) is fitted with the ELBO and with IWELBO (K = 5);
a family with an auxiliary angle u (``ring``), integrated out by
``marginal(ring(z), keep=["x", "y"], particles=m)``, is fitted with HVI,
IWHVI (m = 5) and DIWHVI (K = 5, m = 5). Protocol, as the paper's: plain
gradient ascent with step 1e-3, 5000 steps, 64 gradient estimates per step;
then each objective is evaluated on 5000 fresh keys (mean ± standard error).
NumPyro fits the two objectives it can express (``Trace_ELBO`` and
``RenyiELBO(alpha=0)``) for comparison, and the time per step of both
systems is printed side by side. A PNG shows samples of each trained family
over the ring-shaped posterior.

    python examples/cone.py            # about a minute on 2 CPU cores
    python examples/cone.py --quick    # a few steps (the test suite runs this)
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

SOURCE = Path(__file__).resolve().with_name("cone.ppl")
Z = 5.0
# Table 4 of Becker, Lew et al. (PLDI 2024).
# A few steps of everything (the test suite runs this).
QUICK = dict(steps=20, estimates=4, n_eval=100, peers=False, picture=None, timing=False)
PAPER = {"ELBO": -8.08, "IWELBO": -7.79, "HVI": -9.75, "IWHVI": -8.18, "DIWHVI": -7.33}


def load_model() -> ppl.Module:
    """The compiled program: ``cone`` (the model), ``naive`` and ``ring`` (the families)."""
    return ppl.load(SOURCE)


def objectives(m: ppl.Module) -> dict:
    """The five objectives of Table 4, each with the family it trains."""
    S = ppl.stdlib
    target = m.cone() | {"z": Z}
    ring, kept = m.ring(Z), ["x", "y"]
    return {
        "ELBO": (S.elbo(target, m.naive()), m.naive()),
        "IWELBO": (S.iwelbo(target, m.naive(), K=5), m.naive()),
        "HVI": (S.hvi(target, ring, keep=kept), S.marginal(ring, keep=kept)),
        "IWHVI": (S.iwhvi(target, ring, keep=kept, m=5), S.marginal(ring, keep=kept, particles=5)),
        "DIWHVI": (S.diwhvi(target, ring, keep=kept, K=5, m=5),
                   S.marginal(ring, keep=kept, particles=5)),
    }


def evaluate(obj, params, n: int, seed: int = 1) -> tuple[float, float]:
    """The mean and standard error of ``n`` estimates of ``obj`` (one vmapped program)."""
    keys = jax.random.split(jax.random.PRNGKey(seed), n)
    values = np.asarray(jax.vmap(lambda k: obj.value(k, params))(keys))
    return float(values.mean()), float(values.std() / np.sqrt(n))


def seconds_per_step(obj, optimizer, estimates: int, steps: int, repeats: int = 3) -> float:
    """The steady-state time of one ``fit`` step: fits of ``steps`` and ``2·steps`` steps
    (compiled once, before timing), their difference over ``steps`` (so a fit's fixed
    cost cancels), the best of ``repeats``."""
    def run(n):
        t0 = time.perf_counter()
        ppl.fit(obj, steps=n, optimizer=optimizer, estimates=estimates, progress=False,
                chunk=steps)
        return time.perf_counter() - t0

    run(steps)
    return max(min(run(2 * steps) - run(steps) for _ in range(repeats)) / steps, 1e-9)


def _best_per_step(run, state, steps: int, repeats: int = 3) -> float:
    jax.block_until_ready(run(state))  # compile
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(run(state))
        best = min(best, time.perf_counter() - t0)
    return best / steps


def numpyro_fits(steps: int, estimates: int, n_eval: int) -> dict:
    """NumPyro's Trace_ELBO (64 particles per step) and RenyiELBO(alpha=0, 5 particles),
    fitted by the same protocol; values and the steady-state seconds per step."""
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import SVI, RenyiELBO, Trace_ELBO

    def model():
        x = numpyro.sample("x", dist.Normal(0.0, 10.0))
        y = numpyro.sample("y", dist.Normal(0.0, 10.0))
        r = x * x + y * y
        numpyro.sample("z", dist.Normal(r, 0.1 + r / 100.0), obs=Z)

    def guide():
        mx = numpyro.param("mx", 0.0)
        my = numpyro.param("my", 0.0)
        lsx = numpyro.param("lsx", 1.0)
        lsy = numpyro.param("lsy", 1.0)
        numpyro.sample("x", dist.Normal(mx, jnp.exp(lsx)))
        numpyro.sample("y", dist.Normal(my, jnp.exp(lsy)))

    out = {}
    for name, loss in (("ELBO", Trace_ELBO(num_particles=estimates)),
                       ("IWELBO", RenyiELBO(alpha=0.0, num_particles=5))):
        svi = SVI(model, guide, optax.sgd(1e-3), loss)
        state = svi.init(jax.random.PRNGKey(0))

        @jax.jit
        def run(state):
            return jax.lax.scan(lambda s, _: svi.update(s), state, None, length=steps)

        per_step = _best_per_step(run, state, steps)
        final, _ = run(state)
        params = svi.get_params(final)
        evaluator = (Trace_ELBO() if name == "ELBO" else RenyiELBO(alpha=0.0, num_particles=5))
        keys = jax.random.split(jax.random.PRNGKey(1), n_eval)
        values = -np.asarray(jax.vmap(lambda k: evaluator.loss(k, params, model, guide))(keys))
        out[name] = (float(values.mean()), float(values.std() / np.sqrt(n_eval)), per_step)
    return out


def plot(m: ppl.Module, fits: dict, path: Path, n: int = 1000) -> Path | None:
    """Samples of each trained family over the posterior's (unnormalised) density."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib is not installed: pip install ppl[plot] for the picture)")
        return None
    target = m.cone() | {"z": Z}
    grid = np.linspace(-3.5, 3.5, 200)
    gx, gy = np.meshgrid(grid, grid)
    log_density = jax.jit(jax.vmap(lambda x, y: target.density({"x": x, "y": y})))
    logd = np.asarray(log_density(gx.ravel(), gy.ravel())).reshape(gx.shape)
    fig, axes = plt.subplots(1, len(fits), figsize=(3.2 * len(fits), 3.4), sharey=True)
    for ax, (name, (family, params, value)) in zip(axes, fits.items()):
        keys = jax.random.split(jax.random.PRNGKey(3), n)
        traces = jax.vmap(lambda k: family.simulate(k, params)[0].values_by_address)(keys)
        ax.contourf(gx, gy, logd, levels=np.linspace(logd.max() - 12, logd.max(), 7),
                    cmap="Greys", alpha=0.5)
        ax.scatter(np.asarray(traces["x"]), np.asarray(traces["y"]), s=2, alpha=0.4)
        ax.set_title(f"{name}: {value:.2f}")
        ax.set_xlim(-3.5, 3.5)
        ax.set_ylim(-3.5, 3.5)
        ax.set_aspect("equal")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(steps: int = 5000, estimates: int = 64, n_eval: int = 5000, peers: bool = True,
         picture: Path | None = Path("cone.png"), timing: bool = True) -> dict:
    """Fit the five objectives, print them beside the paper's and NumPyro's; return the values."""
    m = load_model()
    sgd = optax.sgd(1e-3)  # one optimiser object: a second fit with it compiles nothing
    rows, fits = {}, {}
    for name, (obj, family) in objectives(m).items():
        result = ppl.fit(obj, steps=steps, optimizer=sgd, estimates=estimates, progress=False)
        mean, se = evaluate(obj, result.params, n_eval)
        # Steady-state time per step: the same fit again (it compiles nothing), with the
        # work NumPyro's step does (64 ELBO particles; one 5-particle IWELBO estimate).
        timed = 1 if name == "IWELBO" else estimates
        rows[name] = (mean, se, seconds_per_step(obj, sgd, timed, steps) if timing else np.nan)
        fits[name] = (family, result.params, mean)
    theirs = numpyro_fits(steps, estimates, n_eval) if peers else {}
    print(f"noisy cone, z = {Z}: {steps} steps of SGD(1e-3), {estimates} estimates per step, "
          f"each objective evaluated on {n_eval} fresh keys")
    print(f"{'objective':<8} {'ppl':>16} {'paper':>7} {'NumPyro':>16}   {'ms/step ppl':>11} "
          f"{'NumPyro':>8} {'ratio':>6}")
    for name, (mean, se, per_step) in rows.items():
        peer = theirs.get(name)
        peer_value = f"{peer[0]:8.2f} ± {peer[1]:.2f}" if peer else f"{'—':>16}"
        times = (f"{per_step * 1e3:11.3f} {peer[2] * 1e3:8.3f} {per_step / peer[2]:6.2f}"
                  if peer else f"{per_step * 1e3:11.3f} {'—':>8} {'—':>6}")
        print(f"{name:<8} {mean:8.2f} ± {se:.2f} {PAPER[name]:7.2f} {peer_value}   {times}")
    if peers:
        print("(NumPyro's IWELBO is RenyiELBO(alpha=0, num_particles=5), one estimate per step: "
              "it cannot average several IWELBO estimates per step; the IWELBO times are both "
              "for one 5-particle estimate per step, the ELBO times for 64 particles)")
    if picture is not None:
        saved = plot(m, fits, picture)
        if saved is not None:
            print(f"samples of each trained family: {saved}")
    return {name: row[0] for name, row in rows.items()} | {
        f"numpyro {name}": row[0] for name, row in theirs.items()}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few steps, no peers, no picture")
    args = parser.parse_args()
    if args.quick:
        main(**QUICK)
    else:
        main()
