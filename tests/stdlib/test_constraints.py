"""Constraints: round trips through the unconstrained representation, and its shapes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.distributions import constraints

from ppl.stdlib.constraints import (CONSTRAINTS, constraint_for, constraint_for_bounds, to_constrained,
                                    to_unconstrained, unconstrained_shape)

RNG = np.random.default_rng(0)


def lower_cholesky(n):
    m = np.tril(RNG.standard_normal((n, n)))
    np.fill_diagonal(m, np.abs(np.diag(m)) + 0.5)
    return m


def positive_definite(n):
    a = RNG.standard_normal((n, n))
    return a @ a.T + n * np.eye(n)


def corr_cholesky(n):
    c = positive_definite(n)
    d = np.sqrt(np.diag(c))
    return np.linalg.cholesky(c / np.outer(d, d))


# (kind, static arguments, values satisfying the constraint)
CASES = [
    ("real", {}, RNG.standard_normal((2, 3))),
    ("lower", {"lower": 0.0}, RNG.exponential(size=(4,))),
    ("lower", {"lower": 1.5}, 1.5 + RNG.exponential(size=(2, 2))),
    ("upper", {"upper": -1.0}, -1.0 - RNG.exponential(size=(3,))),
    ("interval", {"lower": 0, "upper": 1}, RNG.uniform(0.05, 0.95, size=(3,))),
    ("interval", {"lower": -2.0, "upper": 3.0}, RNG.uniform(-1.9, 2.9, size=(2, 3))),
    ("simplex", {}, RNG.dirichlet(np.ones(5), size=2)),
    ("corr_cholesky", {}, corr_cholesky(3)),
    ("lower_cholesky", {}, lower_cholesky(3)),
    ("positive_definite", {}, positive_definite(3)),
]


def test_cases_cover_every_kind():
    assert {kind for kind, _, _ in CASES} == set(CONSTRAINTS)


IDS = [f"{kind}-{i}" for i, (kind, _, _) in enumerate(CASES)]


def round_trips(key, values):
    """Per case: u = to_unconstrained(v), to_constrained(u), and whether a random u maps into the constraint."""
    out = []
    for (kind, static, _), value, k in zip(CASES, values, jax.random.split(key, len(CASES))):
        c = constraint_for(kind, **static)
        u = to_unconstrained(c, value)
        noise = jax.random.normal(k, unconstrained_shape(c, value.shape))
        out.append((u, to_constrained(c, u), c.check(to_constrained(c, noise))))
    return out


@pytest.fixture(scope="module")
def computed(quick_jit):
    values = [jnp.asarray(value, jnp.float32) for _, _, value in CASES]
    return quick_jit(round_trips, jax.random.PRNGKey(1), values)


@pytest.mark.parametrize("case", range(len(CASES)), ids=IDS)
def test_round_trip(case, computed):
    kind, static, value = CASES[case]
    u, back, _ = computed[case]
    assert u.shape == unconstrained_shape(constraint_for(kind, **static), np.shape(value))
    assert np.all(np.isfinite(u))
    np.testing.assert_allclose(back, value, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("case", range(len(CASES)), ids=IDS)
def test_any_unconstrained_value_maps_into_the_constraint(case, computed):
    assert np.all(computed[case][2])


@pytest.mark.parametrize("kind, static, shape, expected", [
    ("simplex", {}, (5,), (4,)),
    ("simplex", {}, (3, 5), (3, 4)),
    ("lower_cholesky", {}, (3, 3), (6,)),
    ("positive_definite", {}, (2, 4, 4), (2, 10)),
    ("corr_cholesky", {}, (3, 3), (3,)),
    ("real", {}, (2, 3), (2, 3)),
    ("lower", {"lower": 0.0}, (), ()),
    ("interval", {"lower": 0.0, "upper": 2.0}, (7,), (7,)),
])
def test_unconstrained_shape(kind, static, shape, expected):
    assert unconstrained_shape(constraint_for(kind, **static), shape) == expected


@pytest.mark.parametrize("kind, shape, words", [
    ("simplex", (), "simplex needs a parameter that is a vector, got shape []"),
    ("lower_cholesky", (3,), "lower_cholesky needs a parameter that is a matrix, got shape [3]"),
    ("corr_cholesky", (3, 4), "corr_cholesky needs square matrices, got shape [3, 4]"),
])
def test_unconstrained_shape_explains_misfits(kind, shape, words):
    with pytest.raises(ValueError) as error:
        unconstrained_shape(constraint_for(kind), shape)
    assert words in str(error.value)


def test_bounds_choose_the_familiar_constraints():
    assert constraint_for_bounds() is constraints.real
    assert constraint_for_bounds(lower=0) is constraints.positive
    assert constraint_for_bounds(lower=0.0, upper=1.0) is constraints.unit_interval
    assert isinstance(constraint_for_bounds(lower=2.0), constraints.greater_than)
    assert isinstance(constraint_for_bounds(upper=2.0), constraints.less_than)
    c = constraint_for_bounds(lower=-1.0, upper=2.0)
    assert (c.lower_bound, c.upper_bound) == (-1.0, 2.0)
    assert CONSTRAINTS["lower"](0.5).lower_bound == 0.5  # positional, as in the source


@pytest.mark.parametrize("call, words", [
    (lambda: constraint_for("positive_ordered"), "unknown constraint 'positive_ordered'"),
    (lambda: constraint_for("interval", lower=1.0, upper=0.0), "the lower bound 1.0 must be below the upper bound 0.0"),
    (lambda: constraint_for("lower"), "lower() is missing its argument 'lower'"),
    (lambda: constraint_for("simplex", lower=0.0), "simplex() has no keyword 'lower'"),
    (lambda: constraint_for("lower", lower="a"), "lower must be a number"),
])
def test_bad_constraints_are_value_errors(call, words):
    with pytest.raises(ValueError) as error:
        call()
    assert words in str(error.value)


@pytest.mark.parametrize("kind", sorted(CONSTRAINTS))
def test_every_constraint_is_described(kind):
    row = CONSTRAINTS[kind]
    assert row.name == kind and row.doc and "\n" not in row.doc
    assert all(p.static for p in row.params)
