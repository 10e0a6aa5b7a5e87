"""NumPyro's ``bnn.py``: a Bayesian neural network (two tanh layers of 5 units, unit
normal priors on every weight, a gamma prior on the observation precision) fitted
to 100 noisy points of a one-dimensional function with NUTS; the posterior
predictive mean and 90% interval at test inputs.

    python examples/ports/bnn.py           # and NumPyro's NUTS beside it
    python examples/ports/bnn.py --quick   # few draws and points, ppl only
"""

from __future__ import annotations

import jax
import numpy as np

import ppl

try:
    from .common import parse_quick, print_summary, side_by_side
except ImportError:  # run as a script
    from common import parse_quick, print_summary, side_by_side

# ppl:begin
SOURCE = """
gen model(X: real[N, D_X], D_H: int, D_Y: int) {
    w1 ~ normal(zeros(D_X, D_H), 1.0)
    w2 ~ normal(zeros(D_H, D_H), 1.0)
    w3 ~ normal(zeros(D_H, D_Y), 1.0)
    z3 = tanh(tanh(X @ w1) @ w2) @ w3
    prec_obs ~ gamma(3.0, 1.0)
    plate i in N { Y ~ normal(z3[i], 1.0 / sqrt(prec_obs)) }
}
"""


def run_inference(m, X, Y, D_H, draws, key):
    return ppl.nuts(m.model(X, D_H, 1) | {"Y": Y}, num_samples=draws, num_warmup=draws,
                    chains=1, key=key)
# ppl:end


def load_model() -> ppl.Module:
    return ppl.compile(SOURCE)


def get_data(N=50, D_X=3, sigma_obs=0.05, N_test=500):
    """NumPyro's artificial data set, as bnn.py makes it (N = 100 there by default)."""
    np.random.seed(0)
    X = np.power(np.linspace(-1, 1, N)[:, None], np.arange(D_X))
    W = 0.5 * np.random.randn(D_X)
    Y = X @ W + 0.5 * np.power(0.5 + X[:, 1], 2.0) * np.sin(4.0 * X[:, 1])
    Y = (Y + sigma_obs * np.random.randn(N))[:, None]
    Y = (Y - Y.mean()) / Y.std()
    X_test = np.power(np.linspace(-1.3, 1.3, N_test)[:, None], np.arange(D_X))
    return X.astype(np.float32), Y.astype(np.float32), X_test.astype(np.float32)


def numpyro_model(X, Y, D_H, D_Y=1):
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    # numpyro:begin
    N, D_X = X.shape
    w1 = numpyro.sample("w1", dist.Normal(jnp.zeros((D_X, D_H)), jnp.ones((D_X, D_H))))
    z1 = jnp.tanh(jnp.matmul(X, w1))
    w2 = numpyro.sample("w2", dist.Normal(jnp.zeros((D_H, D_H)), jnp.ones((D_H, D_H))))
    z2 = jnp.tanh(jnp.matmul(z1, w2))
    w3 = numpyro.sample("w3", dist.Normal(jnp.zeros((D_H, D_Y)), jnp.ones((D_H, D_Y))))
    z3 = jnp.matmul(z2, w3)
    prec_obs = numpyro.sample("prec_obs", dist.Gamma(3.0, 1.0))
    sigma_obs = 1.0 / jnp.sqrt(prec_obs)
    with numpyro.plate("data", N):
        numpyro.sample("Y", dist.Normal(z3, sigma_obs).to_event(1), obs=Y)


def numpyro_inference(X, Y, D_H, draws, seed):
    from numpyro.infer import MCMC, NUTS
    mcmc = MCMC(NUTS(numpyro_model), num_warmup=draws, num_samples=draws, progress_bar=False)
    mcmc.run(jax.random.PRNGKey(seed), X, Y, D_H)
    mcmc.print_summary()
    # numpyro:end
    return {k: np.asarray(v) for k, v in mcmc.get_samples().items()}


def main(quick: bool = False, seed: int = 0) -> dict:
    D_H = 5
    X, Y, X_test = get_data(N=20 if quick else 100)
    m = load_model()
    draws = 50 if quick else 2000
    posterior = run_inference(m, X, Y, D_H, draws, jax.random.PRNGKey(seed))
    print(posterior)
    print_summary(posterior.summary, limit=2)
    predictions = m.model(X_test, D_H, 1).predictive(jax.random.PRNGKey(1), posterior.samples)
    predictions = np.asarray(predictions["Y"])[..., 0]
    mean, (lo, hi) = predictions.mean(0), np.percentile(predictions, [5.0, 95.0], axis=0)
    print("\n  x_test    mean prediction   90% interval")
    for i in range(0, len(X_test), 100):
        print(f"  {X_test[i, 1]:6.2f} {mean[i]:12.3f}        [{lo[i]:6.3f}, {hi[i]:6.3f}]")
    result = {"posterior": posterior, "mean": mean}
    if not quick:
        print("\nNumPyro's NUTS:")
        reference = numpyro_inference(X, Y, D_H, draws, seed)
        fitted = lambda d: np.tanh(np.tanh(X[None] @ d["w1"]) @ d["w2"]) @ d["w3"]  # noqa: E731
        rows = {"prec_obs": lambda d: d["prec_obs"]}
        rows.update({f"f(x={X[i, 1]:.2f})": (lambda d, i=i: fitted(d)[:, i, 0])
                     for i in (0, len(X) // 2, len(X) - 1)})
        result["gaps"] = side_by_side(rows, posterior.samples, reference)
    return result


if __name__ == "__main__":
    main(quick=parse_quick())
