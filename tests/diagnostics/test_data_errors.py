"""Errors in what Python passes to a program: observations, traces, params, arguments.

These cannot be written as ``# entry:`` lines of the bad corpus, so each is
an inline test on the message's key phrases. Every one must be a
:class:`ppl.PPLError` (most are :class:`ppl.DataError`), never a JAX or
Python error from deep inside.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

import ppl

SOURCE = """
gen coin(n: int) {
    p ~ beta(2.0, 2.0)
    plate i in n {
        flips ~ bernoulli(p)
    }
    return p
}

gen guide() {
    param a: real<lower=0> = 1.0
    param b: real<lower=0> = 1.0
    p ~ beta(a, b)
}

gen shaped(x: real[3]) {
    z ~ normal(x, 1.0)
}
"""

KEY = jax.random.PRNGKey(0)


@pytest.fixture(scope="module")
def m():
    return ppl.compile(SOURCE, "coin.ppl")


def raises(fn, *phrases, cls=ppl.PPLError) -> ppl.PPLError:
    with pytest.raises(ppl.PPLError) as info:
        fn()
    err = info.value
    assert isinstance(err, cls), f"{type(err).__name__}: {err}"
    text = str(err)
    for phrase in phrases:
        assert phrase in text, f"{phrase!r} not in:\n{text}"
    return err


def flips(n: int):
    return jnp.ones(n, dtype=jnp.int32)


def test_observing_an_unknown_address(m):
    target = m.coin(3) | {"flip": flips(3)}
    raises(lambda: target.density({"p": 0.5}), "'flip' is observed", "draws no choice",
           "did you mean 'flips'?", cls=ppl.DataError)


def test_trace_missing_an_address(m):
    raises(lambda: m.coin(3).density({"p": 0.5}), "the trace has no value for 'flips'",
           "must hold every unobserved choice", cls=ppl.DataError)


def test_trace_with_an_extra_address(m):
    trace = {"p": 0.5, "flips": flips(3), "q": 1.0}
    raises(lambda: m.coin(3).density(trace), "the trace has a value at 'q'", "draws no choice",
           cls=ppl.DataError)


def test_observation_with_the_wrong_shape(m):
    target = m.coin(3) | {"flips": flips(4)}
    raises(lambda: target.density({"p": 0.5}), "the observation of 'flips'", "int[4]", "int[3]",
           cls=ppl.DataError)


def test_trace_value_with_the_wrong_shape(m):
    raises(lambda: m.coin(3).density({"p": 0.5, "flips": flips(5)}), "'flips'", "int[5]",
           "int[3]", cls=ppl.DataError)


def test_params_missing(m):
    raises(lambda: m.guide().simulate(KEY), "has parameters", "guide.a", "guide.b",
           "no params were given", cls=ppl.DataError)


def test_one_param_missing(m):
    raises(lambda: m.guide().simulate(KEY, {"guide.a": 1.0}), "params has no value for 'guide.b'",
           cls=ppl.DataError)


def test_simulating_a_conditioned_model(m):
    target = m.coin(3) | {"flips": flips(3)}
    raises(lambda: target.simulate(KEY), "cannot simulate", "conditioned", "no sampler",
           cls=ppl.DataError)


def test_observing_an_address_twice(m):
    target = m.coin(3) | {"flips": flips(3)}
    raises(lambda: target | {"flips": flips(3)}, "'flips' is observed twice", cls=ppl.DataError)


def test_conditioning_on_something_else_than_a_dict(m):
    raises(lambda: m.coin(3) | [1, 2, 3], "condition with a dict of observations",
           cls=ppl.DataError)


def test_density_of_something_else_than_a_trace(m):
    raises(lambda: m.coin(3).density(3), "density() needs a Trace or a dict", cls=ppl.DataError)


def test_argument_that_is_not_an_array(m):
    raises(lambda: m.shaped("abc").simulate(KEY), "must be an array or a number, got str",
           cls=ppl.DataError)


def test_argument_with_the_wrong_shape(m):
    err = raises(lambda: m.shaped(jnp.zeros(2)).simulate(KEY), "argument 'x' of shaped",
                 "shape [3]", "real[2]", cls=ppl.CompileError)
    line = SOURCE.split("\n").index("gen shaped(x: real[3]) {") + 1
    assert (err.line, err.column) == (line, 12)  # the argument's annotation in the source


def test_traced_value_for_a_static_argument(m):
    raises(lambda: m.coin(jnp.ones(2)).simulate(KEY), "argument 'n' of coin",
           "must be a static int", cls=ppl.CompileError)


def test_too_many_arguments(m):
    raises(lambda: m.coin(3, 4).simulate(KEY), "coin() takes 1 argument but 2 were given",
           cls=ppl.CompileError)


def test_unknown_keyword_argument(m):
    raises(lambda: m.coin(m=3).simulate(KEY), "coin() has no argument 'm'", cls=ppl.CompileError)


def test_unreadable_file(tmp_path):
    err = raises(lambda: ppl.load(tmp_path / "missing.ppl"), "cannot read", cls=ppl.DataError)
    assert err.line is None  # no source to point into


def test_missing_declaration_is_an_attribute_error(m):
    with pytest.raises(AttributeError, match="did you mean 'coin'"):
        m.con


def test_params_of_the_wrong_shape_are_a_clear_error():
    import jax
    import jax.numpy as jnp

    m = ppl.compile("gen g() { param s: simplex[3]; c ~ categorical(s) }")
    params = m.g().init(jax.random.PRNGKey(0))
    with pytest.raises(ppl.DataError, match=r"params\['g.s'\] has shape \[3\].*shape \[2\]"):
        m.g().simulate(jax.random.PRNGKey(0), {"g.s": jnp.ones(3)})
    m.g().simulate(jax.random.PRNGKey(0), params)


def test_stdlib_objectives_need_generative_functions():
    m = ppl.compile("gen q() { z ~ normal(0.0, 1.0) }")
    with pytest.raises(ppl.DataError, match=r"elbo\(p, q\) takes generative functions.*q is int"):
        ppl.stdlib.elbo(m.q(), 3)
    other = ppl.compile("gen q() { z ~ normal(0.0, 1.0) }")
    with pytest.raises(ppl.DataError, match="different programs"):
        ppl.stdlib.iwelbo(m.q(), other.q(), K=2)


@pytest.mark.parametrize("make, phrase", [
    (lambda m: ppl.stdlib.marginal(m.guide(), keep=["q"]), "keep names 'q'"),
    (lambda m: ppl.stdlib.marginal(m.coin(3), keep=["p"], particles=0), "particles"),
    (lambda m: ppl.stdlib.normalize(m.coin(3), m.guide(), particles=0), "particles"),
])
def test_a_python_built_marginal_is_checked_when_made(m, make, phrase):
    """A mistake in a marginal's or normalize's arguments is reported by the call that makes
    it, not when an objective built from it is first used."""
    raises(lambda: make(m), phrase)
