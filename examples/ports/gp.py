"""NumPyro's ``gp.py``: a Gaussian process with a squared-exponential kernel fitted to
25 noisy points of a one-dimensional function; its three kernel hyperparameters
(log-normal priors) sampled with NUTS, and the posterior predictive mean and 90%
interval at test inputs.

    python examples/ports/gp.py           # and NumPyro's NUTS beside it
    python examples/ports/gp.py --quick   # few draws, ppl only
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.infer import MCMC, NUTS, init_to_value

import ppl

try:
    from .common import parse_quick, print_summary, side_by_side
except ImportError:  # run as a script
    from common import parse_quick, print_summary, side_by_side

# ppl:begin
SOURCE = """
fn kernel(X, Z, var, length, noise, include_noise: bool) {
    k = var * exp(-0.5 * ((X[:, None] - Z[None, :]) / length) ** 2)
    if include_noise { k = k + (noise + 1e-6) * eye(size(X)) }
    return k
}

gen model(X: real[N]) {
    var ~ lognormal(0.0, 10.0) at "kernel_var"
    noise ~ lognormal(0.0, 10.0) at "kernel_noise"
    length ~ lognormal(0.0, 10.0) at "kernel_length"
    Y ~ mvnormal(zeros(N), covariance_matrix=kernel(X, X, var, length, noise, true))
}

# The predictive mean and variance at X_test, given the hyperparameters.
fn predict(X, Y, X_test, var, length, noise) {
    k_pp = kernel(X_test, X_test, var, length, noise, true)
    k_pX = kernel(X_test, X, var, length, noise, false)
    k_XX = kernel(X, X, var, length, noise, true)
    return (k_pX @ solve(k_XX, Y), diag(k_pp - k_pX @ solve(k_XX, transpose(k_pX))))
}
"""


def run_inference(m, X, Y, draws, key):
    return ppl.nuts(m.model(X) | {"Y": Y}, num_samples=draws, num_warmup=draws, chains=1, key=key)
# ppl:end


def load_model() -> ppl.Module:
    return ppl.compile(SOURCE)


def get_data(N=25, sigma_obs=0.15, N_test=400):
    """NumPyro's artificial data set, as gp.py makes it."""
    np.random.seed(0)
    X = np.linspace(-1, 1, N)
    Y = X + 0.2 * X ** 3 + 0.5 * (0.5 + X) ** 2 * np.sin(4.0 * X) + sigma_obs * np.random.randn(N)
    Y = (Y - Y.mean()) / Y.std()
    X_test = np.linspace(-1.3, 1.3, N_test, dtype=np.float32)
    return X.astype(np.float32), Y.astype(np.float32), X_test


# numpyro:begin
def kernel(X, Z, var, length, noise, jitter=1.0e-6, include_noise=True):
    deltaXsq = jnp.power((X[:, None] - Z) / length, 2.0)
    k = var * jnp.exp(-0.5 * deltaXsq)
    if include_noise:
        k += (noise + jitter) * jnp.eye(X.shape[0])
    return k


def numpyro_model(X, Y):
    var = numpyro.sample("kernel_var", dist.LogNormal(0.0, 10.0))
    noise = numpyro.sample("kernel_noise", dist.LogNormal(0.0, 10.0))
    length = numpyro.sample("kernel_length", dist.LogNormal(0.0, 10.0))
    k = kernel(X, X, var, length, noise)
    numpyro.sample("Y", dist.MultivariateNormal(loc=jnp.zeros(X.shape[0]), covariance_matrix=k),
                   obs=Y)


def numpyro_inference(X, Y, draws, seed):
    # gp.py's --init-strategy value (its default, init_to_median, can start far in the
    # LogNormal(0, 10) tails, where a chain may stay)
    init = init_to_value(values={"kernel_var": 1.0, "kernel_noise": 0.05, "kernel_length": 0.5})
    mcmc = MCMC(NUTS(numpyro_model, init_strategy=init), num_warmup=draws, num_samples=draws,
                progress_bar=False)
    mcmc.run(jax.random.PRNGKey(seed), X, Y)
    mcmc.print_summary()
    return mcmc.get_samples()


def numpyro_predict(X, Y, X_test, var, length, noise):
    k_pp = kernel(X_test, X_test, var, length, noise, include_noise=True)
    k_pX = kernel(X_test, X, var, length, noise, include_noise=False)
    k_XX = kernel(X, X, var, length, noise, include_noise=True)
    K_xx_cho = jax.scipy.linalg.cho_factor(k_XX)
    K = k_pp - jnp.matmul(k_pX, jax.scipy.linalg.cho_solve(K_xx_cho, k_pX.T))
    mean = jnp.matmul(k_pX, jax.scipy.linalg.cho_solve(K_xx_cho, Y))
    return mean, jnp.diag(K)
# numpyro:end


def predictive_band(predict, X, Y, X_test, samples, key):
    """The mean prediction and the 5% and 95% percentiles of the posterior predictive."""
    def one(var, length, noise):
        return predict(X, Y, X_test, var, length, noise)
    means, variances = jax.vmap(one)(samples["kernel_var"], samples["kernel_length"],
                                     samples["kernel_noise"])
    draws = means + np.sqrt(np.clip(variances, 0.0, None)) * jax.random.normal(key, means.shape)
    return np.mean(means, 0), np.percentile(draws, [5.0, 95.0], axis=0)


def main(quick: bool = False, seed: int = 0) -> dict:
    X, Y, X_test = get_data()
    m = load_model()
    draws = 50 if quick else 1000
    posterior = run_inference(m, X, Y, draws, jax.random.PRNGKey(seed))
    print(posterior)
    print_summary(posterior.summary)
    mean, (lo, hi) = predictive_band(m.predict, X, Y, X_test, posterior.samples,
                                     jax.random.PRNGKey(1))
    print("\n  x_test    mean prediction   90% interval")
    for i in range(0, len(X_test), 80):
        print(f"  {X_test[i]:6.2f} {mean[i]:12.3f}        [{lo[i]:6.3f}, {hi[i]:6.3f}]")
    result = {"posterior": posterior, "mean": mean}
    if not quick:
        print("\nNumPyro's NUTS:")
        reference = {k: np.asarray(v) for k, v in numpyro_inference(X, Y, draws, seed).items()}
        rows = {k: (lambda d, k=k: d[k]) for k in ("kernel_var", "kernel_noise", "kernel_length")}
        result["gaps"] = side_by_side(rows, posterior.samples, reference)
        theirs, _ = predictive_band(numpyro_predict, X, Y, X_test, reference, jax.random.PRNGKey(1))
        print(f"  mean prediction, largest difference over the test inputs: "
              f"{np.abs(mean - theirs).max():.4f} (range of the mean {np.ptp(mean):.2f})")
        result["prediction_gap"] = float(np.abs(mean - theirs).max())
    return result


if __name__ == "__main__":
    main(quick=parse_quick())
