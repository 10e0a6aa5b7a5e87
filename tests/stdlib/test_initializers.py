"""Initialisers: shapes and dtypes, values, and the variances of the random ones."""

import jax
import numpy as np
import pytest

import ppl

from ppl.compiler.library import bind_arguments
from ppl.stdlib.initializers import INITIALIZERS

KEY = jax.random.PRNGKey(0)
SHAPES = [(4, 3), (2, 4, 3)]

# Draws whose statistics the tests check: (name, shape, static arguments).
DRAWS = [
    ("glorot", (200, 300), {}),
    ("he", (200, 300), {}),
    ("lecun", (200, 300), {}),
    ("glorot", (2, 100, 30), {}),
    ("normal_init", (100, 100), {}),
    ("normal_init", (100, 100), {"scale": 0.5}),
    ("uniform_init", (100, 100), {}),
    ("uniform_init", (100, 100), {"scale": 1.0}),
]


def init(name, shape, dtype="float32", *args, key=KEY, **kwargs):
    row = INITIALIZERS[name]
    return row.impl(key, shape, dtype, **bind_arguments(name, row.params, args, kwargs))


def initial_values(key):
    """Every initialiser at every test shape, then the draws of DRAWS (one program)."""
    keys = iter(jax.random.split(key, len(INITIALIZERS) * len(SHAPES) + len(DRAWS)))
    shaped = {(name, shape): init(name, shape, "float32", *((0.5,) if name == "constant" else ()), key=next(keys))
              for name in INITIALIZERS for shape in SHAPES}
    draws = [init(name, shape, "float32", key=next(keys), **kwargs) for name, shape, kwargs in DRAWS]
    return shaped, draws


@pytest.fixture(scope="module")
def computed(quick_jit):
    return quick_jit(initial_values, KEY)


@pytest.mark.parametrize("name", sorted(INITIALIZERS))
@pytest.mark.parametrize("shape", SHAPES)
def test_shapes_and_dtypes(name, shape, computed):
    value = computed[0][name, shape]
    assert value.shape == shape and value.dtype == np.float32
    assert np.all(np.isfinite(value))


def test_deterministic_initialisers():
    np.testing.assert_array_equal(init("zeros", (3,)), np.zeros(3))
    np.testing.assert_array_equal(init("ones", (2, 2)), np.ones((2, 2)))
    np.testing.assert_array_equal(init("constant", (2,), "float32", 1.5), [1.5, 1.5])
    # Deterministic initialisers also serve integer and boolean parameters.
    assert init("zeros", (3,), "int32").dtype == np.int32
    assert init("constant", (2,), "int32", 7).tolist() == [7, 7]
    assert init("ones", (), "bool").dtype == np.bool_


def assert_variance(values, variance):
    """Mean 0, and the empirical variance within 5 standard errors of ``variance``."""
    values = np.asarray(values, np.float64).ravel()
    n = values.size
    fourth = ((values - values.mean()) ** 4).mean()
    assert abs(values.mean()) < 5 * np.sqrt(variance / n)
    assert abs(values.var() - variance) < 5 * np.sqrt((fourth - values.var() ** 2) / n), (values.var(), variance)


@pytest.mark.parametrize("draw, variance", [
    (0, 2 / (200 + 300)),  # glorot: fan_in 200, fan_out 300
    (1, 2 / 200),          # he
    (2, 1 / 200),          # lecun
    # jax's variance scaling multiplies both fans by the receptive field (the other axes), 2 here.
    (3, 2 / (2 * 100 + 2 * 30)),
    (4, 0.01 ** 2),        # normal_init's default scale
    (5, 0.5 ** 2),
    (6, 0.1 ** 2 / 12),    # uniform_init on [-0.05, 0.05)
    (7, 2.0 ** 2 / 12),
], ids=[f"{name}{list(shape)}{kwargs or ''}" for name, shape, kwargs in DRAWS])
def test_variances(draw, variance, computed):
    assert_variance(computed[1][draw], variance)


def test_uniform_init_is_centred_on_zero(computed):
    u = np.asarray(computed[1][6])
    assert u.min() >= -0.05 and u.max() < 0.05 and u.min() < -0.04 and u.max() > 0.04


@pytest.mark.parametrize("name", ["glorot", "he", "lecun"])
def test_fan_based_initialisers_need_a_matrix(name):
    with pytest.raises(ValueError, match=rf"{name}\(\) needs a parameter with at least 2 dimensions, got shape \[5\]"):
        init(name, (5,))


def test_random_initialisers_need_reals():
    with pytest.raises(ValueError, match="normal_init\\(\\) draws random reals"):
        init("normal_init", (3,), "int32")


def test_missing_static_argument_is_a_value_error():
    with pytest.raises(ValueError, match="constant\\(\\) is missing its argument 'value'"):
        INITIALIZERS["constant"].impl(KEY, (3,), "float32")


@pytest.mark.parametrize("name", sorted(INITIALIZERS))
def test_every_initialiser_is_described(name):
    row = INITIALIZERS[name]
    assert row.name == name and row.doc and "\n" not in row.doc
    assert all(p.static for p in row.params)


@pytest.mark.parametrize("decl", ["param s: real<lower=0> = -1.0",
                                  "param s: real<lower=0, upper=2> = 3.0",
                                  "param s: real<upper=1> = 1.0"])
def test_an_initial_value_outside_the_constraint_is_an_error_at_the_parameter(decl):
    m = ppl.compile(f"gen g() {{\n    {decl}\n    x ~ normal(0.0, exp(s))\n}}", "init.ppl")
    with pytest.raises(ppl.DataError, match="initial value of parameter 'g.s'") as info:
        m.g().init(jax.random.PRNGKey(0))
    assert "init.ppl:2:5" in str(info.value) and "^" in str(info.value)
    obj = ppl.stdlib.elbo(m.g(), m.g())  # fit starts from init: the same error, not a NaN
    with pytest.raises(ppl.DataError, match="initial value of parameter 'g.s'"):
        ppl.fit(obj, steps=1, progress=False)
