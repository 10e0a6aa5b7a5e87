"""The language core: traces, addresses, conditioning, control flow, parameters, helpers.

Each test states one rule of the language (LANGUAGE.md §1-3) and checks it on a
small program with an exact identity: ``density`` of a simulated trace is the
``logp`` simulate returned, a log density equals the one written by hand with
``jax.scipy.stats``, a conditioned density is the joint density of latents and
observations. No test asserts a sampled float under a fixed key.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.special import logsumexp
from jax.scipy.stats import norm

import ppl
from ppl import DataError
from ppl.compiler.ir import format_program

KEY = jax.random.PRNGKey(0)

SOURCE = """
gen sub(mu) {
    x ~ normal(mu, 1.0)
    z ~ normal(x, 0.5) at "zz"
    return x + 1.0
}

gen top() {
    m ~ normal(0.0, 1.0)
    y ~ sub(m)
    w ~ normal(y, 2.0)
    return (y, {a: m, b: w})
}

gen plated(n: int) { plate i in n { y ~ sub(0.5) } }

gen nested(n: int, k: int) {
    plate i in n { plate j in k { x ~ normal(1.0, 2.0) } }
}

gen calls_in_plate(mu, n: int) { plate i in n { y ~ sub(mu[i]) } }

gen walk(T: int) {
    s = 0.0
    for t in T { s ~ normal(s, 1.0) at "x" }
    return s
}

gen ssm(T: int, a, q, r) {
    z = 0.0
    for t in T {
        z ~ normal(a * z, q)
        y ~ normal(z, r)
    }
    return z
}

gen linreg(x) {
    w ~ normal(0.0, 1.0)
    b ~ normal(0.0, 1.0)
    plate i in size(x) { y ~ normal(w * x[i] + b, 0.5) }
}

gen coin(n: int) {
    p ~ beta(2.0, 2.0)
    plate i in n { flips ~ bernoulli(p) }
    return p
}

gen structure(k: int, n: int) {
    if k > 0 { a ~ normal(0.0, 1.0) } else { plate i in n { b ~ normal(0.0, 1.0) } }
}

gen flagged(flag: bool) { if flag { a ~ normal(0.0, 1.0) } else { b ~ exponential(2.0) } }

gen select(c) {
    x ~ normal(0.0, 1.0)
    if x > c { y = 2.0 * x; factor -1.0 } else { y = x - 1.0 }
    return y
}

gen select_factor(c) {
    x ~ normal(0.0, 1.0)
    if x > c { factor -x * x }
    return x
}

gen random_under_traced_if(c) {
    x ~ normal(0.0, 1.0)
    if x > c { y ~ normal(0.0, 1.0) }
}

gen with_factor(v) { x ~ normal(0.0, 1.0); factor v * x }

gen hoisted(mu, n: int) { plate i in n { x ~ normal(mu[i], 1.0) } }
gen reversed_index(mu, n: int) { plate i in n { x ~ normal(mu[n - 1 - i], 1.0) } }
gen vectorised(mu) { x ~ normal(mu, 1.0) }

fn logmeanexp(v) { return logsumexp(v) - log(size(v)) }
gen uses_fn(v) { x ~ normal(logmeanexp(v), 1.0); return logmeanexp(v) }
"""


@pytest.fixture(scope="module")
def m():
    return ppl.compile(SOURCE)


def logn(x, loc, scale):
    """The normal log density, in float64 numpy (no small JAX compilations per call)."""
    x, loc, scale = (np.asarray(a, np.float64) for a in (x, loc, scale))
    return -0.5 * np.log(2 * np.pi) - np.log(scale) - (x - loc) ** 2 / (2 * scale ** 2)


# ---------------------------------------------------------------- addresses and shapes


def test_nested_call_addresses_are_prefixed(m):
    t, lp = m.top().simulate(KEY)
    assert t.addresses == ("m", "w", "y/x", "y/zz")
    expected = (logn(t["m"], 0.0, 1.0) + logn(t["y/x"], t["m"], 1.0) + logn(t["y/zz"], t["y/x"], 0.5)
                + logn(t["w"], t["y/x"] + 1.0, 2.0))
    np.testing.assert_allclose(lp, expected, rtol=1e-5)
    np.testing.assert_allclose(m.top().density(t), lp, rtol=1e-6)


def test_return_value_of_call_and_of_function(m):
    t, _ = m.top().simulate(KEY)
    y, record = t.retval
    np.testing.assert_allclose(y, t["y/x"] + 1.0, rtol=1e-6)
    assert set(record) == {"a", "b"}
    np.testing.assert_array_equal(record["a"], t["m"])
    np.testing.assert_array_equal(record["b"], t["w"])
    t, _ = m.walk(3).simulate(KEY)
    np.testing.assert_array_equal(t.retval, t["x"][-1])


def test_explicit_address_replaces_the_binder(m):
    t, _ = m.sub(0.0).simulate(KEY)
    assert t.addresses == ("x", "zz")
    assert "z" not in t


def test_plate_stacks_values_along_a_leading_axis(m):
    t, lp = m.plated(4).simulate(KEY)
    assert t.addresses == ("y/x", "y/zz")
    assert t["y/x"].shape == (4,) and t["y/zz"].shape == (4,)
    expected = np.sum(logn(t["y/x"], 0.5, 1.0) + logn(t["y/zz"], t["y/x"], 0.5))
    np.testing.assert_allclose(lp, expected, rtol=1e-5)
    np.testing.assert_allclose(m.plated(4).density(t), lp, rtol=1e-6)


def test_nested_plates_give_shape_n_by_m(m):
    t, lp = m.nested(2, 3).simulate(KEY)
    assert t["x"].shape == (2, 3)
    np.testing.assert_allclose(lp, np.sum(logn(t["x"], 1.0, 2.0)), rtol=1e-5)
    x = np.arange(6.0, dtype=np.float32).reshape(2, 3)
    np.testing.assert_allclose(m.nested(2, 3).density({"x": x}), np.sum(logn(x, 1.0, 2.0)), rtol=1e-5)


def test_calls_inside_a_plate_read_their_slice(m):
    mu = np.float32([0.0, 10.0, -10.0])
    t, lp = m.calls_in_plate(mu, 3).simulate(KEY)
    assert t["y/x"].shape == (3,)
    x = np.float32([0.5, 9.0, -11.0])
    zz = np.float32([1.0, 2.0, 3.0])
    expected = np.sum(logn(x, mu, 1.0) + logn(zz, x, 0.5))
    np.testing.assert_allclose(m.calls_in_plate(mu, 3).density({"y/x": x, "y/zz": zz}), expected, rtol=1e-5)
    np.testing.assert_allclose(m.calls_in_plate(mu, 3).density(t), lp, rtol=1e-6)


def test_for_loop_stacks_along_a_leading_axis_and_carries_state(m):
    """A Gaussian random walk: x_t ~ normal(x_{t-1}, 1), x_{-1} = 0; the result is the last state."""
    t, lp = m.walk(5).simulate(KEY)
    x = t["x"]
    assert x.shape == (5,)
    np.testing.assert_array_equal(t.retval, x[-1])
    previous = np.concatenate([[0.0], x[:-1]])
    np.testing.assert_allclose(lp, np.sum(logn(x, previous, 1.0)), rtol=1e-5)
    data = np.float32([0.5, -1.0, 2.0, 2.5, 0.0])
    previous = np.concatenate([[0.0], data[:-1]])
    np.testing.assert_allclose(m.walk(5).density({"x": data}), np.sum(logn(data, previous, 1.0)), rtol=1e-5)


def test_linear_gaussian_state_space_model(m):
    """z_t ~ normal(a z_{t-1}, q), y_t ~ normal(z_t, r): the joint density, conditioned on y."""
    a, q, r = 0.9, 0.7, 0.5
    z = np.float32([0.3, -0.2, 0.8, 1.1, 0.4, -0.6])
    y = np.float32([0.1, 0.0, 1.2, 0.9, 0.2, -1.0])
    previous = np.concatenate([[0.0], z[:-1]]).astype(np.float32)
    expected = jax.jit(lambda: jnp.sum(norm.logpdf(z, a * previous, q)) + jnp.sum(norm.logpdf(y, z, r)))()
    g = m.ssm(6, a, q, r)
    np.testing.assert_allclose(g.density({"z": z, "y": y}), expected, rtol=1e-5)
    np.testing.assert_allclose((g | {"y": y}).density({"z": z}), expected, rtol=1e-5)
    t, lp = g.simulate(KEY)
    assert t["z"].shape == (6,) and t["y"].shape == (6,)
    np.testing.assert_array_equal(t.retval, t["z"][-1])
    np.testing.assert_allclose(g.density(t), lp, rtol=1e-5)


# ---------------------------------------------------------------- the Trace object


def test_trace_indexing(m):
    t, _ = m.top().simulate(KEY)
    np.testing.assert_array_equal(t["y"]["x"], t["y/x"])
    np.testing.assert_array_equal(t["y"]["zz"], t["y/zz"])
    assert isinstance(t["y"], ppl.Trace) and t["y"].addresses == ("x", "zz")
    assert "y/x" in t and "y" in t and "nope" not in t
    assert list(t) == ["m", "w", "y/x", "y/zz"] and len(t) == 4
    with pytest.raises(DataError, match="no address 'y/q'"):
        t["y/q"]


def test_trace_is_a_pytree(m):
    t, lp = m.top().simulate(KEY)
    leaves, treedef = jax.tree_util.tree_flatten(t)
    assert len(leaves) == 4 + 3  # four choices, and the return value (y, {a, b})
    back = jax.tree_util.tree_unflatten(treedef, leaves)
    assert isinstance(back, ppl.Trace) and back.addresses == t.addresses
    for a in t:
        np.testing.assert_array_equal(back[a], t[a])
    np.testing.assert_array_equal(back.retval[1]["a"], t.retval[1]["a"])
    shifted = jax.tree_util.tree_map(lambda v: v + 1.0, t)
    assert isinstance(shifted, ppl.Trace)
    np.testing.assert_allclose(shifted["m"], t["m"] + 1.0)


def test_trace_passes_through_jit(m):
    t, lp = m.top().simulate(KEY)
    same = jax.jit(lambda tr: tr)(t)
    assert isinstance(same, ppl.Trace) and same.addresses == t.addresses
    np.testing.assert_array_equal(same["y/zz"], t["y/zz"])
    g = m.top()
    np.testing.assert_allclose(jax.jit(g.density)(t), lp, rtol=1e-6)
    traces, logps = jax.jit(g.simulate)(KEY)
    np.testing.assert_allclose(g.density(traces), logps, rtol=1e-6)


def test_same_key_same_trace_and_different_keys_differ(m):
    g = m.plated(8)
    a, _ = g.simulate(KEY)
    b, _ = g.simulate(KEY)
    c, _ = g.simulate(jax.random.PRNGKey(1))
    np.testing.assert_array_equal(a["y/x"], b["y/x"])
    assert not np.array_equal(a["y/x"], c["y/x"])


# ---------------------------------------------------------------- conditioning


def test_conditioning_adds_exactly_the_observations_density(m):
    x = np.float32([0.0, 1.0, 2.0, 3.0])
    g = m.linreg(x)
    t, _ = g.simulate(KEY)
    latents = {"w": t["w"], "b": t["b"]}
    joint = g.density(t)
    np.testing.assert_allclose((g | {"y": t["y"]}).density(latents), joint, rtol=1e-6)
    expected = (logn(t["w"], 0.0, 1.0) + logn(t["b"], 0.0, 1.0)
                + np.sum(logn(t["y"], t["w"] * x + t["b"], 0.5)))
    np.testing.assert_allclose(joint, expected, rtol=1e-5)


def test_conditioning_on_nested_addresses_and_chained_conditioning(m):
    t, lp = m.top().simulate(KEY)
    g = m.top()
    both = g | {"y/x": t["y/x"], "w": t["w"]}
    chained = (g | {"y/x": t["y/x"]}) | {"w": t["w"]}
    rest = {"m": t["m"], "y/zz": t["y/zz"]}
    np.testing.assert_allclose(both.density(rest), lp, rtol=1e-6)
    np.testing.assert_allclose(chained.density(rest), lp, rtol=1e-6)
    everything = g | {a: t[a] for a in t}
    np.testing.assert_allclose(everything.density({}), lp, rtol=1e-6)


def test_density_errors_name_the_address(m):
    x = np.float32([0.0, 1.0, 2.0, 3.0])
    g = m.linreg(x)
    y = np.zeros(4, np.float32)
    conditioned = g | {"y": y}
    with pytest.raises(DataError, match="the trace has no value for 'b'"):
        conditioned.density({"w": 0.0})
    with pytest.raises(DataError, match="the trace has a value at 'c'"):
        conditioned.density({"w": 0.0, "b": 0.0, "c": 1.0})
    with pytest.raises(DataError, match="the trace has a value at 'y', but it is observed"):
        conditioned.density({"w": 0.0, "b": 0.0, "y": y})
    with pytest.raises(DataError, match="'yy' is observed, but .* draws no choice at that address"):
        (g | {"yy": y}).density({"w": 0.0, "b": 0.0})
    with pytest.raises(DataError, match=r"value at 'y' has type real\[2\], but .* draws real\[4\]"):
        g.density({"w": 0.0, "b": 0.0, "y": y[:2]})
    with pytest.raises(DataError, match="cannot simulate"):
        conditioned.simulate(KEY)
    with pytest.raises(DataError, match="observed twice"):
        conditioned | {"y": y}
    with pytest.raises(DataError, match="needs a Trace or a dict"):
        g.density([0.0, 1.0])


def test_numeric_data_of_another_dtype_fits_a_choice(m):
    # 0/1 reals for a bernoulli score as the integers they are.
    np.testing.assert_allclose(m.coin(3).density({"p": 0.5, "flips": np.float32([0.0, 1.0, 1.0])}),
                               m.coin(3).density({"p": 0.5, "flips": np.int32([0, 1, 1])}), rtol=1e-6)
    with pytest.raises(DataError, match="'flips'"):
        m.coin(3).density({"p": 0.5, "flips": np.bool_([False, True, True])})
    # Integer data for a real-valued choice is fine.
    np.testing.assert_allclose(m.walk(2).density({"x": np.int32([1, 2])}),
                               logn(1.0, 0.0, 1.0) + logn(2.0, 1.0, 1.0), rtol=1e-5)


# ---------------------------------------------------------------- control flow and factor


def test_static_if_chooses_the_structure(m):
    assert m.structure(1, 3).simulate(KEY)[0].addresses == ("a",)
    t, _ = m.structure(0, 3).simulate(KEY)
    assert t.addresses == ("b",) and t["b"].shape == (3,)
    assert m.flagged(True).simulate(KEY)[0].addresses == ("a",)
    t, lp = m.flagged(False).simulate(KEY)
    assert t.addresses == ("b",)
    np.testing.assert_allclose(m.flagged(False).density(t), lp, rtol=1e-6)


@pytest.mark.parametrize("c", [-10.0, 10.0])
def test_traced_if_selects_values_and_factors(m, c):
    """x ~ normal(0, 1) is above -10 and below 10 (but for 1e-23 of the time)."""
    taken = c < 0
    g = m.select(c)
    t, lp = g.simulate(KEY)
    x = t["x"]
    np.testing.assert_allclose(t.retval, 2.0 * x if taken else x - 1.0, rtol=1e-6)
    np.testing.assert_allclose(lp, logn(x, 0.0, 1.0) + (-1.0 if taken else 0.0), rtol=1e-5)
    np.testing.assert_allclose(g.density(t), lp, rtol=1e-6)
    g = m.select_factor(c)
    t, lp = g.simulate(KEY)
    x = t["x"]
    np.testing.assert_allclose(lp, logn(x, 0.0, 1.0) - (x * x if taken else 0.0), rtol=1e-5)
    np.testing.assert_allclose(g.density({"x": 0.5}), logn(0.5, 0.0, 1.0) - (0.25 if taken else 0.0),
                               rtol=1e-5)


def test_random_choice_under_a_traced_condition_is_an_error(m):
    with pytest.raises(ppl.CompileError, match="random choice under a condition known only at run time"):
        m.random_under_traced_if(0.0).simulate(KEY)


def test_factor_adds_to_the_density(m):
    v = np.float32([1.0, 2.0])  # an array factor adds its sum
    g = m.with_factor(v)
    np.testing.assert_allclose(g.density({"x": 0.5}), logn(0.5, 0.0, 1.0) + 3.0 * 0.5, rtol=1e-5)
    t, lp = g.simulate(KEY)
    np.testing.assert_allclose(lp, logn(t["x"], 0.0, 1.0) + 3.0 * t["x"], rtol=1e-5)


# ---------------------------------------------------------------- parameters


PARAMS = """
gen scale() { param s: real<lower=0> = 2.0; x ~ normal(0.0, s); return s }
gen constrained() {
    param u: real<lower=0, upper=1> = 0.25
    param q: simplex[3] = [0.2, 0.3, 0.5]
    param lo: real<lower=1, upper=3>
    param hi: real<upper=-1>
    x ~ categorical(q)
    return (u, q, lo, hi)
}
gen initialised() {
    param w: real[3, 4] = glorot()
    param v: real[50] = normal_init(0.01)
    param z: real[2] = zeros()
    param b: real[3] = 0.5
    param a: real
    x ~ normal(a, 1.0)
    return (w, v, z, b, a)
}
gen inner() { param s: real<lower=0> = 3.0; x ~ normal(0.0, s) }
gen outer() { y ~ inner() }
gen free() { x ~ normal(0.0, 1.0) }
"""


@pytest.fixture(scope="module")
def pm():
    return ppl.compile(PARAMS)


def test_init_gives_unconstrained_values_by_path(pm):
    g = pm.scale()
    params = g.init(KEY)
    assert set(params) == {"scale.s"}
    np.testing.assert_allclose(params["scale.s"], np.log(2.0), rtol=1e-6)  # lower=0: exp
    t, _ = g.simulate(KEY, params)
    np.testing.assert_allclose(t.retval, 2.0, rtol=1e-6)
    np.testing.assert_allclose(g.density({"x": 0.0}, params), logn(0.0, 0.0, 2.0), rtol=1e-6)
    # The program reads exp(u) of whatever unconstrained value it is given.
    np.testing.assert_allclose(g.density({"x": 0.0}, {"scale.s": jnp.float32(0.0)}), logn(0.0, 0.0, 1.0),
                               rtol=1e-6)


def test_constrained_parameters_satisfy_their_constraints(pm):
    g = pm.constrained()
    params = g.init(KEY)
    assert params["constrained.q"].shape == (2,)  # a simplex of 3 has 2 free coordinates
    u, q, lo, hi = g.simulate(KEY, params)[0].retval
    np.testing.assert_allclose(u, 0.25, rtol=1e-6)
    np.testing.assert_allclose(q, [0.2, 0.3, 0.5], rtol=1e-5)
    np.testing.assert_allclose(lo, 2.0, rtol=1e-6)  # no initialiser: the middle of the interval
    np.testing.assert_allclose(hi, -2.0, rtol=1e-6)  # ... or one below an upper bound
    # Any unconstrained values map inside the constraints.
    for seed in range(3):
        keys = jax.random.split(jax.random.PRNGKey(seed), len(params))
        wild = {p: 5.0 * jax.random.normal(k, v.shape) for (p, v), k in zip(params.items(), keys)}
        u, q, lo, hi = g.simulate(KEY, wild)[0].retval
        assert 0.0 < u < 1.0 and 1.0 < lo < 3.0 and hi < -1.0
        assert bool(np.all(np.asarray(q) >= 0)) and abs(float(q.sum()) - 1.0) < 1e-5


def test_initialisers_give_the_declared_shapes(pm):
    g = pm.initialised()
    params = g.init(KEY)
    assert {p: v.shape for p, v in params.items()} == {
        "initialised.w": (3, 4), "initialised.v": (50,), "initialised.z": (2,), "initialised.b": (3,),
        "initialised.a": ()}
    w, v, z, b, a = g.simulate(KEY, params)[0].retval
    assert w.shape == (3, 4) and float(np.std(w)) > 0.1  # glorot: variance 2 / (3 + 4)
    assert v.shape == (50,) and 0.0 < float(np.std(v)) < 0.05  # normal_init(0.01)
    np.testing.assert_array_equal(z, [0.0, 0.0])
    np.testing.assert_array_equal(b, [0.5, 0.5, 0.5])  # a scalar initial value is broadcast
    np.testing.assert_array_equal(a, 0.0)
    # init is a function of the key
    other = g.init(jax.random.PRNGKey(1))
    assert not np.array_equal(other["initialised.w"], params["initialised.w"])
    np.testing.assert_array_equal(g.init(KEY)["initialised.w"], params["initialised.w"])


def test_parameters_of_a_called_function_are_named_by_its_call(pm):
    """inner called at address y from outer: its parameter is outer.y.s (called from
    Python, inner's own is inner.s)."""
    g = pm.outer()
    params = g.init(KEY)
    assert set(params) == {"outer.y.s"}
    assert set(pm.inner().init(KEY)) == {"inner.s"}
    np.testing.assert_allclose(g.density({"y/x": 0.0}, params), logn(0.0, 0.0, 3.0), rtol=1e-6)


def test_params_are_required_only_when_the_function_has_some(pm):
    t, lp = pm.free().simulate(KEY)
    np.testing.assert_allclose(pm.free().density(t), lp, rtol=1e-6)
    assert pm.free().init(KEY) == {}
    with pytest.raises(DataError, match=r"has parameters \(scale.s\) but no params were given"):
        pm.scale().simulate(KEY)
    with pytest.raises(DataError, match="has parameters"):
        pm.scale().density({"x": 0.0})
    with pytest.raises(DataError, match="params has no value for 'scale.s'"):
        pm.scale().simulate(KEY, {"other.s": jnp.float32(0.0)})


# ---------------------------------------------------------------- helpers, externs, builtins


def test_fn_helpers_from_a_program_and_from_python(m):
    v = np.float32([1.0, 2.0, 3.0, -1.0])
    expected = logsumexp(v) - np.log(4.0)
    np.testing.assert_allclose(m.logmeanexp(v), expected, rtol=1e-6)
    g = m.uses_fn(v)
    np.testing.assert_allclose(g.density({"x": 0.25}), logn(0.25, expected, 1.0), rtol=1e-5)
    t, _ = g.simulate(KEY)
    np.testing.assert_allclose(t.retval, expected, rtol=1e-6)


def test_externs_are_called_like_builtins():
    m = ppl.compile("""
gen g(v) { x ~ normal(double(v), 1.0); return double(v) }
fn h(v) { return double(v) + 1.0 }
""", externs={"double": lambda x: 2 * x})
    v = np.float32([0.5, -1.0])
    np.testing.assert_allclose(m.h(v), 2 * v + 1.0)
    np.testing.assert_allclose(m.g(v).density({"x": v}), np.sum(logn(v, 2 * v, 1.0)), rtol=1e-5)
    np.testing.assert_allclose(m.g(v).simulate(KEY)[0].retval, 2 * v)


def test_builtins_records_and_tuples():
    m = ppl.compile("""
fn builtins(v, M) {
    r = {p: softplus(v), q: (logsumexp(M, axis=1), reshape(M, 6))}
    return (r.p, r["q"][0], r.q[1], concat(v, v), stack(v, v, axis=1), transpose(M), M @ v,
            v[1:3], M[:, 0], M[1], [1.0, 2.0, 3.0], sum(M, axis=0), where(v > 0.0, v, 0.0))
}
""")
    v = np.float32([0.5, -1.0, 2.0])
    M = np.arange(6.0, dtype=np.float32).reshape(2, 3)
    expected = (jax.nn.softplus(v), logsumexp(M, axis=1), M.reshape(6), np.concatenate([v, v]),
                np.stack([v, v], axis=1), M.T, M @ v, v[1:3], M[:, 0], M[1], np.float32([1, 2, 3]),
                M.sum(0), np.where(v > 0, v, 0))
    got = m.builtins(v, M)
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert np.shape(g) == np.shape(e)
        np.testing.assert_allclose(g, e, rtol=1e-6)


def test_plate_index_hoisting_reads_the_slice(m):
    """``mu[i]`` inside ``plate i in n`` (mu of shape [n]) becomes a mapped input, not an index."""
    mu = np.float32([0.1, -0.2, 0.3])
    x = np.float32([1.0, 2.0, 3.0])
    expected = np.sum(logn(x, mu, 1.0))
    np.testing.assert_allclose(m.hoisted(mu, 3).density({"x": x}), expected, rtol=1e-5)
    np.testing.assert_allclose(m.vectorised(mu).density({"x": x}), expected, rtol=1e-5)
    np.testing.assert_allclose(m.reversed_index(mu[::-1].copy(), 3).density({"x": x}), expected, rtol=1e-5)
    lowered = format_program(m.hoisted(mu, 3).ir(after="lower"))
    hoisted_fn = lowered[lowered.index("def hoisted"):]
    assert "index" not in hoisted_fn.split("\n}\n")[0]
    t, lp = m.hoisted(mu, 3).simulate(KEY)
    np.testing.assert_allclose(m.hoisted(mu, 3).density(t), lp, rtol=1e-6)
