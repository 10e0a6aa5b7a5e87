"""Derivatives of every distribution's log density and support probabilities, against
finite differences in float64, at ordinary and at boundary points.

ppl differentiates ``log_prob`` (REINFORCE's score, densities inside objectives) and
``probs`` (enumeration, measure-valued derivatives) of every row of the table. A
derivative that is a convention somewhere (numpyro's ``max(l, 0)`` and ``|l|`` at
logits 0, its clamping of probabilities to ``[eps, 1 - eps]``, ``xlogy``'s NaN at 0)
is a silently wrong gradient, so each (distribution, form) is checked at points that
include logits exactly 0, probabilities 1e-9 and 1 − 1e-9, integer-valued parameters
(``total_count`` 0, 1 and 5, rates and concentrations of 1, identity matrices) and a
loc of exactly 0. Directional derivatives (``jax.jvp``) along each parameter are
compared with Richardson-extrapolated central differences (steps a tenth of the
distance to the domain's boundary), elementwise over a batch of points and values.

Every case is evaluated in ONE float64 program (``computed``), compiled once.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest


from ppl.stdlib.distributions import DISTRIBUTIONS

REAL = [-1.3, 0.0, 2.0]
LOGITS = [-4.0, 0.0, 0.7]
POSITIVE = [0.4, 1.0, 3.0]
UNIT = [1e-9, 0.3, 0.5, 1 - 1e-9]
SPD = np.array([[2.0, 0.5, 0.1], [0.5, 1.5, 0.2], [0.1, 0.2, 1.0]])


def grid(**points):
    """Every combination of the per-parameter points, as flat batch arrays [B]."""
    names = list(points)
    combos = list(itertools.product(*[points[n] for n in names]))
    return {n: np.array([c[i] for c in combos], np.float64) for i, n in enumerate(names)}


def values(*xs):
    """Values to score, [S, 1]: each is scored at every point of the batch."""
    return np.array(xs, np.float64)[:, None]


def matrices(*ms):
    return np.stack([np.asarray(m, np.float64) for m in ms])


# (name, form) -> (parameters by name, batch-first; values x, broadcasting against the batch).
def _uniform():
    p = grid(low=[-1.0, 0.0], high=[1.0, 2.5])
    return p, p["low"] + np.array([0.1, 0.5, 0.9])[:, None] * (p["high"] - p["low"])


def _pareto():
    p = grid(scale=POSITIVE, alpha=POSITIVE)  # x a fifth of scale or more above it: steps stay inside
    return p, p["scale"] * np.array([1.2, 2.0, 5.0])[:, None]


def _truncated_normal():
    # loc 2 below low 2.5 (the mirrored normaliser), loc -1.3 with scale 0.4 below it by 9.5
    # scales (far in the tail); each x at least 0.2 inside [low, high], twice the step
    p = grid(loc=REAL, scale=POSITIVE, low=[-1.0, 2.5], high=[3.5, 6.0])
    return p, p["low"] + np.array([0.2, 0.5, 0.8])[:, None] * (p["high"] - p["low"])


def _one_sided(bound, sign):
    p = grid(loc=REAL, scale=POSITIVE, **{bound: [-0.5, 2.5]})
    return p, p[bound] + sign * np.array([0.2, 1.0, 3.0])[:, None]


def correlation_cholesky(*correlations):
    """Cholesky factors of 3 x 3 correlation matrices with off-diagonal (r01, r02, r12), [S, 1, 3, 3]."""
    out = []
    for r01, r02, r12 in correlations:
        c = np.array([[1.0, r01, r02], [r01, 1.0, r12], [r02, r12, 1.0]])
        out.append(np.linalg.cholesky(c))
    return np.stack(out)[:, None]


def counts(*rows):
    return np.array(rows)[:, None, :]


# Each case: (label, name, form, parameters by name (batch-first), values x (broadcasting
# against the batch), literal arguments).
CASES = [
    ("normal", ("loc", "scale"), grid(loc=REAL, scale=POSITIVE), values(-1.5, 0.0, 0.7)),
    ("lognormal", ("loc", "scale"), grid(loc=REAL, scale=POSITIVE), values(0.2, 1.0, 4.0)),
    ("halfnormal", ("scale",), grid(scale=POSITIVE), values(0.1, 1.0, 2.5)),
    ("student_t", ("df", "loc", "scale"), grid(df=[1.0, 3.5], loc=REAL, scale=POSITIVE), values(-2.0, 0.0, 0.5)),
    ("cauchy", ("loc", "scale"), grid(loc=REAL, scale=POSITIVE), values(-2.0, 0.3, 5.0)),
    ("halfcauchy", ("scale",), grid(scale=POSITIVE), values(0.1, 1.0, 4.0)),
    # x never equals loc: there the density has a kink, and no derivative
    ("laplace", ("loc", "scale"), grid(loc=REAL, scale=POSITIVE), values(-1.7, 0.1, 2.4)),
    ("uniform", ("low", "high"), *_uniform()),
    ("beta", ("concentration1", "concentration0"), grid(concentration1=POSITIVE, concentration0=POSITIVE),
     values(0.05, 0.5, 0.9)),
    ("gamma", ("concentration", "rate"), grid(concentration=POSITIVE, rate=POSITIVE), values(0.2, 1.0, 3.0)),
    ("inverse_gamma", ("concentration", "rate"), grid(concentration=POSITIVE, rate=POSITIVE),
     values(0.2, 1.0, 3.0)),
    ("exponential", ("rate",), grid(rate=POSITIVE), values(0.1, 1.0, 3.0)),
    ("bernoulli", ("probs",), grid(probs=UNIT), values(0, 1)),
    ("bernoulli", ("logits",), grid(logits=LOGITS), values(0, 1)),
    ("poisson", ("rate",), grid(rate=[1e-6, 0.4, 1.0, 3.0]), values(0, 1, 4)),
    ("geometric", ("probs",), grid(probs=UNIT), values(0, 1, 4)),
    ("geometric", ("logits",), grid(logits=LOGITS), values(0, 1, 4)),
    # normalised, near the boundary, and unnormalised (the categorical of p / sum(p))
    ("categorical", ("probs",), {"probs": matrices([0.2, 0.3, 0.5], [1e-9, 0.5, 0.5 - 1e-9], [0.4, 1.0, 2.0])},
     values(0, 1, 2)),
    ("categorical", ("logits",), {"logits": matrices([0.0, 0.0, 0.0], [0.0, 1.0, -2.0])}, values(0, 1, 2)),
    ("dirichlet", ("concentration",), {"concentration": matrices([1.0, 1.0, 1.0], [0.5, 2.0, 3.0])},
     np.array([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])[:, None, :]),
    ("logistic", ("loc", "scale"), grid(loc=REAL, scale=POSITIVE), values(-2.0, 0.3, 5.0)),
    ("weibull", ("scale", "concentration"), grid(scale=POSITIVE, concentration=POSITIVE), values(0.05, 1.0, 3.0)),
    ("pareto", ("scale", "alpha"), *_pareto()),
    ("truncated_normal", ("loc", "scale", "low", "high"), *_truncated_normal()),
    ("truncated_normal", ("loc", "scale", "low"), *_one_sided("low", 1.0)),
    ("truncated_normal", ("loc", "scale", "high"), *_one_sided("high", -1.0)),
    # concentration near 0 (a nearly uniform angle) and large; values near -pi and pi
    ("von_mises", ("loc", "concentration"), grid(loc=REAL, concentration=[1e-3, 0.4, 1.0, 30.0]),
     values(-3.1, 0.2, 3.1)),
    ("gaussian_random_walk", ("scale", "num_steps"), grid(scale=POSITIVE),
     np.array([[0.3, -0.5, 1.0], [0.0, 0.0, 0.0]])[:, None, :], {"num_steps": 3}),
    # the identity, an ordinary correlation and a nearly singular one
    ("lkj_cholesky", ("dimension", "concentration"), grid(concentration=[0.5, 1.0, 3.0]),
     correlation_cholesky((0.0, 0.0, 0.0), (0.3, -0.2, 0.5), (0.99, 0.9, 0.9)), {"dimension": 3}),
    ("negative_binomial", ("total_count", "probs"), grid(total_count=POSITIVE, probs=UNIT[:-1] + [0.9]),
     values(0, 1, 4)),
    ("negative_binomial", ("total_count", "logits"), grid(total_count=POSITIVE, logits=LOGITS), values(0, 1, 4)),
    # gate 1e-6, not 1e-9: its derivative at x > 0 is -1/(1 - gate) ≈ -1, which a difference
    # of log densities near -15 over steps of 1e-10 cannot resolve to 1e-5
    ("zero_inflated_poisson", ("gate", "rate"), grid(gate=[1e-6, 0.3, 0.5, 1 - 1e-9], rate=[0.05, 0.4, 3.0]),
     values(0, 1, 4)),
    ("zero_inflated_poisson", ("gate_logits", "rate"), grid(gate_logits=LOGITS, rate=[0.05, 0.4, 3.0]),
     values(0, 1, 4)),
    # probabilities near 0 with a zero count there, and unnormalised (the multinomial of p / sum(p))
    ("multinomial", ("total_count", "probs"),
     {"probs": matrices([0.2, 0.3, 0.5], [1e-9, 0.5, 0.5 - 1e-9], [0.4, 1.0, 2.0])},
     counts([0, 1, 3], [1, 1, 2], [0, 0, 4]), {"total_count": 4}),
    ("multinomial", ("total_count", "logits"), {"logits": matrices([0.0, 0.0, 0.0], [0.0, 1.0, -2.0])},
     counts([0, 1, 3], [4, 0, 0]), {"total_count": 4}),
    ("mvnormal_diag", ("loc", "scale"),
     {"loc": matrices([0.0, 0.0], [1.0, -2.0]), "scale": matrices([1.0, 1.0], [0.5, 3.0])},
     np.array([[0.0, 0.5], [-1.0, 2.0]])[:, None, :]),
] + [
    ("mvnormal", ("loc", matrix), {"loc": matrices([0.0, 0.0, 0.0], [1.0, -1.0, 2.0]), matrix: matrices(np.eye(3), m)},
     np.array([[0.0, 0.5, -0.3], [1.0, 2.0, 0.0]])[:, None, :])
    for matrix, m in [("scale_tril", np.linalg.cholesky(SPD)), ("covariance_matrix", SPD),
                      ("precision_matrix", np.linalg.inv(SPD))]
]
# binomial and beta_binomial: total_count 0, 1 and 5 (a literal), each with its whole support as values
CASES += [("binomial", ("total_count", f), {f: np.array(points, np.float64)}, values(*range(n + 1)),
           {"total_count": n}) for n in (0, 1, 5) for f, points in (("probs", UNIT), ("logits", LOGITS))]
CASES += [("beta_binomial", ("concentration1", "concentration0", "total_count"),
           grid(concentration1=[0.01] + POSITIVE, concentration0=POSITIVE), values(*range(n + 1)), {"total_count": n})
          for n in (0, 1, 5)]
# the literal arguments of each case (a count, a number of steps, a dimension), by name
CASES = [case if len(case) == 5 else case + ({},) for case in CASES]
# delta's density is 0 at v and -inf elsewhere: no difference quotient exists (its
# derivative at x = v, 0, is checked by test_delta_log_density_is_constant).
NOT_DIFFERENCED = {"delta"}


def case_id(case):
    name, form, _, _, literals = case
    return f"{name}({', '.join(form)})" + "".join(f"[{k}={v}]" for k, v in literals.items())


def arguments(case, params):
    """The row's arguments: the parameters by name, the literal ones (a count) as ints."""
    name, form, _, _, literals = case
    return [literals[n] if n in literals else params[n] for n in form]


def direction_and_step(row, name, value):
    """A direction to differentiate ``name`` along, and a central-difference step per
    batch element that keeps the perturbed value inside the domain."""
    domain = row.domains[name]
    value = np.asarray(value, np.float64)
    if domain == "lower_cholesky":
        direction = np.tril([[0.3, 0.0, 0.0], [-0.5, 0.2, 0.0], [0.4, 0.1, -0.2]])
    elif domain == "positive_definite":
        direction = np.array([[0.3, -0.2, 0.1], [-0.2, 0.2, 0.05], [0.1, 0.05, -0.1]])
    elif domain == "simplex":  # keeps every entry positive for small steps: also unnormalised
        direction = np.array([1.0, -0.5, 0.3])
    else:  # unequal entries, so that no symmetry hides a wrong entry
        direction = np.linspace(1.0, 0.5, value.shape[-1]) if value.ndim > 1 else np.ones(())
    room = {"unit": np.minimum(value, 1 - value), "success": np.minimum(value, 1 - value),
            "below_one": np.minimum(value, 1 - value), "positive": np.minimum(value, 1.0),
            "simplex": value}.get(domain, np.ones_like(value))
    step = 0.1 * room.reshape(value.shape[0], -1).min(1)  # one step per batch element
    return np.broadcast_to(direction, value.shape), step


def jvp_and_difference(fn, params, name, direction, step, batch_axis):
    """(the derivative of ``fn`` along ``direction``, its central difference), where the
    outputs' batch axis is ``batch_axis``."""
    value = params[name]
    t_shape = step.shape + (1,) * (value.ndim - 1)

    def along(t):
        return fn({**params, name: value + jnp.reshape(t, t_shape) * direction})

    zero = jnp.zeros(step.shape, value.dtype)
    out, derivative = jax.jvp(along, (zero,), (jnp.ones_like(zero),))

    # Richardson extrapolation of central differences at h, h/2, h/4: error O(h⁶), so
    # the step can be a tenth of the distance to the boundary (1e-10 at p = 1e-9), large
    # enough that rounding does not swamp the difference of values near 1. The six
    # evaluations are one, vectorised.
    ts = jnp.stack([step, -step, step / 2, -step / 2, step / 4, -step / 4])
    f = jax.vmap(along)(ts)
    hs = jnp.reshape(ts[::2], (3,) + (1,) * batch_axis + step.shape + (1,) * (out.ndim - 1 - batch_axis))
    d1, d2, d4 = (f[0::2] - f[1::2]) / (2 * hs)
    r1, r2 = (4 * d2 - d1) / 3, (4 * d4 - d2) / 3
    return derivative, (16 * r2 - r1) / 15


def all_derivatives(inputs):
    """Per case and parameter: (jvp, difference) of log_prob, and of probs; per finite
    case, (probs, exp of log_prob at each support value)."""
    out = {}
    for case, (params, xs, steps) in zip(CASES, inputs):
        name, form = case[:2]
        row = DISTRIBUTIONS[name]
        log_prob = lambda p, row=row, case=case, xs=xs: row.log_prob(case[1], arguments(case, p), xs)  # noqa: E731
        probs = lambda p, row=row, case=case: row.probs(case[1], arguments(case, p))  # noqa: E731
        for pname, (direction, step) in steps.items():
            out[case_id(case), pname, "log_prob"] = jvp_and_difference(log_prob, params, pname, direction, step, 1)
            if row.enumerable:
                out[case_id(case), pname, "probs"] = jvp_and_difference(probs, params, pname, direction, step, 0)
        if row.enumerable:
            support = row.support_values(form, arguments(case, params))
            exp_log_prob = [jnp.exp(row.log_prob(form, arguments(case, params), jnp.int32(v))) for v in support]
            out[case_id(case), "consistency"] = (probs(params), jnp.stack(exp_log_prob, -1))
    return out


@pytest.fixture(scope="module")
def computed(quick_jit):
    """Every case's derivatives, from ONE program compiled in float64."""
    with jax.enable_x64(True):
        inputs = []
        for case in CASES:
            name, form, params, xs, _ = case
            row = DISTRIBUTIONS[name]
            steps = {n: tuple(map(jnp.asarray, direction_and_step(row, n, params[n])))
                     for n in form if n not in row.integer_params and name not in NOT_DIFFERENCED}
            xs = jnp.asarray(xs, jnp.int32 if row.discrete else jnp.float64)
            inputs.append(({n: jnp.asarray(v) for n, v in params.items()}, xs, steps))
        results = quick_jit(all_derivatives, inputs)
        return {k: tuple(np.asarray(v) for v in pair) for k, pair in results.items()}


def test_cases_cover_every_distribution_and_form():
    covered = {(name, form) for name, form, *_ in CASES}
    assert covered == {(name, form) for name, row in DISTRIBUTIONS.items() for form in row.forms
                       if name not in NOT_DIFFERENCED}
    assert NOT_DIFFERENCED <= set(DISTRIBUTIONS)


DERIVATIVES = [(case_id(c), n, what) for c in CASES for n in c[1] if n not in DISTRIBUTIONS[c[0]].integer_params
               for what in (("log_prob", "probs") if DISTRIBUTIONS[c[0]].enumerable else ("log_prob",))]


@pytest.mark.parametrize("case, param, what", DERIVATIVES)
def test_derivative_matches_finite_differences(case, param, what, computed):
    derivative, difference = computed[case, param, what]
    assert np.all(np.isfinite(derivative)) and np.all(np.isfinite(difference)), (derivative, difference)
    np.testing.assert_allclose(derivative, difference, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", [case_id(c) for c in CASES if DISTRIBUTIONS[c[0]].enumerable])
def test_probs_are_the_normalised_density(case, computed):
    probs, exp_log_prob = computed[case, "consistency"]
    np.testing.assert_allclose(probs, exp_log_prob, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-9)


def test_delta_log_density_is_constant():
    row = DISTRIBUTIONS["delta"]
    v = jnp.array([-1.3, 0.0, 2.0])
    value, derivative = jax.jvp(lambda v: row.log_prob(("v",), [v], jnp.array([-1.3, 0.0, 2.0])), (v,),
                                (jnp.ones(3),))
    np.testing.assert_array_equal(value, 0.0)
    np.testing.assert_array_equal(derivative, 0.0)


def boundary_derivatives():
    """Closed-form derivatives at the ends of [0, 1] and below float32's epsilon, in float32
    (where numpyro clamps probabilities to [1.2e-7, 1 - 1.2e-7], a zero derivative)."""
    bern, binom, cat = DISTRIBUTIONS["bernoulli"], DISTRIBUTIONS["binomial"], DISTRIBUTIONS["categorical"]
    tiny = jnp.float32(1e-8)

    def grad(f, x):
        return jax.jvp(f, (x,), (jnp.ones_like(x),))[1]

    return {
        # d/dp log p = 1/p, d/dp log(1 - p) at p = 0: -1
        "bernoulli log p(1) at 1e-8": (grad(lambda p: bern.log_prob(("probs",), [p], 1), tiny), 1 / tiny),
        "bernoulli log p(0) at 0": (grad(lambda p: bern.log_prob(("probs",), [p], 0), jnp.float32(0)), -1.0),
        "bernoulli log p(1) at 1": (grad(lambda p: bern.log_prob(("probs",), [p], 1), jnp.float32(1)), 1.0),
        # the probability vector [1 - p, p] at p = 0 and 1
        "bernoulli probs at 0 and 1": (grad(lambda p: bern.probs(("probs",), [p]), jnp.array([0.0, 1.0])),
                                       jnp.array([[-1.0, 1.0], [-1.0, 1.0]])),
        # d/dp b_3(k; p) at p = 0: [-3, 3, 0, 0]; at p = 1: [0, 0, -3, 3]
        "binomial probs at 0 and 1": (grad(lambda p: binom.probs(("total_count", "probs"), [3, p]),
                                           jnp.array([0.0, 1.0])),
                                      jnp.array([[-3.0, 3.0, 0.0, 0.0], [0.0, 0.0, -3.0, 3.0]])),
        "binomial log p(2) at 1e-8": (grad(lambda p: binom.log_prob(("total_count", "probs"), [3, p], 2), tiny),
                                      2 / tiny),
        # a zero probability: log p(chosen) does not see the zero entry
        "categorical log p(1) with a zero entry": (
            grad(lambda t: cat.log_prob(("probs",), [jnp.array([0.0, 0.5, 0.5]) + t * jnp.array([0.0, 1.0, 0.0])],
                                        1), jnp.float32(0)), 1.0),
    }


def test_derivatives_at_the_boundaries():
    results = jax.jit(boundary_derivatives)()
    for what, (derivative, exact) in results.items():
        np.testing.assert_allclose(derivative, exact, rtol=1e-6, atol=1e-6, err_msg=what)


# -- literal arguments outside their domain --------------------------------------------------

@pytest.mark.parametrize("name, form, param, value, words", [
    ("normal", ("loc", "scale"), "scale", 0.0, "the scale of normal must be positive, but it is 0.0"),
    ("normal", ("loc", "scale"), "scale", -1.0, "must be positive, but it is -1.0"),
    ("normal", ("loc", "scale"), "loc", float("nan"), "the loc of normal must be a finite number"),
    ("gamma", ("concentration", "rate"), "rate", 0, "the rate of gamma must be positive"),
    ("bernoulli", ("probs",), "probs", 1.5, "the probs of bernoulli must be a probability, in [0, 1], but it is 1.5"),
    ("bernoulli", ("probs",), "probs", -0.1, "in [0, 1], but it is -0.1"),
    ("binomial", ("total_count", "probs"), "probs", 2.0, "the probs of binomial must be a probability"),
    ("binomial", ("total_count", "probs"), "total_count", 2.5,
     "the total_count of binomial must be a non-negative integer, but it is 2.5"),
    ("binomial", ("total_count", "logits"), "total_count", -1, "must be a non-negative integer, but it is -1"),
    ("binomial", ("total_count", "probs"), "total_count", True, "must be a non-negative integer"),
    ("geometric", ("probs",), "probs", 0.0, "the probs of geometric must be a probability in (0, 1]"),
    ("categorical", ("probs",), "probs", [0.2, 0.3], "must be a probability vector: non-negative, summing to 1, "
     "but it is [0.2, 0.3] (it sums to 0.5)"),
    ("categorical", ("probs",), "probs", [1.2, -0.2], "non-negative, summing to 1, but it is [1.2, -0.2]"),
    ("dirichlet", ("concentration",), "concentration", [1.0, 0.0], "the concentration of dirichlet must be positive"),
    ("mvnormal", ("loc", "scale_tril"), "scale_tril", [[1.0, 0.5], [0.0, 1.0]], "lower triangular"),
    ("mvnormal", ("loc", "scale_tril"), "scale_tril", [[1.0, 0.0], [0.5, -1.0]], "with a positive diagonal"),
    ("mvnormal", ("loc", "covariance_matrix"), "covariance_matrix", [[1.0, 2.0], [2.0, 1.0]],
     "symmetric positive definite"),
    ("mvnormal", ("loc", "precision_matrix"), "precision_matrix", [[1.0, 0.1], [0.0, 1.0]],
     "symmetric positive definite"),
    ("poisson", ("rate",), "rate", 0.0, "the rate of poisson must be positive"),
    ("student_t", ("df", "loc", "scale"), "df", -2.0, "the df of student_t must be positive"),
    ("pareto", ("scale", "alpha"), "scale", -1.0, "the scale of pareto must be positive, but it is -1.0"),
    ("pareto", ("scale", "alpha"), "alpha", 0.0, "the alpha of pareto must be positive"),
    ("weibull", ("scale", "concentration"), "concentration", -0.5, "the concentration of weibull must be positive"),
    ("logistic", ("loc", "scale"), "scale", 0.0, "the scale of logistic must be positive"),
    ("truncated_normal", ("loc", "scale", "low", "high"), "scale", -2.0, "the scale of truncated_normal must be positive"),
    ("truncated_normal", ("loc", "scale", "low"), "low", float("inf"), "the low of truncated_normal must be a finite number"),
    ("von_mises", ("loc", "concentration"), "concentration", 0.0, "the concentration of von_mises must be positive"),
    ("gaussian_random_walk", ("scale", "num_steps"), "num_steps", 0,
     "the num_steps of gaussian_random_walk must be a positive integer, but it is 0"),
    ("gaussian_random_walk", ("scale", "num_steps"), "num_steps", 2.5, "must be a positive integer, but it is 2.5"),
    ("lkj_cholesky", ("dimension", "concentration"), "dimension", 1,
     "the dimension of lkj_cholesky must be an integer of at least 2, but it is 1"),
    ("lkj_cholesky", ("dimension", "concentration"), "concentration", -1.0, "the concentration of lkj_cholesky must be positive"),
    ("beta_binomial", ("concentration1", "concentration0", "total_count"), "total_count", 2.5,
     "the total_count of beta_binomial must be a non-negative integer"),
    ("beta_binomial", ("concentration1", "concentration0", "total_count"), "concentration0", 0.0, "must be positive"),
    ("multinomial", ("total_count", "probs"), "probs", [0.2, 0.3], "must be a probability vector: non-negative, summing to 1"),
    ("multinomial", ("total_count", "logits"), "total_count", -2, "the total_count of multinomial must be a non-negative integer"),
    ("negative_binomial", ("total_count", "probs"), "probs", 1.0,
     "the probs of negative_binomial must be a probability in [0, 1), but it is 1.0"),
    ("negative_binomial", ("total_count", "logits"), "total_count", 0.0, "the total_count of negative_binomial must be positive"),
    ("zero_inflated_poisson", ("gate", "rate"), "gate", 1.5, "the gate of zero_inflated_poisson must be a probability, in [0, 1]"),
    ("zero_inflated_poisson", ("gate", "rate"), "rate", -1.0, "the rate of zero_inflated_poisson must be positive"),
])
def test_check_literal_rejects_values_outside_the_domain(name, form, param, value, words):
    message = DISTRIBUTIONS[name].check_literal(form, param, value)
    assert message is not None and words in message, message


@pytest.mark.parametrize("name, form, param, value", [
    ("normal", ("loc", "scale"), "scale", 1e-30),
    ("normal", ("loc", "scale"), "loc", 0.0),
    ("normal", ("loc", "scale"), "loc", -3),
    ("bernoulli", ("probs",), "probs", 0.0),
    ("bernoulli", ("probs",), "probs", 1),
    ("bernoulli", ("logits",), "logits", -40.0),
    ("binomial", ("total_count", "probs"), "total_count", 0),
    ("binomial", ("total_count", "probs"), "total_count", 7.0),  # an integer written as a float
    ("geometric", ("probs",), "probs", 1.0),
    ("categorical", ("probs",), "probs", [0.1, 0.2, 0.7]),  # sums to 1 only to float32 rounding
    ("categorical", ("probs",), "probs", np.float32([0.1, 0.2, 0.7])),
    ("categorical", ("probs",), "probs", [[0.5, 0.5], [0.0, 1.0]]),
    ("categorical", ("logits",), "logits", [3.0, -100.0]),
    ("dirichlet", ("concentration",), "concentration", [0.5, 2.0]),
    ("mvnormal", ("loc", "scale_tril"), "scale_tril", [[1.0, 0.0], [0.5, 2.0]]),
    ("mvnormal", ("loc", "covariance_matrix"), "covariance_matrix", [[2.0, 0.5], [0.5, 1.0]]),
    ("uniform", ("low", "high"), "low", -1.0),
    ("lkj_cholesky", ("dimension", "concentration"), "dimension", 2),
    ("gaussian_random_walk", ("scale", "num_steps"), "num_steps", 1),
    ("negative_binomial", ("total_count", "probs"), "probs", 0.0),
    ("negative_binomial", ("total_count", "probs"), "total_count", 0.5),  # a real total_count
    ("zero_inflated_poisson", ("gate", "rate"), "gate", 1.0),
    ("multinomial", ("total_count", "probs"), "probs", [0.1, 0.2, 0.7]),
])
def test_check_literal_accepts_values_inside_the_domain(name, form, param, value):
    assert DISTRIBUTIONS[name].check_literal(form, param, value) is None


def test_every_parameter_has_a_domain():
    for name, row in DISTRIBUTIONS.items():
        assert set(row.domains) == {p for f in row.forms for p in f}, name
    integral = {"binomial": {"total_count"}, "beta_binomial": {"total_count"}, "multinomial": {"total_count"},
                "gaussian_random_walk": {"num_steps"}, "lkj_cholesky": {"dimension"}}
    assert {name: row.integer_params for name, row in DISTRIBUTIONS.items() if row.integer_params} == integral


def test_softplus_first_and_second_derivatives_are_exact_everywhere():
    """The library's softplus (the logits forms' log normaliser) declares σ(x) as its
    derivative; the first and second derivatives match σ and σ(1 − σ) at 0 (where
    max/abs conventions break the usual formula), near 0 and far in both tails, and the
    value matches log1p(exp(x)) where that is exact. Finite differences at ordinary
    points guard the declared rule itself."""
    from ppl.stdlib.special import softplus

    with jax.enable_x64(True):
        xs = jnp.array([0.0, 1e-9, -1e-9, 0.3, -0.7, 5.0, -5.0, 40.0, -40.0, 700.0, -700.0])
        s = 1.0 / (1.0 + np.exp(-np.asarray(xs)))
        s_neg = 1.0 / (1.0 + np.exp(np.asarray(xs)))  # σ(−x) = 1 − σ(x), without cancellation
        first = jax.vmap(jax.grad(softplus))(xs)
        second = jax.vmap(jax.grad(jax.grad(softplus)))(xs)
        np.testing.assert_allclose(first, s, rtol=1e-12, atol=1e-300)
        np.testing.assert_allclose(second, s * s_neg, rtol=1e-10, atol=1e-300)
        small = np.abs(np.asarray(xs)) < 30
        np.testing.assert_allclose(np.asarray(softplus(xs))[small],
                                   np.log1p(np.exp(np.asarray(xs)[small])), rtol=1e-14)
        h = 1e-6
        ordinary = jnp.array([0.3, -0.7, 2.0])
        fd = (softplus(ordinary + h) - softplus(ordinary - h)) / (2 * h)
        np.testing.assert_allclose(jax.vmap(jax.grad(softplus))(ordinary), fd, rtol=1e-8)
