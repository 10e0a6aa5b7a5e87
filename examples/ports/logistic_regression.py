"""NumPyro's Bayesian logistic regression (``notebooks/logistic_regression``, the
model of ``examples/covtype.py``): normal priors on the coefficients, Bernoulli
labels with logits ``x @ coefs``, sampled with NUTS. NumPyro downloads the covtype
data; this port uses scikit-learn's bundled breast-cancer data (569 rows, 30
standardised features and an intercept).

    python examples/ports/logistic_regression.py           # and NumPyro's NUTS beside it
    python examples/ports/logistic_regression.py --quick   # few draws, ppl only
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
gen model(data: real[N, D]) {
    coefs ~ normal(zeros(D), 1.0)
    logits = data @ coefs
    plate i in N { obs ~ bernoulli(logits=logits[i]) }
}
"""


def run_inference(m, features, labels, draws, key):
    return ppl.nuts(m.model(features) | {"obs": labels}, num_samples=draws, num_warmup=draws,
                    chains=1, key=key)
# ppl:end


def load_model() -> ppl.Module:
    return ppl.compile(SOURCE)


def get_data():
    """Standardised features with an intercept column, and 0/1 labels."""
    from sklearn.datasets import load_breast_cancer
    features, labels = load_breast_cancer(return_X_y=True)
    features = (features - features.mean(0)) / features.std(0)
    features = np.hstack([features, np.ones((features.shape[0], 1))]).astype(np.float32)
    return features, labels.astype(np.int32)


def numpyro_model(data, labels):
    """NumPyro's model, as the notebook writes it."""
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    # numpyro:begin
    dim = data.shape[1]
    coefs = numpyro.sample("coefs", dist.Normal(jnp.zeros(dim), jnp.ones(dim)))
    logits = jnp.dot(data, coefs)
    return numpyro.sample("obs", dist.Bernoulli(logits=logits), obs=labels)


def numpyro_inference(features, labels, draws, seed):
    from numpyro.infer import MCMC, NUTS
    mcmc = MCMC(NUTS(numpyro_model), num_warmup=draws, num_samples=draws, progress_bar=False)
    mcmc.run(jax.random.PRNGKey(seed), features, labels)
    mcmc.print_summary()
    # numpyro:end
    return {k: np.asarray(v) for k, v in mcmc.get_samples().items()}


def main(quick: bool = False, seed: int = 0) -> dict:
    features, labels = get_data()
    N, dim = features.shape
    print("Data shape:", features.shape)
    print(f"Label distribution: {labels.sum()} has label 1, {N - labels.sum()} has label 0")
    draws = 50 if quick else 500
    posterior = run_inference(load_model(), features, labels, draws, jax.random.PRNGKey(seed))
    print(posterior)
    print_summary(posterior.summary, limit=dim)
    result = {"posterior": posterior}
    if not quick:
        print("\nNumPyro's NUTS:")
        reference = numpyro_inference(features, labels, draws, seed)
        print("\nppl's NUTS beside NumPyro's:")
        rows = {f"coefs[{j}]": (lambda d, j=j: d["coefs"][:, j]) for j in range(0, dim, 5)}
        result["gaps"] = side_by_side(rows, posterior.samples, reference)
    return result


if __name__ == "__main__":
    main(quick=parse_quick())
