"""NumPyro's Gaussian mixture tutorial (``notebooks/gmm``): a two-component mixture of
one-dimensional normals fitted to five points by MAP, the assignments summed out
exactly (``TraceEnum_ELBO`` with an ``AutoDelta`` of the global choices), the best
of 100 random initialisations chosen by the initial loss.

    python examples/ports/gmm.py           # and NumPyro's SVI from the same start
    python examples/ports/gmm.py --quick   # 20 initialisations, 50 steps, ppl only
"""

from __future__ import annotations

import jax
import numpy as np
import optax

import ppl

try:
    from .common import parse_quick
except ImportError:  # run as a script
    from common import parse_quick

# ppl:begin
SOURCE = """
gen model(data: real[N], K: int) {
    weights ~ dirichlet(0.5 * ones(K))
    scale ~ lognormal(0.0, 2.0)
    plate k in K { locs ~ normal(0.0, 10.0) }
    plate i in N {
        assignment ~ categorical(probs=weights)
        obs ~ normal(locs[assignment], scale)
    }
}

# AutoDelta of the global choices (auto_delta does not take an exact marginal yet).
gen global_guide(K: int) {
    param weights_loc: simplex[K]
    param scale_loc: real<lower=0> = 1.0
    param locs_loc: real[K]
    weights ~ delta(weights_loc)
    scale ~ delta(scale_loc)
    locs ~ delta(locs_loc)
}

objective map_fit(data: real[N], K: int) {
    return elbo(marginal(model(data, K), keep=["weights", "scale", "locs", "obs"],
                         exact=true) | {obs: data}, global_guide(K))
}
"""


def initialize(m, data, K, seed):
    objective = m.map_fit(data, K)
    locs = data[jax.random.categorical(jax.random.PRNGKey(seed), np.zeros(len(data)), shape=(K,))]
    params = {**objective.init(jax.random.PRNGKey(0)),
              "global_guide.scale_loc": np.log(np.sqrt(data.var() / 2)),
              "global_guide.locs_loc": locs}
    return -float(objective.value(jax.random.PRNGKey(0), params)), params
# ppl:end


def load_model() -> ppl.Module:
    return ppl.compile(SOURCE)


DATA = np.array([0.0, 1.0, 10.0, 11.0, 12.0], np.float32)
K = 2


def numpyro_model(data):
    """NumPyro's model, as the tutorial writes it (``K`` the module's)."""
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    # numpyro:begin
    weights = numpyro.sample("weights", dist.Dirichlet(0.5 * jnp.ones(K)))
    scale = numpyro.sample("scale", dist.LogNormal(0.0, 2.0))
    with numpyro.plate("components", K):
        locs = numpyro.sample("locs", dist.Normal(0.0, 10.0))
    with numpyro.plate("data", len(data)):
        assignment = numpyro.sample("assignment", dist.Categorical(weights))
        numpyro.sample("obs", dist.Normal(locs[assignment], scale), obs=data)


def numpyro_fit(data, K, seed, steps):
    """NumPyro's tutorial from the same initialisation: its initial loss and SVI result."""
    import jax.numpy as jnp
    from numpyro import handlers
    from numpyro.contrib.funsor import config_enumerate
    from numpyro.infer import SVI, TraceEnum_ELBO, init_to_value
    from numpyro.infer.autoguide import AutoDelta
    data = jnp.asarray(data)
    model = config_enumerate(numpyro_model)
    elbo = TraceEnum_ELBO()

    def initialize(seed):
        init_values = {
            "weights": jnp.ones(K) / K,
            "scale": jnp.sqrt(data.var() / 2),
            "locs": data[jax.random.categorical(jax.random.key(seed), jnp.ones(len(data))
                                                / len(data), shape=(K,))],
        }
        global_model = handlers.block(handlers.seed(model, jax.random.key(0)), hide_fn=lambda
                                      site: site["name"] not in ["weights", "scale", "locs",
                                                                 "components"])
        global_guide = AutoDelta(global_model, init_loc_fn=init_to_value(values=init_values))
        handlers.seed(global_guide, jax.random.key(0))(data)
        return elbo.loss(jax.random.key(0), {}, model, global_guide, data), global_guide

    loss, global_guide = initialize(seed)
    svi = SVI(model, global_guide, optax.adam(learning_rate=0.1, b1=0.8, b2=0.99), loss=elbo)
    result = svi.run(jax.random.key(0), steps, data, progress_bar=False)
    # numpyro:end
    return float(loss), result


def main(quick: bool = False) -> dict:
    m = load_model()
    seeds, steps = (20, 50) if quick else (100, 200)
    # Choose the best among the random initialisations.
    loss, seed = min((initialize(m, DATA, K, seed)[0], seed) for seed in range(seeds))
    _, params = initialize(m, DATA, K, seed)
    print(f"seed = {seed}, initial_loss = {loss}")
    fit = ppl.fit(m.map_fit(DATA, K), steps=steps, optimizer=optax.adam(0.1, b1=0.8, b2=0.99),
                  params=params, key=jax.random.PRNGKey(0), progress=False)
    map_estimates = {k.split(".")[-1]: np.asarray(v) for k, v in fit.constrained_params.items()}
    print(fit)
    print(f"weights = {map_estimates['weights_loc']}")
    print(f"locs = {map_estimates['locs_loc']}")
    print(f"scale = {map_estimates['scale_loc']}")
    print(f"final loss = {-fit.history[-1]:.4f}")
    result = {"fit": fit, "seed": seed, "initial_loss": loss, "map": map_estimates}
    if not quick:
        their_loss, theirs = numpyro_fit(DATA, K, seed, steps)
        print(f"\nNumPyro from seed {seed}: initial loss {their_loss:.4f}, final loss "
              f"{float(theirs.losses[-1]):.4f}")
        for name in ("weights", "locs", "scale"):
            print(f"  {name}: ppl {map_estimates[name + '_loc']}, NumPyro "
                  f"{np.asarray(theirs.params[name + '_auto_loc'])}")
        result["numpyro"] = (their_loss, theirs)
    return result


if __name__ == "__main__":
    main(quick=parse_quick())
