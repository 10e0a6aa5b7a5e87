"""``ppl.nuts(..., init=...)``: each chain starts where the strategy says.

- ``init_to_value``: every chain's first point (``result.initial``, before warmup)
  is exactly the given values, a constrained latent included;
- ``init_to_sample``: the chains start at different prior draws, on the supports;
- a start where the log density is not finite, and a bad value, are errors.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

import ppl

SOURCE = """
gen model(N: int) {
    mu ~ normal(0.0, 3.0)
    sigma ~ halfnormal(2.0)
    plate i in N { y ~ normal(mu, sigma) }
}
"""
Y = np.array([0.3, -1.2, 2.1, 0.8], np.float32)
RUN = dict(num_samples=4, num_warmup=2, chains=3, chain_method="sequential")


@pytest.fixture(scope="module")
def target():
    return ppl.compile(SOURCE).model(Y.size) | {"y": Y}


def test_init_to_value_starts_every_chain_at_the_values(target):
    values = {"mu": 0.25, "sigma": 1.75}
    result = ppl.nuts(target, key=jax.random.PRNGKey(0), init=ppl.init_to_value(values=values),
                      **RUN)
    for a, v in values.items():
        np.testing.assert_allclose(result.initial[a], np.full(3, v), rtol=1e-6)
    assert result.by_chain["mu"].shape == (3, 4)


def test_init_to_sample_starts_the_chains_apart_on_the_support(target):
    result = ppl.nuts(target, key=jax.random.PRNGKey(1), init=ppl.init_to_sample(), **RUN)
    sigma = np.asarray(result.initial["sigma"])
    assert np.all(sigma > 0) and np.unique(sigma).size == 3
    assert np.unique(np.asarray(result.initial["mu"])).size == 3


def test_bad_starts_are_errors(target):
    with pytest.raises(ppl.DataError, match="init_to_value: the initial value of 'sigma' is "
                                            "outside its support \\(0, ∞\\)"):
        ppl.nuts(target, init=ppl.init_to_value(values={"sigma": -1.0}), **RUN)
    with pytest.raises(ppl.DataError, match="ppl.nuts\\(init=...\\) takes an initialisation "
                                            "strategy"):
        ppl.nuts(target, init={"mu": 0.0}, **RUN)
    # far out in the tail the density underflows: not finite at the start
    with pytest.raises(ppl.DataError, match="not finite at the first point "
                                            "init_to_value\\(values=\\{'mu', 'sigma'\\}\\) gives "
                                            "chain 0"):
        ppl.nuts(target, init=ppl.init_to_value(values={"mu": 1e30, "sigma": 1e-30}), **RUN)
