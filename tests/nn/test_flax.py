"""A Flax module as a learnable extern (ppl.flax_module): its parameters are the
program's, named under the extern, drawn by the module's own init and learned by
fit. Skipped without flax (the ppl[nn] extra)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

flax_linen = pytest.importorskip("flax.linen")

import ppl  # noqa: E402
from conjugate import X, assert_exact_elbo, fit_and_estimate, program  # noqa: E402


class Encoder(flax_linen.Module):
    """(location, log-scale) of each row's posterior: an affine map, as the posterior's."""

    @flax_linen.compact
    def __call__(self, x):
        return flax_linen.Dense(2)(x)


class Constant(flax_linen.Module):
    """A two-layer network whose init is recognisable: every kernel 0.5, every bias 0.25."""

    @flax_linen.compact
    def __call__(self, x):
        init = dict(kernel_init=flax_linen.initializers.constant(0.5),
                    bias_init=flax_linen.initializers.constant(0.25))
        h = flax_linen.tanh(flax_linen.Dense(3, **init)(x))
        return flax_linen.Dense(2, **init)(h)


def test_parameters_are_named_under_the_extern_and_drawn_by_the_modules_init():
    m = ppl.compile("""
    gen g(x: real[N, 4]) {
        out = enc(x)
        again = enc(x)                       # one extern, one set of weights
        plate i in N { y ~ normal(out[i, 0] + again[i, 1], 1.0) }
        return out
    }
    """, externs={"enc": ppl.flax_module(Constant(), jnp.zeros((1, 4)))})
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    params = m.g(x).init(jax.random.PRNGKey(0))
    assert {k: v.shape for k, v in params.items()} == {
        "enc.Dense_0.kernel": (4, 3), "enc.Dense_0.bias": (3,),
        "enc.Dense_1.kernel": (3, 2), "enc.Dense_1.bias": (2,)}
    for k, v in params.items():
        np.testing.assert_array_equal(v, 0.5 if k.endswith("kernel") else 0.25)
    trace, _ = m.g(x).simulate(jax.random.PRNGKey(1), params)
    want = Constant().apply({"params": {"Dense_0": {"kernel": params["enc.Dense_0.kernel"],
                                                    "bias": params["enc.Dense_0.bias"]},
                                        "Dense_1": {"kernel": params["enc.Dense_1.kernel"],
                                                    "bias": params["enc.Dense_1.bias"]}}}, x)
    np.testing.assert_allclose(np.asarray(trace.retval), np.asarray(want), rtol=1e-6)


def test_a_flax_family_reaches_the_exact_elbo():
    """An amortised Gaussian family around a Flax Dense layer, fitted by ELBO, reaches
    log p(x) of the conjugate model; the module's weights moved to the posterior's map."""
    enc = ppl.flax_module(Encoder(), jnp.zeros((X.size, 1)))
    module = program("out = enc(reshape(x, N, 1))", externs={"enc": enc})
    _, result, values = fit_and_estimate(module)
    assert sorted(result.params) == ["enc.Dense_0.bias", "enc.Dense_0.kernel"]
    assert_exact_elbo(values)
    kernel, bias = result.params["enc.Dense_0.kernel"], result.params["enc.Dense_0.bias"]
    assert abs(float(kernel[0, 0]) - 0.8) < 0.1       # location 0.8·x
    assert abs(float(bias[1]) - 0.5 * np.log(0.2)) < 0.1   # log-scale log √0.2


def test_a_stateful_module_is_refused():
    class Normalised(flax_linen.Module):
        @flax_linen.compact
        def __call__(self, x):
            return flax_linen.BatchNorm(use_running_average=False)(x)

    with pytest.raises(ppl.DataError, match="batch_stats"):
        ppl.flax_module(Normalised(), jnp.zeros((2, 3)))


def test_a_call_that_does_not_fit_the_module_is_a_compile_error():
    m = ppl.compile("gen g(x: real[3]) { y ~ normal(sum(enc(x, x)), 1.0) }",
                    externs={"enc": ppl.flax_module(Encoder(), jnp.zeros(3))})
    with pytest.raises(ppl.CompileError, match=r"the Flax module enc\(\) fails on arguments"):
        m.g(np.zeros(3, np.float32)).init(jax.random.PRNGKey(0))
