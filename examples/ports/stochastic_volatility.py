"""NumPyro's ``stochastic_volatility.py``: daily returns with a Student-t law whose log
scale is a Gaussian random walk, sampled with NUTS; quantiles of the walk's step
size, of the degrees of freedom and of the volatility every 180 days. NumPyro
downloads the S&P 500's 2427 daily returns; this port draws returns of the same
length from the model itself (step size 0.02, 5 degrees of freedom).

With one chain of 600 warmup steps from a uniform start on 2429 latents, a chain
of either sampler can stay stuck where it started (sigma near 1, nu in the
thousands, a draw-to-draw sd near 0): with seed 0 ppl's does, with seed 1
NumPyro's does; the chains that move agree (sigma 0.106 and 0.109, nu 5.69 and
5.69, the volatility to three decimals).

    python examples/ports/stochastic_volatility.py           # and NumPyro's NUTS beside it
    python examples/ports/stochastic_volatility.py --quick   # 200 days, few draws, ppl only
"""

from __future__ import annotations

import jax
import numpy as np

import ppl

try:
    from .common import parse_quick, side_by_side
except ImportError:  # run as a script
    from common import parse_quick, side_by_side

# ppl:begin
SOURCE = """
gen model(T: int) {
    sigma ~ exponential(50.0)
    s ~ gaussian_random_walk(sigma, T)
    nu ~ exponential(0.1)
    r ~ student_t(nu, 0.0, exp(s))
}
"""


def run_inference(m, returns, draws, key):
    return ppl.nuts(m.model(len(returns)) | {"r": returns}, num_samples=draws,
                    num_warmup=draws, chains=1, key=key)
# ppl:end


def load_model() -> ppl.Module:
    return ppl.compile(SOURCE)


def get_data(T: int, seed: int = 0) -> np.ndarray:
    """Returns of T days drawn from the model with sigma = 0.02 and nu = 5."""
    rng = np.random.default_rng(seed)
    s = np.cumsum(0.02 * rng.normal(size=T)) - 4.5
    return (np.exp(s) * rng.standard_t(5.0, size=T)).astype(np.float32)


def print_row(values, row_name=""):
    """NumPyro's rows: the 20%, 40%, 50%, 60% and 80% quantiles."""
    quantiles = [0.2, 0.4, 0.5, 0.6, 0.8]
    print(f"{'':>8}" + "".join(f"{f'(p{int(q * 100)})':>12}" for q in quantiles))
    print(f"{row_name:>8}" + "".join(f"{v:>12.3f}" for v in np.quantile(values, quantiles, axis=0)))


def print_results(posterior):
    print("=" * 20, "sigma", "=" * 20)
    print_row(posterior["sigma"])
    print("=" * 20, "nu", "=" * 20)
    print_row(posterior["nu"])
    print("=" * 20, "volatility", "=" * 20)
    for i in range(0, posterior["s"].shape[1], 180):
        print_row(np.exp(posterior["s"][:, i]), f"day {i}")


def numpyro_model(returns):
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    # numpyro:begin
    step_size = numpyro.sample("sigma", dist.Exponential(50.0))
    s = numpyro.sample(
        "s", dist.GaussianRandomWalk(scale=step_size, num_steps=jnp.shape(returns)[0]))
    nu = numpyro.sample("nu", dist.Exponential(0.1))
    return numpyro.sample("r", dist.StudentT(df=nu, loc=0.0, scale=jnp.exp(s)), obs=returns)


def numpyro_inference(returns, draws, seed):
    from numpyro.infer import MCMC, NUTS
    mcmc = MCMC(NUTS(numpyro_model), num_warmup=draws, num_samples=draws, progress_bar=False)
    mcmc.run(jax.random.PRNGKey(seed), returns)
    # numpyro:end
    return {k: np.asarray(v) for k, v in mcmc.get_samples().items()}


def main(quick: bool = False, seed: int = 0) -> dict:
    returns = get_data(200 if quick else 2427)
    draws = 50 if quick else 600
    posterior = run_inference(load_model(), returns, draws, jax.random.PRNGKey(seed))
    print(posterior)
    print_results(posterior.samples)
    result = {"posterior": posterior}
    if not quick:
        reference = numpyro_inference(returns, draws, seed)
        print("\nppl's NUTS beside NumPyro's:")
        rows = {"sigma": lambda d: d["sigma"], "nu": lambda d: d["nu"]}
        rows.update({f"vol day {i}": (lambda d, i=i: np.exp(d["s"][:, i]))
                     for i in range(0, len(returns), 600)})
        result["gaps"] = side_by_side(rows, posterior.samples, reference)
    return result


if __name__ == "__main__":
    main(quick=parse_quick())
