"""Every distribution of the standard library, drawn from a program, scores as numpyro does.

For each distribution and each of its forms, ``gen g(a0, a1, ...) { x ~ d(a0, a1, ...) }``
with its arguments passed as arrays has ``density({"x": v})`` equal to
``numpyro.distributions.<D>(...).log_prob(v).sum()``, for one draw (scalar
arguments; a vector or matrix event for the multivariate ones), a batch of draws
(array arguments), a ``plate`` and a ``for`` loop (the arguments indexed by the
plate or loop index). The four ways are four choices of one program (one
compilation per form); when it disagrees, the test scores each way alone to
say which one is wrong. ``simulate`` followed by ``density`` of the trace
gives back the log density ``simulate`` returned, and the draws lie in the
support (one form per distribution: compiling samplers is the slow part).

The numpyro distribution each case is compared with is written here,
independently of the library's table, so that a wrong row fails.
"""

import functools
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest

import ppl
from ppl.stdlib.library import STANDARD

N = 3  # the batch: every argument below has a leading axis of this size
RNG = np.random.default_rng(0)
SPD = np.array([[2.0, 0.5, 0.1], [0.5, 1.5, 0.2], [0.1, 0.2, 1.0]], np.float32)
SPD_BATCH = np.stack([SPD, 2.0 * SPD, SPD + np.eye(3, dtype=np.float32)])


def positive(shape=(N,), rng=RNG):
    return rng.uniform(0.5, 3.0, shape).astype(np.float32)


def reals(shape=(N,), rng=RNG):
    return rng.normal(size=shape).astype(np.float32)


# Per distribution, per form: the batched arguments (leading axis N).
ARGS = {
    "normal": {("loc", "scale"): (reals(), positive())},
    "mvnormal": {
        ("loc", "scale_tril"): (reals((N, 3)), np.linalg.cholesky(SPD_BATCH)),
        ("loc", "covariance_matrix"): (reals((N, 3)), SPD_BATCH),
        ("loc", "precision_matrix"): (reals((N, 3)), np.linalg.inv(SPD_BATCH)),
    },
    "mvnormal_diag": {("loc", "scale"): (reals((N, 3)), positive((N, 3)))},
    "lognormal": {("loc", "scale"): (reals(), positive())},
    "halfnormal": {("scale",): (positive(),)},
    "student_t": {("df", "loc", "scale"): (positive() + 2.0, reals(), positive())},
    "cauchy": {("loc", "scale"): (reals(), positive())},
    "halfcauchy": {("scale",): (positive(),)},
    "laplace": {("loc", "scale"): (reals(), positive())},
    "uniform": {("low", "high"): (np.float32([0.0, -1.0, 2.0]), np.float32([1.0, 3.0, 2.5]))},
    "beta": {("concentration1", "concentration0"): (positive(), positive())},
    "gamma": {("concentration", "rate"): (positive(), positive())},
    "inverse_gamma": {("concentration", "rate"): (positive(), positive())},
    "exponential": {("rate",): (positive(),)},
    "dirichlet": {("concentration",): (positive((N, 4)),)},
    "delta": {("v",): (reals(),)},
    "bernoulli": {("probs",): (np.float32([0.2, 0.7, 0.5]),), ("logits",): (reals(),)},
    "categorical": {("probs",): (RNG.dirichlet(np.ones(4), N).astype(np.float32),),
                    ("logits",): (reals((N, 4)),)},
    "binomial": {("total_count", "probs"): (np.int32([10, 3, 7]), np.float32([0.2, 0.7, 0.5])),
                 ("total_count", "logits"): (np.int32([10, 3, 7]), reals())},
    "poisson": {("rate",): (positive(),)},
    "geometric": {("probs",): (np.float32([0.3, 0.6, 0.9]),), ("logits",): (reals(),)},
    "logistic": {("loc", "scale"): (reals(), positive())},
    "weibull": {("scale", "concentration"): (positive(), positive())},
    "pareto": {("scale", "alpha"): (positive(), positive())},
    "truncated_normal": {("loc", "scale", "low", "high"): (reals(), positive(), np.float32([-1.0, 0.5, 2.0]),
                                                           np.float32([1.0, 3.0, 2.5])),
                         ("loc", "scale", "low"): (reals(), positive(), np.float32([-1.0, 0.5, 2.0])),
                         ("loc", "scale", "high"): (reals(), positive(), np.float32([-1.0, 0.5, 2.0]))},
    "von_mises": {("loc", "concentration"): (reals(), positive())},
    # a Python int is a static argument: written into the program as a literal
    "gaussian_random_walk": {("scale", "num_steps"): (positive(), 4)},
    "lkj_cholesky": {("dimension", "concentration"): (3, positive())},
    "beta_binomial": {("concentration1", "concentration0", "total_count"): (positive(), positive(),
                                                                             np.int32([10, 3, 7]))},
    "multinomial": {("total_count", "probs"): (5, RNG.dirichlet(np.ones(4), N).astype(np.float32)),
                    ("total_count", "logits"): (5, reals((N, 4)))},
    "negative_binomial": {("total_count", "probs"): (positive(), np.float32([0.2, 0.7, 0.5])),
                          ("total_count", "logits"): (positive(), reals())},
    "zero_inflated_poisson": {("gate", "rate"): (np.float32([0.2, 0.7, 0.0]), positive()),
                              ("gate_logits", "rate"): (np.float32([-1.4, 0.8, 3.0]), positive())},
}
CASES = [(name, form) for name, forms in ARGS.items() for form in forms]


def values(name, form, args):
    """A batch of N values in the support of ``name`` (one per batch element)."""
    bound = dict(zip(form, args))
    rng = np.random.default_rng(zlib.crc32(repr((name, form)).encode()))
    if name in ("normal", "cauchy", "laplace", "student_t"):
        return reals(rng=rng)
    if name in ("mvnormal", "mvnormal_diag"):
        return reals((N, 3), rng)
    if name in ("lognormal", "halfnormal", "halfcauchy", "gamma", "inverse_gamma", "exponential"):
        return positive(rng=rng)
    if name == "uniform":
        return (bound["low"] + rng.uniform(0.05, 0.95, N) * (bound["high"] - bound["low"])).astype(np.float32)
    if name == "beta":
        return rng.uniform(0.05, 0.95, N).astype(np.float32)
    if name == "dirichlet":
        return rng.dirichlet(np.ones(4), N).astype(np.float32)
    if name == "delta":
        return bound["v"]
    if name == "bernoulli":
        return np.int32([0, 1, 1])
    if name == "categorical":
        return np.int32([0, 3, 2])
    if name == "binomial":
        return np.int32([4, 0, 7])
    if name in ("poisson", "geometric", "negative_binomial", "zero_inflated_poisson"):
        return np.int32([0, 2, 5])
    if name == "logistic":
        return reals(rng=rng)
    if name == "weibull":
        return positive(rng=rng)
    if name == "pareto":
        return bound["scale"] + positive(rng=rng)
    if name == "truncated_normal":
        low, high = bound.get("low", bound["loc"] - 3.0), bound.get("high", bound["loc"] + 3.0)
        return (low + rng.uniform(0.05, 0.95, N) * (high - low)).astype(np.float32)
    if name == "von_mises":
        return rng.uniform(-3.0, 3.0, N).astype(np.float32)
    if name == "gaussian_random_walk":
        return reals((N, bound["num_steps"]), rng)
    if name == "lkj_cholesky":
        c = np.stack([np.corrcoef(rng.normal(size=(3, 6))) for _ in range(N)])
        return np.linalg.cholesky(c).astype(np.float32)
    if name == "beta_binomial":
        return np.int32([4, 0, 7])
    if name == "multinomial":
        return np.int32([[1, 0, 4, 0], [2, 1, 1, 1], [0, 0, 0, 5]])
    raise AssertionError(f"no values for {name}")


def reference(name, form, args):
    """The numpyro distribution for (batched or single) arguments, written independently."""
    kwargs = {k: v if isinstance(v, int) else jnp.asarray(v) for k, v in zip(form, args)}
    if name == "mvnormal_diag":
        return dist.Independent(dist.Normal(kwargs["loc"], kwargs["scale"]), 1)
    if name == "zero_inflated_poisson" and "gate_logits" in kwargs:
        return dist.ZeroInflatedDistribution(dist.Poisson(kwargs["rate"]),
                                             gate_logits=kwargs["gate_logits"])
    classes = {
        "normal": dist.Normal, "mvnormal": dist.MultivariateNormal, "lognormal": dist.LogNormal,
        "halfnormal": dist.HalfNormal, "student_t": dist.StudentT, "cauchy": dist.Cauchy,
        "halfcauchy": dist.HalfCauchy, "laplace": dist.Laplace, "uniform": dist.Uniform,
        "beta": dist.Beta, "gamma": dist.Gamma, "inverse_gamma": dist.InverseGamma,
        "exponential": dist.Exponential, "dirichlet": dist.Dirichlet, "delta": dist.Delta,
        "bernoulli": dist.Bernoulli, "categorical": dist.Categorical, "binomial": dist.Binomial,
        "poisson": dist.Poisson, "geometric": dist.Geometric, "logistic": dist.Logistic,
        "weibull": dist.Weibull, "pareto": dist.Pareto, "truncated_normal": dist.TruncatedNormal,
        "von_mises": dist.VonMises, "gaussian_random_walk": dist.GaussianRandomWalk,
        "lkj_cholesky": dist.LKJCholesky, "beta_binomial": dist.BetaBinomial, "multinomial": dist.Multinomial,
        "negative_binomial": dist.NegativeBinomial, "zero_inflated_poisson": dist.ZeroInflatedPoisson,
    }
    return classes[name](**kwargs)


@functools.lru_cache(maxsize=None)
def reference_logp(name, form):
    """``(args, v) -> (numpyro's log_prob of each batch element, whether v is in the support)``.

    Jitted: one compiled function per form (instead of one small compilation
    per eager numpyro operation) keeps the test fast. Static arguments (Python
    ints) stay constants.
    """
    static = ARGS[name][form]

    @jax.jit
    def logp(arrays, v):
        d = reference(name, form, with_static(static, arrays))
        return d.log_prob(v), jnp.all(d.support.check(v))
    return lambda args, v: logp(traced(args), v)


def traced(args):
    """The arguments passed as arrays: all but the static ones (Python ints)."""
    return tuple(a for a in args if not isinstance(a, int))


def with_static(template, arrays):
    """``template`` (a form's arguments) with its arrays replaced by ``arrays``."""
    arrays = iter(arrays)
    return tuple(a if isinstance(a, int) else next(arrays) for a in template)


def call_text(name, form, exprs):
    """``d(e0, e1)`` for the default form, ``d(p0=e0, p1=e1)`` for the others."""
    if form == STANDARD.distributions[name].forms[0]:
        return f"{name}({', '.join(exprs)})"
    return f"{name}({', '.join(f'{p}={e}' for p, e in zip(form, exprs))})"


@functools.lru_cache(maxsize=None)
def module(name, form):
    """The programs for one form: one choice per way of drawing it, and all four in one.

    ``every`` is what the density test compiles (one compilation instead of
    four keeps the suite fast); ``direct``, ``plated`` and ``looped`` draw
    one choice each, to say which way is wrong when ``every`` disagrees.
    """
    static = ARGS[name][form]
    names = [f"a{k}" for k, a in enumerate(static) if not isinstance(a, int)]
    singles = [f"s{k}" for k, a in enumerate(static) if not isinstance(a, int)]
    params = ", ".join(names)

    def call(template):  # a static argument is its literal in every way of drawing
        return call_text(name, form, [str(a) if isinstance(a, int) else template.format(f"a{k}")
                                      for k, a in enumerate(static)])

    direct, plated, looped = call("{}"), call("{}[i]"), call("{}[t]")
    single = call_text(name, form, [str(a) if isinstance(a, int) else f"s{k}" for k, a in enumerate(static)])
    return ppl.compile(f"""
gen direct({params}) {{ x ~ {direct} }}
gen plated({params}, n: int) {{ plate i in n {{ x ~ {plated} }} }}
gen looped({params}, n: int) {{ for t in n {{ x ~ {looped} }} }}
gen every({", ".join(singles)}, {params}, n: int) {{
    single ~ {single}
    batched ~ {direct}
    plate i in n {{ plated ~ {plated} }}
    for t in n {{ looped ~ {looped} }}
}}
""")


MODES = ("single", "batched", "plated", "looped")


def test_every_distribution_and_form_is_covered():
    library = {(name, form) for name, d in STANDARD.distributions.items() for form in d.forms}
    assert library == set(CASES)


@pytest.mark.parametrize("name,form", CASES, ids=[f"{n}-{'-'.join(f)}" for n, f in CASES])
def test_density_equals_numpyro_log_prob(name, form):
    """One draw (scalar arguments), a batch (array arguments), a plate and a for loop."""
    args = ARGS[name][form]
    v = values(name, form, args)
    lp, in_support = reference_logp(name, form)(tuple(args), v)
    args = traced(args)
    single_args = tuple(a[0] for a in args)
    assert in_support and np.all(np.isfinite(lp))
    # The single draw has the arguments and value of the batch's first element.
    expected = {"single": float(lp[0]), "batched": float(lp.sum()), "plated": float(lp.sum()),
                "looped": float(lp.sum())}
    m = module(name, form)
    trace = {"single": v[0], "batched": v, "plated": v, "looped": v}
    got = m.every(*single_args, *args, N).density(trace)
    if np.allclose(got, sum(expected.values()), rtol=1e-5, atol=1e-5):
        return
    # Say which way of drawing disagrees.
    each = {"single": m.direct(*single_args).density({"x": v[0]}), "batched": m.direct(*args).density({"x": v}),
            "plated": m.plated(*args, N).density({"x": v}), "looped": m.looped(*args, N).density({"x": v})}
    wrong = {mode: (float(each[mode]), expected[mode]) for mode in MODES
             if not np.allclose(each[mode], expected[mode], rtol=1e-5, atol=1e-5)}
    pytest.fail(f"{name}{form}: density {float(got)} but numpyro gives {sum(expected.values())}; "
                f"(ppl, numpyro) by way of drawing: {wrong}")


# The event shape of each multivariate family's draws here.
EVENTS = {"mvnormal": (3,), "mvnormal_diag": (3,), "dirichlet": (4,), "multinomial": (4,),
          "gaussian_random_walk": (4,), "lkj_cholesky": (3, 3)}


def test_event_shapes_of_multivariate_choices():
    """A multivariate choice has its event dims; a batch of them puts the batch first."""
    for name, form in CASES:
        if name not in EVENTS:
            continue
        args = traced(ARGS[name][form])
        m = module(name, form)
        key = jax.random.PRNGKey(0)
        # The types of simulate's results, found without compiling the sampler.
        single, _ = jax.eval_shape(m.direct(*[a[0] for a in args]).simulate, key)
        batched, _ = jax.eval_shape(m.direct(*args).simulate, key)
        assert single["x"].shape == EVENTS[name]
        assert batched["x"].shape == (N,) + EVENTS[name]


# Simulation compiles a sampler, the slow part of this file: one form per distribution
# (the forms share their sampler's plumbing, which the density test covers).
DEFAULT_FORMS = [(name, STANDARD.distributions[name].forms[0]) for name in ARGS]


@pytest.mark.parametrize("name,form", DEFAULT_FORMS, ids=[n for n, _ in DEFAULT_FORMS])
def test_simulate_then_density_gives_back_logp(name, form):
    """``density(simulate(key))`` equals the logp simulate returned, and numpyro's, on the draws."""
    args = ARGS[name][form]
    g = module(name, form).direct(*traced(args))
    trace, logp = g.simulate(jax.random.PRNGKey(1))
    x = trace["x"]
    assert x.shape == values(name, form, args).shape
    assert x.dtype == (jnp.int32 if STANDARD.distributions[name].discrete else jnp.float32)
    expected, in_support = reference_logp(name, form)(tuple(args), x)
    assert in_support
    np.testing.assert_allclose(g.density(trace), logp, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(logp, expected.sum(), rtol=1e-5, atol=1e-5)


def test_mixed_positional_and_keyword_arguments():
    m = ppl.compile("gen g(l, c) { x ~ mvnormal(l, covariance_matrix=c) }")
    loc, v = ARGS["mvnormal"][("loc", "covariance_matrix")][0][0], reals((3,))
    expected = dist.MultivariateNormal(loc, covariance_matrix=SPD).log_prob(v)
    np.testing.assert_allclose(m.g(loc, SPD).density({"x": v}), expected, rtol=1e-5)


def test_literal_and_broadcast_arguments():
    """Literals and a scalar broadcast against an array score as numpyro's broadcasting does."""
    m = ppl.compile("""
gen lit() { x ~ normal(0.5, 2.0) }
gen bcast(loc) { x ~ normal(loc, 2.0) }
gen bern() { x ~ bernoulli(logits=-0.3) }
""")
    v = reals()
    np.testing.assert_allclose(m.lit().density({"x": v[0]}), dist.Normal(0.5, 2.0).log_prob(v[0]), rtol=1e-5)
    loc = reals()
    np.testing.assert_allclose(m.bcast(loc).density({"x": v}), dist.Normal(loc, 2.0).log_prob(v).sum(), rtol=1e-5)
    np.testing.assert_allclose(m.bern().density({"x": 1}), dist.Bernoulli(logits=-0.3).log_prob(1), rtol=1e-5)
